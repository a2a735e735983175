"""Seeded data-quality corruptions of the TRAINING split (He et al.'s dataset-quality factors).

Label and size factors act on the split and the labels: ``label-noise`` flips a fraction of the
training labels, each to another training class drawn uniformly; ``class-removal`` drops one
class's training rows; ``size`` keeps a fraction of the training rows, stratified by (river, class).
Removed rows become ``unused``. Image factors (``gaussian-noise``, ``salt-pepper``, ``brightness``,
``blur``) degrade every training image on the fly, the same way in every epoch (a pure function of
seed, row and polarization), as if the files themselves were degraded: the image cache shared with
other runs is never written. ``val``, ``test`` and ``target`` rows are never changed.

A run reads its factor from the config section ``quality: {factor, level, seed}``.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data_tools.cache import CachedPairs
from data_tools.images import CropMode, load_prepared
from data_tools.manifest_io import Dataset
from data_tools.names import canonical_class
from data_tools.quality_factors import FACTORS, IMAGE_FACTORS

POLARIZATIONS: tuple[str, ...] = ("plane", "cross")

# Levels of a study when none are given (class-removal: every training class in turn).
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "label-noise": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),  # fraction of training labels flipped
    "size": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),  # fraction of training pairs kept
    "gaussian-noise": (2.0, 8.0, 16.0),  # noise sigma on the 0-255 scale
    "salt-pepper": (0.05, 0.1, 0.2, 0.3, 0.4),  # fraction of pixels set to black or white
    "brightness": (0.25, 0.5, 2.0, 4.0),  # gamma: out = 255 (in / 255) ** gamma
    "blur": (0.5, 1.0, 2.0, 4.0),  # Gaussian sigma in pixels of the prepared (model-input) image
}
# The level of each factor that changes nothing: a study reads it from the clean run.
CLEAN_LEVELS: dict[str, float] = {
    "label-noise": 0.0,
    "size": 1.0,
    "gaussian-noise": 0.0,
    "salt-pepper": 0.0,
    "brightness": 1.0,
    "blur": 0.0,
}
# (lowest, highest, lowest allowed itself) of each numeric factor's level.
_LEVEL_RANGES: dict[str, tuple[float, float, bool]] = {
    "label-noise": (0.0, 1.0, True),
    "size": (0.0, 1.0, False),
    "gaussian-noise": (0.0, 255.0, True),
    "salt-pepper": (0.0, 1.0, True),
    "brightness": (0.0, math.inf, False),
    "blur": (0.0, math.inf, True),
}


class CorruptionError(ValueError):
    """The ``quality`` config section names an unknown factor or a level outside its range."""


@dataclass(frozen=True)
class QualitySetting:
    """The ``quality`` section of a run config, checked: a factor, its level and a corruption seed."""

    factor: str = "none"
    level: float | str | None = None
    corruption_seed: int = 0

    def __post_init__(self) -> None:
        if self.factor not in FACTORS:
            raise CorruptionError(f"quality.factor must be one of {', '.join(FACTORS)}, got {self.factor!r}")
        if self.factor == "none":
            return
        if self.level is None:
            raise CorruptionError(f"quality.factor {self.factor!r} needs a quality.level")
        if self.factor == "class-removal":
            if not isinstance(self.level, str) or not self.level.strip():
                raise CorruptionError(
                    f"quality.level of class-removal must be a class name, got {self.level!r}"
                )
            return
        if isinstance(self.level, bool) or not isinstance(self.level, int | float):
            raise CorruptionError(f"quality.level of {self.factor} must be a number, got {self.level!r}")
        low, high, low_allowed = _LEVEL_RANGES[self.factor]
        if not (low <= self.level <= high) or (self.level == low and not low_allowed):
            bracket = "[" if low_allowed else "("
            raise CorruptionError(
                f"quality.level of {self.factor} must be in {bracket}{low:g}, {high:g}], got {self.level!r}"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QualitySetting:
        """The setting of a run config (no ``quality`` section: no corruption).

        Raises:
            CorruptionError: unknown factor or key, or a bad level.
        """
        section = dict(config.get("quality") or {})
        if unknown := sorted(set(section) - {f.name for f in dataclasses.fields(cls)}):
            raise CorruptionError(f"unknown quality key(s) {unknown}; known: factor, level, corruption_seed")
        return cls(**section)

    @property
    def is_clean(self) -> bool:
        """True when the setting changes nothing (no factor, or a factor at its identity level)."""
        return self.factor == "none" or CLEAN_LEVELS.get(self.factor) == self.level

    def rng(self, run_seed: int) -> np.random.Generator:
        """The generator of this corruption in a run: depends on the corruption seed, the run seed and
        the factor, so seeds of a study draw different corruptions."""
        return np.random.default_rng([self.corruption_seed, run_seed, zlib.crc32(self.factor.encode())])


def flip_labels(
    labels: np.ndarray,
    positions: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    classes: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``round(fraction * len(positions))`` of the labels at ``positions``, each to another class
    drawn uniformly from ``classes`` (default: the classes found at ``positions``).

    Returns:
        A new label array (the input is not modified) and the sorted flipped positions.

    Raises:
        ValueError: fraction outside [0, 1], or fewer than two classes to flip between.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the fraction of labels to flip must be in [0, 1], got {fraction}")
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.asarray(labels)
    candidates = np.unique(labels[positions]) if classes is None else np.asarray(sorted(set(classes)))
    count = math.floor(fraction * len(positions) + 0.5)
    flipped_labels = labels.copy()
    if count == 0:
        return flipped_labels, np.empty(0, dtype=np.int64)
    if len(candidates) < 2:
        raise ValueError(f"cannot flip labels between {len(candidates)} class(es); at least two are needed")
    chosen = np.sort(rng.choice(positions, size=count, replace=False))
    for position in chosen:
        others = candidates[candidates != labels[position]]
        flipped_labels[position] = rng.choice(others)
    return flipped_labels, chosen


def stratified_subset(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``round(fraction * n)`` items keeping every group's share (largest remainder).

    Each group keeps ``floor(fraction * n_g)`` items plus one for the groups with the largest
    fractional parts (ties drawn at random), so the total is exact and every group is within one
    item of its proportional share; a group keeps nothing only when ``fraction * n_g < 1``.

    Returns:
        Sorted indices into ``groups``.

    Raises:
        ValueError: fraction outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the fraction to keep must be in [0, 1], got {fraction}")
    groups = np.asarray(groups)
    names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    exact = fraction * sizes
    quotas = np.floor(exact).astype(np.int64)
    missing = math.floor(fraction * len(groups) + 0.5) - int(quotas.sum())
    order = np.lexsort((rng.random(len(names)), -(exact - quotas)))  # largest remainder, random ties
    quotas[order[:missing]] += 1
    kept = [
        rng.choice(np.flatnonzero(inverse == g), size=quota, replace=False) for g, quota in enumerate(quotas)
    ]
    return np.sort(np.concatenate(kept)) if kept else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class ImageCorruption:
    """A degradation of the images of some manifest rows, applied on the fly.

    ``apply(image, row, polarization)`` returns the image unchanged (the same object) for a row not
    in ``rows``; otherwise a degraded copy that depends only on (seed, row, polarization).
    """

    factor: str
    level: float
    seed: int
    rows: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.factor not in IMAGE_FACTORS:
            raise CorruptionError(f"{self.factor!r} is not an image factor; expected one of {IMAGE_FACTORS}")

    def apply(self, image: np.ndarray, row: int, polarization: str) -> np.ndarray:
        """The (possibly degraded) HxWx3 uint8 image of a manifest row."""
        if int(row) not in self.rows:
            return image
        rng = np.random.default_rng([self.seed, int(row), POLARIZATIONS.index(polarization)])
        return degrade(image, self.factor, self.level, rng)


def degrade(image: np.ndarray, factor: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of an HxWx3 uint8 image.

    gaussian-noise: add N(0, level^2) per value (0-255 scale); salt-pepper: a ``level`` fraction of the
    pixels set to black or white (all channels, even odds); brightness: gamma ``level``; blur: Gaussian
    of sigma ``level`` pixels.

    Raises:
        CorruptionError: an unknown factor.
    """
    if factor == "gaussian-noise":
        noisy = image.astype(np.float32) + rng.normal(0.0, level, size=image.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if factor == "salt-pepper":
        degraded = image.copy()
        hit = rng.random(image.shape[:2]) < level
        degraded[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)[:, None]
        return degraded
    if factor == "brightness":
        table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** level), 0, 255).astype(np.uint8)
        return table[image]
    if factor == "blur":
        if level <= 0:
            return image.copy()
        return cv2.GaussianBlur(
            np.ascontiguousarray(image), (0, 0), sigmaX=level, borderType=cv2.BORDER_REFLECT_101
        )
    raise CorruptionError(f"unknown image factor {factor!r}; expected one of {IMAGE_FACTORS}")


