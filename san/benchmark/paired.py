"""Paired comparison against a baseline method: per seed, each method's headline figure minus the
baseline's at the same seed, then mean and standard deviation over seeds.

The seed fixes the split, the initialisation and the augmentation stream of both runs, so the
difference cancels what the seed does to both; its spread is the noise a claim has to clear:

    d_s = a_s(method) - a_s(baseline),   d = mean_s d_s,   sd = std_s d_s (ddof 1),
    "better beyond noise" when d > 2 sd (the domain-generalisation issue's bar).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from data_tools.names import ordered_domains
from san.benchmark.selection import RULE_LABELS
from san.benchmark.tables import (
    AVERAGE,
    BEST_NOTE,
    OVERALL,
    SELECTION_ATTR,
    Column,
    Table,
    method_order,
    per_seed,
    river_average_per_seed,
    stat_over_seeds,
)


def _headline_per_seed(tidy: pd.DataFrame, method: str) -> dict[Column, pd.Series]:
    """The method's headline figures per seed: mixed overall test accuracy (under training-domain
    validation only: the other rules are about held-out rivers), and the leave-one-river-out
    averages over the held-out rivers of target and in-domain test accuracy."""
    figures: dict[Column, pd.Series] = {}
    mixed = tidy[(tidy["protocol"] == "mixed") & (tidy["split"] == "test")]
    if not mixed.empty and tidy.attrs.get(SELECTION_ATTR, "training") == "training":
        figures[Column(f"mixed {OVERALL}", "accuracy")] = per_seed(mixed, method, "accuracy", river=OVERALL)
    loro = tidy[(tidy["protocol"] == "loro") & (tidy["river"] == OVERALL)]
    if not loro.empty:
        rivers = ordered_domains(loro.loc[loro["split"] == "target", "target"])
        for split, metric in (("target", "target_accuracy"), ("test", "in_domain_accuracy")):
            figures[Column(f"LORO {AVERAGE}", metric)] = river_average_per_seed(
                loro, method, "accuracy", split, rivers
            )
    return figures


def paired_table(tidy: pd.DataFrame, baseline: str, methods: Sequence[str] | None = None) -> Table | None:
    """Each method's per-seed difference from ``baseline`` (mixed overall accuracy, LORO average
    target and in-domain accuracy), mean ± sd over the seeds both have; None without baseline runs.

    Raises:
        ValueError: ``baseline`` has no run in ``tidy`` (naming the methods that do).
    """
    present = method_order(tidy["method"])
    if baseline not in present:
        raise ValueError(
            f"no run of the baseline method {baseline!r}; methods with runs: {', '.join(present)}"
        )
    base = _headline_per_seed(tidy, baseline)
    columns = [column for column, values in base.items() if not values.empty]
    if not columns:
        return None
    rows = [m for m in (methods or present) if m != baseline]
    seeds = sorted(tidy["seed"].unique())
    table = Table(
        f"paired_{baseline}",
        f"Paired against {baseline}: per seed, the method's figure minus {baseline}'s",
        [],
        rows,
        columns,
        len(seeds),
        signed=True,
        headline=columns.index(target)
        if (target := Column(f"LORO {AVERAGE}", "target_accuracy")) in columns
        else 0,
    )
    if (rule := tidy.attrs.get(SELECTION_ATTR, "training")) != "training":
        table.title += f" — selection: {RULE_LABELS[rule]}"
    ratios: list[str] = []
    for method in rows:
        figures = _headline_per_seed(tidy, method)
        for index, column in enumerate(columns):
            difference = (figures.get(column, pd.Series(dtype=float)) - base[column]).dropna()
            if stat := stat_over_seeds(difference):
                table.cells[(method, index)] = stat
                if index == table.headline and stat.n_seeds > 1 and stat.std > 0:
                    ratios.append(f"{method} {stat.mean / stat.std:+.1f}")
    headline = columns[table.headline].label
    table.notes = [
        f"Per seed s: d_s = the method's figure at seed s minus {baseline}'s at seed s (same split and "
        "initialisation seed); cells are the mean ± sample std of d_s over the seeds both have "
        "(LORO: seeds with a run for every held-out river). Positive = better than the baseline.",
        "Better beyond noise = mean above 2 std. Mean / std of the "
        f"{headline} difference: {', '.join(ratios) or 'fewer than 2 seeds'}.",
        BEST_NOTE,
    ]
    return table
