"""How well each quantifier recovers the assemblage of samples drawn from labelled rows, under APP.

Pure functions on arrays: calibration posteriors and labels (rows the classifier did not train on,
from the training rivers or ``val``) fit every quantifier; the evaluated rows (a held-out river, or a
source river's test split) give APP samples whose true prevalences are known. Reported per
quantifier: mean AE (percentage points) and RAE over the samples, the AE of the natural mix, and the
coverage of the bootstrap 95% intervals (``san.evaluation.prevalence_intervals``) on the first
samples. Per grain: top-1 accuracy of the calibrated posteriors and of the EM prior-adapted ones
(Saerens et al.).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from san.evaluation.prevalence_protocol import (
    APP_SAMPLES,
    SAMPLE_SIZE_RANGE,
    absolute_error_pp,
    app_samples,
    coverage,
    relative_absolute_error,
)
from san.evaluation.quantification import QUANTIFIERS, adapt_posteriors, check_posteriors, fit_quantifier

COVERAGE_SAMPLES = 50
COVERAGE_DRAWS = 100
SELECTION_SAMPLES = 100
SELECTION_RULE = (
    "lowest mean APP absolute error over 2-fold cross-fitting within the calibration rows "
    "(training rivers' out-of-fold or val posteriors); never the test split or a target river"
)


def per_grain_accuracy(
    posteriors: np.ndarray, labels: np.ndarray, train_prevalence: np.ndarray
) -> dict[str, float]:
    """Top-1 accuracy of ``posteriors`` against ``labels``, before and after EM prior adaptation to
    the rows' own (unknown to EM) class mix."""
    _, adapted = adapt_posteriors(posteriors, train_prevalence)
    return {
        "accuracy": float((posteriors.argmax(axis=1) == labels).mean()),
        "accuracy_adapted": float((adapted.argmax(axis=1) == labels).mean()),
    }


def evaluate_quantifiers(
    calibration_posteriors: np.ndarray,
    calibration_labels: np.ndarray,
    posteriors: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    names: Sequence[str] = QUANTIFIERS,
    n_samples: int = APP_SAMPLES,
    size_range: tuple[int, int] = SAMPLE_SIZE_RANGE,
    coverage_samples: int = COVERAGE_SAMPLES,
    draws: int = COVERAGE_DRAWS,
) -> dict[str, Any]:
    """APP evaluation of every quantifier on the evaluated rows (``posteriors`` N x K, ``labels`` N).

    Args:
        calibration_posteriors, calibration_labels: what the quantifiers are fitted on.
        rng: drives the APP samples and the bootstrap (the only source of randomness).
        coverage_samples: how many of the APP samples (the natural one first) get a bootstrap interval
            of ``draws`` draws; 0 skips coverage.

    Returns:
        ``protocol`` (what was drawn), ``quantifiers`` (per name: ``mae_pp``, ``mae_pp_std``, ``rae``,
        ``natural_ae_pp``, and with coverage ``coverage`` over all classes and ``coverage_present``
        over the classes present in each sample), ``per_grain`` (accuracy with and without EM prior
        adaptation, on the natural rows and averaged over the APP samples).
    """
    from san.evaluation.prevalence_intervals import (
        bootstrap_prevalences,
        fit_bootstrap_quantifiers,
        percentile_interval,
    )

    calibration_posteriors = check_posteriors(calibration_posteriors)
    n_classes = calibration_posteriors.shape[1]
    posteriors = check_posteriors(posteriors, n_classes)
    labels = np.asarray(labels, dtype=np.int64)
    samples = app_samples(labels, n_classes, rng, n_samples=n_samples, size_range=size_range)
    truth = np.array([s.prevalence for s in samples])
    sizes = np.array([len(s.rows) for s in samples])
    covered = min(coverage_samples, len(samples))
    results: dict[str, Any] = {}
    train_prevalence = None
    for name in names:
        fitted = fit_quantifier(name, calibration_posteriors, calibration_labels)
        train_prevalence = fitted.train_prevalence
        estimates = np.array([fitted.prevalence(posteriors[s.rows]) for s in samples])
        errors = absolute_error_pp(truth, estimates)
        entry: dict[str, Any] = {
            "mae_pp": float(errors.mean()),
            "mae_pp_std": float(errors.std()),
            "rae": float(relative_absolute_error(truth, estimates, sizes).mean()),
            "natural_ae_pp": float(errors[0]),
        }
        if covered:
            ensemble = fit_bootstrap_quantifiers(name, calibration_posteriors, calibration_labels, rng, draws)
            bounds = [
                percentile_interval(bootstrap_prevalences(ensemble, posteriors[s.rows], rng))
                for s in samples[:covered]
            ]
            low, high = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
            entry["coverage"] = coverage(truth[:covered], low, high)
            entry["coverage_present"] = coverage(truth[:covered], low, high, truth[:covered] > 0)
            entry["interval_width_pp"] = float(100 * (high - low).mean())
        results[name] = entry
    assert train_prevalence is not None
    natural = per_grain_accuracy(posteriors, labels, train_prevalence)
    app = [per_grain_accuracy(posteriors[s.rows], labels[s.rows], train_prevalence) for s in samples]
    return {
        "protocol": {
            "name": "APP",
            "n_samples": len(samples),
            "size_range": list(size_range),
            "prevalences": "the natural mix, then flat Dirichlet over the classes present",
            "n_rows": int(len(labels)),
            "n_calibration": int(len(calibration_labels)),
            "coverage_samples": covered,
            "coverage_draws": draws if covered else 0,
            "level": 0.95,
        },
        "quantifiers": results,
        "per_grain": {
            "accuracy": natural["accuracy"],
            "accuracy_adapted": natural["accuracy_adapted"],
            "app_accuracy": float(np.mean([a["accuracy"] for a in app])),
            "app_accuracy_adapted": float(np.mean([a["accuracy_adapted"] for a in app])),
        },
    }


