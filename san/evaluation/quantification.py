"""Quantification: the class prevalences of a sample of grains from their posteriors, with QuaPy.

A classifier's counts are biased when the sample's class mix differs from the training mix (label
shift, p(y) changes while p(x | y) is assumed fixed). The quantifiers, all QuaPy's (Moreo, Esuli and
Sebastiani), for K classes, N grains with calibrated posteriors P (N x K) and top-1 labels y_hat:

- ``cc``   classify and count: q_k = #{y_hat = k} / N.
- ``acc``  adjusted CC (Forman 2008): solve q = M p for p on the simplex, M[i, j] = P(y_hat = i | y = j)
  (QuaPy's, its solver given the loss's gradient: :mod:`san.evaluation.adjusted_count`).
- ``pcc``  probabilistic CC (Bella et al. 2010): q_k = mean_n P[n, k].
- ``pacc`` probabilistic ACC: as ``acc`` with M[i, j] = E[P(i | x) | y = j] and q from ``pcc``.
- ``emq``  EM / SLD (Saerens, Latinne and Decaestecker 2002): iterate
  P'[n, k] ∝ (q_k / pi_k) P[n, k] (E-step) and q_k = mean_n P'[n, k] (M-step) from q = pi, the
  training prevalence, to a fixed point; P' are the prior-adapted posteriors.
- ``hdy``  HDy generalised to K classes (QuaPy's ``DMy`` with the Hellinger distance, its loss
  vectorised in :mod:`san.evaluation.hellinger_dmy`): the p whose
  mixture sum_j p_j h_j of the per-class histograms h_j of the training posteriors (8 bins per
  class column) is closest to the sample's histograms.

M, pi and the histograms are fitted on posteriors of rows the classifier did not train on:
cross-validated (out-of-fold) predictions on the training rivers, or the ``val`` split; never the
test split or a target river. Classes without a calibration row (the run cannot know them) are
left out of the fit and always get prevalence 0; callers report them as unknown, not as absent.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from san.evaluation.quantifier_names import QUANTIFIERS

HDY_BINS = 8


class PosteriorPassthrough(ClassifierMixin, BaseEstimator):
    """The classifier QuaPy is given: its inputs are already posteriors (N x K), so ``predict_proba``
    returns them and ``predict`` their arg-max. This lets QuaPy's aggregation run on posteriors
    computed elsewhere (a deep run, a cross-validated SVM) without refitting any model."""

    def __init__(self, n_classes: int = 2) -> None:
        self.n_classes = n_classes

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> PosteriorPassthrough:
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X).argmax(axis=1)


def _quapy_quantifier(name: str, n_classes: int) -> Any:
    import quapy.method.aggregative as aggregative  # quapy imports slowly; only when quantifying

    classifier = PosteriorPassthrough(n_classes).fit(None)
    if name == "cc":
        return aggregative.CC(classifier, fit_classifier=False)
    if name == "acc":
        from san.evaluation.adjusted_count import GradientACC

        return GradientACC(classifier, fit_classifier=False, val_split=None)
    if name == "pcc":
        return aggregative.PCC(classifier, fit_classifier=False)
    if name == "pacc":
        from san.evaluation.adjusted_count import GradientPACC

        return GradientPACC(classifier, fit_classifier=False, val_split=None)
    if name == "emq":
        return aggregative.EMQ(classifier, fit_classifier=False, val_split=None)
    if name == "hdy":
        from san.evaluation.hellinger_dmy import HellingerDMy

        return HellingerDMy(classifier, fit_classifier=False, val_split=None, nbins=HDY_BINS, n_jobs=1)
    raise ValueError(f"unknown quantifier {name!r}; expected one of {', '.join(QUANTIFIERS)}")


def check_posteriors(posteriors: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """``posteriors`` as an N x K float array of rows on the simplex.

    Raises:
        ValueError: not 2-D, a width other than ``n_classes``, negative entries or rows not summing to 1.
    """
    posteriors = np.asarray(posteriors, dtype=np.float64)
    if posteriors.ndim != 2 or (n_classes is not None and posteriors.shape[1] != n_classes):
        raise ValueError(f"expected posteriors N x {n_classes or 'K'}, got shape {posteriors.shape}")
    if (posteriors < -1e-9).any() or not np.allclose(posteriors.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("posteriors must be non-negative and every row must sum to 1")
    return posteriors


def _restricted(posteriors: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The known classes' columns, renormalised (a row with no mass on them becomes uniform)."""
    part = posteriors[:, known]
    mass = part.sum(axis=1, keepdims=True)
    return np.divide(part, mass, out=np.full_like(part, 1.0 / known.sum()), where=mass > 0)


