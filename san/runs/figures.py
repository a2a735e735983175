"""Figures of a run: confusion matrices and training curves (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from san.evaluation.calibration import expected_calibration_error, reliability_bins  # noqa: E402


def save_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal) with counts, as a PNG."""
    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.0 + 0.55 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    display = ConfusionMatrixDisplay(normalised, display_labels=list(class_names))
    display.plot(ax=axis, cmap="Blues", values_format=".2f", colorbar=True, xticks_rotation=45)
    axis.set_title(f"{title} (rows: true class, normalised; n={int(counts.sum())})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def save_training_curves(history: list[dict[str, float]], path: str | Path, title: str) -> Path:
    """Loss, train/val accuracy and (adversaries) discriminator accuracy with its chance and class-only
    baselines, and lambda per epoch, as a PNG."""
    epochs = [h["epoch"] for h in history]
    panels = [
        ("loss", ["train_loss", "train_class_loss", "train_domain_loss", "train_domain_loss_chance"]),
        ("accuracy", ["train_acc", "val_accuracy", "val_macro_f1"]),
        (
            "adversary",
            ["train_disc_acc", "train_disc_acc_chance", "train_disc_acc_class_only", "train_lambda"],
        ),
    ]
    panels = [(name, [k for k in keys if any(k in h for h in history)]) for name, keys in panels]
    panels = [(name, keys) for name, keys in panels if keys]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for axis, (name, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            axis.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", markersize=3, label=key)
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def save_reliability_diagram(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path, title: str
) -> Path:
    """One panel per split: accuracy against mean confidence per bin, before and after scaling.

    Args:
        splits: split name -> (probabilities before, probabilities after, class indices).
    """
    figure, axes = plt.subplots(1, len(splits), figsize=(3.8 * len(splits), 3.8), squeeze=False)
    for axis, (split, (before, after, labels)) in zip(axes[0], splits.items(), strict=True):
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
        for name, probabilities, colour in (("before", before, "tab:red"), ("after", after, "tab:blue")):
            table = reliability_bins(probabilities, labels)
            filled = table["count"] > 0
            ece = expected_calibration_error(probabilities, labels)
            axis.plot(
                table["confidence"][filled],
                table["accuracy"][filled],
                marker="o",
                color=colour,
                label=f"{name} (ECE {ece:.3f})",
            )
        axis.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-1 probability)",
            ylabel="accuracy",
            title=f"{split} (n={len(labels)})",
        )
        axis.legend(fontsize=8, loc="upper left")
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
