"""predict.py's assemblage path: calibration rows on disk, the quantifier choice, per-sample tables."""

from __future__ import annotations

import numpy as np
import pytest
from quantification_data import calibrated_posteriors
from scipy.special import softmax

from san.inference.quantified_assemblage import SampleQuantifier, rescale
from san.inference.report import resolve_quantifier
from san.runs.quantification import CalibrationRows, load_calibration_rows, save_calibration_rows

CLASSES = ["Ap", "Grt", "Tur", "Zrn"]


@pytest.fixture(scope="module")
def rows() -> CalibrationRows:
    posteriors, labels = calibrated_posteriors(np.full(4, 0.25), 800, np.random.default_rng(0))
    keep = labels != 2  # Tur has no calibration row: the run cannot know it
    return CalibrationRows(posteriors[keep], labels[keep], CLASSES, 0.8, "out-of-fold", "pacc")


def test_calibration_rows_round_trip_and_a_foreign_file_is_named(rows, tmp_path):
    save_calibration_rows(tmp_path, rows)
    loaded = load_calibration_rows(tmp_path)
    np.testing.assert_array_equal(loaded.posteriors, rows.posteriors)
    assert (loaded.classes, loaded.temperature, loaded.source, loaded.chosen) == (
        CLASSES,
        0.8,
        "out-of-fold",
        "pacc",
    )
    assert load_calibration_rows(tmp_path / "nowhere") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "quantification.npz").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="quantification.npz"):
        load_calibration_rows(tmp_path / "bad")


def test_the_default_quantifier_is_the_runs_choice_and_old_runs_fall_back_to_counting(rows):
    assert resolve_quantifier("auto", rows)[0] == "pacc"
    assert resolve_quantifier("emq", rows)[0] == "emq"
    name, note = resolve_quantifier("auto", None)
    assert name == "cc" and "predates" in note
    assert resolve_quantifier("pcc", None)[0] == "pcc"
    with pytest.raises(ValueError, match="calibration rows"):
        resolve_quantifier("acc", None)
    with pytest.raises(ValueError, match="unknown quantifier"):
        resolve_quantifier("nnls", rows)


def test_rescale_changes_the_temperature_of_saved_probabilities():
    scores = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(
        rescale(softmax(scores / 2.0, axis=1), 2.0, 0.5), softmax(scores / 0.5, axis=1)
    )


def test_a_sample_gets_raw_and_quantified_percentages_and_unknown_classes_stay_unknown(rows):
    sample, _ = calibrated_posteriors(np.array([0.5, 0.3, 0.0, 0.2]), 250, np.random.default_rng(1))
    quantifier = SampleQuantifier("pacc", 4, rows, np.random.default_rng(2), draws=20)
    result = quantifier.assemble("S1", sample, CLASSES)
    table = result.table.set_index("mineral")
    assert table["percent"].sum() == pytest.approx(100.0) and (table["quantifier"] == "pacc").all()
    assert np.isnan(table.loc["Tur", "corrected_percent"])  # no calibration row: unknown, not 0 %
    assert table.loc["Ap", "corrected_low"] <= table.loc["Ap", "corrected_high"]
    indices = result.indices.set_index("index")
    assert indices.loc["ATi", "note"].startswith("not computable") and np.isnan(indices.loc["ATi", "value"])
    assert 0 < indices.loc["GZi", "value"] < 100
    assert result.adapted is not None and result.adapted.shape == sample.shape
    # Without calibration rows only counting is possible: the estimate is the raw count.
    counting = SampleQuantifier("cc", 4, None, np.random.default_rng(2), draws=5).assemble(
        "S1", sample, CLASSES
    )
    np.testing.assert_allclose(counting.table["corrected_percent"], counting.table["percent"])
    assert counting.adapted is None
    with pytest.raises(ValueError, match="calibration rows"):
        SampleQuantifier("emq", 4, None, np.random.default_rng(2))
