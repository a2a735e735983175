"""The training geometry of a PPL/XPL pair as one affine warp.

Flips, quarter turns, a free rotation, a zoom and a random resized crop are drawn once per pair,
composed into one 2 x 3 matrix about the image centre, and applied to the pair stacked as one
6-channel image by a single ``cv2.warpAffine`` (bilinear, reflect-101 border):

    M = C . Z . R_theta . R_90^k . F,    x_out = M x_in   (homogeneous pixel-centre coordinates)

with F the flips, R the rotations and Z the zoom about the centre, and C the crop box mapped onto
the S x S output. Written by hand because albumentations warps, copies and checks the image once
per transform (five passes of Python and interpolation for one pair at 64 px, about 70% of the
augmentation time), and has no transform that composes matrices across transforms. Both
polarizations go through the same warp in the same call, so the pair stays pixel-aligned exactly.
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

    @property
    def active(self) -> bool:
        """Whether any part can move a pixel."""
        return (
            self.flips or self.rotate90 or self.rotate_degrees > 0 or self.zoom > 0 or self.crop_scale_min < 1
        )


def _about_centre(linear: np.ndarray, size: int) -> np.ndarray:
    """The 3 x 3 map applying the 2 x 2 ``linear`` about the centre of an S x S image."""
    centre = (size - 1) / 2.0
    shift = np.array([[1.0, 0.0, centre], [0.0, 1.0, centre], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, -centre], [0.0, 1.0, -centre], [0.0, 0.0, 1.0]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    return shift @ matrix @ back


def _rotation(radians: float) -> np.ndarray:
    """Counter-clockwise on screen (y pointing down): the sign cv2.getRotationMatrix2D uses."""
    c, s = math.cos(radians), math.sin(radians)
    return np.array([[c, s], [-s, c]])


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
        """The next pair's forward map, 3 x 3 (input pixel -> output pixel). Every part draws its
        numbers whether or not it is applied, so one switch does not shift the others' stream."""
        config, size, rng = self.config, self.size, self.rng
        flip_x, flip_y, rotate, zoom, crop = rng.random(5) < 0.5
        turns = int(rng.integers(4))
        angle = rng.uniform(-config.rotate_degrees, config.rotate_degrees)
        scale = rng.uniform(1.0 / (1.0 + config.zoom), 1.0 + config.zoom)
        area, log_ratio, corner_x, corner_y = rng.random(4)

        linear = np.eye(2)
        if config.flips:
            linear = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0]) @ linear
        if config.rotate90:
            linear = _rotation(turns * math.pi / 2).round() @ linear
        if config.rotate_degrees > 0 and rotate:
            linear = _rotation(math.radians(angle)) @ linear
        if config.zoom > 0 and zoom:
            linear = scale * linear
        matrix = _about_centre(linear, size)
        if config.crop_scale_min < 1.0 and crop:
            share = config.crop_scale_min + area * (1.0 - config.crop_scale_min)
            ratio = math.exp(math.log(0.9) + log_ratio * (math.log(1.1) - math.log(0.9)))
            width = min(size, size * math.sqrt(share * ratio))
            height = min(size, size * math.sqrt(share / ratio))
            left, top = corner_x * (size - width), corner_y * (size - height)
            # Pixel centres: the box edge left - 0.5 maps to the output edge -0.5.
            crop_map = np.array(
                [
                    [size / width, 0.0, (0.5 - left) * size / width - 0.5],
                    [0.0, size / height, (0.5 - top) * size / height - 0.5],
                    [0.0, 0.0, 1.0],
                ]
            )
            matrix = crop_map @ matrix
        return matrix

    def __call__(self, plane: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both images (uint8 S x S x 3) moved by the same drawn map.

        Raises:
            ValueError: the images are not both S x S x 3.
        """
        expected = (self.size, self.size, 3)
        if plane.shape != expected or cross.shape != expected:
            raise ValueError(f"PairWarp: expected two {expected} images, got {plane.shape} and {cross.shape}")
        matrix = self.draw()
        if np.allclose(matrix, np.eye(3)):
            return plane, cross
        stacked = np.concatenate([plane, cross], axis=2)
        moved = cv2.warpAffine(
            stacked,
            matrix[:2],
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        return np.ascontiguousarray(moved[..., :3]), np.ascontiguousarray(moved[..., 3:])
