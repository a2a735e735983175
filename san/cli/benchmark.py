"""``scripts/benchmark.py``: run the benchmark grid."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from data_tools.commandline import positive_int
from data_tools.manifest_io import ManifestError
from data_tools.names import parse_name_list
from san.benchmark.jobs import (
    ALL_METHODS,
    PRESETS,
    BenchmarkData,
    GridError,
    JobExecutor,
    expand_grid,
    loso_jobs,
    open_benchmark_data,
    parse_methods,
    parse_protocols,
    parse_seeds,
)
from san.benchmark.runner import BenchmarkSummary, claim_output_dir, format_stale, plan, run_jobs, stale_jobs
from san.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, configure_logging, report_error
from san.runs.tracking import MODES
from san.runtime import resolve_device

log = logging.getLogger("benchmark")


def add_grid_run_arguments(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """Flags shared by every command that runs a grid of jobs (benchmark, quality study)."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        help="cpu: configs/presets/cpu.yaml (small, fast); paper: each method's own "
        "paper-sized config (default: paper with a GPU, else cpu)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override passed to every job, e.g. --set epochs=1 (repeatable)",
    )
    parser.add_argument("--out", metavar="DIR", help=f"output folder (default: {default_out})")
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="parallel processes, each with an equal share of the cores (default 1)",
    )
    parser.add_argument(
        "--wandb",
        choices=MODES,
        default="offline",
        help="W&B mode of every run (default offline; a sweep agent passes online)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and their state; run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log each run's progress messages")


def default_preset() -> str:
    """paper on a machine with a GPU, else cpu."""
    return "paper" if resolve_device("auto").type == "cuda" else "cpu"


def run_grid(
    args: argparse.Namespace,
    jobs: list,
    data: BenchmarkData,
    *,
    out: str,
    preset: str,
    wrap: Callable[[JobExecutor], Callable] | None = None,
) -> tuple[int, BenchmarkSummary | None]:
    """Claim the output folder, refuse complete runs made with other settings (they would be skipped
    and mixed into the tables), then list (--dry-run) or run the jobs and print the summary.

    ``wrap`` adapts the executor (e.g. a quality study's corruption settings). Returns the exit code
    and the summary (None when nothing ran).
    """
    try:
        claim_output_dir(
            out,
            {"preset": preset, "overrides": args.overrides, "manifest_hash": data.manifest_hash},
            record=not args.dry_run,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE, None
    executor = JobExecutor(
        data=args.data,
        preset=preset,
        out=out,
        wandb_mode=args.wandb,
        overrides=tuple(args.overrides),
    )
    planned = plan(jobs, out)
    stale = stale_jobs(planned, out, executor.changed_settings)
    if args.dry_run:
        changed = dict(stale)
        for job, state in planned:
            print(f"{job.name}\t{'stale: ' + '; '.join(changed[job]) if job in changed else state}")
        return EXIT_OK, None
    if stale:
        print(f"error: {format_stale(stale, out)}", file=sys.stderr)
        return EXIT_USAGE, None
    execute: Callable = executor if wrap is None else wrap(executor)
    summary = run_jobs(jobs, out, execute, workers=args.jobs, progress=not args.quiet)
    print(summary.format(out))
    return (EXIT_FAILED if summary.failed else EXIT_OK), summary


def build_parser() -> argparse.ArgumentParser:
    """The command line (also read by the test that checks the W&B sweep files)."""
    parser = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Run the benchmark grid: one job per method, protocol, held-out river and seed, each "
        "an ordinary run directory OUT/<method>/<protocol>[-<river>]/seed<N>. Complete jobs are "
        "skipped, interrupted ones resumed, failing ones recorded (failure.json) while the "
        "others go on. Then: python scripts/make_tables.py OUT. Exit codes: 0 all complete, "
        "1 a job failed, 2 usage error.",
    )
    parser.add_argument(
        "--data",
        metavar="ROOT|MANIFEST.csv",
        help="image tree or manifest CSV (default: the built-in synthetic dataset)",
    )
    parser.add_argument(
        "--methods",
        default="all",
        metavar="all|A,B",
        help="methods to run: names and family names (classical, cnn, erm, san, dg, published), "
        f"comma-separated (default all = {','.join(ALL_METHODS)})",
    )
    parser.add_argument(
        "--protocols",
        metavar="mixed,loro",
        help="mixed (train and test within every river), loro (hold each river out in turn) "
        "or loro-<river> (that river only); default mixed,loro (mixed only when the "
        "data hold one river)",
    )
    parser.add_argument(
        "--targets", metavar="A,B", help="held-out rivers of the loro jobs (default: every river)"
    )
    parser.add_argument(
        "--seeds", default="0,1,2", metavar="0,1,2", help="seeds (a range like 0-4 also works)"
    )
    parser.add_argument(
        "--loso",
        action="store_true",
        help="also run, for every deep loro job, one leave-one-source-out validation job per source "
        "river (trained on the other sources, scored on it) for make_tables.py --selection loso",
    )
    add_grid_run_arguments(parser, default_out="runs/benchmark-<preset>")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, plan and run the benchmark; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        methods, seeds = parse_methods(args.methods), parse_seeds(args.seeds)
        protocols = parse_protocols(args.protocols or "mixed,loro")
        data = open_benchmark_data(args.data)
        if args.protocols is None and len(data.rivers) < 2:
            log.warning("the data hold one river (%s): running the mixed protocol only", data.rivers[0])
            protocols = [("mixed", None)]
        jobs = expand_grid(methods, protocols, data.rivers, seeds, parse_name_list(args.targets) or None)
        if args.loso:
            jobs += loso_jobs(jobs)
    except (GridError, FileNotFoundError, ManifestError) as error:
        return report_error(error)
    preset = args.preset or default_preset()
    out = args.out or f"runs/benchmark-{preset}"
    print(
        f"{len(jobs)} job(s), preset {preset}, rivers {', '.join(data.rivers)}"
        f"{' (synthetic data)' if data.synthetic else ''}, output {out}",
        file=sys.stderr,
    )
    code, _ = run_grid(args, jobs, data, out=out, preset=preset)
    return code
