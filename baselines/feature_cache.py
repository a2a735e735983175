"""On-disk cache of hand-crafted feature tables, keyed by the manifest's content and the settings.

One ``.npz`` file per key (exact float64 values, no pickling): the sample ids, the column names
and the feature matrix. The key covers each pair's id and file hashes and the extraction settings,
so a changed image, a different working size or a new feature version never reads a stale table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write
from data_tools.paths import cache_root


def _content_hash(recorded: object, path: Path) -> str:
    """The manifest's recorded hash, or the file's SHA-1 when none is recorded."""
    if isinstance(recorded, str) and recorded:
        return recorded
    return hashlib.sha1(path.read_bytes()).hexdigest()


def cache_key(manifest: pd.DataFrame, root: Path, settings: dict[str, object]) -> str:
    """Hex key of (sample_id, plane_sha1, cross_sha1) of every row, in sample_id order, plus settings.

    Manifests without hash columns are keyed by hashing their files (a missing file raises
    FileNotFoundError here, before any work is done).
    """
    rows = manifest.sort_values("sample_id")
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for row in rows.itertuples(index=False):
        plane_sha1 = _content_hash(getattr(row, "plane_sha1", None), root / row.plane_path)
        cross_sha1 = _content_hash(getattr(row, "cross_sha1", None), root / row.cross_path)
        digest.update(f"{row.sample_id}\0{plane_sha1}\0{cross_sha1}\n".encode())
    return digest.hexdigest()[:24]


def cache_path(
    manifest: pd.DataFrame, root: Path, settings: dict[str, object], cache_dir: str | Path | None = None
) -> Path:
    """Where the feature table of this manifest and these settings is (or will be) cached."""
    directory = Path(cache_dir) if cache_dir is not None else cache_root() / "features"
    return directory / f"features-{cache_key(manifest, root, settings)}.npz"


def read(path: Path, sample_ids: Sequence[str] | pd.Series) -> pd.DataFrame | None:
    """The cached features (index: sample_id) if the file exists and covers every id, else None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        table = pd.DataFrame(
            stored["values"], index=stored["sample_ids"].tolist(), columns=stored["columns"].tolist()
        )
    if not pd.Index(sample_ids).isin(table.index).all():
        return None
    return table


def write(path: Path, features: pd.DataFrame) -> Path:
    """Store a feature table (index: sample_id; float columns) atomically; returns the path."""

    def save(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a file handle: np.savez would append ".npz" to a name
            np.savez(
                handle,
                values=features.to_numpy(dtype=np.float64),
                sample_ids=features.index.to_numpy(dtype=str),
                columns=features.columns.to_numpy(dtype=str),
            )

    return atomic_write(path, save)
