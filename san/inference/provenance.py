"""Provenance indices of a heavy-mineral assemblage, with bootstrap intervals.

Indices (percent), from the estimated class prevalences p of a sample:
    ZTR = 100 (p_Zrn + p_Tur + p_Rt) / sum of p over the transparent heavy minerals (every known class
          but the micas Bt and Ms, which are counted apart for their platy hydraulic behaviour)
    GZi = 100 p_Grt / (p_Grt + p_Zrn)      ATi = 100 p_Ap / (p_Ap + p_Tur)      (Morton and
    RZi = 100 p_Rt / (p_Rt + p_Zrn)        MZi = 100 p_Mnz / (p_Mnz + p_Zrn)     Hallsworth 1994)
An index needs every class it names to be known to the run (among its classes and with calibration
rows); otherwise it is *not computable* (None), never 0. A known-but-absent pair (0 / 0) is also
not computable for that sample (NaN).

Intervals: the percentile interval of the index over the prevalence draws of
:mod:`san.evaluation.prevalence_intervals` (grains and calibration rows both resampled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from san.evaluation.prevalence_intervals import LEVEL, percentile_interval

MICAS: tuple[str, ...] = ("Bt", "Ms")
ZTR_CLASSES: tuple[str, ...] = ("Zrn", "Tur", "Rt")
PAIR_INDICES: dict[str, tuple[str, str]] = {
    "GZi": ("Grt", "Zrn"),
    "ATi": ("Ap", "Tur"),
    "RZi": ("Rt", "Zrn"),
    "MZi": ("Mnz", "Zrn"),
}
INDICES: tuple[str, ...] = ("ZTR", *PAIR_INDICES)


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
            # Rounded: an optimiser's 1e-14 is a zero, and should read as one.
            result.append(
                IndexEstimate(index, round(value, 4), round(float(low[0]), 4), round(float(high[0]), 4))
            )
    return result
