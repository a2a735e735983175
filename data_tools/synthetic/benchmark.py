"""The ``benchmark_synthetic`` command: how fast the synthetic generator is, and where a pair's time goes.

Whole runs of ``generate_dataset`` are timed end to end (each into a new temporary folder, with
the given worker count); the per-stage breakdown comes from rendering the pairs of a (smaller) set
in this process, one after the other. ``--reference`` also checks that the first run wrote files
byte-identical to a reference set. Every figure is a median over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    add_jobs_argument,
    command_parser,
    positive_int,
)
from data_tools.synthetic.checks import MAX_SIZE, MIN_SIZE
from data_tools.synthetic.stages import StageTimes


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compare_trees(ours: Path, reference: Path) -> tuple[int, list[str], list[str]]:
    """Compare every file under ``ours`` with the file at the same path under ``reference``, byte for byte.

    Returns:
        The number of files compared, the relative paths that differ (or are absent from the
        reference), and the reference's files that ``ours`` lacks.
    """
    mine = {p.relative_to(ours) for p in ours.rglob("*") if p.is_file()}
    theirs = {p.relative_to(reference) for p in reference.rglob("*") if p.is_file()}
    different = sorted(
        str(path)
        for path in mine
        if path not in theirs or (ours / path).read_bytes() != (reference / path).read_bytes()
    )
    return len(mine), different, sorted(str(path) for path in theirs - mine)


def stage_breakdown(runs: int, *, scale: float, size: int, seed: int) -> tuple[int, dict[str, float]]:
    """Render a set's pairs in this process ``runs`` times; median wall seconds per pair of each stage.

    Returns:
        The number of pairs and, per stage in pipeline order, its median seconds per pair.
    """
    from data_tools.synthetic.generate import class_counts, dataset_tasks, render_and_write

    tasks = dataset_tasks(class_counts(scale))
    per_run = []
    for _ in range(runs):
        times = StageTimes()
        with tempfile.TemporaryDirectory() as out:
            for task in tasks:
                render_and_write(Path(out), task, seed, size, 1.0, times)
        per_run.append(times.seconds)
    return len(tasks), {
        stage: statistics.median(run[stage] for run in per_run) / len(tasks) for stage in per_run[0]
    }


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/benchmark_synthetic.py."""
    parser = command_parser(
        "benchmark_synthetic.py",
        "Time the synthetic generator: whole runs of make_synthetic's generate_dataset (pairs/s, "
        "wall and CPU seconds, median of --runs) and a per-stage breakdown of one process "
        "rendering a smaller set. Exit codes: 0 done, 1 files differ from --reference, "
        "2 bad arguments.",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="factor on the published counts of the timed runs (default: 1.0, 1,654 pairs)",
    )
    parser.add_argument(
        "--size", type=int, default=128, help=f"image side in pixels, {MIN_SIZE}..{MAX_SIZE} (default: 128)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_jobs_argument(parser, "processes of the timed runs (default: the CPU count)", default=None)
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="runs to take the medians over (default: 3)"
    )
    parser.add_argument(
        "--stage-scale",
        type=float,
        default=0.1,
        help="factor on the published counts for the per-stage breakdown; 0 skips it "
        "(default: 0.1, 168 pairs)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="DIR",
        help="a set written with the same parameters: check the first run's files against it",
    )
    return parser


def _report_identity(out: Path, reference: Path) -> bool:
    compared, different, unwritten = compare_trees(out, reference)
    if different:
        print(f"identity vs {reference}: {len(different)} of {compared} files DIFFER, e.g. {different[:3]}")
    else:
        print(f"identity vs {reference}: {compared} files compared, all byte-identical")
    if unwritten:
        print(f"  ({len(unwritten)} files of the reference were not written by this run)")
    return not different and not unwritten


def main(argv: list[str] | None = None) -> int:
    """Run benchmark_synthetic; returns the exit code (argparse exits with 2 on bad arguments)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    from data_tools.synthetic.generate import generate_dataset  # after --help: it loads scipy and cv2

    if args.stage_scale < 0:
        parser.error(f"--stage-scale must be >= 0, got {args.stage_scale}")
    if args.reference is not None and not args.reference.is_dir():
        parser.error(f"--reference {str(args.reference)!r} is not a folder")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(1 / 5 / 15 min)"
    )
    identical = True
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            out = Path(scratch) / f"run{run}"
            cpu, start = _cpu_seconds(), time.perf_counter()
            try:
                description = generate_dataset(
                    out,
                    seed=args.seed,
                    scale=args.scale,
                    size=args.size,
                    workers=args.jobs,
                    progress=False,
                )
            except ValueError as error:
                parser.error(str(error))
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu_seconds() - cpu)
            pairs = description["total_pairs"]
            print(
                f"run {run + 1}: {pairs} pairs in {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU: "
                f"{pairs / walls[-1]:.1f} pairs/s"
            )
            if run == 0 and args.reference is not None:
                identical = _report_identity(out, args.reference)
    wall = statistics.median(walls)
    print(
        f"median of {args.runs}: {wall:.2f} s wall, {statistics.median(cpus):.2f} s CPU, "
        f"{pairs / wall:.1f} pairs/s ({args.size} px, workers {args.jobs or os.cpu_count()})"
    )
    if args.stage_scale > 0:
        count, stages = stage_breakdown(args.runs, scale=args.stage_scale, size=args.size, seed=args.seed)
        total = sum(stages.values())
        print(f"stages (one process, {count} pairs, median of {args.runs}):")
        for name, seconds in stages.items():
            print(f"  {name:20s} {seconds * 1e3:7.2f} ms/pair {100 * seconds / total:5.1f}%")
        print(f"  {'total':20s} {total * 1e3:7.2f} ms/pair ({1 / total:.1f} pairs/s per process)")
    print(f"load average now {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return EXIT_OK if identical else EXIT_FAILED
