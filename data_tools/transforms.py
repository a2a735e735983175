"""Augmentation of PPL/XPL pairs (one warp, then albumentations photometry), and normalisation.

Geometry (flips, 90-degree and free rotation, random resized crop, zoom in and out) is drawn
once per pair and applied to both images in one warp (``data_tools/pair_geometry.py``), so the
pair stays pixel-aligned (the published code rotated the two independently). Photometry is drawn
per image: brightness/contrast/gamma, a small hue shift, noise, blur, and the acquisition knobs
that differ between rivers (``data_tools/synthetic/rivers.py``): white-balance gains per channel,
saturation, JPEG quality, focus blur and vignetting. Evaluation applies no augmentation at all,
only normalisation.

Background-referenced normalisation (``reference``) divides each image by the median colour of
its border, the mounting medium seen around the grain, at training and test alike (in training, the
border of the image before augmentation: geometry moves grain pixels into the border ring):

    x'(u, v, c) = x(u, v, c) / median_{(u', v') in border} x(u', v', c)

which cancels a lamp brightness, a white balance or a medium tint that multiplies the whole
image, before the per-polarization mean/std standardisation (computed on referenced images).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import albumentations as A
import numpy as np
import torch

from data_tools.pair_geometry import GeometryConfig, PairWarp


@dataclass(frozen=True)
class AugmentationConfig:
    """Training augmentation strengths; zero (or False) switches a transform off."""

    flips: bool = True
    rotate90: bool = True
    rotate_degrees: float = 180.0
    crop_scale_min: float = 0.75
    brightness_contrast: float = 0.15
    gamma_percent: float = 15.0
    hue_shift_degrees: float = 4.0  # albumentations applies it in 8-bit OpenCV hue units of 2 degrees: ±8°
    noise_std: float = 0.02
    blur_probability: float = 0.15
    # Acquisition randomisation (all off at 0): what differs between rivers.
    zoom: float = 0.0  # scale drawn in [1 / (1 + zoom), 1 + zoom], shared by the pair (magnification)
    white_balance: float = 0.0  # per-channel gains in [1 - x, 1 + x], per image
    saturation: float = 0.0  # saturation factor in [1 - x, 1 + x], per image
    jpeg_quality_min: int = 100  # JPEG re-compression at a quality in [min, 100]; 100 = off
    blur_sigma_max: float = 0.0  # focus blur sigma in [0.1, max] px (with blur_probability); 0 = 3x3 kernel
    vignetting: float = 0.0  # corner darkening up to this fraction, per image
    acquisition_probability: float = 0.5  # probability of each acquisition transform

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


def _rounded(
    total: np.ndarray, squares: np.ndarray, pixels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 1e-12))
    return tuple(mean.round(6).tolist()), tuple(std.round(6).tolist())


def channel_stats(
    plane: np.ndarray,
    cross: np.ndarray,
    rows: np.ndarray,
    *,
    reference: str = "none",
    border_fraction: float = 0.1,
    chunk: int = 256,
) -> ChannelStats:
    """Mean and std per channel of the given rows (the training split) of each polarization, after
    the background reference (:func:`referenced_pair`) when one is set.

    Raises:
        ValueError: no rows are given, or an unknown reference.
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("cannot compute normalisation statistics on an empty training split")
    sums = {name: [np.zeros(3), np.zeros(3)] for name in ("plane", "cross")}
    pixels = 0
    for start in range(0, len(rows), chunk):
        chosen = np.sort(rows[start : start + chunk])
        blocks = referenced_pair(
            np.asarray(plane[chosen]), np.asarray(cross[chosen]), reference, border_fraction, np.float64
        )
        for name, block in zip(("plane", "cross"), blocks, strict=True):
            sums[name][0] += block.sum(axis=(0, 1, 2))
            sums[name][1] += np.square(block).sum(axis=(0, 1, 2))
        pixels += blocks[0].shape[0] * blocks[0].shape[1] * blocks[0].shape[2]
    plane_mean, plane_std = _rounded(*sums["plane"], pixels)
    cross_mean, cross_std = _rounded(*sums["cross"], pixels)
    return ChannelStats(plane_mean, plane_std, cross_mean, cross_std)  # type: ignore[arg-type]


