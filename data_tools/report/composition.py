"""Pairs per river and class: counts, imbalance, classes missing from a river, tiny classes."""

from __future__ import annotations

import pandas as pd

from data_tools.manifest import count_table
from data_tools.names import ordered_classes

COMPOSITION_COLUMNS: tuple[str, ...] = (
    "domain",
    "pairs",
    "classes",
    "largest",
    "smallest",
    "imbalance_ratio",
    "missing",
    "tiny",
)


def class_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Pairs per domain (rows) x class (columns), canonical order, no totals; 0 where a class is absent."""
    if manifest.empty:
        return pd.DataFrame()
    return count_table(manifest).drop(index="total", columns="total")


def composition(manifest: pd.DataFrame, *, tiny_class: int = 5) -> pd.DataFrame:
    """One row per river: its pairs and classes, its largest and smallest class, the imbalance ratio
    (largest / smallest present class), the classes found in other rivers but not in this one, and the
    classes with fewer than ``tiny_class`` pairs (too few for a stratified 7:3 split to test them).

    Returns:
        A DataFrame with columns :data:`COMPOSITION_COLUMNS`; ``missing`` and ``tiny`` are
        comma-separated class names, ``largest``/``smallest`` read "Grt (250)".
    """
    counts = class_counts(manifest)
    records = []
    for domain, row in counts.iterrows():
        present = row[row > 0]
        largest, smallest = present.idxmax(), present.idxmin()
        records.append(
            {
                "domain": domain,
                "pairs": int(present.sum()),
                "classes": len(present),
                "largest": f"{largest} ({present[largest]})",
                "smallest": f"{smallest} ({present[smallest]})",
                "imbalance_ratio": float(present.max() / present.min()),
                "missing": ", ".join(ordered_classes(row.index[row == 0])),
                "tiny": ", ".join(f"{c} ({present[c]})" for c in present.index if present[c] < tiny_class),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(COMPOSITION_COLUMNS))
