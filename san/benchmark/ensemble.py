"""An ensemble of finished runs: the weighted mean of their temperature-calibrated probabilities.

For member runs m = 1..M of one job (same protocol, rivers and seed, hence the same split), with
saved probabilities p_m (N x C, ``predictions_<split>.csv``) and temperatures T_m fitted on ``val``
(``calibration.json``):

    q_m = softmax(log p_m / T_m)                 (calibrated member probabilities)
    q   = sum_m w_m q_m,   w on the simplex       (the ensemble)

The weights are the grid point (step ``step``) with the lowest ``val`` negative log-likelihood,
ties broken by the higher ``val`` accuracy, then by the weights closest to equal (criterion
``nll``, the default); criterion ``accuracy`` puts accuracy first and NLL second. ``val`` of the
training rivers only, never ``test`` or ``target``. NLL is the default because accuracy on a val
split of ~170 grains moves in steps of one grain, which a weight grid overfits: choosing on one
half of val and scoring the other (2-fold, the 15 ERM+SVM tasks of 2026-12-02) the NLL rule was
the more accurate in 3 tasks and never the less accurate (+0.003 on average). The ensemble's
record has the members' shape, so the tables treat it as one more method.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write_text
from san.benchmark.jobs import Job
from san.evaluation.calibration import TemperatureScaling, log_scores, negative_log_likelihood
from san.evaluation.metrics import classification_metrics
from san.runs.records import RESULTS_FILE, RESULTS_LOG, read_record, write_record

__all__ = ["build_benchmark_ensembles", "choose_weights", "ensemble_record", "load_member", "simplex_grid"]

SPLITS = ("val", "test", "target")
SELECTION_SPLIT = "val"
CRITERIA = ("nll", "accuracy")


@dataclass
class Member:
    """One finished run: its record and, per split, calibrated probabilities indexed by sample_id."""

    run_dir: Path
    record: dict[str, Any]
    probabilities: dict[str, pd.DataFrame]  # split -> (sample_id x classes), calibrated
    labels: dict[str, pd.Series]  # split -> true label per sample_id
    domains: dict[str, pd.Series]  # split -> river per sample_id


def load_member(run_dir: str | Path) -> Member:
    """Read a complete run's predictions and calibration (identity temperature when there is none).

    Raises:
        FileNotFoundError: no complete record, or a split's predictions file is missing.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if record is None or record.get("status") != "complete":
        raise FileNotFoundError(f"{run_dir}: no complete {RESULTS_FILE}")
    scaling = TemperatureScaling.load(run_dir) or TemperatureScaling(1.0)
    classes = list(record["classes"])
    probabilities, labels, domains = {}, {}, {}
    for split in SPLITS:
        if split not in record["metrics"]:
            continue
        path = run_dir / f"predictions_{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir}: {path.name} is missing")
        table = pd.read_csv(path).set_index("sample_id")
        calibrated = scaling.apply(log_scores(table[classes].to_numpy()))
        probabilities[split] = pd.DataFrame(calibrated, index=table.index, columns=classes)
        labels[split], domains[split] = table["label"], table["domain"]
    return Member(run_dir, record, probabilities, labels, domains)


def check_criterion(criterion: str) -> None:
    """Raises ValueError unless ``criterion`` is one of :data:`CRITERIA`."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown ensemble criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")


def simplex_grid(members: int, step: float) -> np.ndarray:
    """Every weight vector of ``members`` non-negative multiples of ``step`` summing to 1 (K x M).

    Raises:
        ValueError: ``step`` does not divide 1 or fewer than one member.
    """
    parts = round(1.0 / step)
    if members < 1 or not np.isclose(parts * step, 1.0):
        raise ValueError(f"need at least one member and a step dividing 1, got {members}, {step}")
    points = [c for c in itertools.product(range(parts + 1), repeat=members) if sum(c) == parts]
    return np.asarray(points, dtype=float) / parts


def choose_weights(
    probabilities: Sequence[np.ndarray], labels: np.ndarray, step: float = 0.1, criterion: str = "nll"
) -> tuple[np.ndarray, dict[str, float]]:
    """The simplex weights (see the module docstring) chosen on one split's probabilities and labels.

    Returns:
        (weights M, {'accuracy', 'nll'} of the chosen mixture on that split).

    Raises:
        ValueError: an unknown criterion.
    """
    check_criterion(criterion)
    stacked = np.stack(probabilities)  # M x N x C
    best: tuple[float, float, float] | None = None
    chosen = np.full(len(probabilities), 1.0 / len(probabilities))
    equal = chosen.copy()
    fit: dict[str, float] = {}
    for weights in simplex_grid(len(probabilities), step):
        mixture = np.tensordot(weights, stacked, axes=1)
        accuracy = float((mixture.argmax(1) == labels).mean())
        nll = negative_log_likelihood(mixture, labels)
        first, second = (nll, -accuracy) if criterion == "nll" else (-accuracy, nll)
        key = (first, second, float(np.abs(weights - equal).sum()))
        if best is None or key < best:
            best, chosen, fit = key, weights, {"accuracy": accuracy, "nll": nll}
    return chosen, fit


def ensemble_record(
    members: Sequence[Member], name: str, step: float = 0.1, criterion: str = "nll"
) -> dict[str, Any]:
    """The ensemble's run record (weights chosen on ``val`` by ``criterion``; metrics of every split).

    Raises:
        ValueError: fewer than two members, members of different jobs or classes, or no ``val``.
    """
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two member runs")
    first = members[0].record
    for member in members[1:]:
        for key in ("protocol", "sources", "targets", "seed", "classes"):
            if member.record[key] != first[key]:
                raise ValueError(
                    f"{member.run_dir} differs from {members[0].run_dir} in {key!r}: "
                    f"{member.record[key]!r} vs {first[key]!r}; members must be runs of one job"
                )
    if any(SELECTION_SPLIT not in m.probabilities for m in members):
        raise ValueError("every member needs a val split: the weights are chosen on it")
    classes = list(first["classes"])
    class_index = {c: i for i, c in enumerate(classes)}
    rivers = list(dict.fromkeys([*first["sources"], *first["targets"]]))
    river_index = {r: i for i, r in enumerate(rivers)}

    def aligned(split: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        ids = members[0].probabilities[split].index
        for member in members[1:]:
            if set(member.probabilities[split].index) != set(ids):
                raise ValueError(f"{member.run_dir}: the {split} samples differ from the other members'")
        labels = members[0].labels[split].loc[ids].map(class_index).to_numpy()
        domains = members[0].domains[split].loc[ids].map(river_index).to_numpy()
        return [m.probabilities[split].loc[ids].to_numpy() for m in members], labels, domains

    val_probabilities, val_labels, _ = aligned(SELECTION_SPLIT)
    weights, val_fit = choose_weights(val_probabilities, val_labels, step, criterion)
    metrics = {}
    for split in (s for s in SPLITS if s in members[0].probabilities):
        probabilities, labels, domains = aligned(split)
        mixture = np.tensordot(weights, np.stack(probabilities), axes=1)
        metrics[split] = classification_metrics(labels, mixture.argmax(1), classes, domains, rivers)
    return {
        "status": "complete",
        "method": name,
        "protocol": first["protocol"],
        "sources": first["sources"],
        "targets": first["targets"],
        "seed": first["seed"],
        "classes": classes,
        "selection": {
            "rule": f"ensemble weights on a {step:g} simplex grid by "
            + (
                "lowest val NLL, ties by val accuracy"
                if criterion == "nll"
                else "best val accuracy, ties by val NLL"
            )
            + " (training rivers only)",
            "weights": {
                m.record["method"]: round(float(w), 4) for m, w in zip(members, weights, strict=True)
            },
            "val": val_fit,
        },
        "metrics": metrics,
        "timing": {},
        "config": {"members": [m.record["method"] for m in members], "step": step, "criterion": criterion},
        "versions": first.get("versions", {}),
        "data": first.get("data", {}),
        "members": [str(m.run_dir) for m in members],
    }


def write_ensemble(
    members: Sequence[Member],
    name: str,
    run_dir: str | Path,
    out: str | Path,
    step: float = 0.1,
    criterion: str = "nll",
) -> dict[str, Any]:
    """Build :func:`ensemble_record`, write it as ``run_dir/results.json`` and a line of
    ``out/results.jsonl``; returns it."""
    record = ensemble_record(members, name, step, criterion)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record["run_dir"] = str(run_dir)
    write_record(record, run_dir, Path(out) / RESULTS_LOG)
    atomic_write_text(run_dir / "members.json", json.dumps(record["members"], indent=2) + "\n")
    return record


def ensemble_name(members: Sequence[str]) -> str:
    """The method name of an ensemble of ``members``: ``ens-erm-svm``."""
    return "ens-" + "-".join(members)


def build_benchmark_ensembles(
    jobs: Sequence[Job], out: str | Path, members: Sequence[str], step: float = 0.1, criterion: str = "nll"
) -> tuple[list[dict[str, Any]], list[str]]:
    """For every task and seed of ``jobs`` whose member runs are all complete under ``out``, write the
    ensemble's run ``out/<ens-name>/<task>/seed<N>``; returns (records written, tasks skipped, why).

    Raises:
        ValueError: fewer than two members, or an unknown criterion.
    """
    if len(members) < 2:
        raise ValueError(f"--ensemble needs at least two methods, got {list(members)}")
    check_criterion(criterion)
    name = ensemble_name(members)
    written, skipped = [], []
    tasks = dict.fromkeys((job.protocol, job.target, job.seed, job.sources) for job in jobs)
    for protocol, target, seed, sources in tasks:
        base = Job(name, protocol, target, seed, sources)
        dirs = [Job(m, protocol, target, seed, sources).run_dir(out) for m in members]
        if missing := [str(d) for d in dirs if (read_record(d) or {}).get("status") != "complete"]:
            skipped.append(f"{base.name}: no complete run at {', '.join(missing)}")
            continue
        runs = [load_member(d) for d in dirs]
        written.append(write_ensemble(runs, name, base.run_dir(out), out, step, criterion))
    return written, skipped