def _geometry(config: AugmentationConfig) -> GeometryConfig:
    return GeometryConfig(
        flips=config.flips,
        rotate90=config.rotate90,
        rotate_degrees=config.rotate_degrees,
        zoom=config.zoom,
        crop_scale_min=config.crop_scale_min,
    )


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
    p = config.acquisition_probability
    if config.white_balance > 0:
        gain = config.white_balance
        transforms.append(A.MultiplicativeNoise(multiplier=(1 - gain, 1 + gain), per_channel=True, p=p))
    if config.saturation > 0:
        x = config.saturation
        transforms.append(A.ColorJitter(brightness=0, contrast=0, saturation=(1 - x, 1 + x), hue=0, p=p))
    if config.vignetting > 0:
        transforms.append(Vignette(config.vignetting, p=p))
    if config.noise_std > 0:
        transforms.append(A.GaussNoise(std_range=(0.0, config.noise_std), p=0.3))
    if config.blur_probability > 0:
        if config.blur_sigma_max > 0:
            blur = A.GaussianBlur(
                blur_limit=0, sigma_limit=(0.1, config.blur_sigma_max), p=config.blur_probability
            )
        else:
            blur = A.GaussianBlur(blur_limit=(3, 3), p=config.blur_probability)
        transforms.append(blur)
    if config.jpeg_quality_min < 100:
        transforms.append(A.ImageCompression(quality_range=(config.jpeg_quality_min, 100), p=p))
    return transforms


