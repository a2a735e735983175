"""``scripts/benchmark.py``: run the benchmark grid, here or on a cluster."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.commandline import add_data_argument, add_jobs_argument, command_parser, positive_int
from data_tools.names import parse_name_list
from san.benchmark.jobs import (
    ALL_METHODS,
    PRESETS,
    GridError,
    expand_grid,
    loso_jobs,
    parse_methods,
    parse_protocols,
    parse_seeds,
)
from san.benchmark.launchers import LAUNCHERS, SUBMITIT_CLUSTERS, parse_shard, shard_jobs
from san.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_device_argument,
    configure_logging,
    report_error,
)
from san.runs.tracking import MODES, default_mode

# san.benchmark.ensemble.CRITERIA, written out: importing that module took about 4 s here (the
# CLI module alone 0.2 s), which --help would pay; a test checks the two agree.
ENSEMBLE_CRITERIA = ("nll", "accuracy")

if TYPE_CHECKING:
    from san.benchmark.jobs import BenchmarkData, JobExecutor
    from san.benchmark.runner import BenchmarkSummary

log = logging.getLogger("benchmark")


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except GridError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_grid_run_arguments(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """Flags shared by every command that runs a grid of jobs (benchmark, quality study)."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        help="cpu: configs/presets/cpu.yaml (small, fast); cpu-recipe: the issue-#13 training "
        "recipe on CPU (configs/presets/cpu-recipe.yaml); paper: each method's own paper-sized "
        "config (default: paper with a GPU, else cpu)",
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
    add_jobs_argument(
        parser,
        "parallel local processes, each with an equal share of the cores and, on a machine with "
        "several GPUs, one GPU each in turn (default 1); with --launcher submitit, at most N "
        "jobs at once on Slurm",
    )
    add_device_argument(
        parser,
        "device of every job: auto (default; local workers share the GPUs one each), cpu, cuda, "
        "cuda:N or mps",
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="i/N",
        help="run only the i-th of N disjoint parts of the job list (every N-th job from the i-th), "
        "e.g. 1/4 to 4/4 on four machines sharing --out; the others are left alone",
    )
    parser.add_argument(
        "--wandb",
        choices=MODES,
        default=default_mode(),
        help="W&B mode of every run (default offline, or $WANDB_MODE when set; a sweep agent passes online)",
    )
    parser.add_argument(
        "--wandb-artifacts",
        action="store_true",
        help="also log each run's model file and record as a W&B artifact (default: off)",
    )
    cluster = parser.add_argument_group("launcher")
    cluster.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: this machine (default); submitit: one Slurm job per benchmark job through "
        "submitit, then wait for them all",
    )
    cluster.add_argument(
        "--submitit-folder", metavar="DIR", help="submitit's job files and logs (default: OUT/submitit)"
    )
    cluster.add_argument(
        "--submitit-cluster",
        choices=SUBMITIT_CLUSTERS,
        default="auto",
        help="auto (default: Slurm when sbatch is found, else submitit's local executor, which starts "
        "every job at once), slurm, local, or debug (in this process)",
    )
    cluster.add_argument("--partition", metavar="NAME", help="Slurm partition (default: the cluster's)")
    cluster.add_argument(
        "--time", type=positive_int, default=240, metavar="MIN", help="time limit per job, minutes (240)"
    )
    cluster.add_argument("--gpus-per-job", type=int, default=0, metavar="N", help="GPUs per job (default 0)")
    cluster.add_argument(
        "--cpus-per-job", type=positive_int, default=4, metavar="N", help="cores per job (default 4)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and their state; run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log each run's progress messages")


def default_preset(device: str = "auto") -> str:
    """paper on a machine with a GPU (or when a GPU device is named), else cpu."""
    from san.runtime import resolve_device

    return "cpu" if resolve_device(device).type == "cpu" else "paper"


def _launcher(args: argparse.Namespace, out: str) -> Callable | None:
    """The submitit launcher the flags ask for, or None for local processes."""
    if args.launcher != "submitit":
        return None
    from san.benchmark.launchers import SubmititLauncher

    return SubmititLauncher(
        Path(args.submitit_folder or Path(out) / "submitit"),
        cluster=args.submitit_cluster,
        partition=args.partition,
        timeout_min=args.time,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        parallel=args.jobs if args.jobs > 1 else None,
    )


