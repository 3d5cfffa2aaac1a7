"""The bundle method's finishing steps where it stalls at its target radius: Newton steps
on zero norms and kinks (:mod:`._norm_finish`), else abs-linear steps
(:func:`abs_linear_finish`), each new point tested at the bundle's target radius."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._norm_finish import finish_on_zero_norms
from .abs_linear import Salmin
from .common import CONVERGED, MAXITER, STALLED, MethodResult, Monitor
from .oracle import BudgetExhausted, Oracle

__all__ = ["finish_stall", "abs_linear_finish"]

_FINISH_Q0 = 1e-2  # abs_linear_finish's first proximal weight (see its NOTE)


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


def abs_linear_finish(oracle: Oracle, x: np.ndarray, fx: float, *, tol: float,
                      monitor: Monitor, maxiter: int = 50,
                      merit: Callable[[np.ndarray], float] | None = None) -> MethodResult:
    """At most ``maxiter`` abs-linear iterations started at x (f(x) = fx): another method's
    finishing steps. Near a local minimizer the abs-linear model is second-order accurate
    and its minimizer lands on the kinks, where a method driven by gradients and line
    searches stalls once f's rounding hides its certified decrease.

    ``merit``: a stationarity measure (the caller's test at its target radius). With it, f's
    rounding error is estimated at every iterate whose steps predict decreases near it, and a
    step whose predicted decrease is below twice that (or the fixed allowance) is judged by
    the measure instead of f: accepted, and q halved, when the measure falls, else rejected
    and q doubled. There f's values cannot rank the points, and with q below the curvature
    the model's steps overshoot: chained Mifflin 2 at n = 1000 got its distance to 1.6e-8,
    then back to 5e-7 over 33 steps accepted on f within its rounding; chained crescent I at
    n = 10^4 drifted away (steps 4e-8 -> 2e-6) on steps whose decreases (~1e-12) looked
    resolved against the fixed allowance 1e-13 but not against f's error (5.6e-12). A
    measure that merely did not grow is not enough: a step x -> -x across a symmetric
    minimum leaves it equal. The metric B (module docstring, item 5) starts anew here: the
    steps are then Newton steps on the kinks, not linear (chained Mifflin 2 at n = 50: 4
    finishing steps instead of 23). Where f ranks no step, BFGS pairs come only from the
    steps the measure accepts: when 3 steps have not certified, B is set from forward
    differences of the Lagrangian's gradient (:meth:`LearntMetric.probe`, n gradients;
    max-affine + ill-conditioned quadratics: 3 of 10 random instances certified without
    it, 10 of 10 with it).

    # NOTE: the proximal weight starts at q0 = 1e-2, not 1: there f's decrease is at its
    # rounding level, so steps are rarely "very successful" and q would stay where it
    # starts; from three of the bundle's stalls at n = 1000 (one run each), q0 = 1 took
    # 19-58 steps (chained Mifflin 2: still undecided after 19) and q0 = 1e-2 took 6-13.
    # The convergence stays linear (the real test's distance falls ~0.6-0.8 per step from
    # some stalls): 50 steps do not always suffice."""
    run = Salmin(oracle, tol, maxiter, monitor, _FINISH_Q0, 1e-10, 1e12, 1e-6, 100, "auto",
                 3e7, True, True)
    run.x, run.fx = np.array(x, dtype=np.float64), float(fx)
    run.q_stop = 1.0  # NOTE: with q ~ 1e-2, q ||dx|| <= tol would stop 1e-6 away
    run.merit = merit
    return run.run()
