"""Reading and writing manifest CSVs, and turning a ``--data`` argument into a manifest.

In a manifest CSV, image paths are relative to the CSV's own folder, so a tree moved together
with its ``manifest.csv`` (the default location is ``ROOT/manifest.csv``) keeps working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data_tools.atomic import atomic_write
from data_tools.manifest import ManifestResult, build_manifest

REQUIRED_COLUMNS: tuple[str, ...] = ("sample_id", "domain", "label", "plane_path", "cross_path")


class ManifestError(ValueError):
    """A manifest is missing columns, has duplicate ids, or its tree has problems."""


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


def read_manifest(csv_path: str | Path) -> Dataset:
    """Read a manifest CSV; its paths are resolved against the CSV's folder.

    Raises:
        ManifestError: required columns are missing or sample ids repeat (the message names them).
    """
    csv_path = Path(csv_path)
    manifest = pd.read_csv(csv_path, dtype={"sample_id": str, "domain": str, "label": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise ManifestError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; "
            f"a manifest needs {', '.join(REQUIRED_COLUMNS)}"
        )
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
