"""``benchmark.py --hparams-trials N``: a small random search per job, selected on training-domain val.

Every deep job (method, protocol, river, seed) runs N trials, trial 0 with the defaults and trial
k > 0 with :func:`san.algorithms.hparam_space.sample_hparams` (method, k), each an ordinary run
directory ``<job dir>/trial<k>``. The trial with the best ``val`` accuracy (training rivers only;
ties: the lower trial) is copied to ``<job dir>/results.json`` with the chosen trial and its
hyper-parameters in ``selection.hparam_search``: that is the job's result. Trial records are
marked ``hparam_search.role = trial`` so that the tables skip them. Classical methods have their
own grid search and run once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from san.algorithms.hparam_space import sample_hparams
from san.benchmark.jobs import CLASSICAL_METHODS, Job, JobExecutor
from san.runs.records import read_record, write_record

TRIAL_ROLE = "trial"


@dataclass(frozen=True)
class TrialJob(Job):
    """One trial of a job; its run directory is ``<job dir>/trial<k>``."""

    trial: int = 0
    hparams: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return f"{super().name}/trial{self.trial}"

    def run_dir(self, out: str | Path) -> Path:
        return super().run_dir(out) / f"trial{self.trial}"

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(f"hparams.{key}={value}" for key, value in self.hparams)

    @property
    def base(self) -> Job:
        """The job this trial belongs to."""
        return Job(self.method, self.protocol, self.target, self.seed, self.sources)


def hparam_space(method: str) -> dict[str, Any]:
    """The random-search space of a deep method ({} for classical methods)."""
    if method in CLASSICAL_METHODS:
        return {}
    from san.algorithms.registry import algorithm_class  # imports torch: only when searching

    return dict(algorithm_class(method).HPARAM_SPACE)


def expand_trials(jobs: Sequence[Job], trials: int) -> list[Job]:
    """Each deep job as ``trials`` TrialJobs; classical jobs (and ``trials`` <= 1) unchanged.

    Raises:
        ValueError: ``trials`` < 1.
    """
    if trials < 1:
        raise ValueError(f"--hparams-trials must be at least 1, got {trials}")
    if trials == 1:
        return list(jobs)
    expanded: list[Job] = []
    for job in jobs:
        space = hparam_space(job.method)
        if not space:
            expanded.append(job)
            continue
        for trial in range(trials):
            drawn = sample_hparams(job.method, space, trial)
            expanded.append(
                TrialJob(*dataclasses.astuple(job)[:5], trial=trial, hparams=tuple(sorted(drawn.items())))
            )
    return expanded


@dataclass(frozen=True)
class TrialExecutor:
    """Runs a job with its own overrides (a trial's hyper-parameters) added to the base executor's,
    and marks trial records so that tables skip them. Picklable."""

    base: JobExecutor

    def __call__(self, job: Job, run_dir: Path, resume: bool) -> dict[str, Any]:
        executor = dataclasses.replace(self.base, overrides=(*self.base.overrides, *job.overrides))
        record = executor(job, run_dir, resume)
        if isinstance(job, TrialJob):
            record["hparam_search"] = {"role": TRIAL_ROLE, "trial": job.trial, "hparams": dict(job.hparams)}
            write_record(record, run_dir, None)
        return record


def select_trials(jobs: Sequence[Job], out: str | Path, metric: str = "accuracy") -> list[dict[str, Any]]:
    """For every job whose trials are all complete, write the best trial by ``val`` ``metric`` as the
    job's ``results.json`` (see the module docstring); returns the records written."""
    groups: dict[Job, list[TrialJob]] = {}
    for job in jobs:
        if isinstance(job, TrialJob):
            groups.setdefault(job.base, []).append(job)
    chosen_records = []
    for base, trials in groups.items():
        records = [(t, read_record(t.run_dir(out))) for t in sorted(trials, key=lambda t: t.trial)]
        if any(r is None or r.get("status") != "complete" for _, r in records):
            continue
        scores = [(r["metrics"]["val"][metric], -t.trial) for t, r in records]
        best_trial, best = records[scores.index(max(scores))]
        chosen = {
            **best,
            "run_dir": str(best_trial.run_dir(out)),
            "hparam_search": {
                "role": "selected",
                "trial": best_trial.trial,
                "hparams": dict(best_trial.hparams),
            },
        }
        chosen["selection"] = {
            **best["selection"],
            "rule": f"{best['selection']['rule']}; hyper-parameters: best val {metric} "
            f"of {len(trials)} random trials",
            "hparam_search": {
                "trials": len(trials),
                "chosen_trial": best_trial.trial,
                "chosen_hparams": dict(best_trial.hparams),
                "val_scores": {t.trial: r["metrics"]["val"][metric] for t, r in records},
            },
        }
        write_record(chosen, base.run_dir(out), Path(out) / "results.jsonl")
        chosen_records.append(chosen)
    return chosen_records
