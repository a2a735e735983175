"""The training geometry of a PPL/XPL pair as one affine warp.

Flips, quarter turns, a free rotation, a zoom and a random resized crop are drawn once per pair,
composed into one 2 x 3 matrix about the image centre, and applied to both images by
``cv2.warpAffine`` with that one matrix (bilinear, reflect-101 border):

    M = C . Z . R_theta . R_90^k . F,    x_out = M x_in   (homogeneous pixel-centre coordinates)

with F the flips, R the rotations and Z the zoom about the centre, and C the crop box mapped onto
the S x S output. Written by hand because albumentations warps, copies and checks the image once
per transform (up to five passes of Python and interpolation for one pair), and has no transform
that composes matrices across transforms. Both polarizations go through the same matrix, so the
pair stays pixel-aligned exactly, and each image is interpolated once instead of up to three times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GeometryConfig:
    """What :class:`PairWarp` draws; each part off at its neutral value."""

    flips: bool = True  # left-right and up-down mirror, each with probability 0.5
    rotate90: bool = True  # 0-3 quarter turns, uniformly
    rotate_degrees: float = 180.0  # with probability 0.5, an angle uniform in [-x, x]
    zoom: float = 0.0  # with probability 0.5, a scale uniform in [1 / (1 + x), 1 + x]
    crop_scale_min: float = 1.0  # with probability 0.5, a crop of area share in [x, 1], aspect 0.9-1.1


def _rotation(radians: float) -> tuple[float, float, float, float]:
    """Row-major 2 x 2, counter-clockwise on screen (y pointing down), as cv2.getRotationMatrix2D."""
    c, s = math.cos(radians), math.sin(radians)
    return c, s, -s, c


def _times(
    left: tuple[float, float, float, float], right: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    a, b, c, d = left
    e, f, g, h = right
    return a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h


class PairWarp:
    """Draws the pair's geometry from its own seeded generator and warps both images at once."""

    def __init__(self, size: int, config: GeometryConfig, seed: int = 0) -> None:
        self.size = size
        self.config = config
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream (per epoch, and in each data-loader worker)."""
        self.rng = np.random.default_rng(seed)

    def draw(self) -> np.ndarray:
        """The next pair's forward map, 3 x 3 (input pixel -> output pixel)."""
        return self._draw()[0]

    def _draw(self) -> tuple[np.ndarray, bool]:
        """The forward map and whether it moves anything. Every part draws its numbers whether or
        not it is applied, so switching one off does not shift the others' stream."""
        # Plain floats, not numpy products: at 64 px the matrix algebra would cost as much as the warp.
        config, size = self.config, self.size
        flip_x, flip_y, rotate, zoom, crop, turns, angle, scale, area, ratio, across, down = self.rng.random(
            12
        ).tolist()
        linear, moved = (1.0, 0.0, 0.0, 1.0), False
        if config.flips and (flip_x < 0.5 or flip_y < 0.5):
            linear, moved = (-1.0 if flip_x < 0.5 else 1.0, 0.0, 0.0, -1.0 if flip_y < 0.5 else 1.0), True
        if config.rotate90 and (quarter := int(turns * 4)) > 0:
            linear, moved = (
                _times(
                    ((0.0, 1.0, -1.0, 0.0), (-1.0, 0.0, 0.0, -1.0), (0.0, -1.0, 1.0, 0.0))[quarter - 1],
                    linear,
                ),
                True,
            )
        if config.rotate_degrees > 0 and rotate < 0.5:
            degrees = (2.0 * angle - 1.0) * config.rotate_degrees
            linear, moved = _times(_rotation(math.radians(degrees)), linear), True
        if config.zoom > 0 and zoom < 0.5:
            low = 1.0 / (1.0 + config.zoom)
            factor = low + scale * (1.0 + config.zoom - low)
            linear, moved = tuple(factor * x for x in linear), True
        a, b, c, d = linear
        centre = (size - 1) / 2.0
        tx, ty = centre - a * centre - b * centre, centre - c * centre - d * centre
        sx = sy = 1.0
        ox = oy = 0.0
        if config.crop_scale_min < 1.0 and crop < 0.5:
            share = config.crop_scale_min + area * (1.0 - config.crop_scale_min)
            aspect = math.exp(math.log(0.9) + ratio * (math.log(1.1) - math.log(0.9)))
            width = min(size, size * math.sqrt(share * aspect))
            height = min(size, size * math.sqrt(share / aspect))
            left, top = across * (size - width), down * (size - height)
            # Pixel centres: the box edge left - 0.5 maps to the output edge -0.5.
            sx, sy = size / width, size / height
            ox, oy = (0.5 - left) * sx - 0.5, (0.5 - top) * sy - 0.5
            moved = True
        matrix = np.array([[sx * a, sx * b, sx * tx + ox], [sy * c, sy * d, sy * ty + oy], [0.0, 0.0, 1.0]])
        return matrix, moved

    def __call__(self, plane: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both images (uint8 S x S x 3) moved by the same drawn map.

        Raises:
            ValueError: the images are not both S x S x 3.
        """
        expected = (self.size, self.size, 3)
        if plane.shape != expected or cross.shape != expected:
            raise ValueError(f"PairWarp: expected two {expected} images, got {plane.shape} and {cross.shape}")
        matrix, moved = self._draw()
        if not moved:
            return plane, cross
        # Two 3-channel calls: cheaper than stacking the pair into one 6-channel image and splitting
        # it again, and the same matrix and interpolation for both.
        return tuple(  # type: ignore[return-value]
            cv2.warpAffine(
                image,
                matrix[:2],
                (self.size, self.size),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            for image in (plane, cross)
        )
