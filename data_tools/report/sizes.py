"""Image sizes and file formats: counts, mixed sizes, very large files and very small images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MEGABYTE = 1_000_000


@dataclass(frozen=True)
class SizeFindings:
    """What the images' sizes and formats say.

    ``formats``: images per (format, mode, polarization); ``distinct_sizes``: number of distinct
    width x height; ``width``/``height``: (min, median, max); ``non_square``: images whose centre
    crop discards more than 10% of the pixels; ``large``: files over the size limit; ``small``:
    images whose short side is under the limit (upsampled for training).
    """

    formats: pd.DataFrame
    distinct_sizes: int
    width: tuple[int, int, int]
    height: tuple[int, int, int]
    non_square: int
    large: pd.DataFrame
    small: pd.DataFrame
    large_file_mb: float
    small_side: int

    @property
    def mixed(self) -> bool:
        """True when the images do not all share one size."""
        return self.distinct_sizes > 1


def _range(values: pd.Series) -> tuple[int, int, int]:
    if values.empty:
        return (0, 0, 0)
    return (int(values.min()), int(values.median()), int(values.max()))


def size_findings(images: pd.DataFrame, *, large_file_mb: float = 10.0, small_side: int = 64) -> SizeFindings:
    """Summarise sizes and formats of the scanned images (columns format, mode, pol, path, width,
    height, file_bytes)."""
    formats = (
        images.groupby(["format", "mode", "pol"], sort=True).size().rename("images").reset_index()
        if not images.empty
        else pd.DataFrame(columns=["format", "mode", "pol", "images"])
    )
    short = np.minimum(images["width"], images["height"])
    long = np.maximum(images["width"], images["height"])
    file_mb = images["file_bytes"] / MEGABYTE
    columns = ["path", "width", "height", "file_mb"]
    with_mb = images.assign(file_mb=file_mb.round(2))
    return SizeFindings(
        formats=formats,
        distinct_sizes=int(images[["width", "height"]].drop_duplicates().shape[0]),
        width=_range(images["width"]),
        height=_range(images["height"]),
        non_square=int((short < 0.9 * long).sum()),
        large=with_mb.loc[file_mb > large_file_mb, columns].sort_values("file_mb", ascending=False),
        small=with_mb.loc[short < small_side, columns].sort_values(["width", "height"]),
        large_file_mb=large_file_mb,
        small_side=small_side,
    )
