"""Successive abs-linear minimization (``kinkgrad.minimize(..., method="abs-linear")``).

References:
    A. Griewank, A. Walther, "Relaxing kink qualifications and proving convergence rates in
    piecewise smooth optimization", SIAM J. Optim. 29(1) (2019) 262-289 (SALMIN: successive
    abs-linear minimization with a proximal term).
    A. Griewank, A. Walther, "Finite convergence of an active signature method to local
    minima of piecewise linear functions", Optim. Methods Softw. 34(5) (2019) 1035-1055
    (the inner active-signature method).
    S. Fiege, A. Walther, A. Griewank, "An algorithm for nonsmooth optimization by
    successive piecewise linearization", Math. Program. 177 (2019) 343-370 (LiPsMin).

What is implemented (outer loop here; the model subproblem in :mod:`._abs_linear_model`,
its QPs in :mod:`._abs_linear_qp`):

1. At the iterate x build the abs-normal form (``Oracle.abs_normal``: one ``ngev``) and its
   abs-linear model phi(dx) = cy + J dx + Y|z(dx)|, z(dx) = cz + Z dx + L|z(dx)| (exact for
   piecewise-linear f, second-order accurate for abs-smooth f). A form given as operators
   (large s) is materialised with ``todense()`` when s (n + s) <= ``dense_limit``, above
   that with ``tosparse()`` (compressed reverse sweeps: a chained function's form at
   n = 10^4 in a few dozen sweeps) when Z and L have at most ``dense_limit`` nonzeros;
   otherwise the method stops with status STALLED and says so.
2. Minimize phi(dx) + q/2 ||dx||^2 locally, by an active-signature method: on the piece of
   a fixed signature sigma the problem is a convex QP in (dx, |z|) (PIQP: dense backend for
   n + s <= 300 or dense data, sparse otherwise; solved in variables scaled to the step,
   then polished on its active set to a verified KKT point); a switch at its kink whose
   multiplier shows that the model decreases on the other side (reduced-cost sign test) is
   flipped, and a flip is kept only when the exact model value decreases, until no flip
   passing the test helps. The walk starts on the piece of the solution of the convex
   relaxation (|z| replaced by t >= |z|) when that relaxation is verified exact there
   (the model's value at its dx equals the relaxation's lower bound, so dx is a global
   minimizer of the model; this held on nearly every subproblem of the ten
   ``kinkgrad.problems``, and the walk then ends at once), else on the piece of dx = 0.
   Griewank and Walther's active signature method is a primal active-set method moving
   between neighbouring pieces; here every piece problem is instead solved to optimality
   by an interior-point QP, and the sign changes are decided by its multipliers.
3. Trial point x + dx with predicted decrease pred = phi(0) - phi(dx) (>= q/2 ||dx||^2) and
   actual decrease ared = f(x) - f(x + dx); with the rounding allowance
   noise = 1e-13 (1 + |f(x)|), the proximal parameter q is updated as follows:

   * ared < 0.1 pred - noise: reject; q <- max(2q, min(q_hat, 1000 q)) where
     q_hat = 2 (f(x + dx) - f(x) - (phi(dx) - phi(0))) / ||dx||^2 is the curvature the
     model missed (the q for which phi + q/2 ||dx||^2 would have overestimated f at that
     step, the quadratic overestimation SALMIN's q aims at; ignored when that model error
     is below 10 noise, i.e. rounding); q <- 10 q when f(x + dx) is not finite or the QP
     solver found no model decrease;
   * otherwise accept, and q <- max(q/2, qmin) when ared >= 0.9 pred (very successful),
     else q unchanged.

   Near a minimizer of a sum of many terms f's rounding error exceeds that allowance (chained
   crescent I at n = 10^4: ~1e-12 at f ~ 1e-13, from 10^4 terms (b - 1)^2 + b - 1 rounding at
   1), and every step would be rejected until q passes qmax. So before rejecting a step with
   pred <= 1e8 u (1 + |f|) (u the unit roundoff of f's dtype) the rounding error of f(x) is
   estimated (:func:`kinkgrad.rounding_error`: one reverse sweep, once per iterate, counted
   as one ``ngev``) and noise raised to twice it. A step accepted only thanks to that is a
   decrease f cannot resolve: q halves (the model, second-order accurate there, is trusted;
   the verdict at the end is the exact test's, not f's). Where the estimate is below the
   fixed allowance nothing changes (halving q on every unresolved step instead made chained
   CB3 II at n = 10 cycle: its model misses curvature at that scale, and only rejections
   tell).

   On a piecewise-linear f the model is exact, ared = pred and q halves every step: the
   iteration is the proximal point method on f, which reaches a minimizer of a polyhedral
   convex function in finitely many steps, and in practice a local minimizer of a
   nonconvex one in a few. An accepted point where f has no abs-normal form (exactly on a
   kink where f is not abs-smooth, e.g. brown2 at 0) is replaced by x + (1 - 1e-3) dx.
4. Stop (CONVERGED) when the model step is stationary for the model (QP solved, no
   improving flip), its stationarity measure ||(B + q I) dx|| (the norm of -(B + q I) dx,
   an element of the model's subdifferential at dx) is <= tol and ||dx|| <= xtol
   (1 + ||x||). The final step x + dx is then taken when f has a form there and does not grow
   (for piecewise-linear f it lands on the kinks). Also CONVERGED where the steps crawl
   (an accepted step decreased f by at least half as much as the last one): there
   :func:`kinkgrad.stationarity` at radius 1e-8 (not below x's spacing), at iterations spaced
   by half the count so far, ends the run when it says "stationary" (MXHILB at n = 200:
   f - f* = 1e-9 at step 16, but the model's test unmet at 200 steps, 126 s; now 18, 11 s).
   It also runs when a subproblem first fails at x (PIQP's iteration limit, where each
   failure raised q tenfold up to qmax: max-affine at n = 100, 6.9 -> 2.5 s).
   Other ends: MAXITER, MAXFEV (the current iterate), CALLBACK, and STALLED when q exceeds
   qmax after a rejection that measured no curvature above f's rounding, when the step no
   longer changes x in floating point, or after 10 consecutive accepted steps without a
   decrease of f (rounding level).

5. Curvature (``metric="bfgs"``, n <= 300; n <= 2000 where every switch is the kink of one
   coordinate, whose piece QPs are in R^n, :mod:`._abs_linear_box`): the model is first order in the
   smooth part, and with q I alone the method converges at a rate about 1 - mu/L on an
   ill-conditioned smooth part (max-affine + 1/2 ||Q x||^2 with cond(Q^T Q) ~ 1e5: 2 of 10
   random instances certified in 2000 iterations; with the metric 10 of 10 in 32-94). So the
   subproblem gets a metric, min phi(dx) + 1/2 dx^T (B + q I) dx, and the predicted decrease
   includes 1/2 dx^T B dx. B is learnt as in SQP (:mod:`._metric`): after an accepted step,
   Powell's damped BFGS update with the change of the gradient in x of the model's
   Lagrangian, J - Z^T y, the step's multipliers y held fixed. It starts at the first pair
   with positive curvature, and q then returns to its start value: q had been raised for the
   curvature B now holds. On a piecewise-linear f the pairs are 0 and B never starts. When
   the measure stalls (LearntMetric.stalled), B is set by differences of J - Z^T y (n
   gradients). Every piece QP has the dense block B + q I in P, hence the limit on n; the QP's
   scaling divides by q + ||B||_F instead of q.

Final radius: max(2 ||dx||, 1e-12), dx a model step at the returned point: on CONVERGED the
one that passed the test; otherwise the first one computed there, or, when rejections have
since raised q, the one for the last q that produced a decrease above the rounding level (one
more subproblem, no evaluation of f). The model's stationary point lies at distance ||dx|| and
-q dx is a convex combination of gradients of the pieces meeting there (with a metric, -(B + q
I) dx), which the near-active test of ``kinkgrad.stationarity`` (|z_i| <= r ||grad z_i||)
recognises at radius ||dx|| to first order (exactly on piecewise-linear programs); the factor
2 covers the second-order model error of abs-smooth programs and the QP's accuracy. The radius
thus shrinks with the steps, and the verdict is taken on the ball the method has resolved.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._core.checks import is_int, is_real
from ..errors import KinkgradError
from ._abs_linear_box import BoxPieceQP, piece_qp
from ._abs_linear_model import AbsLinearModel, PieceQP, minimize_model, model_at
from ._metric import LearntMetric
from ._norm_finish import finish_on_zero_norms
from .common import (
    CALLBACK,
    CONVERGED,
    MAXFEV,
    MAXITER,
    STALLED,
    TARGET_RADIUS,
    MethodResult,
    Monitor,
    check_option,
)
from .oracle import BudgetExhausted, Oracle

__all__ = ["run"]

_MAXITER = 200  # default iteration limit (one iteration = one model subproblem + one trial)
_ETA_ACCEPT, _ETA_GOOD = 0.1, 0.9
_NOISE = 1e-13  # relative rounding level of f: decreases below it are not resolved
_NEAR_ROUNDING = 1e8  # predicted decreases below 1e8 u (1 + |f|): estimate f's rounding
_FLAT = 10  # consecutive accepted steps (within the rounding level) with no decrease: stop
_SHORTEN = 1e-3  # a step whose end has no abs-normal form is shortened by this fraction
_METRIC_N = (300, 2000)  # largest n with a learnt metric B (dense, in every piece QP's P);
#                         the second where every switch is a coordinate's (BoxPieceQP)
_PROBE_AFTER = 3  # finishing steps before B is probed (n gradients) if none certified
_NORMS_AFTER = 20  # zero-norm steps first tried here, then once per n + 10 iterations


def _check(ok: bool, name: str, value: object, fix: str) -> None:
    check_option("abs-linear", ok, name, value, fix)


def _positive(name: str, v: object) -> float:
    _check(is_real(v) and v > 0, name, v, "pass a finite number > 0")  # type: ignore[operator]
    return float(v)  # type: ignore[arg-type]


def run(oracle: Oracle, *, tol: float, maxiter: int | None, monitor: Monitor,
        q0: float = 1.0, qmin: float = 1e-10, qmax: float = 1e12, xtol: float = 1e-6,
        max_pieces: int = 100, backend: str = "auto", dense_limit: float = 3e7,
        relax: bool = True, metric: str = "bfgs", **unknown: object) -> MethodResult:
    """Successive abs-linear minimization with a proximal term (see the module docstring).

    Args:
        oracle: the counting oracle (f, abs-normal forms).
        tol: stationarity tolerance of the stopping test ||(B + q I) dx|| <= tol.
        maxiter: most iterations, each one model subproblem and one trial point
            (None: 200).
        monitor: called once per iteration.
        q0: initial proximal weight q.
        qmin, qmax: bounds of q; the run stops (STALLED) when a rejection pushes q above
            qmax (f cannot be decreased at the resolution of the model), unless that
            rejection measured curvature the model missed beyond f's rounding (a steep or
            scaled f, 1e16 ||x - c||^2, needs q far above any fixed bound).
        xtol: the final model step must satisfy ||dx|| <= xtol (1 + ||x||).
        max_pieces: most piece QPs per subproblem.
        backend: PIQP backend, "auto" (dense for n + s <= 300, or n + s <= 3000 with at
            least 0.05 (n + s)^2 nonzeros in the QP's equality matrix), "dense" or "sparse".
        dense_limit: largest s (n + s) for which a matrix-free form is materialised as
            dense arrays; above it the form is built sparse (compressed reverse sweeps,
            :meth:`~kinkgrad.abs_normal.form.AbsNormalForm.tosparse`) when Z and L have at
            most this many nonzeros.
        relax: start each subproblem from the convex relaxation's piece (see
            :func:`~._abs_linear_model.minimize_model`); switched off for the rest of the
            run after three consecutive subproblems where the relaxation was not exact.
        metric: "bfgs" (for n <= 300, or n <= 2000 where every switch is the kink of one
            coordinate) to add 1/2 dx^T B dx to the model, B learnt from the accepted steps
            (module docstring, item 5), or "none" (B = 0). Above those n B = 0 either way.

    Returns:
        A :class:`MethodResult`; ``radius`` as in the module docstring.
    """
    if unknown:
        raise KinkgradError(f"minimize(method='abs-linear'): unknown option(s) "
                            f"{', '.join(sorted(unknown))}; the options are q0, qmin, qmax, "
                            "xtol, max_pieces, backend, dense_limit, relax and metric.")
    q0, qmin, qmax, xtol = (_positive(k, v) for k, v in
                            (("q0", q0), ("qmin", qmin), ("qmax", qmax), ("xtol", xtol)))
    dense_limit = _positive("dense_limit", dense_limit)
    _check(is_int(max_pieces) and max_pieces >= 1, "max_pieces", max_pieces,
           "pass a positive integer")
    _check(backend in ("auto", "dense", "sparse"), "backend", backend,
           "choose 'auto', 'dense' or 'sparse'")
    _check(isinstance(relax, bool), "relax", relax, "pass True or False")
    _check(metric in ("bfgs", "none"), "metric", metric, "choose 'bfgs' or 'none'")
    if qmin > qmax:
        raise KinkgradError("minimize(method='abs-linear'): options need qmin <= qmax.")
    maxiter = _MAXITER if maxiter is None else int(maxiter)
    return Salmin(oracle, tol, maxiter, monitor, min(max(q0, qmin), qmax), qmin, qmax, xtol,
                  int(max_pieces), backend, dense_limit, relax, metric == "bfgs").run()


class Salmin:
    """The state of one run: the iterate x, f(x), its model, q and the counters."""

    def __init__(self, oracle: Oracle, tol: float, maxiter: int, monitor: Monitor, q: float,
                 qmin: float, qmax: float, xtol: float, max_pieces: int, backend: str,
                 dense_limit: float, relax: bool, learn: bool) -> None:
        self.oracle, self.tol, self.maxiter, self.monitor = oracle, tol, maxiter, monitor
        self.q, self.qmin, self.qmax, self.xtol = q, qmin, qmax, xtol
        self.max_pieces, self.backend, self.dense_limit = max_pieces, backend, dense_limit
        self.relax, self.relax_fails, self.flat = relax, 0, 0
        self.x, self.fx = oracle.x0.copy(), oracle.f0
        self.nit, self.radius, self.q_ref, self.q_start = 0, 1e-12, q, q
        self.q_stop = 0.0  # the stopping test reads max(q, q_stop) ||dx|| <= tol
        self.rounding: float | None = None  # estimate of f(x)'s rounding error, once asked
        self.merit: Callable[[np.ndarray], float] | None = None  # abs_linear_finish's
        self.model: AbsLinearModel | None = None
        self.qp: PieceQP | None = None
        self.metric = LearntMetric() if learn and oracle.x0.size <= _METRIC_N[1] else None
        self.stalled = False  # B is probed before the next step (LearntMetric.stalled)
        # the last rejection measured curvature the model missed beyond f's rounding (a
        # steep or scaled f: 1e13 ||x - c||^2 needs q ~ 2e13): q may then pass qmax
        self.missed = False
        self.norms_at = _NORMS_AFTER - oracle.n - 10  # zero-norm steps last tried
        # the next test (_certify), the last step's decrease, a subproblem failed at x
        self.test_at, self.decrease, self.failed = 2, np.inf, False

    # ------------------------------------------------------------------ helpers
    def _model_at(self, x: np.ndarray) -> tuple[AbsLinearModel | None, str | None]:
        return model_at(self.oracle, x, self.dense_limit)

    def _move(self, x: np.ndarray, model: AbsLinearModel) -> None:
        self.x, self.fx, self.model = x, model.f, model
        self.rounding = None
        with np.errstate(all="ignore"):
            self.qp = piece_qp(model, self.backend, self.B) if model.s else None

    @property
    def B(self) -> np.ndarray | None:
        return None if self.metric is None else self.metric.B

    def _step(self, q: float):
        use = self.relax and self.relax_fails < 3
        return minimize_model(self.model, self.qp, q, self.max_pieces, use, self.B)

    def _end(self, status: int, message: str, converged_radius: bool = False
             ) -> MethodResult:
        """The result; unless converged, the radius comes from the model step at x with the
        last q that produced a resolved decrease (q_ref), when rejections have raised q."""
        if not converged_radius and self.model is not None and self.q > self.q_ref:
            step = self._step(self.q_ref)
            if step.ok:
                self.radius = max(2.0 * float(np.linalg.norm(step.dx)), 1e-12)
        return MethodResult(self.x, self.fx, self.nit, status, message, self.radius)

    def _zero_norms(self) -> MethodResult | None:
        """The zero-norm finishing steps (:mod:`._norm_finish`) from x at the target radius, as the
        bundle tries them at its tests: next to norms at zero the model's curvature is
        1 / ||w_k|| and its steps crawl (TV 16 x 16: 200 iterations, 6 s; now 21, 1.4 s)."""
        self.norms_at = self.nit
        done = finish_on_zero_norms(self.oracle, self.x, self.fx, self.tol, TARGET_RADIUS,
                                    self.nit, f"abs-linear: after {self.nit} iterations.")
        if done is not None:
            self.monitor(done[0].x, done[0].fun, done[0].nit)
        return None if done is None else done[0]

    # ------------------------------------------------------------------ the loop
    def run(self) -> MethodResult:
        done = len(self.oracle.history["fun"])
        try:
            return self._loop()
        except BudgetExhausted:  # NOTE: within an iteration: it did not complete (nit had
            self.nit = min(self.nit, len(self.oracle.history["fun"]) - done)  # counted it)
            return self._end(MAXFEV, f"abs-linear: evaluation budget spent after {self.nit} "
                                     "iterations; returning the best point.")

    def _loop(self) -> MethodResult:
        model, why = self._model_at(self.x)
        if model is None:
            return self._end(STALLED, f"abs-linear: stopped at x0: {why}.")
        self._move(self.x, model)
        if model.n > _METRIC_N[0] and not isinstance(self.qp, BoxPieceQP):
            self.metric = None
        fresh = True
        while True:
            if self.stalled or (self.nit == _PROBE_AFTER and self.merit is not None
                                and self.metric is not None):
                self._probe()
            if self.oracle.euclidean and self.merit is None \
                    and self.nit - self.norms_at >= self.oracle.norm_interval(self.oracle.n + 10):
                done = self._zero_norms()
                if done is not None:
                    return done
            if self.nit >= self.maxiter:
                return self._end(MAXITER, f"abs-linear: maxiter={self.maxiter} iterations "
                                          f"reached (q = {self.q:.3g}); the model is not yet "
                                          "stationary.")
            q = self.q
            step = self._step(q)
            self.relax_fails = 0 if step.relaxed else self.relax_fails + (step.relaxed is False)
            self.nit += 1
            dx = step.dx
            nd = float(np.linalg.norm(dx))
            if fresh and step.ok:  # the step the model asks for at x, before rejections
                self.radius, fresh = max(2.0 * nd, 1e-12), False
            measure = float(np.linalg.norm(  # -(B + q I) dx: in the model's subdifferential
                max(q, self.q_stop) * dx + (0.0 if self.B is None else self.B @ dx)))
            self.stalled = self.merit is None and self.B is not None \
                and self.metric.stalled(measure)  # type: ignore[union-attr]
            if step.ok and step.stationary and measure <= self.tol \
                    and nd <= self.xtol * (1.0 + float(np.linalg.norm(self.x))):
                self.radius = max(2.0 * nd, 1e-12)
                self._final_step(dx)
                return self._end(CONVERGED, f"abs-linear: model stationary, ||(B + q I) dx|| "
                                            f"= {measure:.3g} <= tol after {self.nit} "
                                            "iterations.", converged_radius=True)
            if step.ok and np.array_equal(self.x + dx, self.x):
                self.oracle.record(self.fx)
                self.monitor(self.x, self.fx, self.nit)
                return self._end(STALLED, "abs-linear: the model step is below the "
                                          f"floating-point resolution of x (q ||dx|| = "
                                          f"{q * nd:.3g}).")
            if step.ok:
                f_was = self.fx
                accepted, why = self._trial(step, nd)
            else:
                accepted, why = False, "the QP solver (PIQP) found no model decrease"
                self.q, self.missed = 10.0 * self.q, False
                if not self.failed and self.merit is None:  # NOTE: the first of a streak
                    self.failed, done = True, self._certify()
                    if done is not None:
                        return done
            if accepted:
                fresh, self.failed = True, False
            elif step.ok and why == "":
                why = "f did not decrease as the model predicted"
            self.oracle.record(self.fx)
            if self.flat >= _FLAT:
                self.monitor(self.x, self.fx, self.nit)
                return self._end(STALLED, f"abs-linear: f did not decrease (below its rounding "
                                          f"level) in {_FLAT} consecutive steps (q ||dx|| = "
                                          f"{q * nd:.3g}).")
            if not accepted and self.q > self.qmax and not self.missed:
                self.monitor(self.x, self.fx, self.nit)
                return self._end(STALLED, f"abs-linear: step rejected ({why}) with q = "
                                          f"{self.q:.3g} > qmax = {self.qmax:.3g}; f cannot be "
                                          "decreased at the model's resolution.")
            if self.monitor(self.x, self.fx, self.nit):
                return self._end(CALLBACK, f"abs-linear: stopped by the callback after "
                                           f"{self.nit} iterations.")
            if accepted and self.merit is None:
                slow, self.decrease = f_was - self.fx >= 0.5 * self.decrease, f_was - self.fx
                done = self._certify() if slow and self.nit >= self.test_at else None
                if done is not None:
                    return done

    def _certify(self) -> MethodResult | None:
        """The test that ends a crawling run (item 4) at ``common.TARGET_RADIUS``."""
        self.test_at = self.nit + max(2, self.nit // 2)
        r = max(TARGET_RADIUS, self.oracle.spacing(self.x))
        if self.oracle.stationarity(self.x, r, self.tol).verdict != "stationary":
            return None
        self.radius = r
        return self._end(CONVERGED, f"abs-linear: stationarity certified at radius {r:.3g} "
                                    f"after {self.nit} iterations.", converged_radius=True)

    def _trial(self, step, nd: float) -> tuple[bool, str]:
        """Evaluate f at x + dx, accept or reject, update q (module docstring, item 3)."""
        x, fx, q, dx = self.x, self.fx, self.q, step.dx
        self.missed = False
        pred = -(step.dphi + step.curv)  # the model's decrease, metric included
        noise = _NOISE * (1.0 + abs(fx))
        ft = self.oracle.value(x + dx)
        if not np.isfinite(ft):
            self.q = 10.0 * q
            return False, "f(x + dx) is not finite"
        short = fx - ft < _ETA_ACCEPT * pred - noise
        if pred <= _NEAR_ROUNDING * self.oracle.unit_roundoff * (1.0 + abs(fx)) \
                and (short or self.merit is not None):
            if self.rounding is None:  # f's own rounding error at x, estimated once per x
                self.rounding = self.oracle.rounding(x)
            if np.isfinite(self.rounding):
                noise = max(noise, 2.0 * self.rounding)
        enough = fx - ft >= _ETA_ACCEPT * pred - noise
        hidden = short and enough  # accepted only within f's rounding
        unresolved = pred <= noise  # f cannot tell whether x + dx is lower than x
        if not enough:
            error = ft - fx + pred  # what the model missed; rounding when <= 10 noise
            q_hat = 2.0 * error / max(nd * nd, 1e-300) if error > 10.0 * noise else 0.0
            self.q = max(2.0 * q, min(q_hat, 1e3 * q))
            self.missed = q_hat > 0.0  # curvature f shows beyond its rounding: not a stall
            return False, ""
        xt = x + dx
        new, why = self._model_at(xt)
        if new is None:  # e.g. exactly on a kink where f is not abs-smooth
            xt = x + (1.0 - _SHORTEN) * dx
            fs = self.oracle.value(xt)
            if np.isfinite(fs) and fx - fs >= _ETA_ACCEPT * pred - noise:
                new, why = self._model_at(xt)
        if new is None:
            self.q = 2.0 * q
            return False, str(why)
        judged = self.merit is not None and unresolved  # by the measure, not by f
        if judged and self.merit(xt) >= self.merit(x):  # type: ignore[misc]
            self.q = 2.0 * q  # f cannot rank x and xt; the stationarity measure can
            return False, "the stationarity measure did not fall where f cannot rank the points"
        if not unresolved:
            self.q_ref = q
        if fx - ft >= _ETA_GOOD * pred or hidden or judged:  # f's ratio is noise: trust the
            self.q = max(0.5 * q, self.qmin)                  # model (or the measure)
        self.flat = self.flat + 1 if new.f >= fx else 0
        if self.metric is not None and self.metric.update(
                self.model, new, xt - x, step.multipliers) == "started":  # type: ignore[arg-type]
            self.q = max(self.qmin, min(self.q, self.q_start))  # q no longer stands for the
            #                                   curvature B now holds: back to its start value
        self._move(xt, new)
        return True, ""

    def _probe(self) -> None:
        """B by differences of the Lagrangian's gradient (n gradients;
        :meth:`LearntMetric.probe`) at the multipliers of the step with the current B: when
        finishing steps have not certified after _PROBE_AFTER, or when the model's measure
        stalls under BFGS (:meth:`LearntMetric.stalled`)."""
        y, orc = self._step(self.q).multipliers, self.oracle
        if self.metric.probe(self.x, self.model, y,  # type: ignore[union-attr]
                             lambda z: orc.lagrangian_gradient(z, y), orc.unit_roundoff,
                             convex_only=self.stalled):
            self._move(self.x, self.model)  # type: ignore[arg-type]

    def _final_step(self, dx: np.ndarray) -> None:
        """Take x + dx (or, where f has no form there, x + (1 - 1e-3) dx) if f does not grow
        (the model's minimizer; for piecewise-linear f it lies exactly on the kinks)."""
        for theta in (1.0, 1.0 - _SHORTEN) if np.any(dx) else ():
            new, _ = self._model_at(self.x + theta * dx)
            if new is not None:
                if new.f <= self.fx:
                    self.x, self.fx = self.x + theta * dx, new.f
                break
        self.oracle.record(self.fx)
        self.monitor(self.x, self.fx, self.nit)
