"""Run a list of benchmark jobs: idempotent, resumable, failure-tolerant, optionally in parallel processes.

A job whose run directory holds a complete ``results.json`` is skipped; an unfinished one is
continued from its checkpoint when it has one, else wiped and run again; a job that raises gets a
``failure.json`` beside its files and the others go on. Each job is claimed first
(:mod:`san.benchmark.claims`), so several runners may share one output folder: a job another live
process holds is left to it, never wiped or run twice. Worker processes die with their parent.
The executor is a parameter
(``execute(job, run_dir, resume) -> record``), so this module knows no method and never imports
``baselines``.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data_tools.atomic import atomic_write_text
from san.benchmark.claims import claimed, describe_owner, holder
from san.benchmark.jobs import Job
from san.benchmark.launchers import use_worker_gpu, worker_gpus
from san.benchmark.remaining_time import RemainingTime
from san.runs.lifecycle import CHECKPOINT_FILE, REQUEST_FILE
from san.runs.records import read_record

Executor = Callable[[Job, Path, bool], dict[str, Any]]
Launcher = Callable[[Sequence[Job], "str | Path", Executor, Callable[["JobOutcome"], None]], None]

FAILURE_FILE = "failure.json"
SETTINGS_FILE = "benchmark.json"
JOB_STATES = ("complete", "running", "resumable", "failed", "incomplete", "new")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOKY_MAX_CPU_COUNT")


def job_state(run_dir: Path) -> str:
    """One of :data:`JOB_STATES`: ``complete`` (a results.json with status complete), ``running``
    (claimed by a live process), ``resumable`` (a checkpoint and its request), ``failed`` (a
    failure.json), ``incomplete`` (anything else), ``new``."""
    state = _files_state(run_dir)
    return "running" if state != "complete" and holder(run_dir) is not None else state


def _files_state(run_dir: Path) -> str:
    """:func:`job_state` from the files alone (what the claim's holder sees)."""
    record = read_record(run_dir)
    if record is not None and record.get("status") == "complete":
        return "complete"
    if (run_dir / CHECKPOINT_FILE).is_file() and (run_dir / REQUEST_FILE).is_file():
        return "resumable"
    if (run_dir / FAILURE_FILE).is_file():
        return "failed"
    return "incomplete" if run_dir.exists() else "new"


def plan(jobs: Iterable[Job], out: str | Path) -> list[tuple[Job, str]]:
    """Each job with its current state (what a run would do: skip, resume, or run)."""
    return [(job, job_state(job.run_dir(out))) for job in jobs]


def stale_jobs(
    planned: Iterable[tuple[Job, str]], out: str | Path, changed: Callable[[Job, dict[str, Any]], list[str]]
) -> list[tuple[Job, list[str]]]:
    """Complete jobs whose recorded settings differ from what they would use now, with the differences.

    ``planned`` is :func:`plan`'s output; ``changed(job, record)`` lists the differences (see
    :meth:`san.benchmark.jobs.JobExecutor.changed_settings`).
    """
    stale = []
    for job, state in planned:
        if state == "complete" and (changes := changed(job, read_record(job.run_dir(out)) or {})):
            stale.append((job, changes))
    return stale


def format_stale(stale: Sequence[tuple[Job, list[str]]], out: str | Path, shown: int = 10) -> str:
    """The error for runs made with other settings: which, how they differ, and what to do."""
    lines = [
        f"{len(stale)} complete run(s) in {out} were made with settings that differ from the current "
        "config files, so they would be skipped and mixed into the tables:"
    ]
    lines += [
        f"  {job.name}: {'; '.join(changes[:3])}{' ...' * (len(changes) > 3)}"
        for job, changes in stale[:shown]
    ]
    if len(stale) > shown:
        lines.append(f"  ... and {len(stale) - shown} more")
    lines.append(
        "use another --out, or delete those run directories to re-run them with the current settings"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job: ``ran``, ``resumed``, ``skipped`` (already complete), ``failed`` or
    ``elsewhere`` (another live process holds it; ``error`` says which)."""

    job: Job
    status: str
    seconds: float = 0.0
    error: str = ""


def _one_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


def write_failure(run_dir: Path, job: Job, error: BaseException, seconds: float) -> Path:
    """Write ``failure.json`` (job, error, traceback, host, time) atomically; returns its path."""
    failure = {
        "status": "failed",
        "job": job.as_dict(),
        "error_type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
        "seconds": round(seconds, 2),
        "host": platform.node(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return atomic_write_text(run_dir / FAILURE_FILE, json.dumps(failure, indent=2) + "\n")


def run_job(job: Job, out: str | Path, execute: Executor) -> JobOutcome:
    """Claim and run one job unless it is complete; never raises for a failing job (it is recorded).

    A job another live process has claimed is left alone (``elsewhere``). Under the claim, an
    unfinished run directory with a checkpoint is resumed; any other leftover is removed first, so a
    rerun never mixes files of two attempts.
    """
    run_dir = job.run_dir(out)
    with claimed(run_dir, label=job.name) as claim:
        if claim is None:
            owner = holder(run_dir)
            return JobOutcome(job, "elsewhere", error=f"held by {describe_owner(owner or {})}")
        return _run_claimed(job, run_dir, execute)


def _run_claimed(job: Job, run_dir: Path, execute: Executor) -> JobOutcome:
    state = _files_state(run_dir)
    if state == "complete":  # finished by another process between planning and claiming
        return JobOutcome(job, "skipped")
    resume = state == "resumable"
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        execute(job, run_dir, resume)
        if _files_state(run_dir) != "complete":
            raise RuntimeError(f"the executor returned but {run_dir} holds no complete results.json")
    except Exception as error:  # a failing job is recorded and the benchmark goes on
        seconds = time.perf_counter() - started
        write_failure(run_dir, job, error, seconds)
        return JobOutcome(job, "failed", seconds, _one_line(error))
    return JobOutcome(job, "resumed" if resume else "ran", time.perf_counter() - started)


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """A fair share of the cores for each of ``workers`` processes (at least one)."""
    return max(1, available_cores() // max(1, workers))


def limit_threads(threads: int) -> None:
    """Cap torch, BLAS/OpenMP and joblib in this process to ``threads``."""
    for variable in THREAD_VARIABLES:  # for libraries loaded later (torch reads them when it starts)
        os.environ[variable] = str(threads)
    threadpool_limits(limits=threads)  # for BLAS/OpenMP already loaded
    if (torch := sys.modules.get("torch")) is not None:
        torch.set_num_threads(threads)


def die_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """End this process when ``parent_pid`` ends, however it ends (kill -9 included).

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``). Everywhere:
    a daemon thread that exits once the parent pid is no longer our parent (we were re-parented).
    Without this, a killed runner's workers finish their job and then block forever on its pipe.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watchdog still covers it
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(threads: int, parent_pid: int, gpus: Any) -> None:
    """A local worker's initializer: die with the parent, take its GPU (one slot from the ``gpus``
    queue), then a fair share of the cores."""
    die_with_parent(parent_pid)
    try:
        gpu = gpus.get(timeout=60)
    except queue.Empty:  # never expected (one slot per worker); without a slot, CUDA is left alone
        gpu = None
    use_worker_gpu(gpu)
    limit_threads(threads)


def collect(future: Any, job: Job, out: str | Path) -> JobOutcome:
    """The outcome of a future (or a submitit job: anything with ``result()``); a worker that died
    (or could not run the job) counts as that job's failure, recorded unless another process has
    claimed the job since."""
    try:
        return future.result()
    except Exception as error:
        with claimed(job.run_dir(out), label=job.name) as claim:
            if claim is not None:
                write_failure(job.run_dir(out), job, error, 0.0)
        return JobOutcome(job, "failed", 0.0, _one_line(error))


def _run_in_processes(
    jobs: Sequence[Job],
    out: str | Path,
    execute: Executor,
    workers: int,
    finish: Callable[[JobOutcome], None],
    gpus: int = 0,
) -> None:
    """Run jobs in ``workers`` spawned processes, each limited to its share of the cores and, with
    ``gpus`` GPUs, to one of them (:func:`san.benchmark.launchers.worker_gpus`)."""
    context = get_context("spawn")
    slots = context.Queue()
    for gpu in worker_gpus(workers, gpus, os.environ.get("CUDA_VISIBLE_DEVICES")):
        slots.put(gpu)
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads_per_worker(workers), os.getpid(), slots),
    ) as pool:
        # Longest first, so that no long job starts last while the other workers idle.
        ordered = sorted(jobs, key=lambda job: job.expected_cost, reverse=True)
        futures = {pool.submit(run_job, job, out, execute): job for job in ordered}
        try:
            for future in as_completed(futures):
                finish(collect(future, futures[future], out))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


