"""Decode every image once: a memory-mapped uint8 store of prepared (cropped, resized) pairs.

One store per (manifest files, size, crop mode): ``plane.npy`` and ``cross.npy`` (N x S x S x 3),
plus each file's (size in bytes, mtime) when it was decoded. On every open the files are
stat-ed; an entry whose file changed, or that was never written, is decoded again. A file lock
lets parallel runs share one store.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_tools.images import CropMode, load_prepared
from data_tools.manifest_io import Dataset
from data_tools.paths import cache_root

CACHE_VERSION = 1
POLARIZATION_COLUMNS = {"plane": "plane_path", "cross": "cross_path"}


@dataclass(frozen=True)
class CachedPairs:
    """Prepared images aligned with the manifest rows: ``plane[i]``, ``cross[i]`` are HxWx3 uint8."""

    plane: np.ndarray
    cross: np.ndarray
    directory: Path
    decoded: int

    def __len__(self) -> int:
        return len(self.plane)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stamps(paths: list[Path]) -> np.ndarray:
    """(size in bytes, mtime in ns) per file; (-1, -1) for a missing file."""
    stamps = np.full((len(paths), 2), -1, dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        stamps[i] = (info.st_size, info.st_mtime_ns)
    return stamps


def store_key(dataset: Dataset, size: int, crop: CropMode) -> str:
    """Key of a store: the manifest's files (absolute paths, in order), the size and the crop mode."""
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{crop}".encode())
    for column in POLARIZATION_COLUMNS.values():
        for relative in dataset.manifest[column]:
            digest.update(str(dataset.path(relative).resolve()).encode() + b"\0")
    return digest.hexdigest()[:20]


def _open_array(path: Path, count: int, size: int) -> np.memmap:
    shape = (count, size, size, 3)
    if path.exists():
        array = np.load(path, mmap_mode="r+")
        if array.shape == shape and array.dtype == np.uint8:
            return array
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


class PairImageCache:
    """Memory-mapped store of decoded, prepared image pairs, shared across epochs and runs."""

    def __init__(self, directory: str | Path | None = None, *, workers: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_root() / "images"
        self.workers = workers or os.cpu_count() or 1

    def load(
        self, dataset: Dataset, size: int, crop: CropMode = "center", *, progress: bool = True
    ) -> CachedPairs:
        """Return the prepared pairs of a dataset, decoding only entries that are missing or stale.

        Raises:
            data_tools.images.ImageDecodeError: a file cannot be decoded (the message names it).
        """
        store = self.directory / store_key(dataset, size, crop)
        with _locked(store):
            decoded = 0
            for pol, column in POLARIZATION_COLUMNS.items():
                paths = [dataset.path(p) for p in dataset.manifest[column]]
                decoded += self._refresh(store, pol, paths, size, crop, progress)
            plane = np.load(store / "plane.npy", mmap_mode="r")
            cross = np.load(store / "cross.npy", mmap_mode="r")
        return CachedPairs(plane=plane, cross=cross, directory=store, decoded=decoded)

    def _refresh(
        self, store: Path, pol: str, paths: list[Path], size: int, crop: CropMode, progress: bool
    ) -> int:
        """Decode the stale entries of one polarization; returns how many were decoded."""
        array = _open_array(store / f"{pol}.npy", len(paths), size)
        stamps_path = store / f"{pol}_stamps.npy"
        current = _stamps(paths)
        previous = np.load(stamps_path) if stamps_path.exists() else None
        if previous is None or previous.shape != current.shape:
            previous = np.full_like(current, -2)
        stale = np.flatnonzero((previous != current).any(axis=1))
        if len(stale) == 0:
            return 0

        def decode(index: int) -> None:
            array[index] = load_prepared(paths[index], size, crop)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for _ in tqdm(
                pool.map(decode, stale),
                total=len(stale),
                unit="img",
                desc=f"decoding {pol} images ({size}px)",
                disable=not progress,
            ):
                pass
        array.flush()
        # Stamps are written only after the pixels are flushed: an interrupted run re-decodes.
        np.save(stamps_path, current)
        return len(stale)
