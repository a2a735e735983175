"""Where the jobs of a grid run: in this process, in local worker processes, or on a cluster.

A launcher takes the pending jobs and calls ``finish(outcome)`` once per job; the runner
(:func:`san.benchmark.runner.run_jobs`) does the rest (skipping complete jobs, the progress bar, the
summary). Every launcher runs a job through :func:`san.benchmark.runner.run_job`, so a job is
handled the same wherever it runs: claimed, resumed or started afresh, and recorded on failure.

``submitit`` (Slurm, or its local executor for trying a setup out) submits one cluster job per
benchmark job and waits for them. Also here: how the GPUs of one machine are shared among local
worker processes, and the ``--shard i/N`` partition of a job list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from san.benchmark.jobs import GridError, Job

LAUNCHERS: tuple[str, ...] = ("local", "submitit")
SUBMITIT_CLUSTERS: tuple[str, ...] = ("auto", "slurm", "local", "debug")
Finish = Callable[[Any], None]


def parse_shard(text: str) -> tuple[int, int]:
    """``i/N`` (1 <= i <= N) -> (i, N).

    Raises:
        GridError: anything else (the message names the value).
    """
    index, _, count = str(text).partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit()) or not 1 <= int(index) <= int(count):
        raise GridError(f"--shard: expected i/N with 1 <= i <= N (e.g. 2/4), got {text!r}")
    return int(index), int(count)


def shard_jobs(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Shard ``index`` of ``count`` (1-based): every ``count``-th job of the grid order, starting at
    the ``index``-th. The shards are disjoint, cover the grid, and differ in size by at most one job;
    every machine must expand the same grid (same flags, same data) for them to fit together."""
    return list(jobs[index - 1 :: count])


def worker_gpus(workers: int, gpu_count: int, visible: str | None = None) -> list[str | None]:
    """The GPU each of ``workers`` local processes sees: worker k gets GPU k mod ``gpu_count``, as the
    value of its ``CUDA_VISIBLE_DEVICES`` (so ``cuda`` in that process is that GPU alone). ``visible``
    is the parent's own ``CUDA_VISIBLE_DEVICES``, whose entries are then what is handed out. None for
    every worker when there is no GPU to share (none, or one process)."""
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else []
    devices = devices[:gpu_count] if devices else [str(i) for i in range(gpu_count)]
    if not devices or workers < 2:
        return [None] * workers
    return [devices[k % len(devices)] for k in range(workers)]


def use_worker_gpu(gpu: str | None) -> None:
    """In a fresh worker process (before CUDA starts): see only ``gpu`` (None: leave it as it is)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def run_submitted(job: Job, out: str, execute: Callable, threads: int) -> Any:
    """What one cluster job runs: log progress (its console is its log file in the submitit folder,
    and the run's train.log gets the same lines), take ``threads`` cores, then
    :func:`san.benchmark.runner.run_job`."""
    from data_tools.commandline import configure_logging
    from san.benchmark.runner import limit_threads, run_job

    configure_logging()
    limit_threads(threads)
    return run_job(job, out, execute)


@dataclass(frozen=True)
class SubmititLauncher:
    """Submit each pending job as one submitit job (a Slurm job array) and wait for all of them.

    Attributes:
        folder: submitit's folder (job scripts, pickles, logs ``<id>_log.out/.err``).
        cluster: ``auto`` (Slurm when ``sbatch`` is there, else submitit's local executor), ``slurm``,
            ``local`` (one process per job on this machine, all at once) or ``debug`` (in this process).
        partition: Slurm partition (None: the cluster's default).
        timeout_min: wall-time limit of each job in minutes.
        gpus_per_job, cpus_per_job: resources of each job (its code gets ``cpus_per_job`` threads).
        parallel: at most this many jobs of the array run at once on Slurm (None: no limit).
    """

    folder: Path
    cluster: str = "auto"
    partition: str | None = None
    timeout_min: int = 240
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    parallel: int | None = None

    def executor(self) -> Any:
        """The configured ``submitit.AutoExecutor``.

        Raises:
            GridError: submitit is not installed, or the cluster is unknown or unavailable here.
        """
        try:
            import submitit
        except ImportError as error:
            raise GridError("--launcher submitit needs the submitit package: pip install submitit") from error
        if self.cluster not in SUBMITIT_CLUSTERS:
            raise GridError(f"--submitit-cluster must be one of {', '.join(SUBMITIT_CLUSTERS)}")
        try:
            executor = submitit.AutoExecutor(
                folder=self.folder, cluster=None if self.cluster == "auto" else self.cluster
            )
        except (RuntimeError, ValueError) as error:
            raise GridError(f"submitit cannot use the {self.cluster!r} cluster here: {error}") from error
        parameters: dict[str, Any] = {
            "name": "heavy-minerals",
            "timeout_min": self.timeout_min,
            "cpus_per_task": self.cpus_per_job,
            "gpus_per_node": self.gpus_per_job,
            "slurm_partition": self.partition,
        }
        if self.parallel:
            parameters["slurm_array_parallelism"] = self.parallel
        executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
        return executor

    def __call__(self, jobs: Sequence[Job], out: str | Path, execute: Callable, finish: Finish) -> None:
        """Submit ``jobs``, then report each outcome as it completes; a cluster job that died (time
        limit, node failure) is that benchmark job's failure."""
        import submitit

        from san.benchmark.runner import collect

        executor = self.executor()
        submitted = executor.map_array(
            run_submitted,
            list(jobs),
            [str(out)] * len(jobs),
            [execute] * len(jobs),
            [self.cpus_per_job] * len(jobs),
        )
        by_id = {s.job_id: job for s, job in zip(submitted, jobs, strict=True)}
        poll = 1.0 if executor.cluster in ("local", "debug") else 30.0
        for done in submitit.helpers.as_completed(submitted, poll_frequency=poll):
            finish(collect(done, by_id[done.job_id], out))
