"""DomainBed's three model-selection rules, applied to run records for the tables.

A cross-domain deep run records, after every epoch, its scores on ``val`` (training rivers), on
the in-domain ``test`` split and on the ``target`` river (whole, and split into a 20% oracle
validation part and the other 80%); the engine itself selects by ``val`` only. A rule picks an
epoch e* and reads the run's scores there:

- ``training`` (training-domain validation, the default): e* = argmax_e val accuracy, what the
  engine chose; the record's final metrics.
- ``loso`` (leave-one-source-out validation; needs >= 2 source rivers): for sources S, the
  auxiliary runs ``loso`` trained on S - {s} with the same method and seed, scored per epoch on
  the held-out source s (without its in-domain test part); e* = argmax_e mean_s acc_s(e). With two
  sources the auxiliary runs train on one river, where an adversary has nothing to do.
- ``oracle`` (test-domain validation): e* = argmax_e accuracy on the target's oracle part; the
  target figures are then those of the other 80% of the target river. Always labelled "oracle".

Ties go to the earliest epoch (as ``argmax``). Only epochs with scores are candidates: under
``training.averaging: swa`` the epochs before SWA starts have no averaged model, hence no scores,
and cannot be chosen (with averaging the scores are the averaged model's, what each epoch's
checkpoint would be). Runs whose output is not one epoch's weights (SWAD's average) or that have
no per-epoch scores keep their own selection, and the tables say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SELECTION_RULES = ("training", "loso", "oracle")
RULE_LABELS = {
    "training": "training-domain validation",
    "loso": "leave-one-source-out validation",
    "oracle": "test-domain ORACLE",
}


class SelectionError(ValueError):
    """A rule cannot be applied to a run (the message says why)."""


@dataclass(frozen=True)
class Selected:
    """A rule's choice for one run: the epoch (1-based), a description, and the reported scores
    ``{split: {accuracy, macro_f1, n}}`` for ``test`` and ``target``."""

    epoch: int
    rule: str
    scores: dict[str, dict[str, float]]


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`SELECTION_RULES`.

    Raises:
        ValueError: an unknown rule.
    """
    if rule not in SELECTION_RULES:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {', '.join(SELECTION_RULES)}")
    return rule


def history(record: Mapping[str, Any]) -> list[dict[str, float]]:
    """The per-epoch rows of a run record (empty for classical runs)."""
    return list((record.get("extras") or {}).get("history") or [])


def reselectable(record: Mapping[str, Any]) -> bool:
    """Whether a record's output is one epoch's weights and it recorded per-epoch test/target scores."""
    rows = history(record)
    selection = record.get("selection") or {}
    return bool(rows) and selection.get("epoch_selection", True) and any("target_accuracy" in r for r in rows)


def _argmax_epoch(rows: Sequence[Mapping[str, float]], values: Sequence[float]) -> int:
    return int(rows[int(np.argmax(values))]["epoch"])


def _scores_at(record: Mapping[str, Any], epoch: int, target_part: str = "") -> dict[str, dict[str, float]]:
    row = next(r for r in history(record) if int(r["epoch"]) == epoch)
    scores = {}
    for split, prefix in (
        ("target", f"target_{target_part}_" if target_part else "target_"),
        ("test", "test_"),
    ):
        if f"{prefix}accuracy" in row:
            scores[split] = {
                k: row[f"{prefix}{k}"] for k in ("accuracy", "macro_f1", "n") if f"{prefix}{k}" in row
            }
            if "n" in scores[split]:
                scores[split]["n"] = int(scores[split]["n"])
    return scores


def auxiliary_key(method: str, seed: int, sources: Sequence[str], held_out: str) -> tuple[str, int, str, str]:
    """How a leave-one-source-out run is found: (method, seed, its sources joined by '+', held-out river)."""
    return method, int(seed), "+".join(sources), held_out


def select(
    record: Mapping[str, Any],
    rule: str,
    auxiliary: Mapping[tuple[str, int, str, str], Mapping[str, Any]] | None = None,
) -> Selected:
    """Apply ``rule`` to a cross-domain deep run record.

    Args:
        record: the run's record.
        rule: one of :data:`SELECTION_RULES`.
        auxiliary: ``loso`` records by :func:`auxiliary_key` (for the ``loso`` rule).

    Raises:
        SelectionError: the run has no per-epoch scores, is not selected by epoch, has fewer than
            two sources (``loso``), lacks an auxiliary run (``loso``) or an oracle part (``oracle``).
    """
    check_rule(rule)
    if not reselectable(record):
        raise SelectionError(
            "no per-epoch target scores (a single run leaves training.epoch_scores off; benchmark.py "
            "turns it on), or its output is not one epoch's weights"
        )
    rows = [r for r in history(record) if "target_accuracy" in r]  # the epochs that could be chosen
    if rule == "training":
        epoch = int(record["selection"]["epoch"])
        return Selected(epoch, f"{RULE_LABELS[rule]}: best val accuracy", _scores_at(record, epoch))
    if rule == "oracle":
        if not all("target_oracle_val_accuracy" in r for r in rows):
            raise SelectionError("no oracle-validation part of the target was scored")
        epoch = _argmax_epoch(rows, [r["target_oracle_val_accuracy"] for r in rows])
        description = (
            f"{RULE_LABELS[rule]}: best accuracy on 20% of the target river, reported on the other 80%"
        )
        return Selected(epoch, description, _scores_at(record, epoch, "oracle_rest"))
    sources = list(record["sources"])
    if len(sources) < 2:
        raise SelectionError("leave-one-source-out needs at least two source rivers")
    per_source = []
    for held_out in sources:
        key = auxiliary_key(record["method"], record["seed"], [s for s in sources if s != held_out], held_out)
        aux = (auxiliary or {}).get(key)
        if aux is None:
            raise SelectionError(f"no leave-one-source-out run {key}")
        aux_rows = {int(r["epoch"]): r["target_accuracy"] for r in history(aux) if "target_accuracy" in r}
        per_source.append([aux_rows.get(int(r["epoch"]), np.nan) for r in rows])
    mean = np.nanmean(np.asarray(per_source, dtype=float), axis=0)
    if np.isnan(mean).all():
        raise SelectionError("the leave-one-source-out runs hold no per-epoch scores")
    epoch = _argmax_epoch(rows, np.nan_to_num(mean, nan=-np.inf))
    description = (
        f"{RULE_LABELS[rule]}: best mean accuracy of the {len(sources)} runs each without one source"
    )
    return Selected(epoch, description, _scores_at(record, epoch))
