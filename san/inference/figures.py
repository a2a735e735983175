"""Figures of a trained model in use: the assemblage chart (no matplotlib backend is chosen)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from data_tools.plotting import save_figure, subplots


def save_assemblage_chart(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Per sample, raw and corrected percentages of every mineral side by side with 95% intervals."""
    figure, axes = subplots(
        len(tables),
        1,
        figsize=(max(6.0, 0.7 * len(next(iter(tables.values())))), 3.4 * len(tables)),
        squeeze=False,
    )
    for axis, (sample, table) in zip(axes[:, 0], tables.items(), strict=True):
        positions = np.arange(len(table))
        series = [
            ("raw counts", "percent", "percent_low", "percent_high", "tab:grey"),
            ("quantified", "corrected_percent", "corrected_low", "corrected_high", "tab:blue"),
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
    return save_figure(figure, path)
