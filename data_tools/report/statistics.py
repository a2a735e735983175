"""Per-image acquisition statistics: brightness, contrast, colour, sharpness and clipping.

All are measured on the prepared image (centre-cropped and resized to the report's working size),
so they describe what a model sees and are comparable across native resolutions: a 4000 px
micrograph and a 300 px crop are judged at the same scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.color import rgb2gray

STATISTICS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "mean_red",
    "mean_green",
    "mean_blue",
    "sharpness",
    "clipped_dark",
    "clipped_bright",
)

STATISTIC_LABELS: dict[str, str] = {
    "brightness": "brightness: mean grey level (0-255)",
    "contrast": "contrast: std of grey levels (0-255)",
    "mean_red": "mean red channel (0-255)",
    "mean_green": "mean green channel (0-255)",
    "mean_blue": "mean blue channel (0-255)",
    "sharpness": "sharpness: variance of the Laplacian of grey (log scale)",
    "clipped_dark": "clipped dark: fraction of pixels with a channel at 0",
    "clipped_bright": "clipped bright: fraction of pixels with a channel at 255",
}

LOG_SCALE_STATISTICS: frozenset[str] = frozenset({"sharpness"})


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """Statistics of one HxWx3 uint8 RGB image, keyed by :data:`STATISTICS`.

    Grey is Rec. 709 luma (scikit-image ``rgb2gray``) on the 0-255 scale; sharpness is the
    variance of its 4-neighbour Laplacian; a pixel is clipped when any channel sits at 0 or 255.

    Raises:
        ValueError: the array is not HxWx3 uint8.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    grey = rgb2gray(image) * 255.0
    red, green, blue = image.reshape(-1, 3).mean(axis=0)
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "mean_red": float(red),
        "mean_green": float(green),
        "mean_blue": float(blue),
        "sharpness": float(ndimage.laplace(grey).var()),
        "clipped_dark": float((image == 0).any(axis=2).mean()),
        "clipped_bright": float((image == 255).any(axis=2).mean()),
    }


def statistics_summary(images: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of every statistic per river and polarization.

    Returns:
        One row per (domain, pol, statistic) with columns n, q1, median, q3.
    """
    long = images.melt(id_vars=["domain", "pol"], value_vars=list(STATISTICS), var_name="statistic")
    grouped = long.groupby(["domain", "pol", "statistic"], sort=False)["value"]
    summary = grouped.agg(
        n="count", q1=lambda v: v.quantile(0.25), median="median", q3=lambda v: v.quantile(0.75)
    )
    return summary.reset_index()
