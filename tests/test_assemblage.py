"""Assemblage: Wilson intervals, the NNLS confusion correction, and recovery of a known composition."""

from __future__ import annotations

import numpy as np
import pytest

from san.inference.assemblage import (
    TABLE_COLUMNS,
    assemblage_table,
    bootstrap_corrected_interval,
    composition_error,
    confusion_rates,
    corrected_proportions,
    simulate_recovery,
    wilson_interval,
)

# Five minerals; the second and third are often taken for each other, the fourth leaks into the first.
RATES = np.array(
    [
        [0.85, 0.05, 0.05, 0.00, 0.05],
        [0.05, 0.65, 0.25, 0.00, 0.05],
        [0.00, 0.30, 0.65, 0.00, 0.05],
        [0.30, 0.00, 0.00, 0.70, 0.00],
        [0.05, 0.05, 0.00, 0.00, 0.90],
    ]
)
COMPOSITION = np.array([0.10, 0.45, 0.05, 0.30, 0.10])


def test_wilson_interval_matches_reference_values():
    low, high = wilson_interval(np.array([0, 5, 10]), 10)
    # Reference values of the 95% Wilson score interval for 0/10, 5/10 and 10/10.
    np.testing.assert_allclose(low, [0.0, 0.2366, 0.7225], atol=1e-4)
    np.testing.assert_allclose(high, [0.2775, 0.7634, 1.0], atol=1e-4)
    with pytest.raises(ValueError, match="counts"):
        wilson_interval(np.array([11]), 10)


def test_nnls_inverts_an_exact_confusion():
    expected_predictions = RATES.T @ COMPOSITION
    np.testing.assert_allclose(
        corrected_proportions(1000 * expected_predictions, RATES), COMPOSITION, atol=1e-9
    )


def test_a_class_without_test_samples_gets_an_identity_row():
    rates, missing = confusion_rates(np.array([[8, 2, 0], [0, 0, 0], [1, 0, 9]]))
    assert missing.tolist() == [False, True, False]
    np.testing.assert_allclose(rates, [[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.9]])


def test_correction_recovers_a_known_composition_better_than_raw_counts():
    rng = np.random.default_rng(0)
    runs = [simulate_recovery(COMPOSITION, RATES, 400, rng, test_grains_per_class=60) for _ in range(40)]
    raw = np.mean([r["raw_mae_pp"] for r in runs])
    corrected = np.mean([r["corrected_mae_pp"] for r in runs])
    assert corrected < 0.6 * raw, (raw, corrected)
    assert raw > 3.0  # the confusions really bias the raw counts (in percentage points)


def test_without_confusion_the_correction_changes_nothing():
    rng = np.random.default_rng(1)
    result = simulate_recovery(COMPOSITION, np.eye(5), 500, rng)
    assert result["corrected_mae_pp"] == pytest.approx(result["raw_mae_pp"])


def test_assemblage_table_counts_percentages_and_intervals():
    classes = ["Ap", "Grt", "Zrn"]
    predicted = ["Grt"] * 30 + ["Zrn"] * 60 + ["Ap"] * 10
    confusion = np.array([[18, 2, 0], [3, 25, 2], [0, 5, 45]])
    table = assemblage_table(predicted, classes, confusion, np.random.default_rng(0), sample="S1", draws=300)
    assert list(table.columns) == list(TABLE_COLUMNS) and table["mineral"].tolist() == classes
    assert table["count"].tolist() == [10, 30, 60]
    assert table["percent"].sum() == pytest.approx(100.0)
    assert table["corrected_percent"].sum() == pytest.approx(100.0)
    assert ((table["percent_low"] <= table["percent"]) & (table["percent"] <= table["percent_high"])).all()
    assert (table["corrected_low"] <= table["corrected_high"]).all()
    again = assemblage_table(predicted, classes, confusion, np.random.default_rng(0), sample="S1", draws=300)
    assert again.equals(table)
    uncorrected = assemblage_table(predicted, classes, None, np.random.default_rng(0))
    assert uncorrected["corrected_percent"].isna().all()
    errors = composition_error(table, {"Ap": 10.0, "Grt": 30.0, "Zrn": 60.0})
    assert errors["raw_mae_pp"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="Qz"):
        assemblage_table(["Qz"], classes, None, np.random.default_rng(0))


def test_bootstrap_interval_covers_the_truth_most_of_the_time():
    rng = np.random.default_rng(2)
    confusion = np.round(RATES * 80).astype(int)
    covered = []
    for _ in range(15):
        true_counts = rng.multinomial(300, COMPOSITION)
        predicted = sum(rng.multinomial(n, row) for n, row in zip(true_counts, RATES, strict=True))
        low, high = bootstrap_corrected_interval(predicted, confusion, rng, draws=200)
        covered.append((low <= COMPOSITION + 1e-9) & (high >= COMPOSITION - 1e-9))
    assert np.mean(covered) > 0.8
