"""How much river information frozen features hold beyond what the class mix already tells.

A linear probe (standardised logistic regression, stratified k-fold over the rows) predicts the
river r from features x (N x d). Under label shift the class y alone predicts the river: with
the rivers' class mixes P(y | r), the class-only probe reaches about sum_y max_r P(y, r), well above
the largest river's share. Comparing a feature probe with the largest share, as a pooled
test + target probe did, understates chance and credits the features with the label shift. Here:

- ``accuracy``: the probe on x; compare with ``class_only`` (the same probe on one-hot y) and
  ``majority`` (the largest river's share).
- ``residual_accuracy``: the probe on class-residualised features x - mean(x | y), the class means
  estimated on the training folds, over the rows of classes present in at least two rivers (a class
  of one river names its river). What is left is river information within classes; compare with
  ``residual_majority`` (that subset's largest river share) and ``residual_class_only``.

Lower is more river-invariant. Meant for the source rivers' in-domain test split: those are the
rivers an adversary was trained to hide, and none of their rows trained the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PROBE_FOLDS = 5
PROBE_MODEL = "StandardScaler + LogisticRegression(max_iter=2000), stratified k-fold by river"


def _one_hot(values: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(values, return_inverse=True)
    return np.eye(inverse.max() + 1)[inverse]


def _residualise(train: np.ndarray, test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray):
    """Subtract each class's training-fold mean from both folds (the overall mean for an unseen class)."""
    means = {c: train[y_train == c].mean(axis=0) for c in np.unique(y_train)}
    fallback = train.mean(axis=0)
    return (
        train - np.stack([means[c] for c in y_train]),
        test - np.stack([means.get(c, fallback) for c in y_test]),
    )


def _cross_validated_accuracy(
    x: np.ndarray, rivers: np.ndarray, classes: np.ndarray, folds: int, seed: int, residual: bool
) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    correct = 0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, rivers):
        x_train, x_test = x[train], x[test]
        if residual:
            x_train, x_test = _residualise(x_train, x_test, classes[train], classes[test])
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(x_train, rivers[train])
        correct += int((probe.predict(x_test) == rivers[test]).sum())
    return correct / len(rivers)


def river_probe(
    features: np.ndarray, rivers: Sequence[str], classes: Sequence[str], seed: int, folds: int = PROBE_FOLDS
) -> dict[str, Any]:
    """Linear river probes of frozen features (see the module docstring).

    Args:
        features: N x d.
        rivers, classes: the river and the class of each row.
        seed: shuffles the folds.
        folds: k, capped by the smallest river's row count.

    Returns:
        ``status: measured`` with ``accuracy``, ``class_only``, ``majority``, ``residual_accuracy``,
        ``residual_class_only``, ``residual_majority``, ``residual_n``, ``folds``, ``n``, ``rivers``
        (rows per river), ``model``; or ``status: skipped`` with the ``reason`` (fewer than two
        rivers with two rows each). Residual figures are None when no class is in two rivers.
    """
    rivers_, classes_ = np.asarray(rivers, dtype=str), np.asarray(classes, dtype=str)
    counts = pd.Series(rivers_).value_counts()
    if len(counts) < 2 or counts.min() < 2:
        return {"status": "skipped", "reason": f"needs two rivers with two rows each, got {counts.to_dict()}"}
    folds = int(min(folds, counts.min()))
    x = np.asarray(features, dtype=np.float64)
    result: dict[str, Any] = {
        "status": "measured",
        "accuracy": _cross_validated_accuracy(x, rivers_, classes_, folds, seed, residual=False),
        "class_only": _cross_validated_accuracy(_one_hot(classes_), rivers_, classes_, folds, seed, False),
        "majority": float(counts.max() / counts.sum()),
        "folds": folds,
        "n": int(counts.sum()),
        "rivers": {str(k): int(v) for k, v in counts.items()},
        "model": PROBE_MODEL,
    }
    shared = pd.Series(rivers_).groupby(classes_).nunique()
    keep = np.isin(classes_, shared[shared >= 2].index.to_numpy())
    kept = pd.Series(rivers_[keep]).value_counts()
    result["residual_n"] = int(keep.sum())
    if len(kept) < 2 or kept.min() < folds:
        result.update(residual_accuracy=None, residual_class_only=None, residual_majority=None)
        return result
    x_kept, r_kept, c_kept = x[keep], rivers_[keep], classes_[keep]
    result.update(
        residual_accuracy=_cross_validated_accuracy(x_kept, r_kept, c_kept, folds, seed, residual=True),
        residual_class_only=_cross_validated_accuracy(_one_hot(c_kept), r_kept, c_kept, folds, seed, False),
        residual_majority=float(kept.max() / kept.sum()),
    )
    return result
