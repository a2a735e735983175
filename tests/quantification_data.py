"""Synthetic calibrated posteriors with a known class mix, shared by the quantification tests."""

from __future__ import annotations

import numpy as np

SEPARATION = 1.6  # class means a * e_k in K dimensions: about 70% top-1 accuracy at K = 4


def calibrated_posteriors(
    prevalence: np.ndarray, n: int, rng: np.random.Generator, separation: float = SEPARATION
) -> tuple[np.ndarray, np.ndarray]:
    """N labels drawn from ``prevalence`` and their exact posteriors under a uniform training prior.

    Scores x ~ N(a e_y, I), so p(y | x) = softmax(a x): calibrated for a balanced training set, which
    makes the true prevalence recoverable by the adjusted quantifiers and by EM.
    """
    prevalence = np.asarray(prevalence, dtype=np.float64)
    labels = rng.choice(len(prevalence), size=n, p=prevalence / prevalence.sum())
    scores = rng.normal(size=(n, len(prevalence))) + separation * np.eye(len(prevalence))[labels]
    logits = separation * scores
    posteriors = np.exp(logits - logits.max(axis=1, keepdims=True))
    return posteriors / posteriors.sum(axis=1, keepdims=True), labels
