"""``scripts/quality_study.py``: data-quality studies through the benchmark runner."""

from __future__ import annotations

import argparse
import sys

from data_tools.commandline import add_data_argument, command_parser
from data_tools.quality_factors import STUDY_FACTORS
from san.benchmark.jobs import ALL_METHODS, GridError, parse_methods, parse_seeds
from san.cli.benchmark import add_grid_run_arguments, default_preset, run_grid
from san.cli.common import configure_logging, report_error
from san.evaluation.protocols import PROTOCOLS


def _classes(data: str | None) -> list[str]:
    """The classes of ``--data`` (the built-in synthetic set when None)."""
    from data_tools.manifest_io import load_dataset
    from data_tools.names import ordered_classes

    if data is None:
        from data_tools.synthetic import default_dataset  # imported only when needed

        data = str(default_dataset())
    return ordered_classes(load_dataset(data, progress=False).manifest["label"])


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = command_parser(
        "quality_study.py",
        "Corrupt the TRAINING split only (val, test and target stay clean) with one factor at "
        "several levels, one run per (level, protocol task, seed) plus the clean baseline, each "
        "in OUT/<method>/<task>/<factor>/<level>/seed<N>; complete runs are skipped, "
        "interrupted ones resumed. Writes OUT/<method>-<protocol>-<factor>.{md,csv,png}. "
        "Exit codes: 0 all complete, 1 a run failed, 2 usage error.",
    )
    add_data_argument(parser, "image tree or manifest CSV (default: the built-in synthetic dataset)")
    parser.add_argument("--method", required=True, metavar="NAME", help=f"one of {', '.join(ALL_METHODS)}")
    parser.add_argument("--factor", required=True, choices=STUDY_FACTORS, help="what to corrupt")
    parser.add_argument(
        "--levels",
        metavar="A,B",
        help="levels (default: label-noise 0-0.6 by 0.1; size 0.1-1 by 0.1; gaussian-noise "
        "2,8,16; salt-pepper 0.05,0.1,0.2,0.3,0.4; brightness 0.25,0.5,2,4; "
        "blur 0.5,1,2,4; class-removal every class)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="mixed",
        help="mixed (test within every river) or loro (hold each river out in turn: target "
        "accuracy too); default mixed",
    )
    parser.add_argument("--seeds", default="0,1,2", metavar="0,1,2", help="seeds (or a range like 0-4)")
    add_grid_run_arguments(parser, default_out="runs/quality-<preset>")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Plan, run and summarise the study; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    from data_tools.manifest_io import ManifestError
    from san.benchmark.jobs import open_benchmark_data
    from san.runtime import DeviceError
    from san.studies.quality import QualityExecutor, default_levels, expand_study, parse_levels, write_study

    try:
        methods, seeds = parse_methods(args.method), parse_seeds(args.seeds)
        if len(methods) != 1:
            raise GridError(f"--method: a study runs one method, got {args.method!r}")
        data = open_benchmark_data(args.data)
        if args.levels:
            levels = parse_levels(args.factor, args.levels)
        else:
            classes = _classes(args.data) if args.factor == "class-removal" else []
            levels = default_levels(args.factor, classes)
        jobs = expand_study(methods, [(args.protocol, None)], data.rivers, seeds, args.factor, levels)
        preset = args.preset or default_preset(args.device)
    except (GridError, FileNotFoundError, ManifestError, DeviceError) as error:
        return report_error(error)
    out = args.out or f"runs/quality-{preset}"
    print(
        f"{len(jobs)} run(s): {methods[0]}, {args.protocol}, {args.factor} at {len(levels)} level(s) "
        f"+ clean, seeds {','.join(map(str, seeds))}, preset {preset}, output {out}",
        file=sys.stderr,
    )
    code, summary = run_grid(args, jobs, data, out=out, preset=preset, wrap=QualityExecutor)
    if summary is None:
        return code
    markdown, paths = write_study(
        jobs, out, method=methods[0], protocol=args.protocol, factor=args.factor, levels=levels
    )
    print(markdown)
    print("wrote " + ", ".join(map(str, paths)))
    return code
