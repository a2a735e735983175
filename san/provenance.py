"""Provenance indices of a heavy-mineral assemblage, with bootstrap intervals.

Indices (percent), from the estimated class prevalences p of a sample:
    ZTR = 100 (p_Zrn + p_Tur + p_Rt) / sum of p over the transparent heavy minerals (every known class
          but the micas Bt and Ms, which are counted apart for their platy hydraulic behaviour)
    GZi = 100 p_Grt / (p_Grt + p_Zrn)      ATi = 100 p_Ap / (p_Ap + p_Tur)      (Morton and
    RZi = 100 p_Rt / (p_Rt + p_Zrn)        MZi = 100 p_Mnz / (p_Mnz + p_Zrn)     Hallsworth 1994)
An index needs every class it names to be known to the run (among its classes and with calibration
rows); otherwise it is *not computable* (None), never 0. A known-but-absent pair (0 / 0) is also
not computable for that sample (NaN).

Intervals: a percentile bootstrap whose draw b (i) resamples the sample's grains with replacement
(counting noise) and (ii) quantifies them with a quantifier refitted on a stratified bootstrap of the
calibration rows (each class's rows resampled within the class), so the misclassification rates,
class-conditional histograms and training prevalence the quantifier relies on vary as much as their
finite calibration set allows: the classifier's uncertainty, not only the counting noise. Sampling
labels from the posteriors instead would double-count the posterior spread that PCC/PACC/EM already
average, and would leave the uncertainty of the estimated rates out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from san.evaluation.quantification import FittedQuantifier, check_posteriors, fit_quantifier

MICAS: tuple[str, ...] = ("Bt", "Ms")
ZTR_CLASSES: tuple[str, ...] = ("Zrn", "Tur", "Rt")
PAIR_INDICES: dict[str, tuple[str, str]] = {
    "GZi": ("Grt", "Zrn"),
    "ATi": ("Ap", "Tur"),
    "RZi": ("Rt", "Zrn"),
    "MZi": ("Mnz", "Zrn"),
}
INDICES: tuple[str, ...] = ("ZTR", *PAIR_INDICES)
BOOTSTRAP_DRAWS = 200
LEVEL = 0.95


def _missing(names: Sequence[str], known: Mapping[str, bool]) -> list[str]:
    return [name for name in names if not known.get(name, False)]


def not_computable(classes: Sequence[str], known: Sequence[bool] | None = None) -> dict[str, str | None]:
    """Per index, why it cannot be computed by a run with these classes (None when it can).

    ``known`` marks the classes the run can estimate (default: all of ``classes``)."""
    flags = dict(zip(classes, [True] * len(classes) if known is None else known, strict=True))
    reasons: dict[str, str | None] = {}
    heavy = [name for name in classes if name not in MICAS and flags[name]]
    needs = {"ZTR": ZTR_CLASSES, **PAIR_INDICES}
    for index, names in needs.items():
        missing = _missing(names, flags)
        if missing:
            reasons[index] = f"the run does not know {', '.join(missing)}"
        elif index == "ZTR" and not heavy:
            reasons[index] = "no transparent heavy mineral is known"
        else:
            reasons[index] = None
    return reasons


def index_values(
    prevalences: np.ndarray, classes: Sequence[str], known: Sequence[bool] | None = None
) -> dict[str, np.ndarray | None]:
    """Every index (percent) of each prevalence row (D x K, or a K-vector): None for an index the run
    cannot compute, NaN where its denominator is 0 in a row.

    Raises:
        ValueError: the prevalences are not K wide.
    """
    prevalences = np.atleast_2d(np.asarray(prevalences, dtype=np.float64))
    if prevalences.shape[1] != len(classes):
        raise ValueError(f"prevalences are {prevalences.shape[1]} wide, expected {len(classes)} classes")
    column = {name: prevalences[:, i] for i, name in enumerate(classes)}
    reasons = not_computable(classes, known)
    known_flags = [True] * len(classes) if known is None else list(known)
    heavy = [c for c, k in zip(classes, known_flags, strict=True) if k and c not in MICAS]
    parts = {}
    if not reasons["ZTR"]:
        parts["ZTR"] = (sum(column[c] for c in ZTR_CLASSES), sum(column[c] for c in heavy))
    for index, (top, other) in PAIR_INDICES.items():
        if not reasons[index]:
            parts[index] = (column[top], column[top] + column[other])
    values: dict[str, np.ndarray | None] = {name: None for name in INDICES}
    for index, (numerator, denominator) in parts.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            values[index] = np.where(denominator > 0, 100.0 * numerator / denominator, np.nan)
    return values


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


@dataclass(frozen=True)
class IndexEstimate:
    """One provenance index of one sample: value and 95% interval in percent, or why it is missing."""

    index: str
    value: float | None
    low: float | None
    high: float | None
    note: str = ""


def provenance_indices(
    estimate: np.ndarray,
    draws: np.ndarray,
    classes: Sequence[str],
    known: Sequence[bool] | None = None,
    level: float = LEVEL,
) -> list[IndexEstimate]:
    """The indices of one sample from its estimated prevalence (K) and bootstrap prevalence draws (B x K)."""
    point = index_values(estimate, classes, known)
    spread = index_values(draws, classes, known)
    reasons = not_computable(classes, known)
    result = []
    for index in INDICES:
        if point[index] is None:
            result.append(IndexEstimate(index, None, None, None, f"not computable: {reasons[index]}"))
            continue
        value = float(point[index][0])
        low, high = percentile_interval(spread[index][:, None], level)
        if np.isnan(value):
            result.append(
                IndexEstimate(index, None, None, None, "not computable: none of its minerals found")
            )
        else:
            result.append(IndexEstimate(index, value, float(low[0]), float(high[0])))
    return result
