"""``scripts/benchmark_quantifiers.py``: milliseconds per sample of each quantifier."""

from __future__ import annotations

import argparse

from data_tools.commandline import command_parser, positive_int
from san.cli.common import run_command


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/benchmark_quantifiers.py."""
    parser = command_parser(
        "benchmark_quantifiers.py",
        "Time every quantifier a run's assemblage evaluation uses (cc, acc, pcc, pacc, emq, hdy), on "
        "seeded synthetic posteriors, and QuaPy's originals of those the project replaced with faster "
        "equivalents (acc, pacc, hdy), with the largest difference between their estimates. Prints "
        "medians over repeated passes; the machine's load moves the figures, so compare rows of one "
        "run. Exit codes: 0 done, 1 failed, 2 usage error.",
    )
    parser.add_argument("--classes", type=positive_int, default=12, help="number of classes (default 12)")
    parser.add_argument(
        "--calibration-rows",
        type=positive_int,
        default=600,
        help="rows the quantifiers are fitted on (default 600)",
    )
    parser.add_argument(
        "--samples", type=positive_int, default=20, help="samples timed per pass (default 20)"
    )
    parser.add_argument(
        "--sample-size", type=positive_int, default=250, help="grains per sample (default 250)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="passes; the median is printed (default 5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the posteriors and samples (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``scripts/benchmark_quantifiers.py``; returns the exit code."""
    args = make_parser().parse_args(argv)

    def job() -> str:
        from san.evaluation.quantifier_benchmark import format_timings, time_quantifiers

        return format_timings(
            time_quantifiers(
                n_classes=args.classes,
                calibration_rows=args.calibration_rows,
                n_samples=args.samples,
                sample_size=args.sample_size,
                repeats=args.repeats,
                seed=args.seed,
            )
        )

    return run_command(job, print)
