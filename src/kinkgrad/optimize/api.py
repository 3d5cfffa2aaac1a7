"""``kinkgrad.minimize``: nonsmooth minimization that ends with a certified verdict."""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from ..abs_normal._rescale import rescaled_result, scaled_callback, scaled_tol
from ..abs_normal.stationarity import StationarityReport
from ..backends import on_numpy
from ..errors import KinkgradError
from ._concave import concave_escape, descent_escape
from ._landing import land_end_point
from ._norm_finish import best_uncertified, finish_on_zero_norms
from .common import CALLBACK, MAXFEV, MAXITER, TARGET_RADIUS, MethodResult, Monitor
from .oracle import Oracle

__all__ = ["minimize", "METHODS"]

_FLOAT64_ROUNDOFF = float(np.finfo(np.float64).eps) / 2

_ESCAPES = 3  # restarts from a point beside a concave kink (._concave)
_CAP = 1e-6  # the verdict's radius is at most _CAP max(1, ||x||_inf)

METHODS = {"bundle": "bundle", "abs-linear": "abs_linear",
           "gradient-sampling": "gradient_sampling"}


@on_numpy
def minimize(f: Callable, x0: Any, method: str = "bundle", tol: float = 1e-8,
             maxiter: int | None = None, maxfev: int | None = None,
             callback: Callable | None = None, progress: bool | str = False, seed: int = 0,
             options: dict | None = None) -> OptimizeResult:
    """Minimize a scalar nonsmooth function written with ``kinkgrad.numpy`` and certify the
    point it returns.

    Every run ends with :func:`kinkgrad.stationarity` at the final point and the radius the
    method ended at (capped at 1e-6 max(1, ||x||_inf), so that a run stopped with a large
    trust or sampling radius is not called stationary at that coarse scale): ``success`` is
    True exactly when that verdict is "stationary" (some element of the set at that radius
    has norm <= ``tol``), which is proven, not sampled. A certified end point within that
    radius of kinks of single coordinates (z = x_j - c: a lasso's |x_j|) is moved onto them
    exactly when f does not grow beyond rounding and the verdict there is "stationary" too,
    after at most five abs-linear finishing steps from there if needed (their forms are
    counted in ``ngev``; abs-linear's steps land there themselves), so that zero
    coefficients are 0 (:mod:`._landing`). An end point that is not certified next to
    Euclidean norms at zero (a group lasso's zero groups) or other kinks gets up to five
    Newton steps on their manifold (:mod:`._norm_finish`), kept when certified, or when
    their point has f as low (to rounding) and a smaller stationarity distance. The verdict
    is Clarke stationarity, which a concave kink at the end point (f = x^2 - |x| at 0)
    satisfies although f falls beside it: where f is found lower along such kinks'
    directions, or along the descent direction of :func:`kinkgrad.minimality` (which
    decides first-order minimality at the certified point), the method runs again from
    there, up to three times (:mod:`._concave`; gradient sampling from x0 = 0 stopped at
    once on sum(x^2 - |x|)).

    Scale: where f's terms (the largest |df/dv| over its values at x0) lie below 2^-20 or
    beyond 2^40 (2^100 from a far x0, ||x0||_inf > 1e3, whose terms are large where f*'s are
    not), f / 2^e is minimized at tol / 2^e instead (float64 f and x; an exact rescaling:
    the methods' step tests, tolerances and squared norms assume f near unit scale); ``fun``,
    ``history``, the callback and the reports are f's, and ``message`` says so. The
    verdict's radius and the methods' target radius (1e-8) are in x's units, whatever
    ``tol`` is.

    A float32 (or float16) x0 keeps x in that precision: f is evaluated at float32 points,
    and rounding x to them moves f's gradient by about u ||H|| ||x|| (u = 6e-8), so a
    ``tol`` far below that is not met at any point; pass tol to match (1e-5 is met on the
    tests' lasso problems), or a float64 x0.

    Methods (each a module of :mod:`kinkgrad.optimize` with its reference):

    * ``"bundle"`` (default): a proximal bundle method for nonconvex functions with
      downshifted linearization errors, Clarke gradients from the piece a random direction
      enters, the QP subproblem by PIQP, the stationarity test at a shrinking radius, and
      abs-linear finishing steps where it stalls at the target radius.
    * ``"abs-linear"``: successive abs-linear minimization (Griewank and Walther): each step
      minimizes the abs-linear model from ``abs_normal_form`` plus 1/2 dx^T (B + q I) dx,
      a proximal term and (n <= 300; 2000 for l1 terms) the smooth part's curvature B
      learnt by BFGS from the model Lagrangian's gradients (``options={"metric": "none"}``
      leaves it out); its ``ngev`` counts abs-normal forms.
    * ``"gradient-sampling"``: the Burke-Lewis-Overton gradient sampling method.

    Args:
        f: scalar function of one argument written with ``kinkgrad.numpy``.
        x0: starting point, an array or a pytree of arrays (finite, f(x0) finite).
        method: one of ``"bundle"``, ``"abs-linear"``, ``"gradient-sampling"``.
        tol: stationarity tolerance (distance from 0 to the set of generalized gradients).
        maxiter: most iterations (None: the method's default).
        maxfev: most calls of f, gradients, tests and the final verdict included (>= 2;
            None: no limit).
        callback: ``callback(intermediate_result)`` after every iteration, with an
            ``OptimizeResult`` holding ``x``, ``fun`` and ``nit``; return True to stop.
        progress: show a progress bar (True), only on a terminal ("auto"), or not (False);
            it appears only on runs longer than a second.
        seed: seed of the random directions and samples (runs are reproducible).
        options: method-specific options (see each method's ``run``).

    Returns:
        ``scipy.optimize.OptimizeResult`` with ``x`` (shaped like x0), ``fun``, ``nit``,
        ``nfev``, ``ngev``, ``success``, ``status``, ``message``, ``history`` (``fun``,
        ``nfev``, ``ngev`` per iteration), ``stationarity`` (the report), ``minimality``
        (:func:`kinkgrad.minimality`'s report at x at the verdict's radius and ``tol``
        when the run ended certified "stationary"; None otherwise, and where maxiter,
        maxfev or the three restarts left no room for the check), ``method``,
        ``seconds`` and ``cost`` (the gradient-type calls in units of one gradient: a
        stationarity test with m active switches costs 1 + m, an abs-normal form n + s).

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> f = lambda x: knp.max(knp.abs(x - np.array([1.0, -2.0, 0.5])))
        >>> res = kinkgrad.minimize(f, np.zeros(3))
        >>> res.success, np.allclose(res.x, [1.0, -2.0, 0.5], atol=1e-6)
        (True, True)
    """
    if not isinstance(method, str):
        from ..abs_normal._flat import other_arguments

        raise other_arguments("minimize", "method", method, "a string naming the method")
    if method not in METHODS:
        raise KinkgradError(f"minimize: method={method!r}; choose one of "
                            f"{', '.join(repr(m) for m in METHODS)}.")
    if not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol > 0):
        raise KinkgradError(f"minimize: tol={tol!r}; pass a finite number > 0.")
    for name, v, least in (("maxiter", maxiter, 1), ("maxfev", maxfev, 2)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < least):
            why = "" if least == 1 else " (f is called at x0 and for the final verdict)"
            raise KinkgradError(f"minimize: {name}={v!r}; pass an integer >= {least}{why} "
                                "or None.")
    if callback is not None and not callable(callback):
        raise KinkgradError("minimize: callback must be callable (or None).")
    if not (isinstance(progress, bool) or progress == "auto"):  # NOTE: "yes" and 2 passed
        raise KinkgradError(f"minimize: progress={progress!r}; pass True, False or 'auto'.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise KinkgradError(f"minimize: seed={seed!r}; pass an integer >= 0.")
    if options is not None and not isinstance(options, dict):
        raise KinkgradError(f"minimize: options={options!r}; pass a dict of the method's "
                            "options (or None).")
    _check_options(method, options or {})
    # NOTE: the methods' own arithmetic under IEEE rules whatever the caller's np.seterr:
    # an overflow is inf and an underflow 0 (the bundle's ||x|| at x0 = 1e300, or 1e-310,
    # raised FloatingPointError under np.seterr(all="raise")); f's values are tested apart
    with np.errstate(over="ignore", under="ignore"):
        return _solve(f, x0, method, float(tol), maxiter, maxfev, callback, progress, seed,
                      options)


def _check_options(method: str, options: dict) -> None:
    """Raise KinkgradError naming the method's options where ``options`` has another key
    (a method taking ``**unknown`` checks its own)."""
    run = importlib.import_module(f".{METHODS[method]}", __package__).run
    params = inspect.signature(run).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY
             and k not in ("tol", "maxiter", "monitor")]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise KinkgradError(f"minimize(method={method!r}): unknown option(s) "
                            f"{', '.join(unknown)}; the options are {', '.join(names)}.")


