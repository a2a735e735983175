"""Gradient reversal layer and the DANN lambda schedule."""

from __future__ import annotations

import math

import pytest
import torch

from san.models.gradient_reversal import GradientReversal, GradientReverseFunction, dann_lambda


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 2.5])
def test_forward_is_identity_and_backward_is_minus_lambda_times_grad(lambda_: float) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=generator, requires_grad=True)
    incoming = torch.randn(5, 7, generator=generator)

    y = GradientReversal(lambda_)(x)
    y.backward(incoming)

    assert torch.equal(y.detach(), x.detach())
    torch.testing.assert_close(x.grad, -lambda_ * incoming, rtol=0, atol=0)


def test_jacobian_is_minus_lambda_identity() -> None:
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jacobian = torch.autograd.functional.jacobian(lambda t: GradientReverseFunction.apply(t, 0.7), x)
    torch.testing.assert_close(jacobian, -0.7 * torch.eye(6, dtype=torch.float64))


def test_reversal_inside_a_graph_and_lambda_set_per_step() -> None:
    layer = GradientReversal()
    weights = torch.tensor([1.0, -2.0, 3.0])
    for lambda_ in (0.25, 4.0):
        layer.lambda_ = lambda_
        x = torch.ones(3, requires_grad=True)
        (layer(x) * weights).sum().backward()
        torch.testing.assert_close(x.grad, -lambda_ * weights)


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (0.0, 0.0),
        (0.5, 2 / (1 + math.exp(-5.0)) - 1),  # 0.98661...
        (1.0, 2 / (1 + math.exp(-10.0)) - 1),  # 0.99990...
    ],
)
def test_dann_lambda_default_schedule(progress: float, expected: float) -> None:
    assert dann_lambda(progress) == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_dann_lambda_values_scaling_and_monotonicity() -> None:
    assert dann_lambda(0.5) == pytest.approx(0.9866142981514303, rel=1e-12)
    # 2 / (1 + exp(-x)) - 1 = tanh(x / 2): an independent form of the same curve.
    for progress in (0.1, 0.37, 0.8):
        expected = 0.5 * math.tanh(1.5 * progress)
        assert dann_lambda(progress, lambda_max=0.5, gamma=3.0) == pytest.approx(expected)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] < 1.0


@pytest.mark.parametrize("progress", [-0.01, 1.01])
def test_dann_lambda_rejects_progress_outside_unit_interval(progress: float) -> None:
    with pytest.raises(ValueError, match="progress"):
        dann_lambda(progress)
