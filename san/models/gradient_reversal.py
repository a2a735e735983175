"""Gradient reversal (Ganin & Lempitsky, 2015) and the DANN warm-up schedule of its coefficient.

The layer lets one backward pass train two players with opposite goals. For features
f = G_f(x) and a domain discriminator G_d on top of R_lambda(f):

    forward:   R_lambda(f) = f
    backward:  dL/df = -lambda * dL/dR

so G_d descends the domain loss L_d while the feature extractor G_f ascends it (scaled by
lambda): the features are pushed towards carrying no information about the domain.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GradientReverseFunction(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``-lambda_`` backward.

    Inputs:
        - x: any tensor, e.g. the fused features, N x d.
        - lambda_: float >= 0, the reversal coefficient (not a tensor: it gets no gradient).

    Output: a tensor equal to ``x`` (same shape), whose gradient flows back to ``x`` as
    ``-lambda_ * grad_output``.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * -ctx.lambda_, None


class GradientReversal(nn.Module):
    """Module form of :class:`GradientReverseFunction`; set ``lambda_`` before each step.

    Args:
        lambda_: initial reversal coefficient (the SAN algorithm overwrites it every step with
            :func:`dann_lambda`).

    Shape: input N x * (any), output the same tensor values, N x *.
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return GradientReverseFunction.apply(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


def dann_lambda(progress: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """DANN's warm-up of the reversal coefficient.

        lambda(p) = lambda_max * (2 / (1 + exp(-gamma * p)) - 1)

    It rises from 0 at p = 0 (the discriminator's noisy early signal does not disturb the
    features) towards lambda_max (0.9999 * lambda_max at p = 1 with gamma = 10).

    Args:
        progress: p, fraction of training done, in [0, 1].
        lambda_max: the coefficient's limit.
        gamma: steepness of the rise.

    Returns:
        lambda(p) as a float.

    Raises:
        ValueError: if progress is outside [0, 1].
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress must be in [0, 1], got {progress}")
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


LAMBDA_SCHEDULES = ("dann", "linear", "constant")


def adversary_lambda(
    progress: float,
    lambda_max: float = 1.0,
    schedule: str = "dann",
    gamma: float = 10.0,
    delay: float = 0.0,
) -> float:
    """The reversal coefficient at training progress p, with an optional delayed start.

        lambda(p) = 0                               for p < delay
        q         = (p - delay) / (1 - delay)       afterwards
        dann:     lambda_max (2 / (1 + exp(-gamma q)) - 1)     (see :func:`dann_lambda`)
        linear:   lambda_max q
        constant: lambda_max

    During the delay the discriminator still learns (the features get no adversarial gradient),
    so it is a competent adversary when the encoder starts to play.

    Raises:
        ValueError: progress outside [0, 1], delay outside [0, 1), or an unknown schedule.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress must be in [0, 1], got {progress}")
    if not 0.0 <= delay < 1.0:
        raise ValueError(f"lambda_delay must be in [0, 1), got {delay}")
    if schedule not in LAMBDA_SCHEDULES:
        raise ValueError(
            f"unknown lambda_schedule {schedule!r}; expected one of {', '.join(LAMBDA_SCHEDULES)}"
        )
    if progress < delay:
        return 0.0
    rescaled = min(1.0, (progress - delay) / (1.0 - delay))
    if schedule == "dann":
        return dann_lambda(rescaled, lambda_max, gamma)
    return lambda_max * rescaled if schedule == "linear" else lambda_max
