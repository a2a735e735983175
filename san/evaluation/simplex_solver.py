"""QuaPy's simplex search (``quapy.functional.optim_minimize``) with the loss's gradient given.

QuaPy minimises its quantifiers' losses with SciPy's SLSQP from the uniform vector, bounded to [0, 1]
and constrained to sum to 1, and lets SLSQP estimate the gradient by finite differences: K + 1 loss
evaluations per iteration for K classes. Given the analytic gradient, SLSQP walks the same problem
from the same start at a fraction of the cost; the project's ACC, PACC and HDy use this, and tests
compare their estimates with QuaPy's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import optimize

LossAndGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]


def minimize_on_simplex(loss_and_gradient: LossAndGradient, n_classes: int) -> np.ndarray:
    """argmin of the loss over the probability simplex of ``n_classes`` dimensions (SLSQP from the
    uniform vector, as QuaPy's ``optim_minimize``); ``loss_and_gradient(p)`` returns (L(p), dL/dp)."""
    result = optimize.minimize(
        loss_and_gradient,
        x0=np.full(n_classes, 1.0 / n_classes),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_classes,
        constraints={"type": "eq", "fun": lambda x: 1.0 - x.sum(), "jac": lambda x: -np.ones_like(x)},
    )
    return result.x


BatchLoss = Callable[[np.ndarray], np.ndarray]


def forward_difference(batch_loss: BatchLoss, prev: np.ndarray) -> tuple[float, np.ndarray]:
    """(L(p), the gradient of L at p) by SciPy's own 2-point forward differences on [0, 1]^K, with the
    K + 1 loss values from one call of ``batch_loss`` (rows of points -> their losses).

    For a loss with no usable closed-form gradient (HDy's square roots of empty histogram bins):
    SLSQP given this takes the same steps as when it estimates the gradient itself, one loss
    evaluation at a time (the step is sqrt(machine epsilon) * max(1, |p_k|), turned backwards
    where it would leave [0, 1], as ``scipy.optimize._numdiff.approx_derivative``).
    """
    prev = np.asarray(prev, dtype=float)
    sign = np.where(prev >= 0, 1.0, -1.0)
    step = np.finfo(float).eps ** 0.5 * sign * np.maximum(1.0, np.abs(prev))
    outside = ((prev + step) < 0.0) | ((prev + step) > 1.0)
    step[outside] *= -1  # every step fits backwards: |step| < 1e-7 and the point lies in [0, 1]
    points = prev + np.diag(step)
    steps = points.diagonal() - prev  # the step actually taken, after rounding
    losses = batch_loss(np.vstack([prev, points]))
    return float(losses[0]), (losses[1:] - losses[0]) / steps
