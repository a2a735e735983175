"""The Algorithm contract (after DomainBed's) and the optimisation step every algorithm shares.

A subclass builds its modules in :meth:`Algorithm.build_modules` and defines the loss in
:meth:`Algorithm.compute_loss`; the base class owns the hyper-parameters, the optimizer, the
AMP GradScaler and the step itself (mixed precision, gradient clipping, the NaN check).
The engine owns the learning-rate schedule, the device and the mode of evaluation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from san.runtime import cpu_has_native_bf16

Batch = Mapping[str, Tensor]

OPTIMIZER_HPARAMS: dict[str, Any] = {
    "optimizer": "sgd",  # 'sgd' (with momentum) or 'adamw'
    "lr": 0.01,  # suits SGD; AdamW usually wants ~1e-3 or lower
    "momentum": 0.9,  # SGD only
    "nesterov": False,  # SGD only
    "weight_decay": 1e-4,
    "label_smoothing": 0.0,
    "class_weights": None,  # None or one float per class: CrossEntropyLoss weight
    "grad_clip": None,  # max global gradient norm; None or 0 = off
    # mixed precision where the hardware has it: float16 + channels_last on a CUDA device, bfloat16
    # autocast on a CPU with bfloat16 instructions (san.runtime.cpu_has_native_bf16); else float32
    "amp": True,
}
OPTIMIZERS = ("sgd", "adamw")


def resolve_hparams(
    owner: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``defaults`` updated with ``overrides`` (deep-copied, so callers' dicts stay untouched).

    Raises:
        ValueError: ``overrides`` has keys not in ``defaults`` (typos); the message names them
            and lists the known keys.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{owner}: unknown hyper-parameter(s) {unknown}; known: {sorted(defaults)}")
    return copy.deepcopy({**defaults, **overrides})


def build_optimizer(param_groups: list[dict[str, Any]], hparams: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD or AdamW over ``param_groups`` (a group may set its own ``lr``).

    Raises:
        ValueError: unknown ``hparams['optimizer']``.
    """
    name = hparams["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=hparams["lr"],
            momentum=hparams["momentum"],
            nesterov=hparams["nesterov"],
            weight_decay=hparams["weight_decay"],
        )
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=hparams["lr"], weight_decay=hparams["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of rows of ``logits`` (N x K) whose arg-max equals ``labels`` (N), a 0-d tensor."""
    return (logits.argmax(dim=1) == labels).float().mean()


class Algorithm(nn.Module):
    """A trainable classifier of PPL/XPL pairs, driven one step at a time by the engine.

    Args:
        num_classes: C, the number of classes.
        num_domains: D, the number of source domains; ``batch['domain']`` is in [0, D).
        hparams: overrides of :attr:`DEFAULT_HPARAMS`.

    Attributes:
        hparams: the resolved hyper-parameters (defaults merged under the overrides).
        optimizer: built over :meth:`param_groups`; the engine wraps it in its LR schedule.
        scaler: the AMP GradScaler (enabled only with ``amp`` on a CUDA machine).

    Raises:
        ValueError: unknown hyper-parameter keys or bad values; fewer than 2 classes.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = OPTIMIZER_HPARAMS
    # Random-search distributions (san.algorithms.hparam_space); {} = nothing to search
    HPARAM_SPACE: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_classes: int, num_domains: int, hparams: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"{type(self).__name__}: needs at least 2 classes, got {num_classes}")
        if num_domains < 1:
            raise ValueError(f"{type(self).__name__}: needs at least 1 source domain, got {num_domains}")
        self.num_classes = num_classes
        self.num_domains = num_domains
        self.hparams = resolve_hparams(type(self).__name__, self.DEFAULT_HPARAMS, hparams)
        self.register_buffer("class_weights", self._class_weights_tensor(), persistent=False)
        self._channels_last = False
        self.build_modules()
        self.optimizer = build_optimizer(self.param_groups(), self.hparams)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.hparams["amp"] and torch.cuda.is_available())

    # --- what subclasses define -------------------------------------------------------------
    def build_modules(self) -> None:
        """Create the sub-modules (called once by ``__init__``, before the optimizer)."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups; by default one group holding every parameter."""
        return [{"params": list(self.parameters())}]

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        """Forward pass of a training step: (the loss to minimise, scalars to log)."""
        raise NotImplementedError

    def predict(self, batch: Batch) -> Tensor:
        """Class logits N x C (call ``eval()`` and ``torch.no_grad()`` first, as the engine does)."""
        raise NotImplementedError

    def features(self, batch: Batch) -> Tensor:
        """The features the class head sees, N x d (for t-SNE plots and linear probes)."""
        raise NotImplementedError

    def set_training_distribution(self, joint: np.ndarray) -> None:
        """Called by the engine before training with P(class, domain) of one batch draw, a C x D
        matrix (:meth:`san.training.sampling.BalancedBatchSampler.class_domain_distribution`).
        Algorithms that weigh or judge domain losses by the label shift keep it; the default ignores it."""

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer :meth:`update` steps; the engine's schedule drives only :attr:`optimizer`.
        A parameter without a gradient in a step is left alone by each of them."""
        return [self.optimizer]

    # --- the shared optimisation step -------------------------------------------------------
    def update(self, batch: Batch, progress: float) -> dict[str, float]:
        """One optimisation step on ``batch``; ``progress`` in [0, 1] is the fraction of training done.

        Gradients are zeroed at the start of the step, so after it ``p.grad`` holds the
        gradients this step applied.

        Returns:
            Scalars to log: ``loss``, ``class_loss``, ``acc`` (batch training accuracy) and the
            algorithm's own (``grad_norm`` too when clipping).

        Raises:
            FloatingPointError: the loss is NaN or infinite (the message gives its value and terms).
            ValueError: labels outside [0, num_classes).
        """
        self.train()
        self._check_labels(batch["label"])
        use_amp = self._amp_active()
        if use_amp and not self._channels_last:
            self.to(memory_format=torch.channels_last)
            self._channels_last = True
        optimizers = self.optimizers()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        # The record_function labels name the phases in a torch.profiler trace (san.training.profiling).
        with self._autocast(), record_function("step/forward"):
            loss, terms = self.compute_loss(batch, progress)
        logs = {"loss": loss.item(), **{name: float(value) for name, value in terms.items()}}
        if not math.isfinite(logs["loss"]):
            details = ", ".join(f"{name}={value:.6g}" for name, value in logs.items())
            raise FloatingPointError(
                f"non-finite training loss {logs['loss']} ({details}); lower the "
                f"learning rate, set grad_clip, or check the inputs for NaN"
            )
        scaler = self.scaler if use_amp else None
        with record_function("step/backward"):
            (scaler.scale(loss) if scaler else loss).backward()
        if self.hparams["grad_clip"]:
            if scaler:
                for optimizer in optimizers:
                    scaler.unscale_(optimizer)
            logs["grad_norm"] = float(nn.utils.clip_grad_norm_(self.parameters(), self.hparams["grad_clip"]))
        with record_function("step/optimizer"):
            for optimizer in optimizers:
                if scaler:
                    scaler.step(optimizer)
                else:
                    optimizer.step()
            if scaler:
                scaler.update()
        return logs

    def training_state(self) -> dict[str, Any]:
        """What a resume needs besides the module parameters: optimizer and GradScaler states."""
        return {"optimizer": self.optimizer.state_dict(), "grad_scaler": self.scaler.state_dict()}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`training_state`'s output.

        Raises:
            ValueError: a key is missing from ``state``.
        """
        missing = sorted({"optimizer", "grad_scaler"} - set(state))
        if missing:
            raise ValueError(
                f"{type(self).__name__}: training state lacks {missing}; "
                f"expected the output of training_state()"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["grad_scaler"])

    # --- helpers for subclasses -------------------------------------------------------------
    def class_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy with the configured label smoothing and class weights."""
        return F.cross_entropy(
            logits, labels, weight=self.class_weights, label_smoothing=self.hparams["label_smoothing"]
        )

    def images(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The (plane, cross) images of ``batch``, channels-last when AMP is active."""
        plane, cross = batch["plane"], batch["cross"]
        if self._amp_active():
            plane = plane.contiguous(memory_format=torch.channels_last)
            cross = cross.contiguous(memory_format=torch.channels_last)
        return plane, cross

    def inference_context(self) -> AbstractContextManager:
        """Autocast for ``predict``/``features`` when AMP is active (else a no-op context)."""
        return self._autocast()

    def precision(self) -> str:
        """The arithmetic of training and inference on the current device, for logs and records."""
        if self._amp_active():
            return "float16 autocast (CUDA)"
        return "bfloat16 autocast (CPU with bfloat16 instructions)" if self._cpu_bf16_active() else "float32"

    def _device_type(self) -> str:
        return next(self.parameters()).device.type

    def _amp_active(self) -> bool:
        """CUDA mixed precision (float16, GradScaler, channels-last) is on."""
        return bool(self.hparams["amp"]) and self._device_type() == "cuda"

    def _cpu_bf16_active(self) -> bool:
        """bfloat16 autocast on this CPU is on (no scaler: bfloat16 has float32's exponent range)."""
        return bool(self.hparams["amp"]) and self._device_type() == "cpu" and cpu_has_native_bf16()

    def _autocast(self) -> AbstractContextManager:
        """The autocast of :meth:`precision` (a no-op context for float32)."""
        if self._amp_active():
            return torch.autocast("cuda", dtype=torch.float16)
        if self._cpu_bf16_active():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def _class_weights_tensor(self) -> Tensor | None:
        weights = self.hparams["class_weights"]
        if weights is None:
            return None
        if len(weights) != self.num_classes or any(float(w) < 0 for w in weights):
            raise ValueError(
                f"{type(self).__name__}: class_weights must hold {self.num_classes} "
                f"non-negative floats (one per class), got {weights}"
            )
        return torch.tensor([float(w) for w in weights], dtype=torch.float32)

    def _check_labels(self, labels: Tensor) -> None:
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"{type(self).__name__}: batch labels must be in [0, {self.num_classes}), "
                f"got values from {int(labels.min())} to {int(labels.max())}"
            )
