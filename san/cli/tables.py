"""``scripts/make_tables.py``: comparison tables and figures from run records."""

from __future__ import annotations

import argparse
import sys

from data_tools.commandline import EXIT_FAILED, EXIT_OK, EXIT_USAGE, command_parser, configure_logging
from san.benchmark.formats import FORMATS
from san.benchmark.selection import RULE_LABELS, SELECTION_RULES


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = command_parser(
        "make_tables.py",
        "Build the comparison tables from the run records (results.json) found under the "
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
        "--variants",
        default="",
        metavar="A,B",
        help="also show these evaluation variants of the deep runs as rows <method>+<variant>: tta "
        "(8 dihedral views averaged; held by runs made with --set evaluation.tta=true), plain (raw "
        "weights beside the averaged ones; runs with weight averaging); a variant no run holds is "
        "named in a warning",
    )
    parser.add_argument(
        "--paired-against",
        metavar="METHOD",
        help="also a paired table: per seed, every method's mixed overall accuracy and LORO average "
        "target and in-domain accuracy minus METHOD's at the same seed, mean ± std over seeds "
        "(e.g. erm, to ask whether a domain-generalisation method beats it beyond seed noise)",
    )
    parser.add_argument(
        "--chosen-epochs",
        action="store_true",
        help="append (md) the histogram of the epochs chosen on val, per method",
    )
    parser.add_argument(
        "--figures",
        metavar="DIR",
        help="also write target_accuracy.png and per_class_recall.png (method x class recall; and "
        "their mixed-protocol versions) into DIR",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build and write the tables; returns the exit code (0 done, 1 no runs found, 2 usage error)."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=False, timestamps=False)
    if args.figures and args.selection != "training":
        print("error: --figures draws the training-domain selection only", file=sys.stderr)
        return EXIT_USAGE
    from data_tools.atomic import atomic_write_text
    from data_tools.names import parse_name_list
    from san.benchmark.figures import save_figures
    from san.benchmark.tables import (
        build_tables,
        chosen_epoch_histogram,
        chosen_epochs,
        count_runs,
        load_failures,
        load_runs,
        render,
    )

    try:
        runs = load_runs(
            args.dirs, args.selection, variants=parse_name_list(args.variants) if args.variants else ()
        )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if runs.empty:
        print(f"error: no complete run record (results.json) under {', '.join(args.dirs)}", file=sys.stderr)
        return EXIT_FAILED
    tables = build_tables(runs, load_failures(args.dirs, runs))
    if args.paired_against:
        from san.benchmark.paired import paired_table

        try:
            paired = paired_table(runs, args.paired_against)
        except ValueError as error:
            print(f"error: --paired-against: {error}", file=sys.stderr)
            return EXIT_USAGE
        tables += [paired] if paired is not None else []
    text = render(tables, args.format, n_runs=count_runs(runs))
    if args.chosen_epochs and args.format == "md":
        text += "\n#### Epoch chosen on val (training rivers only)\n\n" + chosen_epoch_histogram(
            chosen_epochs(args.dirs)
        )
    if args.out:
        print(f"wrote {atomic_write_text(args.out, text)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for path in save_figures(runs, args.figures) if args.figures else []:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK
