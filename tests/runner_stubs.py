"""Stub executors and a runner driver for the tests that need separate benchmark processes.

:func:`main` (``main([MODE, OUT, LOG_DIR, BARRIER_DIR, N])``, see :func:`driver_command`): MODE
``slow`` runs the stub grid with :class:`SlowExecutor` in the driver process, ``sleepy`` with
:class:`SleepyExecutor` in two worker processes; every driver first waits until N drivers have
checked in under BARRIER_DIR, so concurrent ones really overlap. Imports neither torch nor the
baselines, so a driver starts quickly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_tools.atomic import append_line
from san.benchmark.jobs import Job, expand_grid
from san.benchmark.runner import run_jobs
from san.evaluation.metrics import classification_metrics
from san.runs.records import RESULTS_LOG, write_record


def stub_grid() -> list[Job]:
    """Six jobs: svm and san, mixed and leave-one-out on two rivers, seed 0."""
    return expand_grid(["svm", "san"], [("mixed", None), ("loro", None)], ["yangtze", "yarlung"], [0])


def stub_record(job: Job, run_dir: Path, **fields: Any) -> dict[str, Any]:
    """A valid complete record of ``job``; ``fields`` replace or add top-level keys."""
    return {
        "status": "complete",
        "method": job.method,
        "protocol": "cross" if job.target else "mixed",
        "sources": list(job.sources),
        "targets": [job.target] if job.target else [],
        "seed": job.seed,
        "classes": ["Ap", "Zrn"],
        "selection": {"rule": "stub"},
        "metrics": {"test": classification_metrics([0, 1, 1], [0, 1, 0], ["Ap", "Zrn"])},
        "timing": {},
        "config": {},
        "versions": {},
        "data": {},
        "run_dir": str(run_dir),
        **fields,
    }


@dataclass(frozen=True)
class SlowExecutor:
    """Writes a partial file, waits ``delay`` seconds (a live run folder), then the record and its
    results.jsonl line, as a real run does; logs each call with its pid to ``calls.log``."""

    log_dir: str
    out: str
    delay: float = 0.4

    def __call__(self, job: Job, run_dir: Path, resume: bool) -> dict[str, Any]:
        append_line(Path(self.log_dir) / "calls.log", json.dumps({"name": job.name, "pid": os.getpid()}))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoint.pt").write_bytes(b"in progress")
        time.sleep(self.delay)
        (run_dir / "checkpoint.pt").unlink()
        record = stub_record(job, run_dir)
        write_record(record, run_dir, Path(self.out) / RESULTS_LOG)
        return record


@dataclass(frozen=True)
class SleepyExecutor:
    """Logs its pid to ``pids.log``, then sleeps far longer than any test waits."""

    log_dir: str

    def __call__(self, job: Job, run_dir: Path, resume: bool) -> dict[str, Any]:
        append_line(Path(self.log_dir) / "pids.log", str(os.getpid()))
        time.sleep(300)
        return {}


def driver_command(mode: str, out: Path, log_dir: Path, barrier: Path, drivers: int = 1) -> list[str]:
    """The command line of one driver process."""
    tests = Path(__file__).resolve().parent
    arguments = [mode, str(out), str(log_dir), str(barrier), str(drivers)]
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path[:0] = [{str(tests)!r}, {str(tests.parent)!r}]; "
        f"import runner_stubs; runner_stubs.main({arguments!r})",
    ]


def main(argv: list[str]) -> None:
    """Check in at the barrier, wait for the others, run the stub grid, print the outcome counts."""
    mode, out, log_dir, barrier, drivers = argv
    Path(barrier).mkdir(parents=True, exist_ok=True)
    (Path(barrier) / str(os.getpid())).touch()
    while len(list(Path(barrier).iterdir())) < int(drivers):
        time.sleep(0.02)
    if mode == "slow":
        summary = run_jobs(stub_grid(), out, SlowExecutor(log_dir, out), progress=False)
    else:
        summary = run_jobs(stub_grid(), out, SleepyExecutor(log_dir), workers=2, progress=False)
    print(json.dumps(dict(summary.counts())))
