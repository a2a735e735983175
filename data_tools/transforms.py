"""albumentations pipelines for PPL/XPL pairs, and per-polarization normalisation.

Geometry (flips, 90-degree and free rotation, random resized crop) is drawn once per pair and
applied to both images, so the pair stays pixel-aligned (the published code rotated the two
independently). Photometry (brightness/contrast/gamma, a small hue shift, noise, blur) is drawn
per image. Evaluation applies no augmentation at all, only normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import albumentations as A
import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class AugmentationConfig:
    """Training augmentation strengths; zero (or False) switches a transform off."""

    flips: bool = True
    rotate90: bool = True
    rotate_degrees: float = 180.0
    crop_scale_min: float = 0.75
    brightness_contrast: float = 0.15
    gamma_percent: float = 15.0
    hue_shift_degrees: float = 4.0
    noise_std: float = 0.02
    blur_probability: float = 0.15

    @classmethod
    def from_mapping(cls, values: Mapping[str, object] | None) -> AugmentationConfig:
        """Build from a config mapping; unknown keys raise ValueError naming them."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown augmentation key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Plain dict for run records."""
        return asdict(self)


@dataclass(frozen=True)
class ChannelStats:
    """Per-polarization RGB mean and std on the 0-1 scale."""

    plane_mean: tuple[float, float, float]
    plane_std: tuple[float, float, float]
    cross_mean: tuple[float, float, float]
    cross_std: tuple[float, float, float]

    def to_dict(self) -> dict[str, list[float]]:
        """Plain dict for run records."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, list[float]]) -> ChannelStats:
        """Inverse of ``to_dict``."""
        return cls(**{k: tuple(float(x) for x in v) for k, v in values.items()})  # type: ignore[arg-type]


def _mean_std(images: np.ndarray, rows: np.ndarray, chunk: int = 256) -> tuple[tuple[float, ...], ...]:
    total = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    for start in range(0, len(rows), chunk):
        block = np.asarray(images[np.sort(rows[start : start + chunk])], dtype=np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        squares += np.square(block).sum(axis=(0, 1, 2))
        pixels += block.shape[0] * block.shape[1] * block.shape[2]
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 1e-12))
    return tuple(mean.round(6).tolist()), tuple(std.round(6).tolist())


def channel_stats(plane: np.ndarray, cross: np.ndarray, rows: np.ndarray) -> ChannelStats:
    """Mean and std per channel of the given rows (the training split) of each polarization.

    Raises:
        ValueError: no rows are given.
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("cannot compute normalisation statistics on an empty training split")
    plane_mean, plane_std = _mean_std(plane, rows)
    cross_mean, cross_std = _mean_std(cross, rows)
    return ChannelStats(plane_mean, plane_std, cross_mean, cross_std)  # type: ignore[arg-type]


def _geometric(size: int, config: AugmentationConfig) -> list[A.BasicTransform]:
    transforms: list[A.BasicTransform] = []
    if config.flips:
        transforms += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if config.rotate90:
        transforms.append(A.RandomRotate90(p=1.0))
    if config.rotate_degrees > 0:
        transforms.append(A.Rotate(limit=config.rotate_degrees, border_mode=cv2.BORDER_REFLECT_101, p=0.5))
    if config.crop_scale_min < 1.0:
        transforms.append(
            A.RandomResizedCrop(
                size=(size, size), scale=(config.crop_scale_min, 1.0), ratio=(0.9, 1.1), p=0.5
            )
        )
    return transforms


def _photometric(config: AugmentationConfig) -> list[A.BasicTransform]:
    transforms: list[A.BasicTransform] = []
    if config.brightness_contrast > 0:
        limit = config.brightness_contrast
        transforms.append(A.RandomBrightnessContrast(brightness_limit=limit, contrast_limit=limit, p=0.5))
    if config.gamma_percent > 0:
        transforms.append(
            A.RandomGamma(gamma_limit=(100 - config.gamma_percent, 100 + config.gamma_percent), p=0.3)
        )
    if config.hue_shift_degrees > 0:
        transforms.append(
            A.HueSaturationValue(
                hue_shift_limit=config.hue_shift_degrees, sat_shift_limit=0, val_shift_limit=0, p=0.3
            )
        )
    if config.noise_std > 0:
        transforms.append(A.GaussNoise(std_range=(0.0, config.noise_std), p=0.3))
    if config.blur_probability > 0:
        transforms.append(A.GaussianBlur(blur_limit=(3, 3), p=config.blur_probability))
    return transforms


def _to_tensor(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    scaled = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


class PairTransform:
    """Turns a (plane, cross) uint8 pair into normalised float tensors, augmenting when training."""

    def __init__(
        self,
        size: int,
        stats: ChannelStats,
        *,
        train: bool,
        augmentation: AugmentationConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.size = size
        self.stats = stats
        self.train = train
        config = augmentation or AugmentationConfig()
        self.geometric = A.Compose(_geometric(size, config), additional_targets={"cross": "image"}, seed=seed)
        self.photometric = A.Compose(_photometric(config), seed=seed + 1)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation random streams (per epoch, and in each data-loader worker)."""
        self.geometric.set_random_seed(seed)
        self.photometric.set_random_seed(seed + 1)

    def augment(self, plane: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shared geometry for the pair, then photometry drawn per image (uint8 in, uint8 out)."""
        moved = self.geometric(image=plane, cross=cross)
        return self.photometric(image=moved["image"])["image"], self.photometric(image=moved["cross"])[
            "image"
        ]

    def __call__(self, plane: np.ndarray, cross: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train:
            plane, cross = self.augment(plane, cross)
        stats = self.stats
        return _to_tensor(plane, stats.plane_mean, stats.plane_std), _to_tensor(
            cross, stats.cross_mean, stats.cross_std
        )
