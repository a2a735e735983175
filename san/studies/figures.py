"""Figures of the studies: Grad-CAM grids and feature-space (t-SNE) panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from data_tools.names import ordered_classes, ordered_domains
from data_tools.plotting import save_figure, subplots


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


CAM_COLOURS = "jet"
CAM_ALPHA = 0.45


def _show(axis: Axes, image: np.ndarray, heat: np.ndarray | None, title: str) -> None:
    axis.imshow(image)
    if heat is not None:
        axis.imshow(heat, cmap=CAM_COLOURS, alpha=CAM_ALPHA, vmin=0.0, vmax=1.0)
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def save_gradcam_grid(
    correct: Sequence[CamTile], wrong: Sequence[CamTile], path: str | Path, title: str
) -> Path:
    """Rows of pairs: correct predictions (PPL, XPL with their Grad-CAM) left, wrong ones right, with a
    colour bar of the heat-map scale (each map divided by its own maximum)."""
    rows = max(len(correct), len(wrong), 1)
    figure, axes = subplots(rows, 4, figsize=(8.8, 2.1 * rows + 0.9), squeeze=False, layout="constrained")
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
    scale = ScalarMappable(Normalize(0.0, 1.0), cmap=CAM_COLOURS)
    figure.colorbar(scale, ax=axes, shrink=min(0.9, 0.45 + 0.1 * rows), label="Grad-CAM / its maximum")
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path, dpi=100, tight=False)


def _scatter(axis: Axes, points: np.ndarray, groups: np.ndarray, names: list[str], title: str) -> None:
    """Points coloured by group; ``names`` fixes the colour of each group across panels."""
    colours = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
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
    figure, axes = subplots(len(embeddings), 2, figsize=(9.0, 4.2 * len(embeddings)), squeeze=False)
    for row, (name, (points, river, label)) in enumerate(embeddings.items()):
        title = f"{name}: t-SNE of fused features, by river"
        _scatter(axes[row, 0], points, np.asarray(river, dtype=str), rivers, title)
        _scatter(axes[row, 1], points, np.asarray(label, dtype=str), classes, f"{name}: by class")
    return save_figure(figure, path)
