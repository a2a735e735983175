"""QuaPy's ACC and PACC with the gradient of their adjustment loss given to the solver.

Both estimate the prevalences p of a sample by solving q = M p on the probability simplex, where q are
the unadjusted prevalences (CC's or PCC's) and M the class-conditional rates fitted on calibration
rows; QuaPy minimises L(p) = ||M p - q||_2 with SciPy's SLSQP from the uniform vector. Without a
gradient SLSQP estimates one by finite differences, K + 1 evaluations of L per iteration, which made
these two quantifiers most of a run's assemblage evaluation. The gradient is

    dL/dp = M^T (M p - q) / ||M p - q||_2

(0 where the residual vanishes: p solves the system exactly). Same loss, start, bounds, constraint
and solver as QuaPy's (:mod:`san.evaluation.simplex_solver`), so the estimates agree with QuaPy's to
the solver's tolerance (tests compare them); every other behaviour (fitting, the final
clip-and-renormalise) is QuaPy's own.
Imported only when quantifying: QuaPy imports slowly.
"""

from __future__ import annotations

import numpy as np
import quapy.functional as F
from quapy.method.aggregative import ACC, PACC

from san.evaluation.simplex_solver import minimize_on_simplex


def simplex_least_norm(rates: np.ndarray, unadjusted: np.ndarray) -> np.ndarray:
    """argmin over the simplex of ||rates @ p - unadjusted||_2, by SLSQP with the analytic gradient
    (QuaPy's ``ACC.solve_adjustment(..., method="inversion", solver="minimize")`` without finite
    differences)."""
    rates = np.asarray(rates, dtype=float)
    unadjusted = np.asarray(unadjusted, dtype=float)
    n_classes = rates.shape[1]

    def loss_and_gradient(prev: np.ndarray) -> tuple[float, np.ndarray]:
        residual = rates @ prev - unadjusted
        norm = float(np.linalg.norm(residual))
        if norm == 0.0:
            return 0.0, np.zeros(n_classes)
        return norm, rates.T @ residual / norm

    return minimize_on_simplex(loss_and_gradient, n_classes)


class GradientACC(ACC):
    """``ACC(solver="minimize", method="inversion")`` whose solver is given the loss's gradient."""

    def aggregate(self, classif_predictions: np.ndarray) -> np.ndarray:
        estimate = simplex_least_norm(self.Pte_cond_estim_, self.cc.aggregate(classif_predictions))
        return F.normalize_prevalence(estimate, method=self.norm)


class GradientPACC(PACC):
    """``PACC(solver="minimize", method="inversion")`` whose solver is given the loss's gradient."""

    def aggregate(self, classif_posteriors: np.ndarray) -> np.ndarray:
        estimate = simplex_least_norm(self.Pte_cond_estim_, self.pcc.aggregate(classif_posteriors))
        return F.normalize_prevalence(estimate, method=self.norm)
