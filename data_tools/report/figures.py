"""The report's figures (no backend chosen): class counts, statistics, sizes, duplicates, thumbnails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, NullFormatter, ScalarFormatter

from data_tools.images import ImageDecodeError, load_prepared
from data_tools.names import POLARIZATIONS, ordered_domains
from data_tools.plotting import save_figure, subplots
from data_tools.report.duplicates import HASH_BITS
from data_tools.report.statistics import LOG_SCALE_STATISTICS, STATISTIC_LABELS, STATISTICS

POL_NAMES = {"plane": "PPL", "cross": "XPL"}
POL_COLOURS = {"plane": "#e8c872", "cross": "#5b6bb5"}
DPI = 110


def plot_counts(counts: pd.DataFrame, path: Path) -> Path:
    """Heat map of pairs per river (rows) x class (columns); empty cells are marked in red."""
    values = counts.to_numpy()
    figure, axis = subplots(
        figsize=(max(5.0, 2.2 + 0.6 * counts.shape[1]), max(2.8, 1.8 + 0.5 * counts.shape[0]))
    )
    image = axis.imshow(values, cmap="Blues", aspect="auto", vmin=0)
    axis.set_xticks(range(counts.shape[1]), counts.columns, rotation=45, ha="right")
    axis.set_yticks(range(counts.shape[0]), counts.index)
    threshold = values.max() / 2 if values.size else 0
    for (row, column), value in np.ndenumerate(values):
        colour = "red" if value == 0 else ("white" if value > threshold else "black")
        axis.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=9)
    axis.set_xlabel("class")
    axis.set_ylabel("river (domain)")
    axis.set_title("Pairs per river and class (0 in red)")
    figure.colorbar(image, ax=axis, label="pairs")
    return save_figure(figure, path, dpi=DPI)


def plot_statistics(images: pd.DataFrame, outliers: pd.DataFrame, path: Path, *, whisker: float) -> Path:
    """Every statistic per river x polarization: box (quartiles, whiskers at ``whisker`` x IQR), every
    image as a grey dot, and the listed outliers (judged per class) as red crosses."""
    groups = [(d, p) for d in ordered_domains(images["domain"]) for p in POLARIZATIONS]
    groups = [g for g in groups if ((images["domain"] == g[0]) & (images["pol"] == g[1])).any()]
    width = max(4.5, 0.55 * len(groups) + 1.5)
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=len(images))
    jitter_of = dict(zip(images["path"], jitter, strict=True))
    figure, axes = subplots(4, 2, figsize=(2 * width, 13), squeeze=False)
    for axis, statistic in zip(axes.ravel(), STATISTICS, strict=True):
        floor = 1e-2 if statistic in LOG_SCALE_STATISTICS else -np.inf
        for position, (domain, pol) in enumerate(groups, start=1):
            mask = ((images["domain"] == domain) & (images["pol"] == pol)).to_numpy()
            values = np.maximum(images.loc[mask, statistic].to_numpy(), floor)
            boxes = axis.boxplot(
                [values], positions=[position], whis=whisker, widths=0.6, patch_artist=True, showfliers=False
            )
            boxes["boxes"][0].set_facecolor(POL_COLOURS[pol])
            boxes["boxes"][0].set_alpha(0.7)
            axis.scatter(position + jitter[mask], values, s=4, color="0.3", alpha=0.4, zorder=3)
            listed = outliers[
                (outliers["statistic"] == statistic)
                & (outliers["domain"] == domain)
                & (outliers["pol"] == pol)
            ]
            axis.scatter(
                position + np.array([jitter_of[path] for path in listed["path"]]),
                np.maximum(listed["value"].to_numpy(dtype=float), floor),
                marker="x",
                s=30,
                color="red",
                zorder=4,
            )
        if statistic in LOG_SCALE_STATISTICS:
            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(LogFormatter())  # 3 and 300, not 3 x 10^0
            axis.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.4)))
        axis.set_xticks(range(1, len(groups) + 1), [f"{d}\n{POL_NAMES[p]}" for d, p in groups], fontsize=8)
        axis.set_xlim(0.4, len(groups) + 0.6)
        axis.set_title(STATISTIC_LABELS[statistic], fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    handles = [Patch(color=POL_COLOURS[p], label=POL_NAMES[p]) for p in POLARIZATIONS]
    handles.append(Line2D([], [], marker="x", color="red", linestyle="", label="listed outlier (per class)"))
    axes[0, 0].legend(handles=handles, fontsize=8, loc="best")
    figure.suptitle("Acquisition statistics per river and polarization (one dot per image)")
    return save_figure(figure, path, dpi=DPI)


def plot_sizes(images: pd.DataFrame, path: Path) -> Path:
    """Width against height of every image, coloured by river, on log axes, with the square diagonal."""
    figure, axis = subplots(figsize=(6, 5))
    for domain in ordered_domains(images["domain"]):
        rows = images[images["domain"] == domain]
        axis.scatter(rows["width"], rows["height"], s=10, alpha=0.6, label=f"{domain} ({len(rows)})")
    low = max(1, int(min(images["width"].min(), images["height"].min())))
    high = int(max(images["width"].max(), images["height"].max()))
    axis.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="square")
    axis.set_xscale("log")
    axis.set_yscale("log")
    for ticks in (axis.xaxis, axis.yaxis):  # plain numbers (60, 100, 200), not 6 x 10^1
        ticks.set_major_formatter(ScalarFormatter())
        ticks.set_minor_formatter(NullFormatter())
    axis.set_xlabel("width (px)")
    axis.set_ylabel("height (px)")
    axis.set_title(f"Image sizes ({len(images)} images)")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, which="both")
    return save_figure(figure, path, dpi=DPI)


def plot_nearest_distances(images: pd.DataFrame, threshold: int, path: Path) -> Path:
    """Histogram of each pair's pHash distance to its nearest other pair, with the threshold."""
    pairs = images.drop_duplicates("sample_id")
    distances = pairs.loc[pairs["nearest_distance"] >= 0, "nearest_distance"]
    figure, axis = subplots(figsize=(6, 3.6))
    axis.hist(distances, bins=np.arange(-0.5, HASH_BITS + 1.5, 2.0), color="#5b6bb5")
    axis.set_xlim(-0.5, max(threshold + 6, int(distances.to_numpy().max(initial=0)) + 3))
    axis.axvline(
        threshold + 0.5, color="red", linestyle="--", label=f"near-duplicate threshold ({threshold})"
    )
    axis.set_xlabel(f"distance to the nearest other pair (larger of PPL and XPL, pHash bits of {HASH_BITS})")
    axis.set_ylabel("pairs")
    axis.set_title("How close is each pair's nearest neighbour?")
    axis.legend(fontsize=8)
    return save_figure(figure, path, dpi=DPI)


def plot_gallery(
    root: Path, panels: Sequence[Sequence[tuple[str, str]]], path: Path, title: str, size: int = 96
) -> Path:
    """Thumbnails in rows: each panel row is a list of (relative image path, caption)."""
    columns = max(len(row) for row in panels)
    figure, axes = subplots(len(panels), columns, figsize=(2.1 * columns, 2.3 * len(panels)), squeeze=False)
    for axis_row, row in zip(axes, panels, strict=True):
        for axis, cell in zip(axis_row, list(row) + [None] * (columns - len(row)), strict=True):
            axis.axis("off")
            if cell is None:
                continue
            relative, caption = cell
            try:
                axis.imshow(load_prepared(root / relative, size))
            except (ImageDecodeError, OSError):
                axis.text(0.5, 0.5, "unreadable", ha="center", va="center")
            axis.set_title(caption, fontsize=7)
    figure.suptitle(title)
    return save_figure(figure, path, dpi=DPI)
