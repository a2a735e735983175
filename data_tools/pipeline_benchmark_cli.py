"""The ``benchmark_data_pipeline`` command: how long each stage of the data pipeline takes."""

from __future__ import annotations

import argparse
import sys

from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_SIDE,
    add_data_argument,
    command_parser,
    image_side,
    positive_int,
)


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/benchmark_data_pipeline.py."""
    parser = command_parser(
        "benchmark_data_pipeline.py",
        "Time the data pipeline on a tree or manifest CSV. The cache is built in a temporary "
        "folder, so the build is always cold. Exit codes: 0 done; 1 the data have problems (listed) or "
        "an image cannot be decoded; 2 usage error (no such path, no layout fits, bad option).",
    )
    add_data_argument(parser, "image tree or manifest CSV", positional="DATA", required=True)
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
    from data_tools.images import ImageDecodeError
    from data_tools.layout import LayoutError
    from data_tools.manifest_io import ManifestError
    from data_tools.pipeline_benchmark import measure_pipeline

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
    return EXIT_OK