def _shared_gpus(device: str) -> int:
    """GPUs that local workers share one each: this machine's, when the device is auto or cuda."""
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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
    and mixed into the tables), then list (--dry-run) or run this shard's jobs and print the summary.

    ``wrap`` adapts the executor (e.g. a quality study's corruption settings). Returns the exit code
    and the summary (None when nothing ran).
    """
    from san.benchmark.jobs import JobExecutor
    from san.benchmark.runner import claim_output_dir, format_stale, plan, run_jobs, stale_jobs
    from san.runs.config import ConfigError

    if args.shard:
        jobs = shard_jobs(jobs, *args.shard)
    executor = JobExecutor(
        data=args.data,
        preset=preset,
        out=out,
        wandb_mode=args.wandb,
        overrides=tuple(args.overrides),
        device=args.device,
        wandb_artifacts=args.wandb_artifacts,
    )
    try:
        executor.check_settings(jobs)  # before the folder is claimed: a typo must not be recorded
    except ConfigError as error:
        return report_error(error), None
    try:
        claim_output_dir(
            out,
            {"preset": preset, "overrides": args.overrides, "manifest_hash": data.manifest_hash},
            record=not args.dry_run,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE, None
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
    try:
        summary = run_jobs(
            jobs,
            out,
            execute,
            workers=args.jobs,
            progress=not args.quiet,
            gpus=_shared_gpus(args.device),
            launcher=_launcher(args, out),
        )
    except GridError as error:
        return report_error(error), None
    print(summary.format(out))
    return (EXIT_FAILED if summary.failed else EXIT_OK), summary


def build_parser() -> argparse.ArgumentParser:
    """The command line (also read by the test that checks the W&B sweep files)."""
    parser = command_parser(
        "benchmark.py",
        "Run the benchmark grid: one job per method, protocol, held-out river and seed, each "
        "an ordinary run directory OUT/<method>/<protocol>[-<river>]/seed<N>. Complete jobs are "
        "skipped, interrupted ones resumed, failing ones recorded (failure.json) while the "
        "others go on. Then: python scripts/make_tables.py OUT. Exit codes: 0 all complete, "
        "1 a job failed, 2 usage error.",
    )
    add_data_argument(parser, "image tree or manifest CSV (default: the built-in synthetic dataset)")
    parser.add_argument(
        "--methods",
        "--method",
        dest="methods",
        default="all",
        metavar="all|A,B",
        help="methods to run: names and family names (classical, cnn, erm, san, dg, published), "
        f"comma-separated (default all = {','.join(ALL_METHODS)})",
    )
    parser.add_argument(
        "--protocols",
        "--protocol",
        dest="protocols",
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
        "--hparams-trials",
        type=positive_int,
        default=1,
        metavar="N",
        help="random hyper-parameter search: N trials per deep job (trial 0 = the defaults), each a run "
        "directory <job>/trial<k>; the best by val accuracy (training rivers only) becomes the job's "
        "result, with the chosen values in its record (default 1: no search)",
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="A,B",
        help="after the grid: an ensemble of these methods' runs per task and seed (calibrated "
        "probabilities averaged, weights chosen on val), written as method ens-A-B (repeatable)",
    )
    parser.add_argument(
        "--ensemble-criterion",
        choices=ENSEMBLE_CRITERIA,
        default="nll",
        help="how --ensemble chooses its weights on val: nll (lowest val negative log-likelihood, "
        "ties by accuracy; default) or accuracy (best val accuracy, ties by NLL)",
    )
    parser.add_argument(
        "--loso",
        action="store_true",
        help="also run, for every deep loro job, one leave-one-source-out validation job per source "
        "river (trained on the other sources, scored on it) for make_tables.py --selection loso",
    )
    add_grid_run_arguments(parser, default_out="runs/benchmark-<preset>")
    return parser


def plan_grid(args: argparse.Namespace) -> tuple[list[Any], BenchmarkData]:
    """The jobs the flags describe and what the benchmark knows of the data.

    Raises:
        GridError, FileNotFoundError, data_tools.manifest_io.ManifestError: bad flags or data.
    """
    from san.benchmark.jobs import open_benchmark_data

    methods, seeds = parse_methods(args.methods), parse_seeds(args.seeds)
    protocols = parse_protocols(args.protocols or "mixed,loro")
    data = open_benchmark_data(args.data)
    if args.protocols is None and len(data.rivers) < 2:
        log.warning("the data hold one river (%s): running the mixed protocol only", data.rivers[0])
        protocols = [("mixed", None)]
    jobs = expand_grid(methods, protocols, data.rivers, seeds, parse_name_list(args.targets) or None)
    if getattr(args, "loso", False):
        jobs += loso_jobs(jobs)
    return jobs, data


def main(argv: list[str] | None = None) -> int:
    """Parse, plan and run the benchmark; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    from data_tools.manifest_io import ManifestError
    from san.benchmark.ensemble import build_benchmark_ensembles
    from san.benchmark.hparam_search import TrialExecutor, expand_trials, select_trials
    from san.runtime import DeviceError

    try:
        jobs, data = plan_grid(args)
        if args.loso and args.hparams_trials > 1:
            raise GridError(
                "--loso and --hparams-trials: the leave-one-source-out runs cannot follow "
                "each job's chosen trial yet; run them separately"
            )
        jobs = expand_trials(jobs, args.hparams_trials)
        preset = args.preset or default_preset(args.device)
    except (GridError, FileNotFoundError, ManifestError, DeviceError) as error:
        return report_error(error)
    out = args.out or f"runs/benchmark-{preset}"
    print(
        f"{len(jobs)} job(s), preset {preset}, rivers {', '.join(data.rivers)}"
        f"{' (synthetic data)' if data.synthetic else ''}, output {out}"
        + (f", shard {args.shard[0]}/{args.shard[1]}" if args.shard else ""),
        file=sys.stderr,
    )
    wrap = TrialExecutor if args.hparams_trials > 1 else None
    code, _ = run_grid(args, jobs, data, out=out, preset=preset, wrap=wrap)
    if args.dry_run:
        return code
    if args.hparams_trials > 1:
        print(f"hyper-parameter search: {len(select_trials(jobs, out))} job(s) chose a trial on val")
    for spec in args.ensemble:
        try:
            evaluated = [job for job in jobs if job.protocol != "loso"]  # not the selection's runs
            written, skipped = build_benchmark_ensembles(
                evaluated, out, parse_name_list(spec), criterion=args.ensemble_criterion
            )
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"ensemble {spec}: {len(written)} run(s) written" + "".join(f"\n  skipped {s}" for s in skipped)
        )
    return code
