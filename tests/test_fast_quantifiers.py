"""The project's faster quantifiers (HDy's loss at many points at once, ACC/PACC with the analytic
gradient) give QuaPy's own estimates."""

import numpy as np
import pytest

pytest.importorskip("quapy")

from quapy.method.aggregative import ACC, PACC, DMy  # noqa: E402

from san.evaluation.adjusted_count import GradientACC, GradientPACC, simplex_least_norm  # noqa: E402
from san.evaluation.hellinger_dmy import HellingerDMy  # noqa: E402
from san.evaluation.quantification import PosteriorPassthrough  # noqa: E402
from san.evaluation.simplex_solver import forward_difference  # noqa: E402

PAIRS = {
    "hdy": (
        lambda c: HellingerDMy(c, fit_classifier=False, val_split=None, nbins=8, n_jobs=1),
        lambda c: DMy(c, fit_classifier=False, val_split=None, nbins=8, divergence="HD", n_jobs=1),
        1e-5,
    ),
    # SLSQP stops at its tolerance on the loss; with and without finite differences it stops a
    # little apart (measured at most 4e-6 on 40 samples of 12 classes).
    "acc": (
        lambda c: GradientACC(c, fit_classifier=False, val_split=None),
        lambda c: ACC(c, fit_classifier=False, val_split=None),
        1e-4,
    ),
    "pacc": (
        lambda c: GradientPACC(c, fit_classifier=False, val_split=None),
        lambda c: PACC(c, fit_classifier=False, val_split=None),
        1e-4,
    ),
}


def _posteriors(rng: np.random.Generator, labels: np.ndarray, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += 2.0
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("n_classes", [3, 12])
def test_same_estimate_as_quapy(name: str, n_classes: int) -> None:
    make_ours, make_theirs, tolerance = PAIRS[name]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 400)
    calibration = _posteriors(rng, labels, n_classes)
    classifier = PosteriorPassthrough(n_classes).fit(None)
    ours, theirs = make_ours(classifier), make_theirs(classifier)
    ours.fit(calibration, labels)
    theirs.fit(calibration, labels)
    for _ in range(5):
        sample_labels = rng.choice(n_classes, 150, p=rng.dirichlet(np.ones(n_classes)))
        sample = _posteriors(rng, sample_labels, n_classes)
        np.testing.assert_allclose(ours.predict(sample), theirs.predict(sample), atol=tolerance)


def test_simplex_least_norm_recovers_an_exact_solution_and_stays_on_the_simplex() -> None:
    rates = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.1, 0.2, 0.7]])  # columns sum to 1
    truth = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(simplex_least_norm(rates, rates @ truth), truth, atol=1e-5)
    # an unadjusted vector no simplex point explains: the answer is still a prevalence vector
    estimate = simplex_least_norm(rates, np.array([1.2, -0.1, -0.1]))
    assert estimate.min() >= -1e-9 and estimate.sum() == pytest.approx(1.0)
    assert estimate[0] == estimate.max()


def test_forward_difference_matches_the_gradient_and_steps_inside_the_box() -> None:
    weights = np.array([1.0, -2.0, 0.5])

    def batch_loss(points: np.ndarray) -> np.ndarray:
        assert points.min() >= 0.0 and points.max() <= 1.0  # every point inside [0, 1]^K
        return np.sin(points @ weights)

    for prev in (np.array([0.2, 0.3, 0.5]), np.array([1.0, 0.0, 0.0])):
        loss, gradient = forward_difference(batch_loss, prev)
        assert loss == pytest.approx(np.sin(prev @ weights))
        np.testing.assert_allclose(gradient, np.cos(prev @ weights) * weights, atol=1e-6)
