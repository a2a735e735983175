"""Timing of the data pipeline: manifest scan, cold cache build, cached epoch reads (the command
line is :mod:`data_tools.pipeline_benchmark_cli`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from data_tools.cache import PairImageCache
from data_tools.dataset import PairedGrainDataset
from data_tools.manifest_io import ManifestError, load_dataset
from data_tools.transforms import PairTransform, channel_stats


def measure_pipeline(
    data: str | Path,
    *,
    size: int = 128,
    layout: str | None = None,
    domain: str | None = None,
    epochs: int = 2,
) -> dict[str, float]:
    """Seconds for each stage on a fresh cache folder (so the build is cold), plus pairs/s.

    Returns keys: pairs, manifest_seconds, cache_build_seconds, cache_reopen_seconds,
    epoch_plain_seconds (normalisation only), epoch_augmented_seconds (training transforms), per epoch.

    Raises:
        FileNotFoundError, LayoutError, ManifestError: as :func:`load_dataset`.
        data_tools.images.ImageDecodeError: an image cannot be decoded (named).
    """
    started = time.perf_counter()
    dataset = load_dataset(data, layout=layout, domain=domain, progress=False)
    if dataset.manifest.empty:
        raise ManifestError(f"{data}: no image pairs to time")
    figures = {"pairs": float(len(dataset.manifest)), "manifest_seconds": time.perf_counter() - started}
    with tempfile.TemporaryDirectory() as folder:
        cache = PairImageCache(folder)
        started = time.perf_counter()
        pairs = cache.load(dataset, size, progress=False)
        figures["cache_build_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        pairs = cache.load(dataset, size, progress=False)
        figures["cache_reopen_seconds"] = time.perf_counter() - started
        rows = np.arange(len(pairs))
        stats = channel_stats(pairs.plane, pairs.cross, rows)
        labels = np.zeros(len(pairs), dtype=int)
        for name, train in (("plain", False), ("augmented", True)):
            items = PairedGrainDataset(pairs, rows, labels, labels, PairTransform(size, stats, train=train))
            started = time.perf_counter()
            for _ in range(epochs):
                for i in range(len(items)):
                    items[i]
            figures[f"epoch_{name}_seconds"] = (time.perf_counter() - started) / epochs
    return figures
