"""The ``synthetic_domain_gap`` command: channel statistics and the colour-histogram SVM's domain gap."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_tools.commandline import EXIT_OK, add_data_argument, command_parser


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/synthetic_domain_gap.py."""
    parser = command_parser(
        "synthetic_domain_gap.py",
        "Measure how fair a stand-in a dataset is: per-channel mean/std of its PPL and XPL "
        "images beside the real dataset's published figures, and the mixed vs "
        "leave-one-river-out accuracy of a colour-histogram + RBF-SVM model (fixed "
        "hyper-parameters, stratified 7:3 split per river). Works on any tree in the published "
        "layout. Exit codes: 0 done, 2 bad arguments or data.",
    )
    add_data_argument(
        parser,
        "dataset folder, e.g. one written by make_synthetic.py",
        positional="ROOT",
        required=True,
        metavar="ROOT",
        type=Path,
    )
    parser.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    parser.add_argument(
        "--bins", type=int, default=16, help="histogram bins per channel, 2..256 (default: 16)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE.json", help="also write the figures to this file"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _triplet(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def main(argv: list[str] | None = None) -> int:
    """Run synthetic_domain_gap; returns the exit code (argparse exits with 2 on bad arguments)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if not 2 <= args.bins <= 256:
        parser.error(f"--bins must be from 2 to 256, got {args.bins}")
    from data_tools.reference_counts import PUBLISHED_CHANNEL_STATS
    from data_tools.synthetic.domain_gap import channel_statistics, measure_domain_gap

    try:
        statistics = channel_statistics(args.data, progress=not args.quiet)
        gap = measure_domain_gap(args.data, seed=args.seed, bins=args.bins, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print("per-channel statistics (RGB, 0-1): this set | published real set")
    for pol in ("plane", "cross"):
        for moment in ("mean", "std"):
            print(
                f"  {pol:5s} {moment:4s} {_triplet(statistics[pol][moment])} | "
                f"{_triplet(PUBLISHED_CHANNEL_STATS[pol][moment])}"
            )
    print("colour-histogram + RBF-SVM accuracy")
    print(
        f"  mixed (pooled test parts): {gap.mixed:.3f}   per river: "
        + ", ".join(f"{river} {accuracy:.3f}" for river, accuracy in gap.mixed_per_river.items())
    )
    for river, accuracy in gap.leave_one_out.items():
        print(
            f"  leave-one-river-out, target {river:8s}: {accuracy:.3f}   "
            f"(sources' test parts: {gap.in_domain[river]:.3f})"
        )
    print(f"  mean leave-one-river-out: {gap.leave_one_out_mean:.3f}   gap (mixed - mean): {gap.gap:+.3f}")
    if args.json is not None:
        report = {
            "root": str(args.data),
            "seed": args.seed,
            "bins": args.bins,
            "channel_statistics": statistics,
            "domain_gap": gap.as_dict(),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK
