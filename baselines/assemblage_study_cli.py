"""``scripts/evaluate_assemblage.py``: the assemblage study's command line (its parser imports nothing
heavy, so --help is instant)."""

from __future__ import annotations

import sys

from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    add_data_argument,
    command_parser,
    configure_logging,
    non_negative_int,
    positive_int,
)


def assemblage_study_main(argv: list[str] | None = None) -> int:
    """``scripts/evaluate_assemblage.py``; returns the exit code (0 done, 1 failed, 2 usage error)."""
    parser = command_parser(
        "evaluate_assemblage.py",
        "For every held-out river: tune and fit the SVM on the other rivers, take out-of-fold "
        "posteriors on their train split as calibration rows, and evaluate every quantifier (cc, acc, pcc, "
        "pacc, emq, hdy) under the artificial prevalence protocol on the held-out river and on the source "
        "rivers' test split: MAE and RAE, coverage of the bootstrap 95%% intervals, per-grain accuracy with "
        "and without EM prior adaptation. Prints Markdown; writes OUT/assemblage_study.{json,md}. "
        "Exit codes: 0 done, 1 failed, 2 usage error.",
    )
    parser.add_argument("out", metavar="OUT", help="output folder (posteriors are cached there too)")
    add_data_argument(parser, "an image tree or a manifest CSV (default: the built-in synthetic set)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="split, SVM and APP seed (default 0)"
    )
    parser.add_argument(
        "--samples", type=positive_int, default=500, help="APP samples per evaluation (default 500)"
    )
    parser.add_argument(
        "--coverage-samples",
        type=non_negative_int,
        default=25,
        help="APP samples given an interval (default 25)",
    )
    parser.add_argument(
        "--draws", type=positive_int, default=40, help="bootstrap draws per interval (default 40)"
    )
    parser.add_argument(
        "--rivers", metavar="A,B", help="only these held-out rivers (others' cached results are still shown)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars; warnings only")
    args = parser.parse_args(argv)
    configure_logging(quiet=args.quiet)
    from baselines.assemblage_study import run_study, study_tables  # after --help: loads torch, sklearn

    try:
        results = run_study(
            args.out,
            data=args.data,
            seed=args.seed,
            n_samples=args.samples,
            coverage_samples=args.coverage_samples,
            draws=args.draws,
            rivers=[r.strip() for r in args.rivers.split(",")] if args.rivers else None,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(study_tables(results))
    return EXIT_OK
