"""Bootstrap intervals of a quantifier's prevalence estimate that carry the classifier's uncertainty.

Draw b (i) resamples the sample's N grains with replacement (counting noise) and (ii) quantifies them
with a quantifier refitted on a stratified bootstrap of the calibration rows (each class's rows
redrawn within the class), so the misclassification rates, class-conditional histograms and
training prevalence the quantifier relies on vary as much as their finite calibration set allows.
The interval is the equal-tailed percentile interval of the B draws.

Why not sample labels from the posteriors instead: that would double-count the posterior spread
that PCC, PACC and EM already average, and leave out the uncertainty of the estimated rates, which
is the part of the classifier's uncertainty a quantifier's correction amplifies. Neither carries a
shift of the rates themselves on a new river (p(x | y) changing): the coverage measured under APP
on held-out rivers says how much that matters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from san.evaluation.quantification import FittedQuantifier, check_posteriors, fit_quantifier

BOOTSTRAP_DRAWS = 200
LEVEL = 0.95


def fit_bootstrap_quantifiers(
    name: str,
    posteriors: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    draws: int = BOOTSTRAP_DRAWS,
) -> list[FittedQuantifier]:
    """``draws`` copies of quantifier ``name``, each fitted on a stratified bootstrap of the
    calibration rows (every class's rows redrawn with replacement within the class)."""
    posteriors = check_posteriors(posteriors)
    labels = np.asarray(labels, dtype=np.int64)
    pools = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    ensemble = []
    for _ in range(draws):
        rows = np.concatenate([rng.choice(pool, size=len(pool), replace=True) for pool in pools])
        ensemble.append(fit_quantifier(name, posteriors[rows], labels[rows], posteriors.shape[1]))
    return ensemble


def bootstrap_prevalences(
    ensemble: Sequence[FittedQuantifier], posteriors: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Prevalence draws (B x K): draw b quantifies a with-replacement resample of the sample's grains
    with ``ensemble[b]`` (B = len(ensemble))."""
    posteriors = check_posteriors(posteriors)
    n = len(posteriors)
    return np.array([member.prevalence(posteriors[rng.integers(0, n, n)]) for member in ensemble])


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval (low, high) over the first axis, ignoring NaN draws (a column
    with only NaN draws gives NaN)."""
    draws = np.asarray(draws, dtype=np.float64)
    tail = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN is the answer
        return np.nanquantile(draws, tail, axis=0), np.nanquantile(draws, 1.0 - tail, axis=0)
