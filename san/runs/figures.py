"""Figures of a run: confusion matrices, training curves and the reliability diagram (no matplotlib
backend is chosen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from data_tools.plotting import save_figure, subplots
from san.evaluation.calibration import adaptive_bin_count, expected_calibration_error, reliability_bins


def _annotate_confusion(axis: Axes, counts: np.ndarray, normalised: np.ndarray, font_size: float) -> None:
    """Each cell with a count as "share\\n(count)"; an empty row (a class absent from the split) greyed
    and marked "n = 0" instead of a row of zero shares."""
    size = len(counts)
    for row in range(size):
        if counts[row].sum() == 0:
            axis.axhspan(row - 0.5, row + 0.5, color="0.85", zorder=2)
            axis.text(
                (size - 1) / 2,
                row,
                "n = 0: no pair of this class in this split",
                ha="center",
                va="center",
                fontsize=font_size,
                color="0.3",
                zorder=3,
            )
            continue
        for column in range(size):
            if counts[row, column] == 0 and row != column:
                continue  # empty off-diagonal cells stay blank so the errors stand out
            share = normalised[row, column]
            axis.text(
                column,
                row,
                f"{share:.2f}\n({int(counts[row, column])})",
                ha="center",
                va="center",
                fontsize=font_size,
                color="white" if share > 0.5 else "black",
                zorder=3,
            )


def save_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """:func:`confusion_figure` as a PNG at ``path``."""
    figure = confusion_figure(confusion, class_names, title)
    return save_figure(figure, path, dpi=110, bbox_inches="tight")  # the long row labels stay inside


def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (recall on the diagonal).

    Each cell shows the share of its true class and, in brackets, the pair count; each row label says
    how many pairs of that class the split holds; a class the split does not hold is a grey "n = 0" row.
    ``title`` should name the split and the rivers it covers.
    """
    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.2 + 0.75 * len(class_names)
    figure, axis = subplots(figsize=(size + 1.8, size + 0.6))
    display = ConfusionMatrixDisplay(normalised, display_labels=list(class_names))
    display.plot(ax=axis, cmap="Blues", include_values=False, colorbar=False, xticks_rotation=45)
    display.im_.set_clim(0.0, 1.0)
    figure.colorbar(display.im_, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    _annotate_confusion(axis, counts, normalised, font_size=7 if len(class_names) <= 12 else 5.5)
    axis.set_yticks(
        range(len(class_names)),
        [f"{name} (n={int(n)})" for name, n in zip(class_names, rows[:, 0], strict=True)],
    )
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(
        f"{title}\nrows: true class, share of the row (count); n = {int(counts.sum())}", fontsize=10
    )
    return figure


# (panel title, y label, [(history key, legend label)])
_CURVE_PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "loss",
        "cross-entropy",
        (
            ("train_loss", "train loss (total)"),
            ("train_class_loss", "train class loss"),
            ("train_domain_loss", "train domain loss"),
            ("train_domain_loss_chance", "domain loss without features (chance)"),
            ("val_loss", "val loss"),
        ),
    ),
    (
        "accuracy",
        "accuracy / macro-F1",
        (("train_acc", "train accuracy"), ("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro-F1")),
    ),
    (
        "adversary",
        "discriminator accuracy / λ",
        (
            ("train_disc_acc", "discriminator accuracy"),
            ("train_disc_acc_chance", "chance (without features)"),
            ("train_disc_acc_class_only", "from the class alone"),
            ("train_lambda", "λ (gradient reversal)"),
        ),
    ),
)


def save_training_curves(
    history: list[Mapping[str, float]],
    path: str | Path,
    title: str,
    *,
    chosen_epoch: int | None = None,
    selection: str = "",
) -> Path:
    """:func:`training_curves_figure` as a PNG at ``path``."""
    figure = training_curves_figure(history, title, chosen_epoch=chosen_epoch, selection=selection)
    return save_figure(figure, path, dpi=100)


def training_curves_figure(
    history: list[Mapping[str, float]], title: str, *, chosen_epoch: int | None = None, selection: str = ""
) -> Figure:
    """Loss (train and val), accuracy (train, val) and, for the adversaries, the discriminator's
    accuracy with its chance and class-only baselines (:mod:`san.algorithms.adversary`) and lambda
    per epoch, as a PNG.

    ``chosen_epoch`` (1-based, the epoch whose weights the run kept) is marked in every panel, with
    ``selection`` (the rule that chose it) in the legend.
    """
    epochs = [h["epoch"] for h in history]
    panels = [
        (name, ylabel, [(k, label) for k, label in keys if any(k in h for h in history)])
        for name, ylabel, keys in _CURVE_PANELS
    ]
    panels = [panel for panel in panels if panel[2]]
    figure, axes = subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    for axis, (name, ylabel, keys) in zip(axes[0], panels, strict=True):
        for key, label in keys:
            style = {"linestyle": "--"} if key.startswith("val_") else {}
            axis.plot(
                epochs, [h.get(key, np.nan) for h in history], marker="o", markersize=3, label=label, **style
            )
        if chosen_epoch is not None and chosen_epoch > 0:
            axis.axvline(
                chosen_epoch,
                color="black",
                linestyle=":",
                linewidth=1.2,
                label=f"chosen: epoch {chosen_epoch}" + (f"\n({selection})" if selection else ""),
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(ylabel)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name != "loss":
            axis.set_ylim(0.0, 1.05)
        axis.set_title(name)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def save_reliability_diagram(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path, title: str
) -> Path:
    """One panel per split: accuracy against mean confidence per bin, before and after scaling.

    Bins hold equal numbers of pairs (:func:`adaptive_bin_count`: at most 10, at least 15 pairs each),
    so no point rests on a handful of pairs; each point is labelled with its pair count. The ECE in
    the legend is the recorded one (15 equal-width bins).

    Args:
        splits: split name -> (probabilities before, probabilities after, class indices).
    """
    figure, axes = subplots(1, len(splits), figsize=(4.2 * len(splits), 4.2), squeeze=False)
    for axis, (split, (before, after, labels)) in zip(axes[0], splits.items(), strict=True):
        bins = adaptive_bin_count(len(labels))
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        for name, probabilities, colour in (("before", before, "tab:red"), ("after", after, "tab:blue")):
            table = reliability_bins(probabilities, labels, bins, equal_count=True)
            ece = expected_calibration_error(probabilities, labels)
            axis.plot(
                table["confidence"],
                table["accuracy"],
                marker="o",
                color=colour,
                label=f"{name} scaling (ECE {ece:.3f})",
            )
            for x, y, count in zip(table["confidence"], table["accuracy"], table["count"], strict=True):
                axis.annotate(
                    f"{int(count)}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(3, -9),
                    fontsize=6,
                    color=colour,
                )
        per_bin = len(labels) // bins
        axis.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="confidence (top-1 probability), bin mean",
            ylabel="accuracy in the bin",
            title=f"{split}: n = {len(labels)}, {bins} bins of ~{per_bin} pairs",
        )
        axis.legend(fontsize=7, loc="upper left")
        axis.grid(alpha=0.3)
    figure.suptitle(f"{title}\nnumbers: pairs per bin; ECE over 15 equal-width bins", fontsize=9)
    return save_figure(figure, path)
