"""Weight averaging during training: an exponential moving average (EMA) or SWA, on torch's swa_utils.

With w_t the weights after optimisation step t (epoch e for SWA):

    EMA:  w_ema <- d w_ema + (1 - d) w_t               after every step; buffers (BatchNorm running
                                                       statistics) are averaged the same way
    SWA:  w_swa = (1 / K) sum_{e = e_0}^{e_0 + K - 1} w_e    at the end of every epoch from e_0 on;
          BatchNorm statistics are then re-estimated by one pass over the training data, because
          averaged weights do not fit the running statistics of any single epoch

The engine asks an averager for a model to score on ``val`` after every epoch: for SWA the model
after epoch e is the average over the window [e_0, e], so choosing the best epoch on ``val``
chooses the window. The hook is four calls (``after_step``, ``after_epoch``, ``evaluation_model``,
``state_dict``/``load_state_dict``). SWAD's dense averaging (:mod:`san.training.swad`) is not one of
these: its window is known only when training ends, so it is an engine callback that replaces the
selected weights at the end (``--method swad``, with ``training.averaging: none``); it shares
:func:`reestimate_batch_norm` with SWA.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from san.algorithms.base import Algorithm

AVERAGING = ("none", "ema", "swa")


class WeightAverager(Protocol):
    """What the engine calls; see the module docstring."""

    name: str

    def after_step(self, algorithm: Algorithm, step: int) -> None: ...

    def after_epoch(self, algorithm: Algorithm, epoch: int) -> None: ...

    def evaluation_model(self, epoch: int, batches: Iterable[dict[str, torch.Tensor]]) -> Algorithm | None:
        """The averaged algorithm to score after ``epoch`` (0-based), or None when there is none yet."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _SwaUtilsAverager:
    """Shared parts: an ``AveragedModel`` copy of the whole algorithm (so ``predict`` works on it)."""

    name = "none"

    def __init__(self, algorithm: Algorithm, averaged: AveragedModel) -> None:
        self.averaged = averaged
        self.averaged.module.eval()
        self.first_epoch: int | None = None
        self.last_epoch: int | None = None

    @property
    def model(self) -> Algorithm:
        """The averaged algorithm."""
        return self.averaged.module  # type: ignore[return-value]

    def after_step(self, algorithm: Algorithm, step: int) -> None:  # noqa: ARG002
        return None

    def after_epoch(self, algorithm: Algorithm, epoch: int) -> None:  # noqa: ARG002
        return None

    def describe(self) -> dict[str, Any]:
        return {"averaging": self.name, "n_averaged": int(self.averaged.n_averaged)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "averaged": self.averaged.state_dict(),
            "first_epoch": self.first_epoch,
            "last_epoch": self.last_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state["averaged"])
        self.first_epoch, self.last_epoch = state["first_epoch"], state["last_epoch"]


class EMAAverager(_SwaUtilsAverager):
    """EMA of the weights and buffers with decay ``decay``, updated after every step."""

    name = "ema"

    def __init__(self, algorithm: Algorithm, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"training.ema_decay must be in (0, 1), got {decay}")
        super().__init__(
            algorithm, AveragedModel(algorithm, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        )
        self.decay = decay

    def after_step(self, algorithm: Algorithm, step: int) -> None:  # noqa: ARG002
        self.averaged.update_parameters(algorithm)

    def evaluation_model(self, epoch: int, batches: Iterable[dict[str, torch.Tensor]]) -> Algorithm | None:  # noqa: ARG002
        return self.model

    def describe(self) -> dict[str, Any]:
        # Weight of the last k steps in the average: 1 - d^k; "half-life" = steps to reach 1/2.
        return {
            **super().describe(),
            "ema_decay": self.decay,
            "half_life_steps": round(math.log(0.5) / math.log(self.decay), 1),
        }


class SWAAverager(_SwaUtilsAverager):
    """Equal average of the end-of-epoch weights from epoch ``start_epoch`` (0-based) on; BatchNorm
    statistics re-estimated before every evaluation."""

    name = "swa"

    def __init__(self, algorithm: Algorithm, start_epoch: int, device: torch.device) -> None:
        super().__init__(algorithm, AveragedModel(algorithm))
        self.start_epoch, self.device = start_epoch, device

    def after_epoch(self, algorithm: Algorithm, epoch: int) -> None:
        if epoch < self.start_epoch:
            return
        self.averaged.update_parameters(algorithm)
        self.first_epoch = self.start_epoch if self.first_epoch is None else self.first_epoch
        self.last_epoch = epoch

    def evaluation_model(self, epoch: int, batches: Iterable[dict[str, torch.Tensor]]) -> Algorithm | None:
        if epoch < self.start_epoch:
            return None
        reestimate_batch_norm(self.model, batches, self.device)
        return self.model

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "swa_start_epoch": self.start_epoch + 1}


def reestimate_batch_norm(
    algorithm: Algorithm,
    batches: Iterable[Mapping[str, torch.Tensor]],
    device: torch.device | None = None,
    limit: int | None = None,
) -> int:
    """Recompute every BatchNorm's running statistics of ``algorithm`` as the plain mean over ``batches``
    (torch's ``update_bn``, through the algorithm's own ``predict``, which knows the pair input), or
    over the first ``limit`` of them. Only the BatchNorm layers are in training mode during the pass
    (no dropout, no MixStyle); the algorithm is left in evaluation mode. ``device``: where the batches
    go (default: that of the algorithm's parameters). Returns the number of batches used.

    SWA (here) and SWAD (:mod:`san.training.swad`) both call it after averaging the weights.
    """
    norms = [m for m in algorithm.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    algorithm.eval()
    if not norms or (limit is not None and limit < 1):
        return 0
    if device is None:
        device = next(algorithm.parameters()).device
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
        m.train()
    used = 0
    with torch.no_grad():
        for batch in batches:
            if limit is not None and used >= limit:
                break
            algorithm.predict({k: v.to(device) for k, v in batch.items()})
            used += 1
    for m in norms:
        m.momentum = momenta[m]
    algorithm.eval()
    return used


def build_averager(
    mode: str, algorithm: Algorithm, *, epochs: int, ema_decay: float, swa_start: float, device: torch.device
) -> WeightAverager | None:
    """The averager of ``training.averaging`` (None for ``none``).

    ``swa_start`` is the share of the epochs after which SWA starts averaging (0.75 of 40 epochs:
    epochs 31-40, 1-based).

    Raises:
        ValueError: unknown mode or out-of-range parameters.
    """
    if mode == "none":
        return None
    if mode == "ema":
        return EMAAverager(algorithm, ema_decay)
    if mode == "swa":
        if not 0.0 <= swa_start < 1.0:
            raise ValueError(f"training.swa_start must be in [0, 1), got {swa_start}")
        return SWAAverager(algorithm, min(epochs - 1, math.floor(swa_start * epochs)), device)
    raise ValueError(f"training.averaging must be one of {AVERAGING}, got {mode!r}")
