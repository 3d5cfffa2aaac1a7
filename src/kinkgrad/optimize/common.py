"""What every method of :mod:`kinkgrad.optimize` shares: its result record, the user's
callback, the progress bar, and the simplex QP of bundle and sampling methods."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from ..errors import KinkgradError

__all__ = ["MethodResult", "Monitor", "simplex_qp", "check_option"]

# status codes shared by the methods (OptimizeResult.status)
CONVERGED, MAXITER, MAXFEV, STALLED, CALLBACK = 0, 1, 2, 3, 4

# the radius (x's units) at which the methods certify stationarity by default. It is not
# tol: tol bounds a norm of f's gradients, so for s f it is s times larger, and a target
# radius of tol put s f's test in a ball s times wider (s = 1e12: "stationary" at x0 in a
# ball of radius 1e4) or below x's spacing (s = 1e-12)
TARGET_RADIUS = 1e-8


def check_option(method: str, ok: bool, name: str, value: object, fix: str) -> None:
    """Raise KinkgradError naming the method's option and the fix unless ``ok``."""
    if not ok:
        raise KinkgradError(f"minimize(method={method!r}): option {name}={value!r}; {fix}.")


@dataclass
class MethodResult:
    """What a method returns to :func:`kinkgrad.minimize`.

    Attributes:
        x: the final flat point (the best one found).
        fun: f(x).
        nit: iterations done.
        status: ``CONVERGED`` (the method's own stopping test passed), ``MAXITER``,
            ``MAXFEV``, ``STALLED`` (no further progress possible) or ``CALLBACK``.
        message: what happened, in words.
        radius: the radius at which the final stationarity verdict is taken (the method's
            last sampling/bundle/trust radius).
    """

    x: np.ndarray
    fun: float
    nit: int
    status: int
    message: str
    radius: float


class Monitor:
    """Calls the user's callback and updates the progress bar once per iteration.

    ``callback(intermediate_result)`` receives an ``OptimizeResult`` with ``x`` (shaped like
    x0), ``fun`` and ``nit``; returning True (or raising StopIteration) stops the run."""

    def __init__(self, callback: Callable | None, tree: Callable[[np.ndarray], Any],
                 progress: bool | str, desc: str) -> None:
        self.callback, self.tree = callback, tree
        self.done = 0  # iterations of earlier runs (minimize's restarts): added to nit
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            # NOTE: delay=1: the bar appears only on runs longer than a second; "auto" hides
            # it when stderr is not a terminal (no escape codes in logs).
            self.bar = tqdm(desc=desc, unit="it", file=sys.stderr, delay=1.0, leave=False,
                            disable=None if progress == "auto" else False)

    def __call__(self, x: np.ndarray, fun: float, nit: int) -> bool:
        """One iteration done; True when the user asked to stop."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"f={fun:.6g}", refresh=False)
        if self.callback is None:
            return False
        try:
            res = self.callback(OptimizeResult(x=self.tree(x), fun=float(fun),
                                               nit=self.done + nit))
        except StopIteration:
            return True
        return bool(res)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def simplex_qp(G: np.ndarray, alpha: np.ndarray | None = None, t: float = 1.0
               ) -> np.ndarray:
    """argmin over the unit simplex of  t/2 ||G^T lam||^2 + alpha . lam  (the dual of the
    proximal bundle subproblem; alpha = 0 gives the minimum-norm point of conv(rows of G)).

    Solved by PIQP's dense backend (see :mod:`kinkgrad.abs_normal.minnorm` for why PIQP);
    the weights are projected back onto the simplex, so the caller always gets a feasible
    convex combination whatever the solver's accuracy."""
    import piqp

    k = G.shape[0]
    if k == 1:
        return np.ones(1)
    P = np.asfortranarray(t * (G @ G.T))
    c = np.zeros(k) if alpha is None else np.asarray(alpha, np.float64)
    solver = piqp.DenseSolver()
    s = solver.settings
    s.eps_abs, s.eps_rel, s.max_iter, s.verbose = 1e-12, 1e-12, 200, False
    solver.setup(P, c, np.ones((1, k)), np.ones(1), None, None, None, np.zeros(k), None)
    solver.solve()
    lam = np.maximum(np.nan_to_num(np.asarray(solver.result.x), nan=0.0), 0.0)
    total = float(lam.sum())
    return lam / total if total > 0 else np.full(k, 1.0 / k)
