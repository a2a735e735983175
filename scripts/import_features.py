#!/usr/bin/env python
"""Convert the published feature release (<River>_<train|val>_<cross|plane>.txt) into a feature table CSV.

Exit codes: 0 written, 2 the folder is missing or the release is malformed (the message says where).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baselines.feature_table import (
    FeatureTableError,
    feature_columns,
    import_published_release,
    write_feature_table,
)
from data_tools.commandline import EXIT_OK, EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="import_features.py",
        description="Join the cross and plane rows of each sample of the published feature release into "
        "one feature table (sample_id, domain, label, split, cross_f000.., plane_f000..); the "
        "release's train part becomes split 'train', its val part 'test'. Train on it with "
        "scripts/train_baseline.py --features FILE.csv.",
    )
    parser.add_argument("directory", type=Path, help="folder holding the release's .txt files")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="feature table to write")
    args = parser.parse_args(argv)
    try:
        table = import_published_release(args.directory)
    except (FileNotFoundError, FeatureTableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_feature_table(table, args.out)
    print(f"{len(table)} samples, {len(feature_columns(table))} feature columns -> {args.out}")
    print(table.groupby(["domain", "split"]).size().to_string())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
