"""The artificial prevalence protocol (APP) and the errors the quantification literature reports.

APP (after QuaPy's ``UPP``/``APP``): from labelled rows of one river, draw many samples of 200-300
grains whose class mix is prescribed: p ~ Dirichlet(1, ..., 1) over the classes the rows have (a
flat draw from the simplex, so every mix is as likely), plus the rows' own (natural) mix. A sample
of size n gets round(n p_k) grains of class k (largest remainders, ties broken by the generator),
drawn without replacement while the class has enough rows, with replacement otherwise.

Errors of an estimate p_hat of the sample's true prevalence p (K classes, percentage points = 100 x):
    AE  = (1/K) sum_k |p_hat_k - p_k|                                (QuaPy ``ae``)
    RAE = (1/K) sum_k |s(p_hat)_k - s(p)_k| / s(p)_k,  s(p)_k = (p_k + e) / (1 + K e), e = 1/(2n)
                                                                     (QuaPy ``rae``, smoothed; unitless)
Coverage of intervals [low, high]: the share of (sample, class) pairs with low <= p <= high.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_SIZE_RANGE = (200, 300)
APP_SAMPLES = 500


@dataclass(frozen=True)
class PrevalenceSample:
    """One APP sample: row positions (into the labelled rows it was drawn from) and its true prevalence."""

    rows: np.ndarray
    prevalence: np.ndarray
    natural: bool = False


def prescribed_counts(prevalence: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Integer class counts summing to ``size`` closest to ``size * prevalence`` (largest remainders;
    equal remainders are ordered by ``rng``).

    Raises:
        ValueError: size < 1, or the prevalence is not a non-negative vector with a positive sum.
    """
    prevalence = np.asarray(prevalence, dtype=np.float64)
    if size < 1 or prevalence.ndim != 1 or (prevalence < 0).any() or prevalence.sum() <= 0:
        raise ValueError(f"need size >= 1 and a non-negative prevalence vector, got {size}, {prevalence}")
    exact = size * prevalence / prevalence.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    order = np.lexsort((rng.random(len(exact)), -remainder))
    counts[order[: size - counts.sum()]] += 1
    return counts


def draw_sample(
    labels: np.ndarray, prevalence: np.ndarray, size: int, rng: np.random.Generator
) -> PrevalenceSample:
    """A sample of ``size`` rows of ``labels`` (class indices) with the prescribed class mix.

    Raises:
        ValueError: the mix asks for a class that has no row.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = prescribed_counts(prevalence, size, rng)
    chosen = []
    for k in np.flatnonzero(counts):
        pool = np.flatnonzero(labels == k)
        if len(pool) == 0:
            raise ValueError(f"the prescribed mix asks for class {k}, which has no row to draw from")
        chosen.append(rng.choice(pool, size=counts[k], replace=counts[k] > len(pool)))
    rows = np.concatenate(chosen)
    return PrevalenceSample(rows=rows, prevalence=counts / counts.sum())


def app_samples(
    labels: np.ndarray,
    n_classes: int,
    rng: np.random.Generator,
    *,
    n_samples: int = APP_SAMPLES,
    size_range: tuple[int, int] = SAMPLE_SIZE_RANGE,
    natural: bool = True,
) -> list[PrevalenceSample]:
    """``n_samples`` APP samples of ``labels``: sizes uniform in ``size_range`` (inclusive), mixes
    from a flat Dirichlet over the classes present in ``labels``; the first is the natural mix when
    ``natural`` (then ``n_samples - 1`` Dirichlet draws follow).

    Raises:
        ValueError: no labelled row, a label outside [0, n_classes), or a bad size range.
    """
    labels = np.asarray(labels, dtype=np.int64)
    low, high = size_range
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"need labels in [0, {n_classes}), got {len(labels)} row(s)")
    if not 1 <= low <= high:
        raise ValueError(f"sample sizes must satisfy 1 <= low <= high, got {size_range}")
    present = np.flatnonzero(np.bincount(labels, minlength=n_classes))
    samples = []
    for i in range(n_samples):
        size = int(rng.integers(low, high + 1))
        prevalence = np.zeros(n_classes)
        if natural and i == 0:
            prevalence = np.bincount(labels, minlength=n_classes) / len(labels)
        else:
            prevalence[present] = rng.dirichlet(np.ones(len(present)))
        sample = draw_sample(labels, prevalence, size, rng)
        samples.append(PrevalenceSample(sample.rows, sample.prevalence, natural=natural and i == 0))
    return samples


def absolute_error_pp(true: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """AE in percentage points per sample (rows of S x K prevalence matrices; a K-vector gives a scalar)."""
    from quapy.error import ae

    return 100.0 * np.asarray(ae(np.asarray(true, float), np.asarray(estimate, float)))


def relative_absolute_error(true: np.ndarray, estimate: np.ndarray, sizes: np.ndarray | int) -> np.ndarray:
    """Smoothed RAE of each sample (unitless; e = 1 / (2 n) with n the sample's size)."""
    from quapy.error import rae

    true, estimate = np.atleast_2d(np.asarray(true, float)), np.atleast_2d(np.asarray(estimate, float))
    sizes = np.broadcast_to(np.asarray(sizes, dtype=float), (len(true),))
    values = np.array([rae(t, e, eps=1.0 / (2.0 * n)) for t, e, n in zip(true, estimate, sizes, strict=True)])
    return values


def coverage(true: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Share of (sample, class) entries with low <= true <= high (S x K arrays), over ``mask`` if given.

    Raises:
        ValueError: shapes differ or the mask selects nothing.
    """
    true, low, high = (np.asarray(a, dtype=np.float64) for a in (true, low, high))
    if not true.shape == low.shape == high.shape:
        raise ValueError(f"shapes differ: true {true.shape}, low {low.shape}, high {high.shape}")
    inside = (low - 1e-12 <= true) & (true <= high + 1e-12)
    mask = np.ones(true.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the coverage mask selects no entry")
    return float(inside[mask].mean())
