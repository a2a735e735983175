"""The assemblage of predicted samples from a chosen quantifier: per sample the raw count with Wilson
intervals, the quantifier's estimate with bootstrap intervals, the provenance indices, and the grains'
EM prior-adapted posteriors.

The quantifier is fitted on the run's calibration rows (``quantification.npz``: out-of-fold
posteriors on the training rivers, or ``val``), never on the sample. A run saved before those rows
existed still gets ``cc`` and ``pcc``, which need no fitting; their intervals then carry the counting
noise only, and no prior adaptation is possible (the training prevalence is unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from san.evaluation.calibration import log_scores
from san.evaluation.prevalence_intervals import (
    BOOTSTRAP_DRAWS,
    bootstrap_prevalences,
    fit_bootstrap_quantifiers,
    percentile_interval,
)
from san.evaluation.quantification import FittedQuantifier, adapt_posteriors, fit_quantifier
from san.inference.assemblage import TABLE_COLUMNS, wilson_interval
from san.inference.provenance import provenance_indices
from san.runs.quantification import CalibrationRows

FITTING_FREE = ("cc", "pcc")
INDEX_COLUMNS = ("sample", "index", "value", "low", "high", "note")


def rescale(probabilities: np.ndarray, from_temperature: float, to_temperature: float) -> np.ndarray:
    """Probabilities softmax(s / T_from) turned into softmax(s / T_to) (log p differs from s / T_from
    by a per-row constant, which the softmax ignores)."""
    return softmax(log_scores(probabilities) * (from_temperature / to_temperature), axis=1)


@dataclass
class SampleAssemblage:
    """One sample: ``table`` (:data:`san.inference.assemblage.TABLE_COLUMNS` plus ``quantifier``),
    ``indices`` (:data:`INDEX_COLUMNS`), and ``adapted`` (the grains' prior-adapted posteriors, or None)."""

    sample: str
    table: pd.DataFrame
    indices: pd.DataFrame
    adapted: np.ndarray | None


class SampleQuantifier:
    """A quantifier fitted once on a run's calibration rows, with its bootstrap ensemble."""

    def __init__(
        self,
        name: str,
        n_classes: int,
        calibration: CalibrationRows | None,
        rng: np.random.Generator,
        draws: int = BOOTSTRAP_DRAWS,
    ) -> None:
        """Raises ValueError: ``name`` needs calibration rows and the run has none."""
        self.name, self.rng = name, rng
        if calibration is None:
            if name not in FITTING_FREE:
                raise ValueError(
                    f"quantifier {name!r} is fitted on the run's calibration rows (quantification.npz), "
                    f"which this run does not have; use one of {', '.join(FITTING_FREE)} or retrain the run"
                )
            # cc and pcc ignore their fit: an identity "calibration" makes every class known.
            identity = np.eye(n_classes)
            self.fitted: FittedQuantifier = fit_quantifier(name, identity, np.arange(n_classes))
            self.ensemble = [self.fitted] * draws
            self.adapts = False
        else:
            self.fitted = fit_quantifier(name, calibration.posteriors, calibration.labels)
            self.ensemble = fit_bootstrap_quantifiers(
                name, calibration.posteriors, calibration.labels, rng, draws
            )
            self.adapts = True

    def assemble(self, sample: str, probabilities: np.ndarray, classes: list[str]) -> SampleAssemblage:
        """The sample's assemblage from its grains' posteriors (N x K, at the calibration temperature)."""
        counts = np.bincount(probabilities.argmax(axis=1), minlength=len(classes))
        total = int(counts.sum())
        low, high = wilson_interval(counts, total)
        estimate = self.fitted.prevalence(probabilities)
        draws = bootstrap_prevalences(self.ensemble, probabilities, self.rng)
        q_low, q_high = percentile_interval(draws)
        unknown = ~self.fitted.known
        corrected = [np.where(unknown, np.nan, 100 * v) for v in (estimate, q_low, q_high)]
        table = pd.DataFrame(
            {
                "sample": sample,
                "mineral": classes,
                "count": counts,
                "percent": 100 * counts / total,
                "percent_low": 100 * low,
                "percent_high": 100 * high,
                "corrected_percent": corrected[0],
                "corrected_low": corrected[1],
                "corrected_high": corrected[2],
            },
            columns=list(TABLE_COLUMNS),
        )
        table["quantifier"] = self.name
        indices = pd.DataFrame(
            [
                (sample, e.index, e.value, e.low, e.high, e.note)
                for e in provenance_indices(estimate, draws, classes, self.fitted.known)
            ],
            columns=list(INDEX_COLUMNS),
        )
        adapted = None
        if self.adapts:
            _, adapted = adapt_posteriors(probabilities, self.fitted.train_prevalence, self.fitted.known)
        return SampleAssemblage(sample, table, indices, adapted)

    def describe(self) -> dict[str, Any]:
        return {"quantifier": self.name, "draws": len(self.ensemble), "prior_adaptation": self.adapts}
