"""Timing of the data pipeline: manifest scan, cold cache build, cached epoch reads
(``scripts/benchmark_data_pipeline.py``)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from data_tools.cache import PairImageCache
from data_tools.commandline import MAX_SIDE, image_side, positive_int
from data_tools.dataset import PairedGrainDataset
from data_tools.images import ImageDecodeError
from data_tools.layout import LayoutError
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


EXIT_DONE, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/benchmark_data_pipeline.py."""
    parser = argparse.ArgumentParser(
        prog="benchmark_data_pipeline.py",
        description="Time the data pipeline on a tree or manifest CSV. The cache is built in a temporary "
        "folder, so the build is always cold. Exit codes: 0 done; 1 the data have problems (listed) or "
        "an image cannot be decoded; 2 usage error (no such path, no layout fits, bad option).",
    )
    parser.add_argument("data", help="image tree or manifest CSV")
    parser.add_argument(
        "--size", type=image_side, default=128, help=f"prepared image side in px, 1..{MAX_SIDE} (default 128)"
    )
    parser.add_argument("--layout", help="layout template (see build_manifest.py --help)")
    parser.add_argument("--domain", help="domain name for a tree without a domain level")
    parser.add_argument("--epochs", type=positive_int, default=2, help="cached epochs to time (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = make_parser().parse_args(argv)
    try:
        figures = measure_pipeline(
            args.data, size=args.size, layout=args.layout, domain=args.domain, epochs=args.epochs
        )
    except (FileNotFoundError, LayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ManifestError, ImageDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    pairs = figures["pairs"]
    print(f"pairs: {pairs:.0f} at {args.size} px")
    print(f"manifest scan + validation: {figures['manifest_seconds']:.2f} s")
    print(
        f"cache build (decode + crop + resize, cold): {figures['cache_build_seconds']:.2f} s "
        f"({pairs / figures['cache_build_seconds']:.0f} pairs/s)"
    )
    print(f"cache reopen (stat every file, nothing decoded): {figures['cache_reopen_seconds']:.3f} s")
    for name in ("plain", "augmented"):
        seconds = figures[f"epoch_{name}_seconds"]
        print(f"cached epoch read, {name}: {seconds:.3f} s ({pairs / seconds:.0f} pairs/s)")
    return EXIT_DONE
