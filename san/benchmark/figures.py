"""Benchmark figures from the tidy run table (:func:`san.benchmark.tables.load_runs`): accuracy
bars with error bars per method and river, and per-class recall heat maps (method x class)."""

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


def _recall_table(frame: pd.DataFrame, methods: list[str], split: str, classes: list[str]):
    """Recall per method (rows) x class (columns) from confusions summed over seeds, the pairs per class
    in one run, and the seeds pooled per method; NaN where a method has no run or a class no pair."""
    recall = np.full((len(methods), len(classes)), np.nan)
    support = np.zeros(len(classes), dtype=int)
    seeds = {}
    for row, method in enumerate(methods):
        per_seed = pooled_confusions(frame, method, split, classes)
        if not per_seed:
            continue
        seeds[method] = len(per_seed)
        counts = np.sum(list(per_seed.values()), axis=0).astype(float)
        totals = counts.sum(axis=1)
        recall[row] = np.divide(np.diag(counts), totals, out=np.full(len(classes), np.nan), where=totals > 0)
        support = np.maximum(support, next(iter(per_seed.values())).sum(axis=1).astype(int))
    return recall, support, seeds


def plot_per_class_recall(tidy: pd.DataFrame, path: str | Path, *, protocol: str = "loro") -> Path | None:
    """Per-class recall as a method x class heat map, one panel per held-out river (the target split;
    ``mixed``: one panel of the test split), pooled over seeds, every cell labelled with its value.

    A class with no pair in the split is a grey "n = 0" column, never a column of zeros; a method
    without runs is a row marked "no run". Returns the PNG path, or None without runs.
    """
    split = "target" if protocol == "loro" else "test"
    frame = tidy[(tidy["protocol"] == protocol) & (tidy["split"] == split) & (tidy["river"] == OVERALL)]
    if frame.empty:
        return None
    targets = ordered_domains(frame["target"]) if protocol == "loro" else [""]
    methods = method_order(frame["method"])
    classes = ordered_classes(c for known in frame["classes"] for c in known)
    figure, axes = subplots(
        len(targets),
        1,
        squeeze=False,
        figsize=(0.62 * len(classes) + 3.2, (0.36 * len(methods) + 1.5) * len(targets) + 0.4),
        layout="constrained",
    )
    image = None
    for axis, target in zip(axes[:, 0], targets, strict=True):
        chosen = frame[frame["target"] == target]
        recall, support, seeds = _recall_table(chosen, methods, split, classes)
        image = axis.imshow(np.ma.masked_invalid(recall), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for column, n in enumerate(support):
            if n == 0:
                axis.axvspan(column - 0.5, column + 0.5, color="0.85")
        for row in range(len(methods)):
            for column in range(len(classes)):
                value = recall[row, column]
                if support[column] == 0:  # one label, mid-column, for the whole grey column
                    text, colour = ("n = 0" if row == len(methods) // 2 else ""), "0.3"
                elif np.isnan(value):
                    text, colour = "", "0.3"
                else:
                    text, colour = f"{value:.2f}", "black" if value > 0.6 else "white"
                axis.text(column, row, text, ha="center", va="center", fontsize=7, color=colour)
        labels = [
            f"{m} ({seeds[m]} seed{'s' if seeds[m] > 1 else ''})" if m in seeds else f"{m} (no run)"
            for m in methods
        ]
        axis.set_yticks(range(len(methods)), labels, fontsize=8)
        axis.set_xticks(
            range(len(classes)), [f"{c}\nn={n}" for c, n in zip(classes, support, strict=True)], fontsize=7
        )
        where = f"held-out river {target}: target" if target else "mixed protocol: test split of every river"
        axis.set_title(f"{where} recall per class, confusions pooled over seeds", fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label="recall (share of the true class found)")
    return save_figure(figure, path, dpi=130, tight=False)


def save_figures(tidy: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``target_accuracy.png`` and ``per_class_recall.png`` (leave-one-river-out) and
    ``mixed_accuracy.png`` and ``mixed_per_class_recall.png`` (mixed), for the protocols with runs.

    Returns the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        plot_accuracy_bars(tidy, out_dir / "target_accuracy.png", protocol="loro"),
        plot_per_class_recall(tidy, out_dir / "per_class_recall.png", protocol="loro"),
        plot_accuracy_bars(tidy, out_dir / "mixed_accuracy.png", protocol="mixed"),
        plot_per_class_recall(tidy, out_dir / "mixed_per_class_recall.png", protocol="mixed"),
    ]
    return [p for p in written if p is not None]
