"""What a sample is made of: the count and percentage of each mineral among its classified grains,
with 95% intervals, beside an estimate corrected for the classifier's known confusions.

Raw: n_k grains predicted as mineral k out of n; the interval is Wilson's score interval for a
binomial proportion (each mineral against the rest of the multinomial).

Corrected: with R the row-normalised confusion matrix measured on the run's in-domain test split,
R[i, j] = P(predicted j | true i), the expected predicted proportions are q = R^T p for the true
proportions p. The estimate is p_hat = argmin ||R^T p - q_obs||^2 subject to p >= 0 (scipy's
non-negative least squares), renormalised to sum to 1. Its 95% interval is a parametric bootstrap
that redraws both the sample (q ~ Multinomial(n, q_obs)) and each confusion row
(R_i ~ Multinomial(n_i, R_i) / n_i, n_i the test grains of class i), so it also carries the
uncertainty of the confusion matrix itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import nnls

Z_95 = 1.959963984540054
BOOTSTRAP_DRAWS = 1000
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


def confusion_rates(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised confusion matrix R (K x K, rows true, columns predicted) and a mask of the
    classes without test samples, whose rows are set to the identity (no known confusion).

    Raises:
        ValueError: the matrix is not square or has negative entries.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or (confusion < 0).any():
        raise ValueError(f"expected a square matrix of non-negative counts, got shape {confusion.shape}")
    support = confusion.sum(axis=1)
    missing = support == 0
    rates = np.divide(confusion, support[:, None], out=np.eye(len(confusion)), where=~missing[:, None])
    return rates, missing


def corrected_proportions(predicted_counts: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True proportions p >= 0 (summing to 1) whose expected predictions R^T p best fit the observed
    predicted proportions, by non-negative least squares.

    Raises:
        ValueError: no grain was counted, or the shapes do not match.
    """
    predicted_counts = np.asarray(predicted_counts, dtype=np.float64)
    if rates.shape != (len(predicted_counts), len(predicted_counts)):
        raise ValueError(f"{len(predicted_counts)} counts do not fit a {rates.shape} confusion matrix")
    total = predicted_counts.sum()
    if total <= 0:
        raise ValueError("no grains counted: nothing to correct")
    estimate, _ = nnls(rates.T, predicted_counts / total)
    mass = estimate.sum()
    return estimate / mass if mass > 0 else predicted_counts / total


def bootstrap_corrected_interval(
    predicted_counts: np.ndarray,
    confusion: np.ndarray,
    rng: np.random.Generator,
    draws: int = BOOTSTRAP_DRAWS,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval (low, high) of the corrected proportions, redrawing the sample's predicted
    counts and every confusion row multinomially (``draws`` times, from ``rng``)."""
    predicted_counts = np.asarray(predicted_counts, dtype=np.int64)
    confusion = np.asarray(confusion, dtype=np.int64)
    total = int(predicted_counts.sum())
    observed = predicted_counts / total
    rates, missing = confusion_rates(confusion)
    support = confusion.sum(axis=1)
    estimates = np.empty((draws, len(predicted_counts)))
    for draw in range(draws):
        counts = rng.multinomial(total, observed)
        resampled = np.array([rng.multinomial(n, row) for n, row in zip(support, rates, strict=True)])
        resampled[missing] = np.eye(len(rates), dtype=np.int64)[missing]
        drawn_rates, _ = confusion_rates(resampled)
        estimates[draw] = corrected_proportions(counts, drawn_rates)
    tail = (1 - level) / 2
    return np.quantile(estimates, tail, axis=0), np.quantile(estimates, 1 - tail, axis=0)


def assemblage_table(
    predicted: Sequence[str],
    classes: Sequence[str],
    confusion: np.ndarray | None,
    rng: np.random.Generator,
    *,
    sample: str = "all",
    draws: int = BOOTSTRAP_DRAWS,
) -> pd.DataFrame:
    """The assemblage of one sample from its grains' predicted classes.

    Args:
        predicted: the top-1 class of every grain (names from ``classes``).
        classes: the model's classes (the table's rows, in this order).
        confusion: the in-domain test confusion counts (rows true, columns predicted, ``classes``
            order), or None to skip the correction (its columns are then NaN).
        rng: drives the bootstrap.
        sample: the sample's name (the ``sample`` column).

    Returns:
        One row per class with :data:`TABLE_COLUMNS`; percentages in 0-100.

    Raises:
        ValueError: no grain, or a predicted class not in ``classes``.
    """
    index = {name: i for i, name in enumerate(classes)}
    if unknown := sorted(set(predicted) - set(index)):
        raise ValueError(f"predicted class(es) {unknown} are not among the model's classes {list(classes)}")
    counts = np.bincount([index[name] for name in predicted], minlength=len(classes))
    total = int(counts.sum())
    if total == 0:
        raise ValueError(f"sample {sample!r} has no classified grain")
    low, high = wilson_interval(counts, total)
    corrected = corrected_low = corrected_high = np.full(len(classes), np.nan)
    if confusion is not None:
        rates, _ = confusion_rates(confusion)
        corrected = corrected_proportions(counts, rates)
        corrected_low, corrected_high = bootstrap_corrected_interval(counts, confusion, rng, draws)
    return pd.DataFrame(
        {
            "sample": sample,
            "mineral": list(classes),
            "count": counts,
            "percent": 100 * counts / total,
            "percent_low": 100 * low,
            "percent_high": 100 * high,
            "corrected_percent": 100 * corrected,
            "corrected_low": 100 * corrected_low,
            "corrected_high": 100 * corrected_high,
        },
        columns=list(TABLE_COLUMNS),
    )


def composition_error(table: pd.DataFrame, true_percent: Mapping[str, float]) -> dict[str, float]:
    """Mean absolute error, in percentage points over every class of ``table``, of the raw and the
    corrected percentages against a known composition (classes absent from it count as 0 %)."""
    truth = table["mineral"].map(lambda name: float(true_percent.get(name, 0.0))).to_numpy()
    return {
        "raw_mae_pp": float(np.abs(table["percent"].to_numpy() - truth).mean()),
        "corrected_mae_pp": float(np.abs(table["corrected_percent"].to_numpy() - truth).mean()),
    }


def simulate_recovery(
    true_proportions: np.ndarray,
    rates: np.ndarray,
    n_grains: int,
    rng: np.random.Generator,
    *,
    test_grains_per_class: int | None = None,
) -> dict[str, float]:
    """Draw a sample of ``n_grains`` from a known composition, classify it through the confusion
    rates ``rates``, and measure how far raw and corrected proportions land from the truth.

    With ``test_grains_per_class`` the correction does not get ``rates`` itself but a confusion
    matrix re-estimated from that many test grains per class, as it would in practice.

    Returns:
        ``raw_mae_pp`` and ``corrected_mae_pp``: mean absolute errors in percentage points.
    """
    true_proportions = np.asarray(true_proportions, dtype=np.float64)
    true_counts = rng.multinomial(n_grains, true_proportions / true_proportions.sum())
    predicted = sum(
        (rng.multinomial(n, row) for n, row in zip(true_counts, rates, strict=True)),
        np.zeros(len(rates), dtype=np.int64),
    )
    known = rates
    if test_grains_per_class is not None:
        known, _ = confusion_rates(np.array([rng.multinomial(test_grains_per_class, row) for row in rates]))
    truth = 100 * true_proportions / true_proportions.sum()
    return {
        "raw_mae_pp": float(np.abs(100 * predicted / n_grains - truth).mean()),
        "corrected_mae_pp": float(np.abs(100 * corrected_proportions(predicted, known) - truth).mean()),
    }
