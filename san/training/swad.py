"""SWAD-style dense weight averaging (Cha et al., NeurIPS 2021, khanrc/swad) as an engine callback.

SWAD averages the weights of every optimisation step inside a window where the training domains'
validation loss sits in its valley, then re-estimates the BatchNorm statistics. The reference
implementation scores the validation loss every few hundred steps; here the window is made of whole
epochs (the engine scores ``val`` once per epoch): with L_e the val loss after epoch e,
e* = argmin_e L_e and tau = (1 + r) L_{e*} (r = ``swad_tolerance``),

    window W = the longest run of consecutive epochs containing e* with L_e <= tau
    w_SWAD   = (1 / |S_W|) sum_{t in S_W} w_t       (S_W: every step of the epochs in W)

so the window starts where the loss has come within tolerance of its minimum and ends where it
rises out of it (SWAD's "loss valley", read on epoch boundaries). The average is kept online: one
running sum per epoch, and only the epochs that can still belong to W. Without validation scores
the window is every epoch. Its choice uses the training rivers only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from san.algorithms.base import Algorithm
from san.training.averaging import reestimate_batch_norm
from san.training.engine import FitResult


def _merge(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """One segment summing consecutive ones: first and last epoch, parameter sums, steps."""
    total = {name: value.clone() for name, value in segments[0]["sum"].items()}
    for segment in segments[1:]:
        for name, value in segment["sum"].items():
            total[name].add_(value)
    return {
        "first": segments[0]["first"],
        "last": segments[-1]["last"],
        "sum": total,
        "steps": sum(s["steps"] for s in segments),
        "loss": min(s["loss"] for s in segments),
    }


class SWADAverager:
    """The engine callback of SWAD (see the module docstring). It keeps one parameter sum per epoch
    that may still join the window (in memory and in the checkpoint), and replaces the selected
    weights at the end, so it is not combined with ``training.averaging``.

    Args:
        tolerance: r, the val loss of a window epoch is at most (1 + r) times the lowest.
        bn_batches: training batches for the BatchNorm re-estimation at the end.
    """

    replaces_weights = True  # the engine refuses it beside training.averaging

    def __init__(self, tolerance: float = 0.3, bn_batches: int = 50) -> None:
        if tolerance < 0 or bn_batches < 0:
            raise ValueError(f"SWAD needs tolerance >= 0 and bn_batches >= 0, got {tolerance}, {bn_batches}")
        self.tolerance, self.bn_batches = float(tolerance), int(bn_batches)
        self._sum: dict[str, Tensor] | None = None
        self._steps = 0
        self.run: list[dict[str, Any]] = []  # consecutive epochs ending at the last one, all <= tau
        self.best: dict[str, Any] | None = None  # the window holding the lowest loss, when before the run
        self.lowest = math.inf

    def after_step(self, algorithm: Algorithm, step: int) -> None:  # noqa: ARG002
        with torch.no_grad():
            if self._sum is None:
                self._sum = {n: p.detach().float().clone() for n, p in algorithm.named_parameters()}
            else:
                for name, p in algorithm.named_parameters():
                    self._sum[name].add_(p.detach().float())
        self._steps += 1

    def after_epoch(self, algorithm: Algorithm, epoch: int, row: Mapping[str, float]) -> None:  # noqa: ARG002
        if self._sum is None:
            return
        loss = float(row.get("val_loss", math.nan))
        segment = {"first": epoch, "last": epoch, "sum": self._sum, "steps": self._steps, "loss": loss}
        self._sum, self._steps = None, 0
        if math.isnan(loss):
            self.run.append(segment)
            return
        new_low = loss < self.lowest
        self.lowest = min(self.lowest, loss)
        threshold = (1.0 + self.tolerance) * self.lowest
        if loss > threshold:
            if self.run and min(s["loss"] for s in self.run) <= self.lowest:
                self.best = _merge(self.run)
            self.run = []
            return
        self.run.append(segment)
        if new_low:
            self.best = None  # the new lowest is in the run, past an epoch that left the valley
            over = [i for i, s in enumerate(self.run) if s["loss"] > threshold]
            self.run = self.run[over[-1] + 1 :] if over else self.run

    def window(self) -> dict[str, Any] | None:
        """The merged window segment (None before the first epoch)."""
        if self.best is not None:
            return self.best
        return _merge(self.run) if self.run else None

    def after_fit(
        self, algorithm: Algorithm, result: FitResult, train_batches: Iterable[Mapping[str, Tensor]]
    ) -> None:
        window = self.window()
        if window is None or window["steps"] == 0:
            return
        with torch.no_grad():
            for name, p in algorithm.named_parameters():
                p.copy_((window["sum"][name] / window["steps"]).to(p.dtype))
        batches = reestimate_batch_norm(algorithm, train_batches, limit=self.bn_batches)
        first, last = window["first"] + 1, window["last"] + 1
        # One rule text for every run, so that a table's note names the rule once; each run's own
        # window is in its selection details.
        result.selection_rule = (
            "SWAD: dense average of the weights over the epochs whose val loss is within "
            f"{1 + self.tolerance:g}x its minimum (training rivers only; each record's swad_window)"
        )
        result.selection_details = {
            "epoch": last,
            "score": None,
            "swad_window": [first, last],
            "swad_steps": window["steps"],
            "swad_bn_batches": batches,
            "epoch_selection": False,
            # the best epoch of the raw weights, which the engine had loaded (the run's ``plain`` variant)
            "plain_epoch": result.best_epoch,
            "plain_score": result.best_score,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "sum": self._sum,
            "steps": self._steps,
            "run": self.run,
            "best": self.best,
            "lowest": self.lowest,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._sum, self._steps = state["sum"], int(state["steps"])
        self.run, self.best, self.lowest = list(state["run"]), state["best"], float(state["lowest"])


def swad_callbacks(algorithm: Algorithm) -> list[SWADAverager]:
    """The ``swad`` method's callbacks, from its ``swad_tolerance`` and ``swad_bn_batches``."""
    return [SWADAverager(algorithm.hparams["swad_tolerance"], algorithm.hparams["swad_bn_batches"])]
