"""Read every image of a manifest once: file facts, acquisition statistics and perceptual hashes."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from data_tools.images import CropMode, ImageDecodeError, load_prepared
from data_tools.manifest import Problem
from data_tools.manifest_io import Dataset
from data_tools.names import POLARIZATIONS
from data_tools.report.duplicates import HASH_BYTES, perceptual_hashes
from data_tools.report.statistics import STATISTICS, image_statistics

FILE_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "domain",
    "label",
    "pol",
    "path",
    "format",
    "mode",
    "width",
    "height",
    "file_bytes",
    "sha1",
)
IMAGE_COLUMNS: tuple[str, ...] = FILE_COLUMNS + STATISTICS


@dataclass
class ScanResult:
    """One row per readable image (columns :data:`IMAGE_COLUMNS`), hashes aligned with the rows,
    and an ``unreadable`` problem for every image that could not be decoded."""

    images: pd.DataFrame
    hashes: np.ndarray
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Measured:
    facts: dict[str, object]
    hashes: np.ndarray


def _measure(path: Path, size: int, crop: CropMode, dihedral: bool) -> _Measured:
    """Facts, statistics and hashes of one file; raises ImageDecodeError or OSError."""
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as header:  # header only: format, mode, size
            facts: dict[str, object] = {
                "format": header.format or path.suffix.lstrip(".").upper(),
                "mode": header.mode,
                "width": header.size[0],
                "height": header.size[1],
            }
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from error
    facts.update(file_bytes=len(data), sha1=hashlib.sha1(data).hexdigest())
    prepared = load_prepared(path, size, crop)
    facts.update(image_statistics(prepared))
    return _Measured(facts, perceptual_hashes(prepared, dihedral=dihedral))


def _image_rows(manifest: pd.DataFrame) -> list[dict[str, str]]:
    return [
        {"sample_id": row.sample_id, "domain": row.domain, "label": row.label, "pol": pol, "path": path}
        for row in manifest.itertuples()
        for pol, path in zip(POLARIZATIONS, (row.plane_path, row.cross_path), strict=True)
    ]


def scan_images(
    dataset: Dataset,
    *,
    size: int = 128,
    crop: CropMode = "center",
    dihedral: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> ScanResult:
    """Decode every PPL and XPL image of the manifest at ``size`` px and measure it, in threads.

    Returns:
        ScanResult; images keep the manifest's order, PPL before XPL within a pair.
    """
    rows = _image_rows(dataset.manifest)

    def measure(row: dict[str, str]) -> _Measured | str:
        try:
            return _measure(dataset.path(row["path"]), size, crop, dihedral)
        except (ImageDecodeError, OSError) as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        outcomes = list(
            tqdm(
                pool.map(measure, rows),
                total=len(rows),
                desc="measuring images",
                unit="img",
                disable=not progress,
            )
        )
    records, hashes, problems = [], [], []
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, str):
            problems.append(Problem("error", "unreadable", row["path"], outcome, row["sample_id"]))
            continue
        records.append({**row, **outcome.facts})
        hashes.append(outcome.hashes)
    variants = 8 if dihedral else 1
    return ScanResult(
        images=pd.DataFrame.from_records(records, columns=list(IMAGE_COLUMNS)),
        hashes=np.stack(hashes) if hashes else np.zeros((0, variants, HASH_BYTES), dtype=np.uint8),
        problems=problems,
    )
