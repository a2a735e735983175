"""Timing of the quantifiers on seeded synthetic posteriors, against QuaPy's originals where the project
uses a faster equivalent (the command line is :mod:`san.cli.quantifier_benchmark`).

A run record evaluates every quantifier on hundreds of APP samples, so the per-sample cost of each is
what a run's assemblage evaluation pays. Posteriors are drawn as softmax(N(0, 1) + 2 e_y), a
classifier of moderate accuracy; the figures are medians of ``repeats`` passes over the same samples.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from san.evaluation.quantification import PosteriorPassthrough, fit_quantifier
from san.evaluation.quantifier_names import QUANTIFIERS


@dataclass(frozen=True)
class QuantifierTiming:
    """One quantifier implementation's cost per sample and, for a QuaPy original, how far the project's
    estimates are from it (max absolute difference over the samples' prevalences; None for the
    project's own rows)."""

    name: str
    implementation: str
    ms_per_sample: float
    max_difference: float | None


def _quapy_originals(n_classes: int) -> dict[str, Any]:
    """QuaPy's own ACC, PACC and DMy (Hellinger): what the project's faster classes replace."""
    from quapy.method.aggregative import ACC, PACC, DMy

    classifier = PosteriorPassthrough(n_classes).fit(None)
    return {
        "acc": ACC(classifier, fit_classifier=False, val_split=None),
        "pacc": PACC(classifier, fit_classifier=False, val_split=None),
        "hdy": DMy(classifier, fit_classifier=False, val_split=None, nbins=8, divergence="HD", n_jobs=1),
    }


def synthetic_posteriors(rng: np.random.Generator, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """softmax(z + 2 e_y) per row, z ~ N(0, I): posteriors of a moderately accurate classifier."""
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += 2.0
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _median_ms(predict: Callable[[np.ndarray], np.ndarray], samples: list[np.ndarray], repeats: int) -> float:
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for sample in samples:
            predict(sample)
        passes.append((time.perf_counter() - started) / len(samples) * 1000.0)
    return statistics.median(passes)


def time_quantifiers(
    *,
    n_classes: int = 12,
    calibration_rows: int = 600,
    n_samples: int = 20,
    sample_size: int = 250,
    repeats: int = 5,
    seed: int = 0,
) -> list[QuantifierTiming]:
    """Per-sample milliseconds of each quantifier the runs use, then of QuaPy's originals of the ones
    the project replaced (with their largest difference from the project's estimates).

    Raises:
        ValueError: fewer than 2 classes, or a count below 1.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    for label, value in (("calibration_rows", calibration_rows), ("n_samples", n_samples),
                         ("sample_size", sample_size), ("repeats", repeats)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, calibration_rows)
    calibration = synthetic_posteriors(rng, labels, n_classes)
    samples = []
    for _ in range(n_samples):
        mix = rng.dirichlet(np.ones(n_classes))
        samples.append(synthetic_posteriors(rng, rng.choice(n_classes, sample_size, p=mix), n_classes))
    timings, estimates = [], {}
    for name in QUANTIFIERS:
        fitted = fit_quantifier(name, calibration, labels, n_classes)
        estimates[name] = np.array([fitted.prevalence(s) for s in samples])
        timings.append(
            QuantifierTiming(name, "project", _median_ms(fitted.prevalence, samples, repeats), None)
        )
    if len(np.unique(labels)) == n_classes:  # QuaPy's originals know no class-restricted fit
        for name, original in _quapy_originals(n_classes).items():
            original.fit(calibration, labels)
            theirs = np.array([original.predict(s) for s in samples])
            difference = float(np.abs(theirs - estimates[name]).max())
            timings.append(
                QuantifierTiming(name, "quapy", _median_ms(original.predict, samples, repeats), difference)
            )
    return timings


def format_timings(timings: list[QuantifierTiming]) -> str:
    """A plain-text table of the timings."""
    lines = [f"{'quantifier':<11}{'implementation':<16}{'ms per sample':>14}  max |difference|"]
    for row in timings:
        difference = "" if row.max_difference is None else f"{row.max_difference:.1e}"
        lines.append(f"{row.name:<11}{row.implementation:<16}{row.ms_per_sample:>14.2f}  {difference}")
    return "\n".join(lines)