@dataclass
class BenchmarkSummary:
    """Every job's outcome, in grid order, and the wall time of the whole invocation."""

    outcomes: list[JobOutcome]
    wall_seconds: float

    def counts(self) -> Counter[str]:
        """Number of jobs per status."""
        return Counter(o.status for o in self.outcomes)

    @property
    def failed(self) -> list[JobOutcome]:
        """The failed jobs' outcomes."""
        return [o for o in self.outcomes if o.status == "failed"]

    def method_seconds(self) -> dict[str, tuple[float, int]]:
        """Per method: the summed time of its jobs run in this invocation, and how many ran."""
        totals: dict[str, tuple[float, int]] = {}
        for outcome in self.outcomes:
            if outcome.status not in ("skipped", "elsewhere"):
                seconds, jobs = totals.get(outcome.job.method, (0.0, 0))
                totals[outcome.job.method] = (seconds + outcome.seconds, jobs + 1)
        return totals

    def format(self, out: str | Path) -> str:
        """The closing report: counts, failed jobs with their error, total and per-method time."""
        counts = self.counts()
        ran = counts["ran"] + counts["resumed"]
        resumed = f" ({counts['resumed']} resumed)" if counts["resumed"] else ""
        lines = [
            f"{len(self.outcomes)} job(s): {ran} ran{resumed}, {counts['skipped']} skipped "
            f"(already complete), {counts['failed']} failed"
            + (f", {counts['elsewhere']} left to another process" if counts["elsewhere"] else "")
        ]
        if elsewhere := [o for o in self.outcomes if o.status == "elsewhere"]:
            lines.append("running in another process (run this command again once it has finished):")
            lines += [f"  {o.job.name}  {o.error}" for o in elsewhere]
        if self.failed:
            lines.append("failed (details in each run directory's failure.json):")
            width = max(len(o.job.name) for o in self.failed)
            lines += [f"  {o.job.name:<{width}}  {o.error}" for o in self.failed]
        lines.append(f"wall time: {format_duration(self.wall_seconds)} in total")
        if per_method := self.method_seconds():
            width = max(len(m) for m in per_method)
            lines.append("time per method (sum over its jobs; with --jobs N they overlap):")
            lines += [
                f"  {method:<{width}}  {format_duration(seconds)}  ({jobs} job{'s' * (jobs != 1)})"
                for method, (seconds, jobs) in per_method.items()
            ]
        lines.append(f"results: {out}  (tables: python scripts/make_tables.py {out})")
        return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42.1 s``, ``12 min 05 s`` or ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def run_jobs(
    jobs: Sequence[Job],
    out: str | Path,
    execute: Executor,
    *,
    workers: int = 1,
    progress: bool = True,
    gpus: int = 0,
    launcher: Launcher | None = None,
) -> BenchmarkSummary:
    """Run every job that is not complete; returns the outcomes (never raises for a failing job).

    Args:
        jobs: the grid (see :func:`san.benchmark.jobs.expand_grid`).
        out: the output folder; job ``j`` writes ``j.run_dir(out)``.
        execute: ``execute(job, run_dir, resume) -> record``; it must write ``results.json``. With
            ``workers > 1`` or a launcher it must be picklable (a module-level function or a
            dataclass instance).
        workers: parallel processes (spawned, each limited to a fair share of the cores); 1 runs
            in this process.
        progress: show a progress bar over jobs.
        gpus: GPUs the local worker processes share, one per worker in turn (0: leave CUDA alone).
        launcher: ``launcher(pending_jobs, out, execute, finish)`` runs the jobs elsewhere (e.g.
            :class:`san.benchmark.launchers.SubmititLauncher`) instead of local processes.

    Raises:
        ValueError: ``workers`` < 1.
    """
    if workers < 1:
        raise ValueError(f"--jobs must be at least 1, got {workers}")
    started = time.perf_counter()
    outcomes: dict[Job, JobOutcome] = {}
    pending = []
    for job, state in plan(jobs, out):
        if state == "complete":
            outcomes[job] = JobOutcome(job, "skipped")
        else:
            pending.append(job)
    with (
        tqdm(
            total=len(jobs),
            initial=len(jobs) - len(pending),
            unit="job",
            desc="benchmark",
            # tqdm's own estimate counts jobs; the postfix's "left" weighs them by expected cost.
            bar_format="{desc}: {n_fmt}/{total_fmt} jobs [{elapsed}{postfix}]",
            disable=not progress,
        ) as bar,
        logging_redirect_tqdm(),
    ):
        remaining = RemainingTime(pending)

        def finish(outcome: JobOutcome) -> None:
            outcomes[outcome.job] = outcome
            remaining.finished(outcome.job)
            left = remaining.seconds(time.perf_counter() - started)
            bar.update()
            bar.set_postfix(
                failed=sum(o.status == "failed" for o in outcomes.values()),
                left="?" if left is None else f"~{format_duration(left)}",
            )

        if launcher is not None:
            if pending:
                launcher(pending, out, execute, finish)
        elif workers == 1 or len(pending) <= 1:
            for job in pending:
                bar.set_description(job.name)
                finish(run_job(job, out, execute))
        else:
            _run_in_processes(pending, out, execute, min(workers, len(pending)), finish, gpus)
    return BenchmarkSummary([outcomes[job] for job in jobs], time.perf_counter() - started)


def claim_output_dir(out: str | Path, settings: Mapping[str, Any], *, record: bool = True) -> None:
    """Record the settings every job of ``out`` shares (``benchmark.json``), or check them against it.
    With ``record=False`` (a dry run) an absent file is not written.

    Job names do not carry the preset, overrides or data, so runs made with other settings would be
    skipped as complete and mixed into the tables; this refuses that.

    Raises:
        ValueError: ``out`` was made with different settings (the message lists them).
    """
    path = Path(out) / SETTINGS_FILE
    settings = json.loads(json.dumps(dict(settings)))  # tuples -> lists, as they come back from the file
    if not path.is_file() and record:
        written = atomic_write_text(
            path.with_name(f".{SETTINGS_FILE}.{os.getpid()}"), json.dumps(settings, indent=2) + "\n"
        )
        try:
            os.link(written, path)  # atomic and exclusive: of two runners starting together one writes
            return
        except FileExistsError:
            pass
        finally:
            written.unlink()
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if differing := {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}:
            details = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differing.items())
            raise ValueError(
                f"{out} holds benchmark runs made with other settings ({details}); "
                "use another --out (or delete that folder)"
            )