class CorruptedImageArray:
    """Read-only array view of an N x S x S x 3 image store whose items pass through an ImageCorruption.

    Supports what the dataset and the normalisation statistics use: ``len``, ``shape``, ``dtype`` and
    indexing by an integer, a slice, an integer array or a boolean mask.
    """

    def __init__(self, images: np.ndarray, corruption: ImageCorruption, polarization: str) -> None:
        self.images, self.corruption, self.polarization = images, corruption, polarization
        self.shape, self.dtype = images.shape, images.dtype

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            row = int(key) % len(self.images)
            return self.corruption.apply(np.asarray(self.images[row]), row, self.polarization)
        positions = np.arange(len(self.images))[key]
        if len(positions) == 0:
            return np.asarray(self.images[positions])
        return np.stack([self[int(p)] for p in positions])


def corrupt_pairs(pairs: CachedPairs, corrupted: CorruptedTraining) -> CachedPairs:
    """The cached pairs seen through the run's image corruption (the same object when it has none);
    marks ``corrupted.images_applied`` so the run record can say the images were degraded."""
    corruption = corrupted.images
    if corruption is None:
        return pairs
    corrupted.images_applied = True
    return dataclasses.replace(
        pairs,
        plane=CorruptedImageArray(pairs.plane, corruption, "plane"),
        cross=CorruptedImageArray(pairs.cross, corruption, "cross"),
    )


