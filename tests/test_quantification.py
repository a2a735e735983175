"""Quantifiers (QuaPy through posteriors) recover known prevalences; EM prior adaptation helps per grain."""

from __future__ import annotations

import numpy as np
import pytest
from quantification_data import calibrated_posteriors

from san.evaluation.quantification import QUANTIFIERS, adapt_posteriors, fit_quantifier, fit_quantifiers

BALANCED = np.full(4, 0.25)
SHIFTED = np.array([0.55, 0.30, 0.15, 0.0])


@pytest.fixture(scope="module")
def calibration() -> tuple[np.ndarray, np.ndarray]:
    return calibrated_posteriors(BALANCED, 4000, np.random.default_rng(0))


@pytest.fixture(scope="module")
def shifted_sample() -> tuple[np.ndarray, np.ndarray]:
    return calibrated_posteriors(SHIFTED, 3000, np.random.default_rng(1))


def test_adjusted_quantifiers_recover_a_shifted_prevalence_and_counting_does_not(calibration, shifted_sample):
    fitted = fit_quantifiers(*calibration)
    truth = np.bincount(shifted_sample[1], minlength=4) / len(shifted_sample[1])
    error = {name: np.abs(q.prevalence(shifted_sample[0]) - truth).mean() for name, q in fitted.items()}
    for name in ("acc", "pacc", "emq", "hdy"):
        assert error[name] < 0.02, (name, error)
    assert error["cc"] > 0.04 and error["pcc"] > 0.04, error  # label shift biases plain counting
    for name, quantifier in fitted.items():
        estimate = quantifier.prevalence(shifted_sample[0])
        assert estimate.sum() == pytest.approx(1.0) and (estimate >= 0).all(), name


def test_a_class_without_calibration_rows_is_unknown_and_gets_zero(calibration, shifted_sample):
    posteriors, labels = calibration
    keep = labels != 2
    for name in QUANTIFIERS:
        fitted = fit_quantifier(name, posteriors[keep], labels[keep])
        assert fitted.known.tolist() == [True, True, False, True]
        assert fitted.prevalence(shifted_sample[0])[2] == 0.0


def test_emq_adapted_posteriors_raise_per_grain_accuracy_on_a_skewed_sample(calibration):
    posteriors, labels = calibrated_posteriors(
        np.array([0.85, 0.05, 0.05, 0.05]), 2000, np.random.default_rng(3)
    )
    train = np.bincount(calibration[1], minlength=4) / len(calibration[1])
    prevalence, adapted = adapt_posteriors(posteriors, train)
    assert np.abs(prevalence - [0.85, 0.05, 0.05, 0.05]).max() < 0.03
    np.testing.assert_allclose(adapted.sum(axis=1), 1.0)
    before = (posteriors.argmax(axis=1) == labels).mean()
    after = (adapted.argmax(axis=1) == labels).mean()
    assert after > before + 0.05, (before, after)
    # The same sample under the training mix changes (almost) nothing.
    same, _ = calibrated_posteriors(BALANCED, 2000, np.random.default_rng(4))
    unchanged, _ = adapt_posteriors(same, train)
    assert np.abs(unchanged - BALANCED).max() < 0.04


def test_fitting_is_deterministic_and_errors_are_clear(calibration, shifted_sample):
    first = fit_quantifier("hdy", *calibration).prevalence(shifted_sample[0])
    second = fit_quantifier("hdy", *calibration).prevalence(shifted_sample[0])
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="unknown quantifier 'sld'"):
        fit_quantifier("sld", *calibration)
    with pytest.raises(ValueError, match="sum to 1"):
        fit_quantifier("cc", calibration[0] * 2, calibration[1])
    with pytest.raises(ValueError, match="2 classes|quantification needs 2"):
        fit_quantifier("cc", calibration[0][:5], np.zeros(5, dtype=int))