def choose_quantifier(
    calibration_posteriors: np.ndarray,
    calibration_labels: np.ndarray,
    rng: np.random.Generator,
    *,
    names: Sequence[str] = QUANTIFIERS,
    n_samples: int = SELECTION_SAMPLES,
) -> dict[str, Any]:
    """The quantifier to use by default, chosen on calibration rows only: each half of a stratified
    2-fold split fits the quantifiers, the other half gives ``n_samples`` APP samples.

    Returns:
        ``chosen``, ``mae_pp`` per name (mean over both folds) and the ``rule``.
    """
    calibration_posteriors = check_posteriors(calibration_posteriors)
    labels = np.asarray(calibration_labels, dtype=np.int64)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    scores: dict[str, list[float]] = {name: [] for name in names}
    # A class with one calibration row cannot be in both halves; stratification warns and copes.
    for fit_rows, eval_rows in folds.split(calibration_posteriors, labels):
        evaluated = evaluate_quantifiers(
            calibration_posteriors[fit_rows],
            labels[fit_rows],
            calibration_posteriors[eval_rows],
            labels[eval_rows],
            rng,
            names=names,
            n_samples=n_samples,
            coverage_samples=0,
        )
        for name in names:
            scores[name].append(evaluated["quantifiers"][name]["mae_pp"])
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    return {"chosen": min(means, key=means.__getitem__), "mae_pp": means, "rule": SELECTION_RULE}


# A run's budget (module constants, read at call time, so tests can shrink them): smaller than the
# study's, coverage for the chosen quantifier only; still minutes per run, mostly HDy's optimiser.
RECORD_SAMPLES = 100
RECORD_SELECTION_SAMPLES = 40
RECORD_COVERAGE_SAMPLES = 20
RECORD_DRAWS = 40


def assemblage_record(
    calibration_posteriors: np.ndarray,
    calibration_labels: np.ndarray,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    *,
    source: str,
) -> dict[str, Any]:
    """A run record's ``assemblage`` entry: the default quantifier chosen on the calibration rows, then
    per evaluated split (``test``, ``target``) the APP errors of every quantifier
    (:func:`evaluate_quantifiers`, ``RECORD_SAMPLES`` samples), the coverage of the chosen one's
    intervals (``RECORD_COVERAGE_SAMPLES`` samples of ``RECORD_DRAWS`` draws), and per-grain accuracy
    with and without EM prior adaptation.
    """
    n_samples, coverage_samples, draws = RECORD_SAMPLES, RECORD_COVERAGE_SAMPLES, RECORD_DRAWS
    choice = choose_quantifier(
        calibration_posteriors, calibration_labels, rng, n_samples=RECORD_SELECTION_SAMPLES
    )
    entry: dict[str, Any] = {
        "calibration": {"source": source, "n": int(len(calibration_labels))},
        "budget": {
            "app_samples": n_samples,
            "selection_samples_per_fold": RECORD_SELECTION_SAMPLES,
            "coverage_samples": coverage_samples,
            "coverage_draws": draws,
        },
        "choice": choice,
        "splits": {},
    }
    for split, (posteriors, labels) in splits.items():
        if len(labels) == 0:
            continue
        evaluated = evaluate_quantifiers(
            calibration_posteriors,
            calibration_labels,
            posteriors,
            labels,
            rng,
            n_samples=n_samples,
            coverage_samples=0,
        )
        chosen = evaluate_quantifiers(
            calibration_posteriors,
            calibration_labels,
            posteriors,
            labels,
            rng,
            names=[choice["chosen"]],
            n_samples=coverage_samples,
            coverage_samples=coverage_samples,
            draws=draws,
        )["quantifiers"][choice["chosen"]]
        evaluated["chosen_coverage"] = {
            key: chosen[key] for key in ("coverage", "coverage_present", "interval_width_pp")
        }
        entry["splits"][split] = evaluated
    return entry
