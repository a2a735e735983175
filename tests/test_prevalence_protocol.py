"""APP sampling (seeded, prescribed mixes, present classes only) and the AE / RAE / coverage maths."""

from __future__ import annotations

import numpy as np
import pytest

from san.evaluation.prevalence_protocol import (
    absolute_error_pp,
    app_samples,
    coverage,
    draw_sample,
    prescribed_counts,
    relative_absolute_error,
)

LABELS = np.repeat([0, 1, 3], [50, 30, 20])  # class 2 has no row


def test_prescribed_counts_follow_largest_remainders():
    counts = prescribed_counts(np.array([0.5, 0.3, 0.2]), 7, np.random.default_rng(0))
    assert counts.tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4 -> floors 3, 2, 1, the extra grain to 0.5
    assert prescribed_counts(np.array([1.0, 0.0]), 250, np.random.default_rng(0)).tolist() == [250, 0]
    with pytest.raises(ValueError, match="prevalence"):
        prescribed_counts(np.array([0.0, 0.0]), 5, np.random.default_rng(0))


def test_app_samples_are_seeded_sized_and_stay_on_present_classes():
    first = app_samples(LABELS, 4, np.random.default_rng(7), n_samples=40)
    again = app_samples(LABELS, 4, np.random.default_rng(7), n_samples=40)
    other = app_samples(LABELS, 4, np.random.default_rng(8), n_samples=40)
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.rows, b.rows) for a, b in zip(first, other, strict=True))
    assert first[0].natural and not first[1].natural
    np.testing.assert_allclose(first[0].prevalence, [0.5, 0.3, 0.0, 0.2], atol=0.01)
    for sample in first:
        assert 200 <= len(sample.rows) <= 300
        assert sample.prevalence[2] == 0.0
        realised = np.bincount(LABELS[sample.rows], minlength=4) / len(sample.rows)
        np.testing.assert_allclose(realised, sample.prevalence)
    spread = np.array([s.prevalence for s in first[1:]])
    assert spread[:, 3].max() > 0.5  # a flat Dirichlet really moves the mix far from the natural one


def test_draw_sample_refuses_a_class_without_rows_and_replaces_only_when_needed():
    with pytest.raises(ValueError, match="class 2"):
        draw_sample(LABELS, np.array([0.5, 0.0, 0.5, 0.0]), 10, np.random.default_rng(0))
    small = draw_sample(LABELS, np.array([0.0, 1.0, 0.0, 0.0]), 30, np.random.default_rng(0))
    assert len(np.unique(small.rows)) == 30  # exactly the 30 rows of class 1, none repeated
    large = draw_sample(LABELS, np.array([0.0, 1.0, 0.0, 0.0]), 60, np.random.default_rng(0))
    assert len(large.rows) == 60 and set(LABELS[large.rows]) == {1}


def test_absolute_and_relative_errors_match_their_formulas():
    true = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    estimate = np.array([[0.4, 0.5, 0.1], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(absolute_error_pp(true, estimate), [100 * 0.2 / 3, 0.0])
    eps = 1 / (2 * 100)
    smooth = lambda p: (p + eps) / (1 + 3 * eps)  # noqa: E731
    expected = np.mean(np.abs(smooth(estimate[0]) - smooth(true[0])) / smooth(true[0]))
    np.testing.assert_allclose(relative_absolute_error(true, estimate, 100), [expected, 0.0])


def test_coverage_counts_entries_inside_their_interval():
    true = np.array([[0.1, 0.5], [0.3, 0.0]])
    low = np.array([[0.0, 0.6], [0.2, 0.0]])
    high = np.array([[0.2, 0.7], [0.3, 0.1]])
    assert coverage(true, low, high) == pytest.approx(0.75)  # bounds are inclusive
    assert coverage(true, low, high, true > 0) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="shapes"):
        coverage(true, low[:1], high)
