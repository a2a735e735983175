"""Benchmark figures from the tidy run table (:func:`san.benchmark.tables.load_runs`): accuracy
bars with error bars per method and river, and a grid of row-normalised confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_tools.names import ordered_classes, ordered_domains
from data_tools.plotting import save_figure, subplots
from san.benchmark.tables import OVERALL, method_order, pooled_confusions, stat_over_seeds


def _bar_frame(tidy: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, str]:
    """Rows to plot and the column naming the x groups: the held-out river (loro) or the river (mixed)."""
    if protocol == "loro":
        loro = tidy[(tidy["protocol"] == "loro") & (tidy["split"] == "target") & (tidy["river"] == OVERALL)]
        return loro, "target"
    return tidy[(tidy["protocol"] == "mixed") & (tidy["split"] == "test")], "river"


def plot_accuracy_bars(tidy: pd.DataFrame, path: str | Path, *, protocol: str = "loro") -> Path | None:
    """Grouped bars of mean accuracy per river (x) and method (colour), error bars = std over seeds.

    ``loro`` plots target accuracy per held-out river, ``mixed`` test accuracy per river and overall.
    Returns the PNG path, or None when there are no runs of the protocol.
    """
    frame, group_column = _bar_frame(tidy, protocol)
    if frame.empty:
        return None
    groups = ordered_domains(frame.loc[frame[group_column] != OVERALL, group_column])
    if protocol == "mixed" and len(groups) > 1:
        groups.append(OVERALL)
    methods = method_order(frame["method"])
    width = 0.8 / len(methods)
    figure, axes = subplots(figsize=(max(5.0, 0.5 * len(groups) * len(methods) + 2), 4.5))
    for offset, method in enumerate(methods):
        stats = [
            stat_over_seeds(
                frame[(frame["method"] == method) & (frame[group_column] == g)].set_index("seed")["accuracy"]
            )
            for g in groups
        ]
        positions = np.arange(len(groups)) - 0.4 + width * (offset + 0.5)
        present = [i for i, s in enumerate(stats) if s is not None]  # a missing run gets no bar, not a zero
        errors = [0.0 if np.isnan(stats[i].std) else stats[i].std for i in present]
        axes.bar(
            positions[present], [stats[i].mean for i in present], width, yerr=errors, capsize=2, label=method
        )
    axes.set_xticks(np.arange(len(groups)), groups)
    axes.set_ylim(0, 1)
    axes.set_ylabel("target accuracy" if protocol == "loro" else "test accuracy")
    axes.set_xlabel("held-out river" if protocol == "loro" else "river")
    axes.set_title(
        ("Leave-one-river-out" if protocol == "loro" else "Mixed protocol") + ": mean ± std over seeds"
    )
    axes.legend(fontsize="small", ncols=min(len(methods), 5), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, path, dpi=150)


def plot_confusion_grid(tidy: pd.DataFrame, path: str | Path, *, protocol: str = "loro") -> Path | None:
    """One row-normalised confusion matrix per method (columns) for each held-out river (rows; a single
    ``mixed`` row for the mixed protocol), summed over seeds. Returns the PNG path, or None without runs."""
    split = "target" if protocol == "loro" else "test"
    frame = tidy[(tidy["protocol"] == protocol) & (tidy["split"] == split) & (tidy["river"] == OVERALL)]
    if frame.empty:
        return None
    targets = ordered_domains(frame["target"]) if protocol == "loro" else [""]
    methods = method_order(frame["method"])
    classes = ordered_classes(c for known in frame["classes"] for c in known)
    side = 0.25 * len(classes) + 1.2
    figure, grid = subplots(
        len(targets),
        len(methods),
        squeeze=False,
        figsize=(side * len(methods) + 1, side * len(targets) + 0.6),
    )
    image = None
    for row, target in enumerate(targets):
        for column, method in enumerate(methods):
            axes = grid[row, column]
            chosen = frame[frame["target"] == target]
            matrices = pooled_confusions(chosen, method, split, classes).values()
            axes.set_xticks([])
            axes.set_yticks([])
            if not matrices:
                axes.text(0.5, 0.5, "no run", ha="center", va="center", transform=axes.transAxes)
            else:
                counts = np.sum(list(matrices), axis=0).astype(float)
                totals = counts.sum(axis=1, keepdims=True)
                image = axes.imshow(
                    np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0),
                    vmin=0,
                    vmax=1,
                    cmap="Blues",
                )
            if row == 0:
                axes.set_title(method, fontsize="small")
            if column == 0:
                axes.set_ylabel(f"{target} held out\ntrue" if target else "true", fontsize="small")
                axes.set_yticks(range(len(classes)), classes, fontsize="x-small")
            if row == len(targets) - 1:
                axes.set_xticks(range(len(classes)), classes, fontsize="x-small", rotation=90)
                axes.set_xlabel("predicted", fontsize="small")
    if image is not None:
        figure.colorbar(image, ax=grid, shrink=0.6, label="share of the true class")
    split_name = "Target" if protocol == "loro" else "Test"
    figure.suptitle(f"{split_name} confusion, summed over seeds, row-normalised")
    figure.savefig(path, dpi=150, bbox_inches="tight")
    return Path(path)


def save_figures(tidy: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``target_accuracy.png`` and ``confusion_grid.png`` (leave-one-river-out) and
    ``mixed_accuracy.png`` and ``mixed_confusion_grid.png`` (mixed), for the protocols with runs.

    Returns the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        plot_accuracy_bars(tidy, out_dir / "target_accuracy.png", protocol="loro"),
        plot_confusion_grid(tidy, out_dir / "confusion_grid.png", protocol="loro"),
        plot_accuracy_bars(tidy, out_dir / "mixed_accuracy.png", protocol="mixed"),
        plot_confusion_grid(tidy, out_dir / "mixed_confusion_grid.png", protocol="mixed"),
    ]
    return [p for p in written if p is not None]
