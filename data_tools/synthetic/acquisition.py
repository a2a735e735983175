"""The camera: focus blur, vignetting, white balance, exposure, sensor noise, tone curve, JPEG.

Works on linear-light float images (H x W x 3) and returns 8-bit sRGB-like images. The
operator's per-shot jitter is drawn around the river's knob values.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from data_tools.synthetic.rivers import RiverStyle

REFERENCE_SIZE = 128
"""Blur is specified in pixels at this image size and scaled with the output size."""


@dataclass(frozen=True)
class Shot:
    """Camera settings of one image pair (PPL and XPL are taken in the same session)."""

    gains: tuple[float, float, float]  # white-balance multipliers, linear R, G, B
    exposure_plane: float
    exposure_cross: float
    gamma: float
    contrast: float  # strength of the S-shaped tone curve (0: none)
    saturation: float
    blur_px: float  # at REFERENCE_SIZE
    noise: float
    jpeg_quality: int
    vignetting: float


def draw_shot(style: RiverStyle, rng: np.random.Generator) -> Shot:
    """Settings of one shot: the river's values plus the operator's small shot-to-shot changes."""
    temperature = style.temperature + rng.normal(0, 0.05)
    tint = style.tint + rng.normal(0, 0.025)
    gains = np.exp([temperature, tint, -temperature])
    return Shot(
        gains=tuple(float(g) for g in gains),
        exposure_plane=float(np.exp(style.lamp + rng.normal(0, 0.1))),
        exposure_cross=float(np.exp(style.cross_gain + rng.normal(0, 0.12))),
        gamma=float(style.gamma * np.exp(rng.normal(0, 0.03))),
        contrast=float(max(0.0, style.contrast + rng.normal(0, 0.05))),
        saturation=float(max(0.0, style.saturation + rng.normal(0, 0.05))),
        blur_px=float(max(0.0, style.blur_px + rng.normal(0, 0.12))),
        noise=float(style.noise * rng.uniform(0.8, 1.25)),
        jpeg_quality=int(np.clip(round(style.jpeg_quality + rng.normal(0, 2)), 30, 98)),
        vignetting=float(np.clip(style.vignetting + rng.normal(0, 0.03), 0, 0.9)),
    )


@lru_cache(maxsize=4)
def _radius2(size: int) -> np.ndarray:
    """Squared distance from the image centre, 1 in the corners (float32, cached, read-only)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    radius2 = ((xs - (size - 1) / 2) ** 2 + (ys - (size - 1) / 2) ** 2) / (2 * ((size - 1) / 2) ** 2)
    radius2.flags.writeable = False
    return radius2


def _highlight_shoulder(light: np.ndarray, knee: float = 0.7) -> np.ndarray:
    """Compress values above ``knee`` smoothly towards 1, as a camera's tone curve rolls off highlights.

    min(light, knee) + (1 - knee) tanh(max(light - knee, 0) / (1 - knee)), with the tanh term (0
    below the knee) evaluated only at the highlights. (Skipping the + 0 there could only turn a -0.0
    into +0.0, which the gamma power that follows maps to +0.0 anyway.)
    """
    shouldered = np.minimum(light, knee)
    highlights = np.flatnonzero(light > knee)
    over = light.ravel()[highlights] - knee
    shouldered.ravel()[highlights] += (1.0 - knee) * np.tanh(over / (1.0 - knee))
    return shouldered


def _s_curve(encoded: np.ndarray, strength: float) -> np.ndarray:
    """The camera's contrast curve: 0.5 + tanh(k (2x - 1)) / (2 tanh k); identity as k -> 0, ends fixed.

    Takes channel planes (3 x H x W) and returns a C-contiguous H x W x 3 image.
    """
    if strength < 1e-3:
        return np.ascontiguousarray(encoded.transpose(1, 2, 0))
    curve = 2.0 * encoded
    curve -= 1.0
    curve *= strength
    np.tanh(curve, out=curve)
    curve *= 0.5
    # A float64 scalar: the result is float64. Dividing into an H x W x 3 array transposes for free.
    pixels = np.empty((*curve.shape[1:], curve.shape[0]), np.float64)
    np.divide(curve.transpose(1, 2, 0), np.tanh(strength), out=pixels)
    pixels += 0.5
    return pixels


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def develop(light: np.ndarray, shot: Shot, exposure: float, rng: np.random.Generator) -> np.ndarray:
    """Turn linear light as channel planes (3 x H x W, ~0..1) into an 8-bit image as this camera would.

    Channel planes keep numpy's loops long; the noise is drawn in H x W x 3 order and the luminance
    is a matrix product over an H x W x 3 array, as they always were, so the bytes do not depend on it.

    Returns:
        uint8 array of shape H x W x 3.
    """
    size = light.shape[1]
    sigma = shot.blur_px * size / REFERENCE_SIZE
    if sigma > 0.05:
        light = ndimage.gaussian_filter(light, sigma=(0, sigma, sigma), mode="nearest")
    vignette = 1.0 - shot.vignetting * _radius2(size)
    gains = np.asarray(shot.gains, dtype=np.float32)[:, None, None]
    lit = light * vignette
    lit *= gains
    lit *= exposure
    # The noise is scaled into channel planes, so that the steps below run over contiguous arrays.
    noise = np.empty_like(lit)
    np.multiply(
        rng.standard_normal((size, size, 3)).astype(np.float32).transpose(2, 0, 1), shot.noise, out=noise
    )
    noise *= np.sqrt(0.25 + np.clip(lit, 0, None))
    lit += noise
    np.clip(lit, 0.0, None, out=lit)
    encoded = _s_curve(_highlight_shoulder(lit) ** (1.0 / shot.gamma), shot.contrast)
    luminance = encoded @ LUMA
    for channel in range(3):
        encoded[..., channel] = luminance + shot.saturation * (encoded[..., channel] - luminance)
    encoded *= 255.0
    np.rint(encoded, out=encoded)
    np.clip(encoded, 0, 255, out=encoded)
    return encoded.astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an 8-bit RGB image (no metadata, so identical inputs give identical bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()
