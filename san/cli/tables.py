"""``scripts/make_tables.py``: comparison tables and figures from run records."""

from __future__ import annotations

import argparse
import sys

from data_tools.atomic import atomic_write_text
from data_tools.commandline import EXIT_FAILED, EXIT_OK, EXIT_USAGE, configure_logging
from san.benchmark.figures import save_figures
from san.benchmark.selection import RULE_LABELS, SELECTION_RULES
from san.benchmark.tables import FORMATS, build_tables, count_runs, load_failures, load_runs, render


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="make_tables.py",
        description="Build the comparison tables from the run records (results.json) found under the "
        "given directories (searched recursively; results of several machines can be combined). "
        "Mixed protocol, leave-one-river-out and per-class F1; mean ± std over seeds; missing "
        "runs show as missing.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders holding run directories")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="md",
        help="md (default), csv (numbers only: mean and std columns) or tex (booktabs)",
    )
    parser.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        default="training",
        help="model-selection rule (DomainBed's): "
        + "; ".join(f"{rule} = {label}" for rule, label in RULE_LABELS.items())
        + ". Default training; loso needs the benchmark's --loso runs; oracle picks the epoch on the "
        "target river and is labelled as such",
    )
    parser.add_argument("--out", metavar="FILE", help="write the tables here (default: print them)")
    parser.add_argument(
        "--figures",
        metavar="DIR",
        help="also write target_accuracy.png and confusion_grid.png (and their "
        "mixed-protocol versions) into DIR",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build and write the tables; returns the exit code (0 done, 1 no runs found, 2 usage error)."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=False, timestamps=False)
    try:
        runs = load_runs(args.dirs, args.selection)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if runs.empty:
        print(f"error: no complete run record (results.json) under {', '.join(args.dirs)}", file=sys.stderr)
        return EXIT_FAILED
    tables = build_tables(runs, load_failures(args.dirs, runs))
    text = render(tables, args.format, n_runs=count_runs(runs))
    if args.out:
        print(f"wrote {atomic_write_text(args.out, text)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.figures and args.selection != "training":
        print("error: --figures draws the training-domain selection only", file=sys.stderr)
        return 2
    for path in save_figures(runs, args.figures) if args.figures else []:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK
