"""The report's thresholds and working size, in a module without heavy imports (``data_report.py
--help`` prints the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from data_tools.images import CropMode

DEFAULT_NEAR_DISTANCE = 40  # bits of 256: between copies (<= 30) and distinct pairs (>= 50)


@dataclass(frozen=True)
class ReportSettings:
    """Thresholds and working size of the report (every one is printed in it)."""

    size: int = 128  # working size (px) the statistics and hashes are measured at
    crop: CropMode = "center"
    near_distance: int = DEFAULT_NEAR_DISTANCE  # pHash bits (of 256) within which both images of two
    # pairs must be for the pairs to be near duplicates
    dihedral: bool = True  # rotated / mirrored copies count as duplicates
    iqr_k: float = 1.5
    min_group: int = 8  # smallest river x polarization group judged for outliers
    imbalance_limit: float = 10.0  # largest / smallest class in a river above which it is flagged
    tiny_class: int = 5  # classes with fewer pairs in a river are flagged
    large_file_mb: float = 10.0
    small_side: int = 64  # images whose short side is smaller are flagged (upsampled for training)
    workers: int | None = None
    progress: bool = True
