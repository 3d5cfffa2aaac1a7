"""The metric B of successive abs-linear minimization (:mod:`.abs_linear`, item 5 of its
docstring): the curvature of the smooth part, learnt by damped BFGS from the gradients of
the model's Lagrangian, as in SQP, or (finishing steps) set by their forward differences.

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

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._abs_linear_model import AbsLinearModel

__all__ = ["LearntMetric", "lagrangian_gradient"]

_DAMP = 0.2  # Powell's damping: the pair's curvature is kept >= 0.2 of the metric's
_SLOW_WINDOW, _SLOW_DROP = 10, 10.0  # stalled: the measure fell < 10-fold in 10 iterations


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
        self._measures: list[float] = []
        self._window = _SLOW_WINDOW

    def stalled(self, measure: float) -> bool:
        """Record the model's stationarity measure ||(B + q I) dx|| of one iteration with
        this B; True (and the record restarts, over a window twice as long) when it fell
        less than _SLOW_DROP-fold over the last _SLOW_WINDOW (then 20, 40, ...) iterations,
        the sign that B, not q, holds the method back. The doubling bounds the probes to
        log2 of the iterations where the stall has another cause (ReLU networks' losses:
        a probe every 10 iterations made 18 in 200 iterations that ended uncertified
        either way).

        BFGS from its scaled start learns one direction per step: on a lasso with AR(1)
        features (n = 250, rho = 0.95) the measure fell from 7 to 1e-3 in 200 iterations;
        probed at iteration 14, the run certified at 18. The published problems' measures
        fall 38-fold or more per 10 iterations (MaxQ, chained CB3 II and Mifflin 2 at
        n = 200), where no probe is made."""
        w = self._measures = [*self._measures[-self._window:], measure]
        if len(w) > self._window and w[-1] > w[0] / _SLOW_DROP:
            self._measures, self._window = [], 2 * self._window
            return True
        return False

    def update(self, old: AbsLinearModel, new: AbsLinearModel, dx: np.ndarray,
               multipliers: np.ndarray | None) -> str:
        """Update B from the models at x and x + dx and the step's multipliers (None when
        s = 0). Returns "started", "updated" or "skipped" (no positive curvature, a
        non-finite pair, or forms with different switches)."""
        if old.s != new.s or old.n != new.n:
            return "skipped"
        with np.errstate(all="ignore"):
            g = lagrangian_gradient(new, multipliers) - lagrangian_gradient(old, multipliers)
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

    def probe(self, x: np.ndarray, model: AbsLinearModel, multipliers: np.ndarray | None,
              gradient_at: Callable[[np.ndarray], np.ndarray | None],
              unit_roundoff: float = 2.0 ** -53, convex_only: bool = False) -> bool:
        """Set B from forward differences of the Lagrangian's gradient J - Z^T y at the n
        points x + h e_i (``gradient_at`` gives it for the fixed multipliers y, one reverse
        sweep each), symmetrized and with negative eigenvalues set to 0 (negative curvature
        is left to q). J and Z are derivatives of smooth functions of (x, |z|), continuous
        across kinks, so the differences need no piece to stay fixed (the multipliers do:
        at a kink the curvature of z_k enters with y_k).

        h = sqrt(2 u) (1 + ||x||), u the unit roundoff of f's values: 1.5e-8 in float64,
        3.5e-4 in float32 (h = 1.5e-8 differenced float32 rounding noise, and a float32
        lasso stalled 3e-4 above its minimum).

        Returns whether B was set: not when a gradient is missing or the differences are 0
        or not finite (a piecewise-linear f), nor, with ``convex_only``, where they have an
        eigenvalue below -1e-4 of the largest in size (BFGS's B is kept there: on ReLU
        networks' losses, indefinite, a probed B left 5 of 6 runs higher after 200
        iterations, e.g. 7.8e-4 -> 2.6e-3)."""
        n = model.n
        h = float(np.sqrt(2.0 * unit_roundoff)) * (1.0 + float(np.linalg.norm(x)))
        g0 = lagrangian_gradient(model, multipliers)
        # first one difference along a random v: H v = 0 only if H = 0 (almost surely), so a
        # piecewise-linear f costs one gradient instead of n
        v = np.random.default_rng(0).standard_normal(n)
        gv = gradient_at(x + h * v / np.linalg.norm(v))
        if gv is None:
            return False
        dv = gv - g0
        if np.max(np.abs(dv)) <= 1e-14 * (1.0 + np.max(np.abs(g0))):
            return False
        G = np.empty((n, n))
        for i in range(n):
            xi = x.copy()
            xi[i] += h
            gi = gradient_at(xi)
            if gi is None:
                return False
            G[i] = (gi - g0) / h
        if not np.all(np.isfinite(G)):
            return False
        w, V = np.linalg.eigh(0.5 * (G + G.T))
        if convex_only and w[0] < -1e-4 * float(np.max(np.abs(w))):
            return False
        w = np.maximum(w, 0.0)
        if not np.any(w > 0.0):
            return False
        self.B = (V * w) @ V.T
        return True


def lagrangian_gradient(model: AbsLinearModel, multipliers: np.ndarray | None) -> np.ndarray:
    """J - Z^T y: the gradient in x of the model's Lagrangian at the multipliers y (None or
    s = 0: J)."""
    if multipliers is None or not model.s:
        return model.J
    return model.J - model.Z.T @ multipliers
