#!/usr/bin/env python
"""Print how long the data pipeline takes: manifest, cold cache build, cached epochs. See --help."""

import argparse

from data_tools.pipeline_benchmark import measure_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time the data pipeline on a tree or manifest CSV. The cache is "
        "built in a temporary folder, so the build is always cold."
    )
    parser.add_argument("data", help="image tree or manifest CSV")
    parser.add_argument("--size", type=int, default=128, help="prepared image side in pixels (default 128)")
    parser.add_argument("--layout", help="layout template (see build_manifest.py --help)")
    parser.add_argument("--domain", help="domain name for a tree without a domain level")
    parser.add_argument("--epochs", type=int, default=2, help="cached epochs to time (default 2)")
    args = parser.parse_args()
    figures = measure_pipeline(
        args.data, size=args.size, layout=args.layout, domain=args.domain, epochs=args.epochs
    )
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


if __name__ == "__main__":
    main()
