"""Provenance indices (ZTR, GZi, ATi, RZi, MZi), not-computable classes, and the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from quantification_data import calibrated_posteriors

from san.evaluation.prevalence_intervals import (
    bootstrap_prevalences,
    fit_bootstrap_quantifiers,
    percentile_interval,
)
from san.evaluation.prevalence_protocol import coverage
from san.inference.provenance import INDICES, index_values, not_computable, provenance_indices

CLASSES = ["Ap", "Bt", "Grt", "Mnz", "Rt", "Tur", "Zrn"]
PREVALENCE = np.array([0.10, 0.20, 0.30, 0.05, 0.05, 0.10, 0.20])


def test_indices_follow_their_definitions():
    values = index_values(PREVALENCE, CLASSES)
    # ZTR: (Zrn + Tur + Rt) over the transparent heavy minerals, micas (Bt) left out: 0.35 / 0.80.
    assert values["ZTR"][0] == pytest.approx(100 * 0.35 / 0.80)
    assert values["GZi"][0] == pytest.approx(100 * 0.30 / 0.50)
    assert values["ATi"][0] == pytest.approx(100 * 0.10 / 0.20)
    assert values["RZi"][0] == pytest.approx(100 * 0.05 / 0.25)
    assert values["MZi"][0] == pytest.approx(100 * 0.05 / 0.25)


def test_unknown_classes_make_an_index_not_computable_never_zero():
    without_tur = [c for c in CLASSES if c != "Tur"]
    prevalence = np.delete(PREVALENCE, CLASSES.index("Tur"))
    values = index_values(prevalence / prevalence.sum(), without_tur)
    assert values["ZTR"] is None and values["ATi"] is None
    assert values["GZi"] is not None
    # A class in the list but without calibration rows is unknown too.
    known = [c != "Mnz" for c in CLASSES]
    assert not_computable(CLASSES, known)["MZi"] == "the run does not know Mnz"
    estimates = {e.index: e for e in provenance_indices(PREVALENCE, PREVALENCE[None], CLASSES, known)}
    assert estimates["MZi"].value is None and "not computable" in estimates["MZi"].note
    # Known but absent in the sample: 0 / 0 is not a value either.
    absent = PREVALENCE.copy()
    absent[[CLASSES.index("Mnz"), CLASSES.index("Zrn")]] = 0.0
    assert np.isnan(index_values(absent / absent.sum(), CLASSES)["MZi"][0])


def test_bootstrap_is_seeded_and_its_intervals_cover_the_truth():
    classes4 = ["Grt", "Zrn", "Ap", "Tur"]
    calibration = calibrated_posteriors(np.full(4, 0.25), 1200, np.random.default_rng(0))
    truth = np.array([0.4, 0.3, 0.2, 0.1])
    ensemble = fit_bootstrap_quantifiers("emq", *calibration, np.random.default_rng(1), draws=60)
    sample, _ = calibrated_posteriors(truth, 250, np.random.default_rng(2))
    first = bootstrap_prevalences(ensemble, sample, np.random.default_rng(3))
    again = bootstrap_prevalences(ensemble, sample, np.random.default_rng(3))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (60, 4)
    estimates = provenance_indices(first.mean(axis=0), first, classes4)
    assert [e.index for e in estimates] == list(INDICES)
    gzi = next(e for e in estimates if e.index == "GZi")
    assert gzi.low < gzi.value < gzi.high
    # Coverage over repeated samples from the same mix: near the nominal 95%, well above counting-only luck.
    rng = np.random.default_rng(4)
    lows, highs, truths = [], [], []
    for _ in range(30):
        sample, labels = calibrated_posteriors(truth, 250, rng)
        low, high = percentile_interval(bootstrap_prevalences(ensemble, sample, rng))
        lows.append(low), highs.append(high), truths.append(np.bincount(labels, minlength=4) / 250)
    assert coverage(np.array(truths), np.array(lows), np.array(highs)) > 0.85


def test_percentile_interval_ignores_nan_draws():
    draws = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    low, high = percentile_interval(draws, level=0.5)
    assert low[0] == pytest.approx(1.5) and high[0] == pytest.approx(2.5)
    assert np.isnan(low[1]) and np.isnan(high[1])
