"""What the report reads: an image tree or a manifest CSV, and optionally a run's split.csv."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from data_tools.manifest import Problem, build_manifest
from data_tools.manifest_io import Dataset, read_manifest


class ReportInputError(ValueError):
    """Bad report input: a split file without the needed columns, options that do not fit the data."""


@dataclass(frozen=True)
class DataSource:
    """The pairs to report on, where they came from, and the problems the manifest check found."""

    dataset: Dataset
    kind: Literal["tree", "manifest"]
    location: Path
    layout: str = ""
    problems: list[Problem] = field(default_factory=list)
    skipped_non_images: int = 0

    @property
    def name(self) -> str:
        """A short name: the tree's folder, or the CSV's stem (its folder's name for ``manifest.csv``)."""
        if self.kind == "tree":
            return self.location.resolve().name
        return self.location.parent.resolve().name if self.location.stem == "manifest" else self.location.stem


def open_data(
    data: str | Path,
    *,
    layout: str | None = None,
    domain: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> DataSource:
    """Open an image tree (scanned with :func:`build_manifest`, problems kept) or a manifest CSV.

    Unlike ``load_dataset`` this never refuses a tree with problems: the report is where they are shown.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        LayoutError: the layout template is malformed or no default layout fits the tree.
        ManifestError: the CSV lacks required columns or repeats sample ids.
        ReportInputError: ``layout``/``domain`` given with a manifest CSV.
    """
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"DATA {str(data)!r} does not exist")
    if data.is_file():
        if layout or domain:
            raise ReportInputError(
                f"{data} is a manifest CSV: --layout and --domain only apply to an image tree"
            )
        return DataSource(dataset=read_manifest(data), kind="manifest", location=data)
    result = build_manifest(data, layout=layout, domain=domain, workers=workers, progress=progress)
    return DataSource(
        dataset=Dataset(manifest=result.manifest, root=data),
        kind="tree",
        location=data,
        layout=result.layout,
        problems=list(result.problems),
        skipped_non_images=result.skipped_non_images,
    )


def read_split(path: str | Path) -> pd.DataFrame:
    """A run's ``split.csv`` as a (sample_id, split) frame.

    Raises:
        FileNotFoundError: the file does not exist.
        ReportInputError: a column is missing or a sample id repeats (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {str(path)!r} does not exist")
    table = pd.read_csv(path, dtype={"sample_id": str, "split": str})
    missing = [c for c in ("sample_id", "split") if c not in table.columns]
    if missing:
        raise ReportInputError(
            f"{path}: missing column(s) {', '.join(missing)}; a split file has sample_id and split "
            "(as written by the training scripts' split.csv)"
        )
    repeated = table["sample_id"][table["sample_id"].duplicated()].unique()
    if len(repeated):
        raise ReportInputError(f"{path}: sample_id values repeat: {', '.join(repeated[:5])}")
    return table[["sample_id", "split"]]
