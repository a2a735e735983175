"""Classical estimators: each method learns an easy set, the search is seeded, tiny classes do not crash."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from baselines import classical
from baselines.classical import METHODS, fit_classical, make_pipeline_and_grid


@pytest.fixture(autouse=True)
def few_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 trees instead of the benchmark's 200: the same code path, a tenth of the suite's time."""
    monkeypatch.setattr(classical, "RF_TREES", 20)


def class_centres(rng: np.random.Generator, n_classes: int = 3, n_features: int = 8) -> np.ndarray:
    """Well-separated class centres; the second half of the features carries no information."""
    centres = rng.normal(0.0, 4.0, size=(n_classes, n_features))
    centres[:, n_features // 2 :] = 0.0
    return centres


def blobs(
    rng: np.random.Generator, per_class: int, centres: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance Gaussian samples around each centre, integer labels 0..n_classes-1."""
    centres = class_centres(rng) if centres is None else centres
    y = np.repeat(np.arange(len(centres)), per_class)
    return centres[y] + rng.normal(size=(len(y), centres.shape[1])), y


@pytest.mark.parametrize("method", METHODS)
def test_each_method_beats_chance_clearly_with_probabilities(method):
    rng = np.random.default_rng(0)
    centres = class_centres(rng)
    X_train, y_train = blobs(rng, per_class=20, centres=centres)
    X_test, y_test = blobs(rng, per_class=20, centres=centres)
    fitted = fit_classical(method, X_train, y_train, seed=0)
    accuracy = (fitted.estimator.predict(X_test) == y_test).mean()
    assert accuracy >= 0.9  # chance is 1/3
    probabilities = fitted.estimator.predict_proba(X_test)
    assert probabilities.shape == (len(X_test), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert fitted.classes == [0, 1, 2]
    assert set(fitted.best_params) == set(fitted.param_grid)
    assert all(fitted.best_params[k] in fitted.param_grid[k] for k in fitted.best_params)
    assert fitted.grid_size == int(np.prod([len(v) for v in fitted.param_grid.values()]))
    assert 0.0 <= fitted.cv_score <= 1.0 and fitted.cv_folds == 5
    json.dumps({"best_params": fitted.best_params, "grid": fitted.param_grid, "classes": fitted.classes})


def test_dt_uses_entropy_cart_gini_and_only_svm_knn_are_scaled():
    steps = {m: make_pipeline_and_grid(m, seed=0)[0].named_steps for m in METHODS}
    assert steps["dt"]["model"].criterion == "entropy"
    assert steps["cart"]["model"].criterion == "gini"
    assert {m for m in METHODS if "scale" in steps[m]} == {"svm", "knn"}
    pipeline, _ = make_pipeline_and_grid("rf", class_weight="balanced", seed=3)
    assert pipeline.named_steps["model"].class_weight == "balanced"
    assert pipeline.named_steps["model"].random_state == 3


def test_search_is_reproducible_with_a_seed(monkeypatch):
    monkeypatch.setattr(classical, "RF_TREES", 25)  # the randomised method, kept small
    X, y = blobs(np.random.default_rng(2), per_class=15)
    X = X + np.random.default_rng(3).normal(scale=3.0, size=X.shape)  # overlapping: choices matter
    first, second = (fit_classical("rf", X, y, seed=7) for _ in range(2))
    assert first.best_params == second.best_params and first.cv_score == second.cv_score
    np.testing.assert_array_equal(first.estimator.predict_proba(X), second.estimator.predict_proba(X))


@pytest.mark.parametrize("method", METHODS)
def test_a_class_with_one_training_sample_keeps_the_folds_of_the_others(method, caplog):
    X, y = blobs(np.random.default_rng(4), per_class=6)
    X, y = np.concatenate([X, X[:1] + 20.0]), np.concatenate([y, [3]])
    with caplog.at_level(logging.WARNING, logger="baselines.classical"):
        fitted = fit_classical(method, X, y, seed=0, cv_folds=5, class_names=["Ap", "Grt", "Zrn", "Spn"])
    assert fitted.cv_folds == 5 and fitted.cv_left_out == [3]
    assert "Spn (1 sample) have fewer training samples than the 5 grid-search folds: left out" in caplog.text
    assert fitted.classes == [0, 1, 2, 3]
    assert fitted.estimator.predict_proba(X).shape == (len(X), 4)
    assert fitted.estimator.predict(X[-1:]) == [3]  # the final fit learnt it


def test_folds_shrink_only_when_two_classes_cannot_fill_them(caplog):
    X, y = blobs(np.random.default_rng(6), per_class=12)
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:3], np.flatnonzero(y == 2)[:2]])
    with caplog.at_level(logging.WARNING, logger="baselines.classical"):
        fitted = fit_classical("knn", X[keep], y[keep], seed=0, cv_folds=5)
    assert fitted.cv_folds == 3 and fitted.cv_left_out == [2]
    assert "3 folds instead of 5" in caplog.text and "2 (2 samples)" in caplog.text
    with pytest.raises(ValueError, match=r"two classes with at least 2.*0 \(12 samples\), 1 \(1 sample\)"):
        fit_classical("knn", X[:13], y[:13], seed=0)


def test_bad_requests_are_clear_errors():
    X, y = blobs(np.random.default_rng(5), per_class=5)
    with pytest.raises(ValueError, match="unknown classical method 'lda'"):
        fit_classical("lda", X, y, seed=0)
    with pytest.raises(ValueError, match="class_weight"):
        fit_classical("svm", X, y, seed=0, class_weight="inverse")
    with pytest.raises(ValueError, match="at least 2"):
        fit_classical("svm", X, np.zeros(len(y)), seed=0)
    with pytest.raises(ValueError, match="rows"):
        fit_classical("svm", X, y[:-1], seed=0)
