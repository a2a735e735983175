"""Classification metrics, identical for every method (deep or classical), from scikit-learn."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def _summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | int]:
    """Scalar metrics. Macro-F1 and balanced accuracy average over the classes present in y_true,
    so a class absent from a river does not count as a zero; predicting it is still an error."""
    present = np.unique(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        kappa = cohen_kappa_score(y_true, y_pred) if len(np.union1d(y_true, y_pred)) > 1 else float("nan")
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
            "kappa": float(kappa),
            "n": int(len(y_true)),
        }


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    domains: Sequence[int] | None = None,
    domain_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics of one split.

    Args:
        y_true, y_pred: class indices into ``class_names``.
        class_names: every class the model knows (defines the confusion matrix's axes).
        domains, domain_names: optional domain index per sample, for ``per_domain``.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``kappa``, ``n``; ``per_class``
        (name -> precision, recall, f1, support); ``confusion`` (rows true, columns predicted, in
        ``class_names`` order); ``per_domain`` (domain name -> the scalar metrics).

    Raises:
        ValueError: the inputs are empty or of different lengths.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equally long, non-empty label arrays (got {len(y_true)} and {len(y_pred)})")
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    result: dict[str, Any] = _summary(y_true, y_pred)
    result["per_class"] = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    }
    result["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["per_domain"] = {}
    if domains is not None and domain_names is not None:
        domains = np.asarray(domains)
        for index in np.unique(domains):
            chosen = domains == index
            result["per_domain"][domain_names[index]] = _summary(y_true[chosen], y_pred[chosen])
    return result
