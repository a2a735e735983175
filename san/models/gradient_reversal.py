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
