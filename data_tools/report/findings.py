"""Collect every finding of the report from a data source: no files written here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from data_tools.manifest import Problem
from data_tools.report.composition import class_counts, composition
from data_tools.report.duplicates import find_duplicates
from data_tools.report.inputs import DataSource
from data_tools.report.outliers import find_outliers
from data_tools.report.scan import scan_images
from data_tools.report.settings import ReportSettings
from data_tools.report.sizes import SizeFindings, size_findings
from data_tools.report.statistics import statistics_summary

NOT_IN_SPLIT = "(not in split)"


@dataclass(frozen=True)
class SplitCheck:
    """How a run's split matched the data: its file and the ids found on one side only."""

    path: str
    not_in_split: int
    not_in_data: int


@dataclass
class Findings:
    """Everything the report shows; tables are DataFrames so they can be rendered or saved as-is."""

    source: DataSource
    settings: ReportSettings
    problems: list[Problem]
    counts: pd.DataFrame
    composition: pd.DataFrame
    sizes: SizeFindings
    images: pd.DataFrame
    statistics: pd.DataFrame
    outliers: pd.DataFrame
    duplicates: pd.DataFrame
    unjudged_groups: list[str] = field(default_factory=list)
    split: SplitCheck | None = None

    def problems_of(self, *kinds: str) -> list[Problem]:
        """The manifest and scan problems of the given kinds."""
        return [p for p in self.problems if p.kind in kinds]


def _attach_split(images: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    by_id = split.set_index("sample_id")["split"]
    return images.assign(split=images["sample_id"].map(by_id).fillna(NOT_IN_SPLIT))


def collect_findings(
    source: DataSource,
    settings: ReportSettings | None = None,
    *,
    split: pd.DataFrame | None = None,
    split_path: str = "",
) -> Findings:
    """Scan the images and compute every table of the report.

    Args:
        source: the pairs and the manifest's problems (:func:`open_data`).
        settings: thresholds; defaults to :class:`ReportSettings`.
        split: a run's (sample_id, split) table; duplicates are then also checked across splits.
        split_path: where the split came from, for the report.

    Returns:
        Findings. Images that cannot be decoded become ``unreadable`` problems and are left out
        of the statistics.
    """
    settings = settings or ReportSettings()
    manifest = source.dataset.manifest
    scan = scan_images(
        source.dataset,
        size=settings.size,
        crop=settings.crop,
        dihedral=settings.dihedral,
        workers=settings.workers,
        progress=settings.progress,
    )
    images = scan.images
    split_check = None
    if split is not None:
        images = _attach_split(images, split)
        split_check = SplitCheck(
            path=split_path,
            not_in_split=int((~manifest["sample_id"].isin(split["sample_id"])).sum()),
            not_in_data=int((~split["sample_id"].isin(manifest["sample_id"])).sum()),
        )
    duplicates, nearest = find_duplicates(images, scan.hashes, settings.near_distance)
    images = images.assign(nearest_distance=nearest)
    outliers, unjudged = find_outliers(images, k=settings.iqr_k, min_group=settings.min_group)
    return Findings(
        source=source,
        settings=settings,
        problems=list(source.problems) + scan.problems,
        counts=class_counts(manifest),
        composition=composition(manifest, tiny_class=settings.tiny_class),
        sizes=size_findings(images, large_file_mb=settings.large_file_mb, small_side=settings.small_side),
        images=images,
        statistics=statistics_summary(images),
        outliers=outliers,
        duplicates=duplicates,
        unjudged_groups=unjudged,
        split=split_check,
    )
