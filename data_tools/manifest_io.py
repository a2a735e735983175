"""Reading and writing manifest CSVs, and turning a ``--data`` argument into a manifest.

In a manifest CSV, image paths are relative to the CSV's own folder, so a tree moved together
with its ``manifest.csv`` (the default location is ``ROOT/manifest.csv``) keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write
from data_tools.manifest import MANIFEST_COLUMNS, ManifestError, ManifestResult, build_manifest
from data_tools.names import canonical_split

REQUIRED_COLUMNS: tuple[str, ...] = ("sample_id", "domain", "label", "plane_path", "cross_path")
OPTIONAL_COLUMNS: tuple[str, ...] = (*(c for c in MANIFEST_COLUMNS if c not in REQUIRED_COLUMNS), "split")
_SIZE_COLUMNS = frozenset(("plane_width", "plane_height", "cross_width", "cross_height"))
_EXPECTED: dict[str, str] = {
    "sample_id": "a unique sample id",
    "domain": "a domain (river) name",
    "label": "a class name",
    "plane_path": "the PPL image's path",
    "cross_path": "the XPL image's path",
    "plane_sha1": "a 40-hex-digit SHA-1",
    "cross_sha1": "a 40-hex-digit SHA-1",
    **{column: "a positive integer (pixels)" for column in _SIZE_COLUMNS},
    "split": "train, val or test",
}
_SHOWN = 10  # bad cells listed in one error message


@dataclass(frozen=True)
class Dataset:
    """A manifest and the folder its paths are relative to."""

    manifest: pd.DataFrame
    root: Path

    def path(self, relative: str) -> Path:
        """Absolute path of a manifest path."""
        return self.root / relative


def write_manifest(manifest: pd.DataFrame, csv_path: str | Path, root: str | Path) -> Path:
    """Write the manifest atomically with its paths made relative to the CSV's folder."""
    csv_path = Path(csv_path)
    rebase = Path(os.path.relpath(Path(root).resolve(), csv_path.parent.resolve()))
    table = manifest.copy()
    if rebase != Path("."):
        for column in ("plane_path", "cross_path"):
            table[column] = [(rebase / p).as_posix() for p in table[column]]
    return atomic_write(csv_path, lambda tmp: table.to_csv(tmp, index=False))


def _blank(values: pd.Series) -> pd.Series:
    """True where a cell is missing or only whitespace."""
    return values.isna() | (values.astype(str).str.strip() == "")


def _cell_problems(table: pd.DataFrame) -> Iterator[tuple[int, str, str]]:
    """(row index, column, what is wrong) for every cell that breaks the manifest's column types."""
    for column in table.columns:
        if column not in REQUIRED_COLUMNS and column not in OPTIONAL_COLUMNS:
            continue  # extra columns are carried along as read
        values = table[column]
        blank = _blank(values)
        for row in np.flatnonzero(blank):
            yield int(row), column, f"is empty; expected {_EXPECTED[column]}"
        text = values.astype(str).str.strip()
        if column in ("plane_sha1", "cross_sha1"):
            bad = ~blank & ~text.str.fullmatch(r"[0-9a-fA-F]{40}")
        elif column in _SIZE_COLUMNS:
            bad = ~blank & ~text.str.fullmatch(r"0*[1-9][0-9]*")
        elif column == "split":
            bad = ~blank & text.map(lambda v: canonical_split(v) is None)
        else:
            continue
        for row in np.flatnonzero(bad):
            yield int(row), column, f"is {values.iloc[row]!r}; expected {_EXPECTED[column]}"


def read_manifest(csv_path: str | Path) -> Dataset:
    """Read a manifest CSV and check every cell; its paths are resolved against the CSV's folder.

    Required columns must be non-empty in every row; the optional columns written by
    ``build_manifest`` must hold their types (40-hex SHA-1, positive integer sizes, a train/val/test
    split). Split names are made canonical and sizes integers; other columns are kept as read.

    Raises:
        ManifestError: the file is not a readable CSV, required columns are missing, a cell is empty
            or of the wrong type (the message names the file, row and column, up to
            ``_SHOWN`` cells), or sample ids repeat.
    """
    csv_path = Path(csv_path)
    try:
        manifest = pd.read_csv(csv_path, dtype={c: str for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ManifestError(f"{csv_path}: not a readable CSV manifest ({error})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise ManifestError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; "
            f"a manifest needs {', '.join(REQUIRED_COLUMNS)}"
        )
    problems = sorted(_cell_problems(manifest), key=lambda p: (p[0], list(manifest.columns).index(p[1])))
    if problems:
        shown = [f"  row {row + 1}, column {column!r} {what}" for row, column, what in problems[:_SHOWN]]
        more = [f"  ... and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else []
        raise ManifestError(
            f"{csv_path}: {len(problems)} bad cell(s) (rows counted from 1 after the header):\n"
            + "\n".join(shown + more)
        )
    for column in REQUIRED_COLUMNS:
        manifest[column] = manifest[column].str.strip()
    for column in _SIZE_COLUMNS.intersection(manifest.columns):
        manifest[column] = manifest[column].astype(int)
    if "split" in manifest.columns:
        manifest["split"] = manifest["split"].map(canonical_split)
    repeated = manifest["sample_id"][manifest["sample_id"].duplicated()].unique()
    if len(repeated):
        raise ManifestError(f"{csv_path}: sample_id values repeat: {', '.join(map(str, repeated[:5]))}")
    return Dataset(manifest=manifest, root=csv_path.parent)


def describe_errors(result: ManifestResult, limit: int = 20) -> str:
    """A readable list of the first ``limit`` errors of a manifest build."""
    lines = [f"  {p.path}: {p.message}" for p in result.errors[:limit]]
    if len(result.errors) > limit:
        lines.append(f"  ... and {len(result.errors) - limit} more")
    return "\n".join(lines)


def load_dataset(
    data: str | Path, *, layout: str | None = None, domain: str | None = None, progress: bool = True
) -> Dataset:
    """Open ``--data``: a manifest CSV, or an image tree (scanned and validated).

    Raises:
        FileNotFoundError: the path does not exist.
        ManifestError: the tree has errors (each named); build a manifest with
            ``scripts/build_manifest.py --allow-problems`` to drop them explicitly.
    """
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"--data {str(data)!r} does not exist")
    if data.is_file():
        return read_manifest(data)
    result = build_manifest(data, layout=layout, domain=domain, progress=progress)
    if result.errors:
        raise ManifestError(
            f"{data}: {len(result.errors)} problem(s) in the image tree:\n{describe_errors(result)}\n"
            "Fix them, or run scripts/build_manifest.py with --allow-problems and pass the manifest CSV."
        )
    if result.manifest.empty:
        raise ManifestError(f"{data}: no image pairs found (layout {result.layout!r})")
    return Dataset(manifest=result.manifest, root=data)