def _solve(f: Callable, x0: Any, method: str, tol: float, maxiter: int | None,
           maxfev: int | None, callback: Callable | None, progress: bool | str, seed: int,
           options: dict | None) -> OptimizeResult:
    """:func:`minimize` after its arguments are checked."""
    start = time.perf_counter()
    oracle = Oracle(f, x0, maxfev, seed)
    e, user_tol = oracle.exponent, tol
    if e is not None:  # NOTE: the run is on f / 2^e (exact); what the caller sees is f's
        tol, callback = scaled_tol(tol, e), scaled_callback(callback, e)
    module = importlib.import_module(f".{METHODS[method]}", __package__)
    monitor = Monitor(callback, oracle.tree, progress, f"minimize ({method})")
    try:
        out, rep = _run(oracle, module, method, tol, maxiter, monitor, options)
        minimal = None  # minimality's report at out.x, once made there
        for _ in range(_ESCAPES):  # NOTE: Clarke-stationary on a concave kink: f falls
            if rep.verdict != "stationary" or _stopped(out, maxiter):  # beside it (._concave)
                break
            left = None if maxiter is None else maxiter - out.nit
            if left is not None and left <= 0:
                break
            escape, why = concave_escape(oracle, out.x, out.fun, rep.radius), "on a concave kink"
            if escape is None:
                escape, minimal = descent_escape(oracle, out.x, out.fun, rep.radius, tol,
                                                 rep)
                why = ("but not minimal (kinkgrad.minimality)" if minimal is None
                       or minimal.verdict == "not minimal" else "and f falls beside it "
                       "(kinkgrad.minimality)")
            if escape is None:
                break
            minimal = None  # NOTE: the run goes on from elsewhere
            oracle.x0, oracle.f0 = escape
            monitor.done = out.nit  # NOTE: the callback's nit goes on counting
            again, rep = _run(oracle, module, method, tol, left, monitor, options)
            out = replace(again, nit=out.nit + again.nit, message=(
                f"{out.message} Stationary {why}, where f falls to {escape[1]:.6g} along "
                f"its direction: {method} again from there. {again.message}"))
    finally:
        monitor.close()
    message = f"{out.message} Verdict at radius {rep.radius:.3g}: {rep.verdict}."
    if rep.verdict != "stationary" and oracle.x_roundoff > _FLOAT64_ROUNDOFF:
        message += (" x is held in x0's precision, below float64, whose rounding limits how "
                    "near a stationary point it comes and is shown: pass a tol to match "
                    "(e.g. 1e-5) or a float64 x0 (a torch model: model.double()).")
    if out.status == MAXFEV:
        message = f"maxfev={maxfev} evaluations reached. " + message
    fun = float(out.fun)
    if e is not None:
        fun, rep, minimal, message = rescaled_result(e, user_tol, out.fun, oracle.history,
                                                     rep, minimal, message)
    return OptimizeResult(x=oracle.tree(out.x), fun=fun, nit=out.nit,
                          nfev=oracle.nfev, ngev=oracle.ngev, cost=oracle.cost,
                          success=rep.verdict == "stationary",
                          status=out.status, message=message, history=oracle.history,
                          stationarity=rep, minimality=minimal,
                          method=method,
                          seconds=time.perf_counter() - start)


