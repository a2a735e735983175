"""Figures of a trained model in use: reliability diagram, assemblage chart, Grad-CAM grids, feature maps
(matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from data_tools.names import ordered_classes, ordered_domains  # noqa: E402
from san.evaluation.calibration import expected_calibration_error, reliability_bins  # noqa: E402


def _save(figure: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
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
    return _save(figure, path)


def save_assemblage_chart(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Per sample, raw and corrected percentages of every mineral side by side with 95% intervals."""
    figure, axes = plt.subplots(
        len(tables),
        1,
        figsize=(max(6.0, 0.7 * len(next(iter(tables.values())))), 3.4 * len(tables)),
        squeeze=False,
    )
    for axis, (sample, table) in zip(axes[:, 0], tables.items(), strict=True):
        positions = np.arange(len(table))
        series = [
            ("raw counts", "percent", "percent_low", "percent_high", "tab:grey"),
            ("corrected", "corrected_percent", "corrected_low", "corrected_high", "tab:blue"),
        ]
        for offset, (name, value, low, high, colour) in zip((-0.2, 0.2), series, strict=True):
            values = table[value].to_numpy(dtype=float)
            if np.isnan(values).all():
                continue
            axis.bar(positions + offset, values, width=0.4, color=colour, label=name)
            # Drawn as lines, not yerr: a bootstrap interval need not contain the point estimate.
            axis.vlines(positions + offset, table[low], table[high], color="black", linewidth=0.9)
        axis.set_xticks(positions, table["mineral"], rotation=45)
        axis.set(
            ylabel="% of grains", title=f"sample {sample} (n={int(table['count'].sum())}; 95% intervals)"
        )
        axis.legend(fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


@dataclass(frozen=True)
class CamTile:
    """One explained pair: prepared images (S x S x 3 uint8), heat maps in [0, 1] (S x S, or None when
    the model does not see that image), and its given and predicted labels."""

    plane: np.ndarray
    cross: np.ndarray
    plane_map: np.ndarray | None
    cross_map: np.ndarray | None
    given: str
    predicted: str
    probability: float


def _show(axis: plt.Axes, image: np.ndarray, heat: np.ndarray | None, title: str) -> None:
    axis.imshow(image)
    if heat is not None:
        axis.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def save_gradcam_grid(
    correct: Sequence[CamTile], wrong: Sequence[CamTile], path: str | Path, title: str
) -> Path:
    """Rows of pairs: correct predictions (PPL, XPL with their Grad-CAM) left, wrong ones right."""
    rows = max(len(correct), len(wrong), 1)
    figure, axes = plt.subplots(rows, 4, figsize=(8.0, 2.1 * rows + 0.6), squeeze=False)
    for column, (group, tiles) in enumerate((("correct", correct), ("wrong", wrong))):
        for row in range(rows):
            plane_axis, cross_axis = axes[row, 2 * column], axes[row, 2 * column + 1]
            if row >= len(tiles):
                plane_axis.axis("off")
                cross_axis.axis("off")
                if row == 0:
                    plane_axis.set_title(f"no {group} prediction", fontsize=8)
                continue
            tile = tiles[row]
            label = f"given {tile.given} / pred {tile.predicted} ({tile.probability:.2f})"
            _show(plane_axis, tile.plane, tile.plane_map, f"{group} PPL\n{label}")
            _show(cross_axis, tile.cross, tile.cross_map, f"{group} XPL\n{label}")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path, dpi=100)


def _scatter(axis: plt.Axes, points: np.ndarray, groups: np.ndarray, names: list[str], title: str) -> None:
    """Points coloured by group; ``names`` fixes the colour of each group across panels."""
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, name in enumerate(names):
        chosen = groups == name
        if chosen.any():
            axis.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colours(i % colours.N), label=name)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize=6, markerscale=1.5, loc="best")


def save_embedding_panels(
    embeddings: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path
) -> Path:
    """One row per model: its 2-D embedding coloured by river (left) and by class (right), with the same
    colour for a river or a class in every row.

    Args:
        embeddings: model name -> (points N x 2, river per point, class per point).
    """
    rivers = ordered_domains(np.concatenate([np.asarray(e[1], dtype=str) for e in embeddings.values()]))
    classes = ordered_classes(np.concatenate([np.asarray(e[2], dtype=str) for e in embeddings.values()]))
    figure, axes = plt.subplots(len(embeddings), 2, figsize=(9.0, 4.2 * len(embeddings)), squeeze=False)
    for row, (name, (points, river, label)) in enumerate(embeddings.items()):
        title = f"{name}: t-SNE of fused features, by river"
        _scatter(axes[row, 0], points, np.asarray(river, dtype=str), rivers, title)
        _scatter(axes[row, 1], points, np.asarray(label, dtype=str), classes, f"{name}: by class")
    return _save(figure, path)