@dataclass
class FittedQuantifier:
    """A QuaPy quantifier fitted on calibration posteriors, over the classes it could learn.

    Attributes:
        name: one of :data:`QUANTIFIERS`.
        n_classes: K, the width of every posterior matrix.
        known: K booleans, the classes with at least one calibration row.
        train_prevalence: K prevalences of the calibration labels (pi in the module docstring).
    """

    name: str
    n_classes: int
    known: np.ndarray
    train_prevalence: np.ndarray
    quantifier: Any

    def prevalence(self, posteriors: np.ndarray) -> np.ndarray:
        """Estimated class prevalences (K, summing to 1; 0 for unknown classes) of one sample.

        Raises:
            ValueError: the posteriors are not N x K (N >= 1) rows on the simplex.
        """
        posteriors = check_posteriors(posteriors, self.n_classes)
        if len(posteriors) == 0:
            raise ValueError("a sample needs at least one grain to be quantified")
        estimate = np.zeros(self.n_classes)
        with warnings.catch_warnings():
            # QuaPy's EM warns when it stops at its iteration cap (small or degenerate samples).
            warnings.filterwarnings("ignore", message=".*maximum number of iterations.*")
            estimate[self.known] = self.quantifier.predict(_restricted(posteriors, self.known))
        estimate = np.clip(estimate, 0.0, None)
        return estimate / estimate.sum()


def fit_quantifier(
    name: str, posteriors: np.ndarray, labels: np.ndarray, n_classes: int | None = None
) -> FittedQuantifier:
    """Fit quantifier ``name`` on calibration rows: posteriors (N x K) the classifier gave rows it was
    not trained on, and their true class indices (N).

    Raises:
        ValueError: unknown name, shapes that do not match, labels outside [0, K), or fewer than two
            classes with calibration rows.
    """
    posteriors = check_posteriors(posteriors, n_classes)
    n_classes = posteriors.shape[1]
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(posteriors),) or len(labels) == 0:
        raise ValueError(f"need one label per posterior row, got {labels.shape} for {len(posteriors)} rows")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"labels must be class indices in [0, {n_classes}), got {labels.min()}..{labels.max()}"
        )
    counts = np.bincount(labels, minlength=n_classes)
    known = counts > 0
    if known.sum() < 2:
        raise ValueError(f"calibration rows cover {int(known.sum())} class(es); quantification needs 2")
    index = np.cumsum(known) - 1  # class index -> position among the known classes
    quantifier = _quapy_quantifier(name, int(known.sum()))
    quantifier.fit(_restricted(posteriors, known), index[labels])
    return FittedQuantifier(name, n_classes, known, counts / counts.sum(), quantifier)


def fit_quantifiers(
    posteriors: np.ndarray, labels: np.ndarray, names: Sequence[str] = QUANTIFIERS
) -> dict[str, FittedQuantifier]:
    """:func:`fit_quantifier` for each name, on the same calibration rows."""
    return {name: fit_quantifier(name, posteriors, labels) for name in names}


def adapt_posteriors(
    posteriors: np.ndarray, train_prevalence: np.ndarray, known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Saerens et al.'s EM prior adaptation of one sample's posteriors.

    With pi the training prevalence and P the calibrated posteriors (N x K), EM finds the sample's
    prevalence q and the adapted posteriors P'[n, k] = (q_k / pi_k) P[n, k] / sum_j (q_j / pi_j) P[n, j]
    (QuaPy's ``EMQ.EM``). Classes outside ``known`` keep probability 0.

    Returns:
        (q, K prevalences; P', N x K adapted posteriors).

    Raises:
        ValueError: posteriors not on the simplex, or a prevalence vector of the wrong length.
    """
    from quapy.method.aggregative import EMQ

    posteriors = check_posteriors(posteriors)
    n_classes = posteriors.shape[1]
    train_prevalence = np.asarray(train_prevalence, dtype=np.float64)
    if train_prevalence.shape != (n_classes,):
        raise ValueError(f"train prevalence must have {n_classes} entries, got {train_prevalence.shape}")
    known = train_prevalence > 0 if known is None else np.asarray(known, dtype=bool)
    prior = train_prevalence[known] / train_prevalence[known].sum()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*maximum number of iterations.*")
        estimate, adapted = EMQ.EM(prior, _restricted(posteriors, known))
    prevalence, full = np.zeros(n_classes), np.zeros_like(posteriors)
    prevalence[known], full[:, known] = estimate, adapted
    return prevalence, full