def corrupt_feature_rows(
    table: pd.DataFrame,
    dataset: Dataset,
    corrupted: CorruptedTraining,
    *,
    size: int,
    crop: CropMode,
    featurize: Callable[[np.ndarray, np.ndarray], Mapping[str, float]],
    progress: bool = False,
) -> pd.DataFrame:
    """A feature table whose degraded rows are recomputed from degraded images (classical methods);
    marks ``corrupted.images_applied``.

    Args:
        table: features aligned by position with ``dataset.manifest`` (as ``extract_features`` returns).
        corrupted: the run's corruption (no image corruption: the table is returned unchanged).
        size, crop: how images are prepared before degrading, as for the clean features.
        featurize: ``featurize(plane, cross) -> {column: value}`` for one prepared pair.

    Returns:
        A copy of ``table`` with the rows in ``corrupted.images.rows`` replaced.

    Raises:
        ValueError: the table and the manifest differ in length.
    """
    corruption = corrupted.images
    if corruption is None:
        return table
    manifest = dataset.manifest
    if len(table) != len(manifest):
        raise ValueError(f"feature table has {len(table)} rows but the manifest has {len(manifest)}")
    table = table.copy()
    rows = sorted(corruption.rows)
    for row in tqdm(rows, desc=f"features of {corruption.factor} images", disable=not progress):
        paths = [dataset.path(manifest[f"{pol}_path"].iloc[row]) for pol in POLARIZATIONS]
        images = [
            corruption.apply(load_prepared(path, size, crop), row, pol)
            for path, pol in zip(paths, POLARIZATIONS, strict=True)
        ]
        values = featurize(*images)
        table.loc[table.index[row], list(values)] = list(values.values())
    corrupted.images_applied = True
    return table


