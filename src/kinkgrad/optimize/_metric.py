"""The metric B of successive abs-linear minimization (:mod:`.abs_linear`, item 5 of its
docstring): the curvature of the smooth part, learnt by damped BFGS from the gradients of
the model's Lagrangian, as in SQP.

The subproblem at x is  min phi(dx) + 1/2 dx^T (B + q I) dx  (phi the abs-linear model).
After an accepted step dx the pair (dx, g) with

    g = (J_new - Z_new^T y) - (J_old - Z_old^T y),

y the multipliers of the step's piece QP held fixed, updates B. At the step
J - Z^T y = -(B + q I) dx, so J - Z^T y is the gradient in x of the model's Lagrangian;
its change along dx is the curvature of the smooth part plus that of the kinks' functions
weighted by their multipliers, the curvature that matters on the kinks the step lands on.

# NOTE: the change of the gradient of one piece (the signature at the new point choosing
# it) was tried first: on chained Mifflin 2, whose kinks are circles on which the two
# pieces' curvatures differ by 15x, the signs near the kinks picked either, and the bundle
# method's finishing steps at n = 50 no longer certified within 50 steps (4 with the
# Lagrangian's, 23 without a metric).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._abs_linear_model import AbsLinearModel

__all__ = ["LearntMetric"]

_DAMP = 0.2  # Powell's damping: the pair's curvature is kept >= 0.2 of the metric's


class LearntMetric:
    """B, positive definite once started (None before: B = 0).

    It starts at the first pair with positive curvature, at Shanno and Phua's scaling
    (g^T g / g^T dx) I; on a piecewise-linear f every pair is 0 and it never starts (the
    model is exact there). Each update is Powell's damped BFGS: where g^T dx < 0.2
    dx^T B dx, g is replaced by theta g + (1 - theta) B dx with g^T dx = 0.2 dx^T B dx, so
    negative curvature is left to the proximal weight q and B stays positive definite.
    """

    def __init__(self) -> None:
        self.B: np.ndarray | None = None

    def update(self, old: AbsLinearModel, new: AbsLinearModel, dx: np.ndarray,
               multipliers: np.ndarray | None) -> str:
        """Update B from the models at x and x + dx and the step's multipliers (None when
        s = 0). Returns "started", "updated" or "skipped" (no positive curvature, a
        non-finite pair, or forms with different switches)."""
        if old.s != new.s or old.n != new.n:
            return "skipped"
        with np.errstate(all="ignore"):
            g = new.J - old.J
            if multipliers is not None and old.s:
                g = g - (new.Z.T @ multipliers - old.Z.T @ multipliers)
            gs = float(g @ dx)
            if self.B is None and not (np.all(np.isfinite(g)) and gs > 0.0):
                return "skipped"
            B = np.eye(old.n) * (float(g @ g) / gs) if self.B is None else self.B
            Bs = B @ dx
            sBs = float(dx @ Bs)
            if gs < _DAMP * sBs:
                theta = (1.0 - _DAMP) * sBs / (sBs - gs)
                g = theta * g + (1.0 - theta) * Bs
                gs = float(g @ dx)
            if not (np.all(np.isfinite(g)) and gs > 1e-12 * float(np.linalg.norm(g))
                    * float(np.linalg.norm(dx))):
                return "skipped"
            B = B + np.outer(g, g / gs)
            if sBs > 0.0:
                B = B - np.outer(Bs, Bs / sBs)
            started = self.B is None
            self.B = 0.5 * (B + B.T)
        return "started" if started else "updated"
