"""The bundle method's finishing steps where it stalls at its target radius: Newton steps
on zero norms and kinks (:mod:`._norm_finish`), else abs-linear steps
(:func:`.abs_linear.finish`), each new point tested at the bundle's target radius."""

from __future__ import annotations

import numpy as np

from ._norm_finish import finish_on_zero_norms
from .abs_linear import finish as abs_linear_finish
from .common import CONVERGED, MAXITER, STALLED, MethodResult, Monitor
from .oracle import BudgetExhausted, Oracle

__all__ = ["finish_stall"]


def finish_stall(oracle: Oracle, stalled: MethodResult, tol: float, monitor: Monitor
                 ) -> MethodResult:
    """Abs-linear finishing steps from a point where the bundle stalled at the target radius
    (:mod:`.bundle`'s docstring); the stalled result when they neither end certified nor
    lower f.

    # NOTE: each new point is tested at the bundle's target radius, and the first one
    # certified ends the finish: the abs-linear model's own stopping test (its step
    # q ||dx|| <= tol) is a different criterion, and from some stalls it is met late or not
    # within the 50 steps while the real test passes earlier (chained Mifflin 2 at n = 50:
    # the model's test unmet after 20 steps, the real one passing at step 24)."""
    on_norms = finish_on_zero_norms(oracle, stalled.x, stalled.fun, tol, stalled.radius,
                                    stalled.nit, stalled.message) if oracle.norm_steps else None
    if on_norms is not None:
        return on_norms[0]
    certified: list[int] = []
    last = [stalled.x]  # the point tested last
    distance = oracle.merit(stalled.radius, tol)  # at the target radius, by point

    def watch(x: np.ndarray, f: float, k: int) -> bool:
        if monitor(x, f, stalled.nit + k):
            return True
        if np.array_equal(x, last[0]):
            return False
        last[0] = x.copy()
        if distance(x) == 0.0:
            certified.append(k)
            return True
        return False

    mark = len(oracle.history["fun"])
    try:
        fin = abs_linear_finish(oracle, stalled.x, stalled.fun, tol=tol, monitor=watch,
                                merit=distance)
    except BudgetExhausted:
        oracle.rewind(mark)
        return stalled
    if fin.nit == 0 or not (certified or fin.fun <= stalled.fun):
        oracle.rewind(mark)  # NOTE: the history holds the iterations nit counts
        return stalled  # NOTE: a certified point may sit at f + rounding, as abs-linear allows
    # NOTE: the finish's own step limit is not the caller's maxiter: reported as MAXITER,
    # `run` took it for the default limit and ran the 50 steps again from their end point
    status = STALLED if fin.status == MAXITER else fin.status
    what = fin.message.removeprefix("abs-linear: ")
    if certified:
        status, what = CONVERGED, f"stationarity certified at radius {stalled.radius:.3g}."
    return MethodResult(fin.x, fin.fun, stalled.nit + fin.nit, status,
                        f"{stalled.message} Then {fin.nit} abs-linear finishing step(s): "
                        f"{what}", stalled.radius)  # the verdict stays at the target radius