def _stopped(out: MethodResult, maxiter: int | None) -> bool:
    """Whether the run stopped at a limit the caller set (a method's default maxiter is not
    one)."""
    return out.status in (MAXFEV, CALLBACK) or (out.status == MAXITER and maxiter is not None)


def _run(oracle: Oracle, module: Any, method: str, tol: float, maxiter: int | None,
         monitor: Monitor, options: dict | None
         ) -> tuple[MethodResult, StationarityReport]:
    """The method's run from ``oracle.x0`` and the verdict on its end point (moved onto its
    coordinate kinks, or finished on its zero norms, where that certifies)."""
    out = module.run(oracle, tol=float(tol), maxiter=maxiter, monitor=monitor,
                     **(options or {}))
    # NOTE: a run stopped early can end with a large trust or sampling radius, at which
    # almost any point is "stationary"; the verdict is taken at a small scale instead, but
    # not below the spacing of x's dtype (a float32 x comes no nearer a kink)
    size = float(np.max(np.abs(out.x), initial=0.0))
    floor = oracle.spacing(out.x)
    # (x's units: tol is f's gradient's, so s f would be tested in a ball s times wider)
    radius = max(min(float(out.radius), _CAP * max(1.0, size)), floor)
    if method == "abs-linear":  # NOTE: its steps land on the kinks already
        rep = oracle.stationarity(out.x, radius, float(tol), counted=False)
    else:
        out, rep = land_end_point(oracle, out, radius, float(tol))
    stopped = _stopped(out, maxiter)
    if rep.verdict != "stationary" and oracle.norm_steps and not stopped:  # NOTE: zero
        # groups of Euclidean norms (or kinks as norms of one entry): Newton steps on their
        # manifold, which land there (tested at <= tol); not past a limit the caller set (a
        # method's default maxiter is not one: abs-linear from a float32 x0 ran out of its
        # 200 iterations 5.5e-4 from the sparse group lasso's minimiser)
        near = max(min(radius, TARGET_RADIUS), floor)  # NOTE: x's units (was tol: f's gradient's)
        done = finish_on_zero_norms(oracle, out.x, out.fun, float(tol), near, out.nit,
                                    out.message)
        if done is None:  # NOTE: not certified: a better point they reached, if any
            done = best_uncertified(oracle, out, rep, near, float(tol))
        if done is not None:  # its test was at that radius and tol: the verdict
            out, rep = done
    return out, rep
