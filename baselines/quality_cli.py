"""``scripts/quality_study.py``: data-quality studies through the benchmark runner."""

from __future__ import annotations

import argparse
import logging
import sys

import baselines  # noqa: F401  (registers vgg16 and resnet34; spawned workers re-import this script)
from baselines.benchmark_cli import positive_int
from baselines.experiment import run_classical_experiment
from data_tools.manifest_io import ManifestError, load_dataset
from data_tools.names import ordered_classes
from san.jobs import (
    ALL_METHODS,
    PRESETS,
    GridError,
    JobExecutor,
    open_benchmark_data,
    parse_methods,
    parse_seeds,
)
from san.quality_study import (
    STUDY_FACTORS,
    QualityExecutor,
    default_levels,
    expand_study,
    parse_levels,
    write_study,
)
from san.runner import claim_output_dir, plan, run_jobs
from san.runtime import resolve_device
from san.tracking import MODES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _classes(data: str | None) -> list[str]:
    """The classes of ``--data`` (the built-in synthetic set when None)."""
    if data is None:
        from data_tools.synthetic import default_dataset  # imported only when needed

        data = str(default_dataset())
    return ordered_classes(load_dataset(data, progress=False).manifest["label"])


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="quality_study.py",
        description="Corrupt the TRAINING split only (val, test and target stay clean) with one factor at "
                    "several levels, one run per (level, protocol task, seed) plus the clean baseline, each "
                    "in OUT/<method>/<task>/<factor>/<level>/seed<N>; complete runs are skipped, "
                    "interrupted ones resumed. Writes OUT/<method>-<protocol>-<factor>.{md,csv,png}. "
                    "Exit codes: 0 all complete, 1 a run failed, 2 usage error.")
    parser.add_argument("--data", metavar="ROOT|MANIFEST.csv",
                        help="image tree or manifest CSV (default: the built-in synthetic dataset)")
    parser.add_argument("--method", required=True, metavar="NAME", help=f"one of {', '.join(ALL_METHODS)}")
    parser.add_argument("--factor", required=True, choices=STUDY_FACTORS, help="what to corrupt")
    parser.add_argument("--levels", metavar="A,B",
                        help="levels (default: label-noise 0-0.6 by 0.1; size 0.1-1 by 0.1; gaussian-noise "
                             "2,8,16; salt-pepper 0.05,0.1,0.2,0.3,0.4; brightness 0.25,0.5,2,4; "
                             "blur 0.5,1,2,4; class-removal every class)")
    parser.add_argument("--protocol", choices=("mixed", "loro"), default="mixed",
                        help="mixed (test within every river) or loro (hold each river out in turn: target "
                             "accuracy too); default mixed")
    parser.add_argument("--seeds", default="0,1,2", metavar="0,1,2", help="seeds (or a range like 0-4)")
    parser.add_argument("--preset", choices=PRESETS, help="cpu or paper (default: paper on a GPU, else cpu)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to every run, e.g. --set epochs=1 (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/quality-<preset>)")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="parallel processes")
    parser.add_argument("--wandb", choices=MODES, default="offline", help="W&B mode of every run")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state; run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log each run's progress messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Plan, run and summarise the study; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
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
    except GridError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    preset = args.preset or ("paper" if resolve_device("auto").type == "cuda" else "cpu")
    out = args.out or f"runs/quality-{preset}"
    print(f"{len(jobs)} run(s): {methods[0]}, {args.protocol}, {args.factor} at {len(levels)} level(s) "
          f"+ clean, seeds {','.join(map(str, seeds))}, preset {preset}, output {out}", file=sys.stderr)
    try:
        settings = {"preset": preset, "overrides": args.overrides, "manifest_hash": data.manifest_hash}
        claim_output_dir(out, settings, record=not args.dry_run)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        for job, state in plan(jobs, out):
            print(f"{job.name}\t{state}")
        return EXIT_OK
    base = JobExecutor(data=args.data, preset=preset, out=out, wandb_mode=args.wandb,
                       overrides=tuple(args.overrides), classical=run_classical_experiment)
    execute = QualityExecutor(base)
    summary = run_jobs(jobs, out, execute, workers=args.jobs, progress=not args.quiet)
    print(summary.format(out))
    markdown, paths = write_study(jobs, out, method=methods[0], protocol=args.protocol, factor=args.factor,
                                  levels=levels)
    print(markdown)
    print("wrote " + ", ".join(map(str, paths)))
    return EXIT_FAILED if summary.failed else EXIT_OK

