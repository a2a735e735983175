"""Hand-crafted features of a PPL/XPL pair: colour, texture, grain shape; extracted in parallel and cached.

Every image is decoded and prepared at one working size (``size``), so the cost does not depend on
the original resolution. A grain mask is found once per pair and used for both polarizations (the
pair is pixel-aligned): colour and texture are measured inside the grain, so the mounting medium
(which carries imaging conditions, not mineralogy) does not dominate them.

Columns (``{pol}`` is ``plane`` or ``cross``):
    ``{pol}_hsv_{h,s,v}_NN``, ``{pol}_lab_{l,a,b}_NN``     colour histograms (fractions of grain pixels)
    ``{pol}_moment_{rgb,lab}_{channel}_{mean,std,skew}``  colour moments
    ``{pol}_glcm_{prop}_d{distance}_a{angle}``            grey-level co-occurrence statistics
    ``{pol}_lbp_p{P}_r{R}_NN``                            uniform local-binary-pattern histograms
    ``grain_shape_*``                                      shape of the grain mask (shared by the pair)
    ``plane_rim_contrast``                                 darkness of the grain's rim in PPL (relief)
    ``cross_dark_fraction``                                share of the grain that stays dark in XPL
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import ndimage
from skimage.color import rgb2gray, rgb2hsv, rgb2lab
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import disk
from tqdm.auto import tqdm

from baselines import feature_cache
from data_tools.images import CropMode, ImageDecodeError, load_prepared

log = logging.getLogger(__name__)

# Bump whenever a feature's definition changes: cached tables of older versions are then ignored.
FEATURES_VERSION = 1

HIST_BINS = 16
LAB_AB_RANGE = (-64.0, 64.0)  # a*, b* of mineral colours fall well inside; outliers go to the end bins
GLCM_LEVELS = 32
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES_DEG = (0, 45, 90, 135)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
LBP_SCALES = ((8, 1.0), (16, 2.0))
MIN_GRAIN_FRACTION = 0.02  # a smaller mask is a failed segmentation: measure the whole frame instead
DARK_MARGIN_L = 12.0  # L* units above the XPL background below which a grain pixel counts as extinct
META_COLUMNS = ("sample_id", "domain", "label")

Features = dict[str, float]


def grain_mask(plane_lab: np.ndarray, cross_lab: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of the grain, from both polarizations of an aligned pair.

    The background colour of each image is the median of its border pixels; a pixel's distance
    from the background is the CIELab distance in PPL and XPL combined, so a colourless low-relief
    grain (faint in PPL, bright in XPL) and an isotropic grain (black in XPL, visible in PPL) are
    both found. Otsu's threshold splits the distance map; holes are filled and the largest component
    reaching the central third of the frame is kept. Returns an all-True mask when the
    segmentation fails (uniform image, nothing in the centre, or a tiny region).
    """
    height, width = plane_lab.shape[:2]
    band = max(1, min(height, width) // 32)
    border = np.ones((height, width), dtype=bool)
    border[band:-band, band:-band] = False
    squared = np.zeros((height, width))
    for lab in (plane_lab, cross_lab):
        background = np.median(lab[border], axis=0)
        squared += ((lab - background) ** 2).sum(axis=2)
    distance = gaussian(np.sqrt(squared), sigma=1.0)
    if np.ptp(distance) < 1e-6:
        return np.ones((height, width), dtype=bool)
    mask = ndimage.binary_opening(distance > threshold_otsu(distance), structure=disk(1))
    mask = ndimage.binary_fill_holes(mask)
    # Grain images are centred on their grain: keep the largest component reaching the central
    # third. None there means the grain fills the frame (or sits on a busy background).
    components = label(mask)
    central = np.unique(components[height // 3 : height - height // 3, width // 3 : width - width // 3])
    central = central[central > 0]
    if len(central) == 0:
        return np.ones((height, width), dtype=bool)
    areas = np.bincount(components.ravel())
    mask = components == central[np.argmax(areas[central])]
    if mask.mean() < MIN_GRAIN_FRACTION:
        return np.ones((height, width), dtype=bool)
    return mask


def _histogram(values: np.ndarray, value_range: tuple[float, float], prefix: str) -> Features:
    clipped = np.clip(values, value_range[0], value_range[1])
    counts, _ = np.histogram(clipped, bins=HIST_BINS, range=value_range)
    fractions = counts / max(counts.sum(), 1)
    return {f"{prefix}_{i:02d}": float(v) for i, v in enumerate(fractions)}


def colour_histograms(hsv: np.ndarray, lab: np.ndarray, mask: np.ndarray, pol: str) -> Features:
    """HSV and CIELab histograms of the grain pixels, ``HIST_BINS`` bins per channel (fractions)."""
    features: Features = {}
    for i, channel in enumerate("hsv"):
        features |= _histogram(hsv[..., i][mask], (0.0, 1.0), f"{pol}_hsv_{channel}")
    features |= _histogram(lab[..., 0][mask], (0.0, 100.0), f"{pol}_lab_l")
    for i, channel in ((1, "a"), (2, "b")):
        features |= _histogram(lab[..., i][mask], LAB_AB_RANGE, f"{pol}_lab_{channel}")
    return features


def colour_moments(rgb: np.ndarray, lab: np.ndarray, mask: np.ndarray, pol: str) -> Features:
    """Mean, standard deviation and skewness of each RGB (0-1) and CIELab channel over the grain."""
    features: Features = {}
    for space, image, channels in (("rgb", rgb / 255.0, "rgb"), ("lab", lab, "lab")):
        for i, channel in enumerate(channels):
            values = image[..., i][mask]
            mean, std = float(values.mean()), float(values.std())
            skew = float(((values - mean) ** 3).mean() / std**3) if std > 1e-9 else 0.0
            name = f"{pol}_moment_{space}_{channel}"
            features |= {f"{name}_mean": mean, f"{name}_std": std, f"{name}_skew": skew}
    return features


def glcm_statistics(grey: np.ndarray, mask: np.ndarray, pol: str) -> Features:
    """Haralick statistics of the grain's grey-level co-occurrence matrix per distance and angle.

    Grain pixels are quantised to levels 1..GLCM_LEVELS and the background to level 0, whose
    row and column are dropped, so only pairs of grain pixels are counted.
    """
    levels = 1 + np.minimum((grey * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1)
    levels = np.where(mask, levels, 0).astype(np.uint8)
    angles = [np.deg2rad(a) for a in GLCM_ANGLES_DEG]
    matrix = graycomatrix(levels, GLCM_DISTANCES, angles, levels=GLCM_LEVELS + 1, symmetric=True)
    matrix = matrix[1:, 1:]
    features: Features = {}
    for prop in GLCM_PROPS:
        values = graycoprops(matrix, prop)  # distances x angles; each matrix is normalised inside
        for i, distance in enumerate(GLCM_DISTANCES):
            for j, angle in enumerate(GLCM_ANGLES_DEG):
                features[f"{pol}_glcm_{prop.lower()}_d{distance}_a{angle}"] = float(values[i, j])
    return features


def lbp_histograms(grey_uint8: np.ndarray, mask: np.ndarray, pol: str) -> Features:
    """Rotation-invariant uniform LBP histograms (P+2 codes) of the grain pixels at each scale."""
    features: Features = {}
    for points, radius in LBP_SCALES:
        codes = local_binary_pattern(grey_uint8, points, radius, method="uniform")[mask]
        counts = np.bincount(codes.astype(np.int64), minlength=points + 2)
        fractions = counts / max(counts.sum(), 1)
        prefix = f"{pol}_lbp_p{points}_r{radius:g}"
        features |= {f"{prefix}_{i:02d}": float(v) for i, v in enumerate(fractions)}
    return features


def shape_descriptors(mask: np.ndarray) -> Features:
    """Area fraction, aspect ratio, eccentricity, solidity, circularity, extent and log Hu moments."""
    (region,) = regionprops(mask.astype(np.uint8))
    minor = max(region.axis_minor_length, 1e-6)
    perimeter = region.perimeter
    circularity = 4.0 * np.pi * region.area / perimeter**2 if perimeter > 0 else 0.0
    features: Features = {
        "grain_shape_area_fraction": float(mask.mean()),
        "grain_shape_aspect_ratio": float(region.axis_major_length / minor),
        "grain_shape_eccentricity": float(region.eccentricity),
        "grain_shape_solidity": float(region.solidity),
        "grain_shape_circularity": float(circularity),
        "grain_shape_extent": float(region.extent),
    }
    # Hu moments span many orders of magnitude: the signed log keeps them comparable.
    hu = np.asarray(region.moments_hu, dtype=np.float64)
    log_hu = -np.sign(hu) * np.log10(np.maximum(np.abs(hu), 1e-30))
    features |= {f"grain_shape_hu{i + 1}": float(v) for i, v in enumerate(log_hu)}
    return features


def rim_contrast(plane_lab: np.ndarray, mask: np.ndarray) -> float:
    """Mean PPL lightness of the grain's interior minus that of its rim (high relief: dark rim)."""
    width = max(1, mask.shape[0] // 32)
    # Outside the frame counts as grain: where the frame cuts the grain there is no rim.
    interior = ndimage.binary_erosion(mask, structure=disk(width), border_value=1)
    rim = mask & ~interior
    if not interior.any() or not rim.any():
        return 0.0
    lightness = plane_lab[..., 0]
    return float(lightness[interior].mean() - lightness[rim].mean())


def dark_fraction(cross_lab: np.ndarray, mask: np.ndarray) -> float:
    """Share of grain pixels darker in XPL than the background plus ``DARK_MARGIN_L`` (isotropic: ~1)."""
    lightness = cross_lab[..., 0]
    outside = ~mask
    background = float(np.median(lightness[outside])) if outside.mean() >= 0.05 else 0.0
    return float((lightness[mask] < background + DARK_MARGIN_L).mean())


def polarization_features(rgb: np.ndarray, lab: np.ndarray, mask: np.ndarray, pol: str) -> Features:
    """Colour histograms and moments, GLCM statistics and LBP histograms of one image's grain."""
    grey = rgb2gray(rgb)
    grey_uint8 = np.round(grey * 255).astype(np.uint8)
    return (
        colour_histograms(rgb2hsv(rgb), lab, mask, pol)
        | colour_moments(rgb, lab, mask, pol)
        | glcm_statistics(grey, mask, pol)
        | lbp_histograms(grey_uint8, mask, pol)
    )


def pair_features(plane: np.ndarray, cross: np.ndarray) -> Features:
    """Named features of one aligned pair of HxWx3 uint8 images (same size), in a fixed column order.

    Raises:
        ValueError: the two images differ in shape or are not HxWx3.
    """
    if plane.shape != cross.shape or plane.ndim != 3 or plane.shape[2] != 3:
        raise ValueError(f"expected two HxWx3 images of one shape, got {plane.shape} and {cross.shape}")
    plane_lab, cross_lab = rgb2lab(plane), rgb2lab(cross)
    mask = grain_mask(plane_lab, cross_lab)
    return (
        polarization_features(plane, plane_lab, mask, "plane")
        | polarization_features(cross, cross_lab, mask, "cross")
        | shape_descriptors(mask)
        | {
            "plane_rim_contrast": rim_contrast(plane_lab, mask),
            "cross_dark_fraction": dark_fraction(cross_lab, mask),
        }
    )


def _features_of_files(
    sample_id: str, plane_path: Path, cross_path: Path, size: int, crop: CropMode
) -> Features:
    try:
        plane = load_prepared(plane_path, size, crop)
        cross = load_prepared(cross_path, size, crop)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"sample {sample_id}: {error}") from error
    return pair_features(plane, cross)


def _compute(
    manifest: pd.DataFrame, root: Path, size: int, crop: CropMode, n_jobs: int, progress: bool
) -> pd.DataFrame:
    jobs = (
        delayed(_features_of_files)(row.sample_id, root / row.plane_path, root / row.cross_path, size, crop)
        for row in manifest.itertuples(index=False)
    )
    results: Iterator[Features] = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    rows = list(
        tqdm(
            results,
            total=len(manifest),
            unit="pair",
            disable=not progress,
            desc=f"hand-crafted features ({size}px)",
        )
    )
    return pd.DataFrame.from_records(rows, index=manifest["sample_id"].to_numpy())


def extract_features(
    manifest: pd.DataFrame,
    root: str | Path,
    *,
    size: int = 128,
    crop: CropMode = "center",
    n_jobs: int = -1,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Hand-crafted features of every manifest pair, read back from the cache when already computed.

    Args:
        manifest: rows with ``sample_id, domain, label, plane_path, cross_path`` (paths relative to
            ``root``); ``plane_sha1, cross_sha1`` key the cache (the files are hashed if absent).
        size, crop: the working size and crop mode every image is prepared with.
        n_jobs: joblib workers (-1: all cores).
        cache_dir: folder of cached tables (default ``cache_root()/features``).

    Returns:
        A feature table aligned with the manifest rows (same order, fresh index): ``sample_id,
        domain, label``, ``split`` when the manifest has one, then the float feature columns.
        ``attrs['features']`` holds the version, size and crop mode.

    Raises:
        data_tools.images.ImageDecodeError: an image is missing or undecodable (names sample and file).
        FileNotFoundError: a file is missing from a manifest without hash columns (found when keying).
        ValueError: the manifest is empty, lacks a required column or repeats a sample_id.
    """
    root = Path(root)
    if manifest.empty:
        raise ValueError("manifest has no rows: no features to extract")
    missing = [c for c in (*META_COLUMNS, "plane_path", "cross_path") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {', '.join(missing)}")
    if manifest["sample_id"].duplicated().any():
        repeated = manifest["sample_id"][manifest["sample_id"].duplicated()].unique()[:5]
        raise ValueError(f"manifest repeats sample_id values: {', '.join(map(str, repeated))}")

    settings = {"version": FEATURES_VERSION, "size": size, "crop": crop}
    features = None
    if use_cache:
        cache_path = feature_cache.cache_path(manifest, root, settings, cache_dir)
        features = feature_cache.read(cache_path, manifest["sample_id"])
        if features is not None:
            log.info("hand-crafted features read from %s", cache_path)
    if features is None:
        features = _compute(manifest, root, size, crop, n_jobs, progress)
        if use_cache:
            feature_cache.write(cache_path, features)
            log.info("hand-crafted features cached in %s", cache_path)

    meta = [c for c in (*META_COLUMNS, "split") if c in manifest.columns]
    table = pd.concat(
        [
            manifest[meta].reset_index(drop=True),
            features.loc[manifest["sample_id"].to_numpy()].reset_index(drop=True),
        ],
        axis=1,
    )
    table.attrs["features"] = settings
    return table