class Vignette(A.ImageOnlyTransform):
    """Darkens towards the corners: x' = x (1 - s r^2), r = distance from the centre / distance of a
    corner, s drawn uniformly in [0, ``strength``] per image (albumentations has no vignetting)."""

    def __init__(self, strength: float = 0.2, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.strength = strength

    def get_params(self) -> dict[str, float]:
        return {"amount": self.py_random.uniform(0.0, self.strength)}

    def apply(self, img: np.ndarray, amount: float = 0.0, **params: object) -> np.ndarray:
        height, width = img.shape[:2]
        v, u = np.ogrid[:height, :width]
        radius2 = ((v - (height - 1) / 2) ** 2 + (u - (width - 1) / 2) ** 2) / (
            ((height - 1) / 2) ** 2 + ((width - 1) / 2) ** 2
        )
        gain = (1.0 - amount * radius2).astype(np.float32)[..., None]
        return np.clip(img.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength",)


def reference_options(data_config: Mapping[str, object]) -> dict[str, object]:
    """``reference`` and ``border_fraction`` of :class:`PairTransform` and :func:`channel_stats` from a
    run config's ``data`` section (or a saved model's; absent keys mean no reference)."""
    return {
        "reference": str(data_config.get("background_reference", "none")),
        "border_fraction": float(data_config.get("border_fraction", 0.1)),  # type: ignore[arg-type]
    }


REFERENCES = ("none", "each", "plane")
"""Background reference: none; ``each`` image by its own border; ``plane``: both images of a pair by
the PPL border (lamp and white balance are shared by the two shots, and the XPL border is dark)."""


def check_reference(reference: str) -> None:
    """Raise ValueError unless ``reference`` is one of :data:`REFERENCES`."""
    if reference not in REFERENCES:
        raise ValueError(
            f"unknown background reference {reference!r}; expected one of {', '.join(REFERENCES)}"
        )


def border_mask(size: int, fraction: float) -> np.ndarray:
    """Boolean S x S mask of the outer ring of width max(1, round(fraction * S)) pixels."""
    width = max(1, round(fraction * size))
    mask = np.ones((size, size), dtype=bool)
    mask[width : size - width, width : size - width] = False
    return mask


def border_median(images: np.ndarray, fraction: float) -> np.ndarray:
    """Median colour of the border ring of each image (... x S x S x 3, any numeric type) -> ... x 3,
    at least 1 (on the 0-255 scale) so that a black border cannot divide by zero."""
    mask = border_mask(images.shape[-2], fraction)
    return np.maximum(np.median(images[..., mask, :], axis=-2), 1.0).astype(np.float32)


def border_references(
    plane: np.ndarray, cross: np.ndarray, reference: str, fraction: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The divisors of :func:`referenced_pair` (... x 1 x 1 x 3, on the 0-1 scale) for this pair, or
    None for ``reference="none"``.

    Raises:
        ValueError: unknown ``reference``.
    """
    check_reference(reference)
    if reference == "none":
        return None
    plane_ref = border_median(plane, fraction)[..., None, None, :] / 255.0
    cross_ref = (
        plane_ref if reference == "plane" else border_median(cross, fraction)[..., None, None, :] / 255.0
    )
    return plane_ref, cross_ref


def referenced_pair(
    plane: np.ndarray,
    cross: np.ndarray,
    reference: str,
    fraction: float,
    dtype: type = np.float32,
    references: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pair (uint8 ... x S x S x 3) as float32 on the 0-1 scale, divided by its border reference
    (``reference`` in :data:`REFERENCES`; ``none`` only rescales). A background equal to the border
    median maps to 1. ``references`` (from :func:`border_references`) divide instead of this pair's
    own borders: an augmented pair is divided by the borders of the pair as photographed.

    Raises:
        ValueError: unknown ``reference``.
    """
    if references is None:
        references = border_references(plane, cross, reference, fraction)
    else:
        check_reference(reference)
    plane_f, cross_f = plane.astype(dtype) / 255.0, cross.astype(dtype) / 255.0
    if reference == "none":
        return plane_f, cross_f
    return plane_f / references[0], cross_f / references[1]


def _standardisation(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per channel 1 / (255 std) and mean / std (float64), the constant parts of :func:`_to_tensor`."""
    return 1.0 / (255.0 * np.asarray(std, np.float64)), np.asarray(mean, np.float64) / np.asarray(std)


def _to_tensor(
    image: np.ndarray, divisor: np.ndarray | None, standardisation: tuple[np.ndarray, np.ndarray]
) -> torch.Tensor:
    """A uint8 image (H x W x 3), divided by its reference ``divisor`` (... x 3 on the 0-1 scale, or
    None), standardised, as a 3 x H x W float32 tensor:

        x' = (x / 255 / r - mean) / std = x * [1 / (255 std)] / r - mean / std    per channel

    ``standardisation``: :func:`_standardisation` of the polarization's statistics.
    """
    # One copy to channels first, then one multiply and one subtract over H x W planes: numpy
    # broadcasting over a last axis of 3 runs inner loops of 3 elements, 3.5 times slower, and the
    # separate /255, /r, -mean, /std passes each allocated or touched the image again.
    inverse_std, offset = standardisation
    scale = inverse_std if divisor is None else inverse_std / np.asarray(divisor, np.float64).reshape(3)
    planes = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    planes *= scale.astype(np.float32)[:, None, None]
    planes -= offset.astype(np.float32)[:, None, None]
    return torch.from_numpy(planes)


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
        reference: str = "none",
        border_fraction: float = 0.1,
    ) -> None:
        check_reference(reference)
        self.size = size
        self.stats = stats
        self._plane_standardisation = _standardisation(stats.plane_mean, stats.plane_std)
        self._cross_standardisation = _standardisation(stats.cross_mean, stats.cross_std)
        self.train = train
        self.reference, self.border_fraction = reference, border_fraction
        config = augmentation or AugmentationConfig()
        self.geometric = PairWarp(size, _geometry(config), seed=seed)
        self.photometric = A.Compose(_photometric(config), seed=seed + 1)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation random streams (per epoch, and in each data-loader worker)."""
        self.geometric.reseed(seed)
        self.photometric.set_random_seed(seed + 1)

    def augment(self, plane: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shared geometry for the pair, then photometry drawn per image (uint8 in, uint8 out)."""
        plane, cross = self.geometric(plane, cross)
        return self.photometric(image=plane)["image"], self.photometric(image=cross)["image"]

    def references(self, plane: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """This transform's :func:`border_references` of pairs as photographed (one pair or a stack)."""
        return border_references(plane, cross, self.reference, self.border_fraction)

    def __call__(
        self,
        plane: np.ndarray,
        cross: np.ndarray,
        references: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair as normalised tensors; ``references`` (:meth:`references` of this pair, computed
        once by a dataset) save recomputing them from the pair."""
        # The reference comes from the pair as photographed: after a rotation or a zoom the border
        # ring holds grain pixels, and dividing by it made training inputs unlike evaluation ones.
        if references is None:
            references = self.references(plane, cross)
        if self.train:
            plane, cross = self.augment(plane, cross)
        plane_ref, cross_ref = (None, None) if references is None else references
        return _to_tensor(plane, plane_ref, self._plane_standardisation), _to_tensor(
            cross, cross_ref, self._cross_standardisation
        )


IDENTITY_VIEW = 0
DIHEDRAL_VIEWS: tuple[tuple[int, bool], ...] = tuple(
    (turns, flip) for flip in (False, True) for turns in range(4)
)
"""(quarter turns counter-clockwise, mirror left-right first) of each view of the dihedral group D4;
view 0 is the identity. ``san.inference.tta`` applies them to channels-last arrays."""


def dihedral_view_tensor(images: torch.Tensor, view: int) -> torch.Tensor:
    """View ``view`` (0-7) of channels-first ``images`` (... x C x H x W), the same view as
    :func:`san.inference.tta.dihedral_view` gives for the channels-last array (mirror left-right,
    then quarter turns).

    Raises:
        ValueError: ``view`` is not in 0-7 or the images are not square.
    """
    if not 0 <= view < len(DIHEDRAL_VIEWS):
        raise ValueError(f"view must be in 0-{len(DIHEDRAL_VIEWS) - 1}, got {view}")
    if images.ndim < 3 or images.shape[-2] != images.shape[-1]:
        raise ValueError(
            f"expected square images (... x C x H x W with H = W), got shape {tuple(images.shape)}"
        )
    turns, flip = DIHEDRAL_VIEWS[view]
    moved = images.flip(-1) if flip else images
    return torch.rot90(moved, turns, dims=(-2, -1))
