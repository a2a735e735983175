"""The ``import_features`` command: the published feature release as one feature table CSV.

Exit codes: 0 written, 2 the folder is missing or the release is malformed (the message says where).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_tools.commandline import EXIT_OK, EXIT_USAGE, add_data_argument, command_parser


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/import_features.py."""
    parser = command_parser(
        "import_features.py",
        "Join the cross and plane rows of each sample of the published feature release "
        "(<River>_<train|val>_<cross|plane>.txt) into one feature table (sample_id, domain, label, "
        "split, cross_f000.., plane_f000..); the release's train part becomes split 'train', its val "
        "part 'test'. Train on it with scripts/train_baseline.py --features FILE.csv. Exit codes: "
        "0 written, 2 the folder is missing or the release is malformed.",
    )
    add_data_argument(
        parser,
        "folder holding the release's .txt files",
        positional="RELEASE_DIR",
        required=True,
        metavar="RELEASE_DIR",
        type=Path,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="feature table to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = make_parser().parse_args(argv)
    from baselines.feature_table import (
        FeatureTableError,
        feature_columns,
        import_published_release,
        write_feature_table,
    )

    try:
        table = import_published_release(args.data)
    except (FileNotFoundError, FeatureTableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_feature_table(table, args.out)
    print(f"{len(table)} samples, {len(feature_columns(table))} feature columns -> {args.out}")
    print(table.groupby(["domain", "split"]).size().to_string())
    return EXIT_OK
