"""Internal textures and blemishes as maps on the supersampled frame.

Line-like features return *darkness* maps in [0, 1] (0: no effect, 1: black); the renderer
multiplies the light by ``1 - strength * darkness``. Every random choice takes the caller's
Generator.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from data_tools.synthetic.grains import Placement


@lru_cache(maxsize=8)
def pixel_grid(frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel-centre coordinates of a square frame, float32 (cached, read-only)."""
    ys, xs = np.mgrid[0:frame, 0:frame].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def _centred_noise(rng: np.random.Generator, frame: int, feature_px: float) -> tuple[np.ndarray, np.floating]:
    """A bicubic random field minus its mean, and the divisor (its std + 1e-6) that normalises it."""
    cells = max(2, int(np.ceil(frame / max(feature_px, 1.0))) + 1)
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((frame, frame), Image.Resampling.BICUBIC))
    # (field - mean) / (std + 1e-6) with the deviations computed once: the same float32 steps as
    # field.std(), which subtracts the same mean, squares, sums and divides by the count.
    centred = field - field.mean()
    std = np.sqrt(np.square(centred).sum() / centred.size)
    return centred, std + 1e-6


def smooth_noise(rng: np.random.Generator, frame: int, feature_px: float) -> np.ndarray:
    """Zero-mean, unit-std random field whose blobs are about ``feature_px`` pixels wide."""
    centred, divisor = _centred_noise(rng, frame, feature_px)
    centred /= divisor
    return centred


def smooth_noise_at(
    rng: np.random.Generator, frame: int, feature_px: float, pixels: np.ndarray
) -> np.ndarray:
    """``smooth_noise(...)`` at the flat pixel indices ``pixels`` (1-D), normalised only there."""
    centred, divisor = _centred_noise(rng, frame, feature_px)
    values = np.take(centred, pixels, mode="clip")
    values /= divisor
    return values


def _line_profile(distance: np.ndarray, width_px: float) -> np.ndarray:
    return np.exp(-0.5 * (distance / width_px) ** 2)


def _masked_line_profile(distance: np.ndarray, width_px: float, shown: np.ndarray) -> np.ndarray:
    """``_line_profile(distance, width_px) * shown`` with the exponential evaluated only where ``shown``."""
    profile = np.zeros(distance.shape, np.result_type(distance, width_px, np.float32))
    shown = np.flatnonzero(shown)  # integer indices: much faster than boolean indexing at this density
    profile[shown] = _line_profile(distance[shown], width_px)
    return profile


def quantile(values: np.ndarray, q: float) -> np.floating:
    """``np.quantile(values, q)`` (linear method, real ``q`` strictly inside (0, 1), no NaNs) from one
    partition instead of numpy's four: the same two order statistics, interpolated as numpy's
    ``_lerp`` does for a Python-float ``q``."""
    flat = values.ravel()
    virtual = (flat.size - 1) * q
    below = math.floor(virtual)
    if not 0 <= below < flat.size - 1:
        return np.quantile(values, q)
    gamma = virtual - below
    low, high = _adjacent_order_statistics(flat, below)
    step = high - low
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma


SAMPLE_STRIDE = 16
"""Every 16th value estimates where an order statistic lies (see ``_adjacent_order_statistics``)."""


def _adjacent_order_statistics(flat: np.ndarray, rank: int) -> tuple[np.floating, np.floating]:
    """The values of ranks ``rank`` and ``rank + 1`` (from 0) of the 1-D ``flat``.

    Only the values between two bounds read off a strided sample are partitioned: the values below
    the lower bound take the first ranks, so counting them maps the two ranks into the selection.
    If the bounds miss either rank (counted, so never silently), the whole array is partitioned.
    """
    sample = flat[::SAMPLE_STRIDE]
    margin = 4 * math.isqrt(sample.size) + 8  # sample ranks: several sampling errors of a quantile
    centre = rank * sample.size // flat.size
    first, last = max(centre - margin, 0), min(centre + margin, sample.size - 1)
    bounds = np.partition(sample, (first, last))
    low, high = bounds[first], bounds[last]
    offset = int(np.count_nonzero(flat < low))
    selected = flat[(flat >= low) & (flat <= high)]
    rank_in_selection = rank - offset
    if 0 <= rank_in_selection < selected.size - 1:
        part = np.partition(selected, (rank_in_selection, rank_in_selection + 1))
        return part[rank_in_selection], part[rank_in_selection + 1]
    part = np.partition(flat, rank)
    return part[rank], part[rank + 1 :].min()


def pixel_coordinates(frame: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float32 coordinates of the given flat pixel indices of a square frame."""
    xs, ys = pixel_grid(frame)
    return np.take(xs, pixels, mode="clip"), np.take(ys, pixels, mode="clip")


def parallel_traces(
    rng: np.random.Generator,
    frame: int,
    pixels: np.ndarray,
    angle: float,
    spacing_px: float,
    width_px: float,
    continuity: float,
) -> np.ndarray:
    """A family of parallel, broken lines (cleavage traces, striations) at ``angle`` radians.

    ``continuity`` in [0, 1] is the share of each line that is visible. The darkness is returned
    at the flat pixel indices ``pixels`` only (1-D); the breaks are still drawn over the whole frame.
    """
    xs, ys = pixel_coordinates(frame, pixels)
    normal = -xs * np.sin(angle) + ys * np.cos(angle)
    spacing = spacing_px * rng.uniform(0.7, 1.3)
    phase = rng.uniform(0, spacing)
    offset = np.mod(normal + phase + rng.normal(0, 0.15 * spacing_px, 1), spacing)  # irregular spacing
    distance = np.minimum(offset, spacing - offset)
    breaks = smooth_noise(rng, frame, spacing_px * 1.5)
    visible = np.take(breaks, pixels, mode="clip") > quantile(breaks, 1.0 - continuity)
    return _masked_line_profile(distance, width_px, visible)


NEGLIGIBLE_WIDTHS = 9.0
"""Beyond this many line widths a line's profile exp(-x^2 / 2) is below 2^-54, so 1 - darkness is
exactly 1.0 in float64 whether or not the line is drawn there."""


def conchoidal_fractures(
    rng: np.random.Generator,
    frame: int,
    pixels: np.ndarray,
    placement: Placement,
    count: int,
    width_px: float,
) -> np.ndarray:
    """Curved fracture traces: arcs of random circles crossing the grain, at the flat indices ``pixels``.

    Each arc is evaluated only within ``NEGLIGIBLE_WIDTHS`` line widths of its circle and is 0
    further out (instead of a value below 2^-54).
    """
    xs, ys = pixel_coordinates(frame, pixels)
    darkness = np.zeros(pixels.size, dtype=np.float32)
    margin = NEGLIGIBLE_WIDTHS * width_px + 1.0  # 1 px more than needed: the squared test is not exact
    for _ in range(count):
        radius = placement.half_length * rng.uniform(0.4, 1.5)
        angle = rng.uniform(0, 2 * np.pi)
        reach = rng.uniform(0.0, 0.9) * placement.half_length
        centre_x = placement.centre[0] + np.cos(angle) * (radius + reach - placement.half_length * 0.3)
        centre_y = placement.centre[1] + np.sin(angle) * (radius + reach - placement.half_length * 0.3)
        dx, dy = xs - centre_x, ys - centre_y
        squared = dx * dx + dy * dy
        inner, outer = max(radius - margin, 0.0) ** 2, (radius + margin) ** 2
        near = np.flatnonzero((squared >= inner) & (squared <= outer))
        dx, dy = dx[near], dy[near]
        distance = np.abs(np.hypot(dx, dy) - radius)
        arc_direction = np.arctan2(dy, dx) - (angle + np.pi)
        along_arc = np.abs(np.angle(np.exp(1j * arc_direction)))
        span = rng.uniform(0.3, 1.0)
        arc = np.zeros(pixels.size, distance.dtype)
        arc[near] = _masked_line_profile(distance, width_px, along_arc < span)
        darkness = np.maximum(darkness, arc)
    return darkness


def growth_zoning(
    rng: np.random.Generator, distance: np.ndarray, pixels: np.ndarray, period_px: float
) -> np.ndarray:
    """Oscillatory zoning parallel to the outline: values in [-1, 1] banded by depth below the rim.

    ``distance`` is the frame's signed distance map; the zoning is returned at the flat indices ``pixels``.
    """
    period = period_px * rng.uniform(0.7, 1.4)
    wobble = smooth_noise_at(rng, distance.shape[0], period * 4, pixels) * 0.25 * period
    depth = np.clip(np.take(distance, pixels, mode="clip"), 0, None)
    return np.sin(2 * np.pi * (depth + wobble) / period + rng.uniform(0, 2 * np.pi))


def blobs(
    rng: np.random.Generator,
    frame: int,
    mask: np.ndarray,
    count: int,
    radius_px: tuple[float, float],
    elongation: float = 1.0,
) -> np.ndarray:
    """Small dark ellipses (inclusions, dust, dirt) centred inside ``mask``; darkness map."""
    darkness = np.zeros((frame, frame), dtype=np.float32)
    if count <= 0:
        return darkness
    candidates = np.flatnonzero(mask)
    if candidates.size == 0:
        return darkness
    for index in rng.choice(candidates, size=count):
        cy, cx = divmod(int(index), frame)
        radius = rng.uniform(*radius_px)
        angle = rng.uniform(0, np.pi)
        stretch = rng.uniform(1.0, elongation)
        strength = rng.uniform(0.5, 1.0)
        reach = int(np.ceil(1.5 * radius * stretch)) + 1  # only the blob's neighbourhood is computed
        top, left = max(cy - reach, 0), max(cx - reach, 0)
        ys = np.arange(top, min(cy + reach + 1, frame), dtype=np.float32)[:, None]
        xs = np.arange(left, min(cx + reach + 1, frame), dtype=np.float32)[None, :]
        u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
        v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
        blob = np.clip(1.5 - np.hypot(u / stretch, v) / radius, 0, 1) * strength
        window = darkness[top : top + blob.shape[0], left : left + blob.shape[1]]
        np.maximum(window, blob, out=window)
    return darkness


def bubble_ring(rng: np.random.Generator, frame: int, grain: np.ndarray) -> np.ndarray:
    """Darkness of an air bubble's thick rim, the bubble partly off-frame and hidden behind the grain.

    Bubbles are isotropic and have a very high relief against the medium: a dark ring.
    """
    xs, ys = pixel_grid(frame)
    radius = frame * rng.uniform(0.12, 0.25)
    corner = rng.integers(0, 4)
    cx = (frame if corner % 2 else 0) + rng.normal(0, 0.05 * frame)
    cy = (frame if corner // 2 else 0) + rng.normal(0, 0.05 * frame)
    distance = np.hypot(xs - cx, ys - cy)
    ring = np.clip(1 - np.abs(distance - radius * 0.9) / (0.18 * radius), 0, 1) ** 0.7
    return ring * ((distance < radius) & ~grain)