@dataclass
class CorruptedTraining:
    """A run's split and labels after its quality factor, and what was changed.

    ``split`` and ``labels`` replace the run's (same length and order as the manifest); ``images`` is
    the image corruption of the training rows (None for label and size factors); ``changed`` holds
    the manifest positions flipped, removed or degraded; ``n_train`` the training rows before.
    ``images_applied`` is set by :func:`corrupt_pairs` or :func:`corrupt_feature_rows` once the
    method's inputs really are degraded (the record reports it, so a missing hook cannot go unseen).
    """

    setting: QualitySetting
    split: pd.Series
    labels: np.ndarray
    images: ImageCorruption | None
    changed: np.ndarray
    n_train: int
    action: str
    images_applied: bool = False

    def describe(self) -> dict[str, Any]:
        """A compact summary for the run record's ``extras``: factor, level, seed, what was done and the
        fraction of the training split it touched (and, for image factors, whether the method's inputs
        were degraded)."""
        summary = {
            "factor": self.setting.factor,
            "level": self.setting.level,
            "corruption_seed": self.setting.corruption_seed,
            "action": self.action,
            "n_train_before": self.n_train,
            "n_train_after": int((self.split == "train").sum()),
            "n_changed": len(self.changed),
            "fraction_changed": round(len(self.changed) / self.n_train, 6) if self.n_train else 0.0,
        }
        if self.setting.factor in IMAGE_FACTORS:
            summary["images_applied"] = self.images_applied
        return summary


def corrupt_training(
    manifest: pd.DataFrame, split: pd.Series, labels: np.ndarray, config: Mapping[str, Any], *, run_seed: int
) -> CorruptedTraining:
    """Apply the config's quality factor to the training rows of a run.

    Args:
        manifest: the run's manifest (``domain`` and ``label`` columns).
        split: train/val/test/target/unused per manifest row.
        labels: class index per manifest row (-1 for rows outside the run).
        config: the run config; its ``quality`` section chooses the factor.
        run_seed: the run's seed (combined with ``quality.corruption_seed``).

    Returns:
        The corrupted split, labels and image corruption (copies; the inputs are not modified).

    Raises:
        CorruptionError: a bad ``quality`` section, or a class-removal of a class with no training row.
        ValueError: the manifest, split and labels differ in length.
    """
    if not len(manifest) == len(split) == len(labels):
        raise ValueError(
            f"manifest ({len(manifest)}), split ({len(split)}) and labels ({len(labels)}) "
            "must have one entry per manifest row"
        )
    setting = QualitySetting.from_config(config)
    split, labels = split.copy(), np.asarray(labels).copy()
    train = np.flatnonzero(split.to_numpy() == "train")
    rng = setting.rng(run_seed)
    changed, images, action = np.empty(0, dtype=np.int64), None, "none"
    if setting.factor == "label-noise":
        labels, changed = flip_labels(labels, train, float(setting.level), rng)
        action = "flipped"
    elif setting.factor == "class-removal":
        name = canonical_class(str(setting.level))
        training_classes = sorted(manifest["label"].iloc[train].unique())
        if name not in training_classes:
            raise CorruptionError(
                f"quality.level {setting.level!r}: no training row of that class; the "
                f"training split holds {', '.join(training_classes)}"
            )
        changed = train[manifest["label"].to_numpy()[train] == name]
        action = "removed"
    elif setting.factor == "size":
        groups = (manifest["domain"].astype(str) + "\0" + manifest["label"].astype(str)).to_numpy()[train]
        kept = stratified_subset(groups, float(setting.level), rng)
        changed = np.setdiff1d(train, train[kept])
        action = "removed"
    elif setting.factor in IMAGE_FACTORS and not setting.is_clean:
        images = ImageCorruption(
            setting.factor, float(setting.level), int(rng.integers(2**31)), frozenset(train.tolist())
        )
        changed, action = train, "degraded"
    if action == "removed":
        split.iloc[changed] = "unused"
    return CorruptedTraining(setting, split, labels, images, changed, len(train), action)
