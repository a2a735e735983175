"""What a sample is made of: the shared pieces of the assemblage table.

Raw: n_k grains predicted as mineral k out of n; the interval is Wilson's score interval for a
binomial proportion (each mineral against the rest of the multinomial). The quantified columns
(``corrected_*``) come from a QuaPy quantifier (:mod:`san.inference.quantified_assemblage`), which
replaced the earlier non-negative least-squares inversion of the test confusion matrix.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

Z_95 = 1.959963984540054
TABLE_COLUMNS = (
    "sample",
    "mineral",
    "count",
    "percent",
    "percent_low",
    "percent_high",
    "corrected_percent",
    "corrected_low",
    "corrected_high",
)


def wilson_interval(counts: np.ndarray, total: int, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of the proportions counts / total, each in [0, 1].

    Raises:
        ValueError: total < 1, or a count outside [0, total].
    """
    counts = np.asarray(counts, dtype=np.float64)
    if total < 1 or (counts < 0).any() or (counts > total).any():
        raise ValueError(
            f"need 0 <= counts <= total and total >= 1, got counts {counts.tolist()}, total {total}"
        )
    share = counts / total
    denominator = 1.0 + z**2 / total
    centre = (share + z**2 / (2 * total)) / denominator
    half = z * np.sqrt(share * (1 - share) / total + z**2 / (4 * total**2)) / denominator
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def composition_error(table: pd.DataFrame, true_percent: Mapping[str, float]) -> dict[str, float]:
    """Mean absolute error, in percentage points over every class of ``table``, of the raw and the
    corrected percentages against a known composition (classes absent from it count as 0 %)."""
    truth = table["mineral"].map(lambda name: float(true_percent.get(name, 0.0))).to_numpy()
    return {
        "raw_mae_pp": float(np.abs(table["percent"].to_numpy() - truth).mean()),
        "corrected_mae_pp": float(np.abs(table["corrected_percent"].to_numpy() - truth).mean()),
    }
