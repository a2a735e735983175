"""The ``data_report`` command: report a dataset's defects before training. See ``--help``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_data_argument,
    add_jobs_argument,
    command_parser,
    image_side,
)
from data_tools.report.settings import ReportSettings

_DEFAULTS = ReportSettings()


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/data_report.py."""
    parser = command_parser(
        "data_report.py",
        "Write a Markdown report (with PNG figures, report.json and image_statistics.csv) of "
        "a dataset's defects: pairs per river x class and imbalance, image sizes and formats, brightness/"
        "contrast/colour/sharpness/clipping per river and polarization with IQR-rule outliers, exact and "
        "near duplicates (and leakage across labels, rivers or a run's splits), unreadable and unpaired "
        "files, and a closing what-to-fix list, worst first. Prints a short summary. Exit codes: 0 report "
        "written; 1 report written and the what-to-fix list has a critical or high entry (leakage, "
        "unreadable or unpaired files); 2 usage error.",
    )
    add_data_argument(
        parser,
        "an image tree, or a manifest CSV (paths relative to it)",
        positional="DATA",
        required=True,
        type=Path,
    )
    parser.add_argument(
        "--layout",
        metavar="TEMPLATE",
        help="tree only: path template with fields {domain} {split} {pol} {label} {name}, e.g. "
        "'{label}Data/{pol}/{name}'. Default: detect {domain}/{pol}/{label}/{name} or "
        "{domain}/{split}/{pol}/{label}/{name}",
    )
    parser.add_argument(
        "--domain", metavar="NAME", help="tree only: river name for a tree without a domain level"
    )
    parser.add_argument(
        "--split",
        type=Path,
        metavar="SPLIT.csv",
        help="a run's split.csv (sample_id, domain, label, split): duplicates across splits are then "
        "reported as leakage",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="report folder (default: reports/<data name> under the current folder; never inside the tree)",
    )
    parser.add_argument(
        "--size",
        type=image_side,
        default=_DEFAULTS.size,
        help="working size in px: images are centre-cropped and resized to it before measuring and "
        "hashing (default %(default)s)",
    )
    parser.add_argument(
        "--near-distance",
        type=int,
        default=_DEFAULTS.near_distance,
        metavar="BITS",
        help="two pairs are near duplicates when their PPL images' 256-bit pHashes and their XPL images' "
        "pHashes each differ in at most BITS bits, under the same rotation or mirroring (default "
        "%(default)s: distinct synthetic pairs are 50 or more apart, re-encoded or resized copies 30 or "
        "less; 0 finds only visually identical pairs)",
    )
    parser.add_argument(
        "--no-rotations",
        action="store_true",
        help="do not count rotated (90 degree steps) or mirrored copies as duplicates",
    )
    parser.add_argument(
        "--iqr-k",
        type=float,
        default=_DEFAULTS.iqr_k,
        metavar="K",
        help="outlier fences at Q1 - K*IQR and Q3 + K*IQR per river x polarization "
        "(default %(default)s; 3 flags only far-out values)",
    )
    parser.add_argument(
        "--imbalance-limit",
        type=float,
        default=_DEFAULTS.imbalance_limit,
        metavar="RATIO",
        help="flag rivers whose largest / smallest class exceeds RATIO (default %(default)s)",
    )
    parser.add_argument(
        "--large-file-mb",
        type=float,
        default=_DEFAULTS.large_file_mb,
        metavar="MB",
        help="flag files larger than MB megabytes (default %(default)s)",
    )
    add_jobs_argument(parser, "threads for decoding (default: the number of cores)", default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = make_parser().parse_args(argv)
    from data_tools.layout import LayoutError
    from data_tools.manifest_io import ManifestError
    from data_tools.report.build import build_report, summary_lines
    from data_tools.report.inputs import ReportInputError

    settings = ReportSettings(
        size=args.size,
        near_distance=args.near_distance,
        dihedral=not args.no_rotations,
        iqr_k=args.iqr_k,
        imbalance_limit=args.imbalance_limit,
        large_file_mb=args.large_file_mb,
        workers=args.jobs,
        progress=not args.quiet,
    )
    try:
        report = build_report(
            args.data, args.out, layout=args.layout, domain=args.domain, split=args.split, settings=settings
        )
    except (FileNotFoundError, LayoutError, ManifestError, ReportInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(summary_lines(report)))
    serious = any(fix.severity in ("critical", "high") for fix in report.fixes)
    return EXIT_FAILED if serious else EXIT_OK
