"""Temperature scaling and the expected calibration error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from san.evaluation.calibration import (
    CALIBRATION_FILE,
    MIN_FIT_PAIRS,
    RELIABILITY_FILE,
    TemperatureScaling,
    expected_calibration_error,
    fit_temperature,
    log_scores,
    negative_log_likelihood,
)
from san.runs.calibration import calibrate_run


def overconfident(n: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), and the logits ``scale * z`` a model ``scale`` times too sure gives."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(logits, axis=1)])
    return scale * logits, labels, logits


def test_temperature_recovers_the_overconfidence_and_lowers_the_val_nll():
    scores, labels, _ = overconfident(3000, 3.0, seed=0)
    temperature = fit_temperature(scores, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = negative_log_likelihood(softmax(scores, axis=1), labels)
    after = negative_log_likelihood(TemperatureScaling(temperature).apply(scores), labels)
    assert after < before - 0.1


def test_fitting_from_saved_probabilities_equals_fitting_from_logits():
    scores, labels, _ = overconfident(500, 2.0, seed=1)
    from_probabilities = fit_temperature(log_scores(softmax(scores, axis=1)), labels)
    assert from_probabilities == pytest.approx(fit_temperature(scores, labels), rel=1e-4)


def test_ece_of_a_hand_made_case():
    # Two bins: confidence 0.9 with 2 of 4 right (gap 0.4), confidence 0.6 with 1 of 1 right (gap 0.4).
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]])
    labels = np.array([0, 0, 1, 1, 0])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


def test_calibrate_run_writes_the_temperature_the_report_and_the_diagram(tmp_path):
    val_scores, val_labels, _ = overconfident(400, 2.5, seed=2)
    test_scores, test_labels, _ = overconfident(300, 2.5, seed=3)
    report = calibrate_run(
        {
            "val": (softmax(val_scores, axis=1), val_labels),
            "test": (softmax(test_scores, axis=1), test_labels),
        },
        tmp_path,
        "toy",
    )
    assert report["status"] == "fitted" and report["n_fit"] == 400 and report["temperature"] > 1.5
    test = report["splits"]["test"]
    assert test["ece_after"] < test["ece_before"] and test["nll_after"] < test["nll_before"]
    assert json.loads((tmp_path / CALIBRATION_FILE).read_text())["temperature"] == report["temperature"]
    assert TemperatureScaling.load(tmp_path).temperature == pytest.approx(report["temperature"])
    assert (tmp_path / RELIABILITY_FILE).stat().st_size > 0


def test_a_validation_split_too_small_to_fit_a_temperature_is_skipped_with_a_note(tmp_path):
    scores, labels, _ = overconfident(21, 1.0, seed=5)  # the size that once gave T = 0.39
    report = calibrate_run({"val": (softmax(scores, axis=1), labels)}, tmp_path)
    assert report["status"] == "skipped" and report["n_val"] == 21 and report["min_pairs"] == MIN_FIT_PAIRS
    assert "21 pairs, fewer than the 50" in report["reason"] and "T = 1" in report["reason"]
    assert TemperatureScaling.load(tmp_path) is None  # prediction applies no temperature
    scores, labels, _ = overconfident(MIN_FIT_PAIRS, 1.0, seed=5)
    assert calibrate_run({"val": (softmax(scores, axis=1), labels)}, tmp_path)["status"] == "fitted"


def test_without_val_nothing_is_fitted_and_a_bad_file_is_named(tmp_path):
    scores, labels, _ = overconfident(50, 1.0, seed=4)
    assert calibrate_run({"test": (softmax(scores, axis=1), labels)}, tmp_path)["status"] == "skipped"
    assert TemperatureScaling.load(tmp_path) is None
    (tmp_path / CALIBRATION_FILE).write_text('{"temperature": -1}')
    with pytest.raises(ValueError, match="calibration.json.*positive"):
        TemperatureScaling.load(tmp_path)
