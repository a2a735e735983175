"""The expected remaining wall time of a grid, from the jobs' expected costs.

A grid runs its longest jobs first (:attr:`san.benchmark.jobs.Job.expected_cost`), so a count of
finished jobs says little about the time left: after the first third of a grid's jobs most of its
work may be done. This weighs every job by its expected cost instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from san.benchmark.jobs import Job


class RemainingTime:
    """Expected wall time left: elapsed time x (cost still to run) / (cost finished).

    The rate is the grid's own (wall seconds per unit of expected cost so far, the workers' overlap
    included), so it needs no worker count; with several workers the first estimates run high, as
    the jobs in flight count as not started. None until a job has finished.
    """

    def __init__(self, pending: Iterable[Job]) -> None:
        self.remaining_cost = sum(job.expected_cost for job in pending)
        self.finished_cost = 0.0

    def finished(self, job: Job) -> None:
        """Count ``job`` as done (finished, failed or left to another process alike)."""
        self.finished_cost += job.expected_cost
        self.remaining_cost = max(0.0, self.remaining_cost - job.expected_cost)

    def seconds(self, elapsed: float) -> float | None:
        """The expected seconds left after ``elapsed`` seconds of this grid, or None before any job
        has finished."""
        if self.finished_cost <= 0:
            return None
        return elapsed * self.remaining_cost / self.finished_cost
