"""Where a training step's time goes: waiting for data, forward, backward and optimizer.

:func:`profile_steps` runs a prepared run's training loop for a few steps, first plainly (wall time
of the loader wait and of ``Algorithm.update``), then under ``torch.profiler``, whose totals of the
``step/forward``, ``step/backward`` and ``step/optimizer`` labels (set in
:meth:`san.algorithms.base.Algorithm.update`) split the update. ``scripts/profile_training.py``
prints the result; speed figures belong in such a script's output, never in a timed test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from san.training.engine import Trainer, move_batch

PHASES = ("step/forward", "step/backward", "step/optimizer")


@dataclass(frozen=True)
class StepProfile:
    """Seconds per training step: ``data`` (waiting for the loader) and ``update`` (medians of the plain
    steps), the profiled split of the update into :data:`PHASES` (means of the profiled steps), and the
    operators with the most self CPU time (name, seconds per step)."""

    steps: int
    data: float
    update: float
    phases: dict[str, float]
    top_operators: list[tuple[str, float]] = field(default_factory=list)

    @property
    def data_share(self) -> float:
        """Share of a step spent waiting for data."""
        return self.data / (self.data + self.update)


def _batches(trainer: Trainer) -> Iterator[dict[str, torch.Tensor]]:
    epoch = 0
    while True:  # later epochs when a run has fewer steps per epoch than asked for
        yield from trainer.epoch_loader(epoch)
        epoch += 1


def _timed_steps(trainer: Trainer, batches: Iterator, steps: int) -> tuple[list[float], list[float]]:
    waits, updates = [], []
    algorithm = trainer.algorithm
    for _ in range(steps):
        start = time.perf_counter()
        batch = move_batch(next(batches), trainer.device)
        loaded = time.perf_counter()
        algorithm.update(batch, 0.5)
        waits.append(loaded - start)
        updates.append(time.perf_counter() - loaded)
    return waits, updates


def profile_steps(trainer: Trainer, steps: int = 20, warmup: int = 3, top: int = 8) -> StepProfile:
    """Profile ``steps`` training steps of ``trainer`` after ``warmup`` unmeasured ones.

    The algorithm's weights change (it trains); use a throw-away run. Progress is fixed at 0.5, so
    schedules that depend on it (SAN's lambda) sit mid-way.

    Raises:
        ValueError: ``steps`` < 1 or ``warmup`` < 0.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps} and {warmup}")
    batches = _batches(trainer)
    _timed_steps(trainer, batches, warmup)
    waits, updates = _timed_steps(trainer, batches, steps)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        _timed_steps(trainer, batches, steps)
    events = profiler.key_averages()
    totals = {event.key: event.cpu_time_total for event in events}
    phases = {phase: totals.get(phase, 0.0) / 1e6 / steps for phase in PHASES}
    operators = sorted(
        (event for event in events if not event.key.startswith("step/")),
        key=lambda event: event.self_cpu_time_total,
        reverse=True,
    )[:top]
    return StepProfile(
        steps=steps,
        data=float(np.median(waits)),
        update=float(np.median(updates)),
        phases=phases,
        top_operators=[(event.key, event.self_cpu_time_total / 1e6 / steps) for event in operators],
    )


def format_profile(profile_: StepProfile) -> str:
    """A plain-text table of :class:`StepProfile` (milliseconds per step and shares)."""
    total = profile_.data + profile_.update
    lines = [
        f"per training step, {profile_.steps} steps (plain: medians; profiled phases: means under "
        "torch.profiler)",
        f"  {'data wait':<22}{profile_.data * 1e3:9.1f} ms  {profile_.data_share:6.1%} of a step",
        f"  {'update':<22}{profile_.update * 1e3:9.1f} ms  {profile_.update / total:6.1%}",
    ]
    profiled = sum(profile_.phases.values())
    for phase, seconds in profile_.phases.items():
        share = seconds / profiled if profiled else 0.0
        lines.append(f"    {phase:<20}{seconds * 1e3:9.1f} ms  {share:6.1%} of the profiled update")
    lines.append("  operators with the most self CPU time (ms per step):")
    lines += [f"    {name:<40}{seconds * 1e3:9.1f}" for name, seconds in profile_.top_operators]
    return "\n".join(lines)
