"""A variable-metric proximal bundle method for nonconvex nonsmooth functions.

References: K. C. Kiwiel, "Methods of Descent for Nondifferentiable Optimization", Lecture
Notes in Math. 1133 (1985) (proximal bundle, aggregation); M. M. Mäkelä, P. Neittaanmäki,
"Nonsmooth Optimization" (1992) and M. M. Mäkelä, "Multiobjective proximal bundle method",
PBNCGC (the linearization-error downshifting rule for nonconvex f); L. Lukšan, J. Vlček,
"Globally convergent variable metric method for convex nonsmooth unconstrained
minimization", J. Optim. Theory Appl. 102 (1999) and N. Haarala, K. Miettinen,
M. M. Mäkelä, "New limited memory bundle method for large-scale nonsmooth optimization",
Optim. Methods Softw. 19 (2004) (a quasi-Newton metric in the bundle subproblem).

The iteration at the stability centre x with bundle {(y_j, f_j, g_j)} (g_j a Clarke
gradient at y_j, from the piece a random direction enters):

1. Downshifted linearization errors alpha_j = max(|f(x) - f_j - g_j . (x - y_j)|,
   gamma ||x - y_j||^2) >= 0 (Mäkelä's rule: a cut of a nonconvex f may lie above f).
2. The subproblem  min_d max_j (g_j . d - alpha_j) + 1/2 d^T H^{-1} d  through its dual
   min over the simplex of 1/2 lam^T (G H G^T) lam + alpha . lam (PIQP, a maintained QP
   library; see :mod:`kinkgrad.abs_normal.minnorm`), giving the aggregate subgradient
   g_a = G^T lam, the aggregate error e_a = alpha . lam, the step d = -H g_a and the
   predicted decrease v = g_a . H g_a + e_a.
3. Deciding, at a radius rho: the aggregate only hints at stationarity, and steps shorter
   than rho mean that the metric has learnt a kink as curvature (tiny steps along a
   crease). So when ||g_a|| <= tol, after ten null steps in a row, when v is at rounding
   level, or when ||d|| <= rho (at most every fifth iteration), kinkgrad *decides* with
   :func:`kinkgrad.stationarity` at radius max(rho, target) (rho starts at 1e-4 (1 + ||x0||),
   the target radius defaults to 1e-8). "stationary" at the target radius ends the run;
   "stationary" at a larger one shrinks rho tenfold and the bundle to that ball; "not
   stationary" gives the exact descent direction of the set at that radius (the negative
   min-norm element), which an Armijo search follows (expanding from ten times the radius),
   and the metric is restarted from that step; when that step stays inside the ball, or the
   direction turns back on the last one certified at that radius (a zig-zag between two
   faces of the ball), rho shrinks tenfold too. The test is one gradient-type evaluation
   (its cost, 1 + m gradients for m active switches, is in ``cost``).
4. Trial y = x + d: a serious step when f(y) <= f(x) - m v (then x = y, and H gets a BFGS
   update with s = y - x and the change of the Clarke gradient, skipped unless s . y > 0);
   otherwise a null step adds the cut at y; after repeated null steps H is scaled down
   (the proximal parameter grows). The bundle keeps at most ``bundle_size`` cuts plus the
   aggregate cut (g_a, e_a), which preserves the convergence argument of aggregation.

5. Finish: a run that stalls at the target radius (the line search cannot resolve the
   certified decrease in f's rounding, or the test is undecided) is near a minimizer that
   gradients and line searches do not reach; up to 50 abs-linear steps from there
   (:mod:`.abs_linear`: the minimizer of the local abs-linear model lands on the kinks),
   each new point tested at the target radius, are kept when one is certified or f does not
   grow (option ``finish=False``: return the stalled point). They also follow a run that
   reaches the default iteration limit (not an explicit ``maxiter``). The test's distance is also
   their merit where f cannot rank two points: a step whose predicted decrease is below
   f's rounding must lower it (:func:`~kinkgrad.optimize._stall_finish.abs_linear_finish`).
   During the run, at tests spaced n + 10 iterations apart (doubled per miss), Newton
   steps on the manifold of the kinks and norms at zero are tried (:mod:`._norm_finish`);
   where they do not certify but reach a lower f, the run goes on from their best point.

Every evaluation is one call of f with one Clarke gradient, or a stationarity test; the
line searches add value-only calls (``nfev``). Steps longer than 1e3 (1 + ||x||) are cut,
and a trial point where f is not finite (or explodes) shrinks the metric without a cut.
"""

from __future__ import annotations

import numpy as np

from . import common
from ._bundle_options import check_options
from ._norm_finish import finish_on_zero_norms
from ._stall_finish import finish_stall
from .common import CALLBACK, CONVERGED, MAXFEV, MAXITER, STALLED, MethodResult, Monitor
from .oracle import BudgetExhausted, Oracle

__all__ = ["run"]

_STALL = 10  # consecutive null steps before kinkgrad's stationarity test is consulted
_SPACING = 5  # bundle iterations between tests triggered by short steps
_FINITE_TRIES = 4  # halvings of a search's step where f has no finite Clarke gradient


class _Bundle:
    """Cuts (y_j, f_j, g_j) with the products H g_j of the current metric (rows of HG, kept
    current by :class:`_Metric`); the aggregate cut is stored with its error at the centre
    and its product."""

    def __init__(self, n: int, size: int) -> None:
        self.size = size
        self.Y = np.zeros((0, n))
        self.F = np.zeros(0)
        self.G = np.zeros((0, n))
        self.HG = np.zeros((0, n))
        self.agg: tuple[np.ndarray, float, np.ndarray] | None = None  # (g_a, e_a, H g_a)

    def add(self, y: np.ndarray, f: float, g: np.ndarray, hg: np.ndarray) -> None:
        self.Y = np.vstack([self.Y, y])
        self.F = np.append(self.F, f)
        self.G = np.vstack([self.G, g])
        self.HG = np.vstack([self.HG, hg])

    def errors(self, x: np.ndarray, fx: float, gamma: float) -> np.ndarray:
        diff = x - self.Y
        lin = fx - self.F - np.einsum("ij,ij->i", self.G, diff)
        return np.maximum(np.abs(lin), gamma * np.einsum("ij,ij->i", diff, diff))

    def keep(self, idx: np.ndarray) -> None:
        self.Y, self.F, self.G, self.HG = self.Y[idx], self.F[idx], self.G[idx], self.HG[idx]

    def trim(self, lam: np.ndarray) -> None:
        """Keep at most ``size`` cuts: those with weight in the last subproblem and the
        newest one first, then the most recent others."""
        k = len(self.F)
        if k <= self.size:
            return
        used = np.zeros(k, bool)
        j = min(k - 1, lam.size)
        used[:j] = lam[:j] > 1e-12
        used[-1] = True
        rank = np.where(used, 2 * k, 0) + np.arange(k)  # used first, then the most recent
        self.keep(np.sort(np.argsort(-rank, kind="stable")[: self.size]))


def _spread(bundle: _Bundle, x: np.ndarray, lam: np.ndarray) -> float:
    k = len(bundle.F)
    w = lam[:k] > 1e-9
    if not w.any():
        return 0.0
    return float(np.max(np.linalg.norm(bundle.Y[w] - x, axis=1)))


def run(oracle: Oracle, *, tol: float, maxiter: int | None, monitor: Monitor,
        bundle_size: int = 50, gamma: float = 1e-8, m_serious: float = 0.01,
        radius: float | None = None, metric: str = "bfgs", finish: bool = True
        ) -> MethodResult:
    """Run the variable-metric proximal bundle method (see the module docstring).

    Args:
        oracle: the counting oracle.
        tol: stationarity tolerance (the final verdict's, and the aggregate's test).
        maxiter: most iterations (default 20 n + 1000; at that default limit the
            finishing steps of ``finish`` follow, as after a stall).
        monitor: callback and progress bar.
        bundle_size: most cuts kept (plus the aggregate).
        gamma: downshifting coefficient of the linearization errors (0 for convex f).
        m_serious: descent fraction of the predicted decrease for a serious step.
        radius: the radius at which stationarity must be certified to stop (default 1e-8,
            ``common.TARGET_RADIUS``: x's units, where tol is the gradient's;
            at each test at least 4 u (1 + ||x||_inf), u the unit roundoff of x's dtype:
            float32 points come no nearer a kink; a point that is stationary at a larger
            radius is only a reason to look closer).
        metric: ``"bfgs"`` (dense inverse BFGS matrix, n <= 3000) or ``"scalar"``.
        finish: when the run stalls at the target radius (a certified descent that f's
            rounding cannot resolve, or an undecided test), take up to 50 abs-linear steps
            from there (:func:`._stall_finish.abs_linear_finish`; needs an abs-normal form,
            and each step counts one ``ngev``) and keep them if one is certified or f does
            not grow.

    Returns:
        A :class:`MethodResult`; ``radius`` is the bundle spread at the end.
    """
    check_options(bundle_size, gamma, m_serious, radius, metric, finish)
    n = oracle.n
    finish_at_limit = finish and maxiter is None  # an explicit maxiter is a hard cap
    maxiter = 20 * n + 1000 if maxiter is None else maxiter
    dense = metric == "bfgs" and n <= 3000
    radius = common.TARGET_RADIUS if radius is None else radius
    x = oracle.x0.copy()
    state = {"x": x, "f": oracle.f0}
    try:
        fx, gx = oracle.value_clarke(x)
        state["f"] = fx
        out = _loop(oracle, x, fx, gx, tol, maxiter, monitor, bundle_size, gamma, m_serious,
                    radius, dense, state, finish)
        if out.status != MAXITER or not finish_at_limit:
            return out
        # the default limit: finishing steps from there, tested at the target radius
        hit = MethodResult(out.x, out.fun, out.nit, MAXITER, out.message,
                           max(radius, oracle.spacing(out.x)))
        done = finish_stall(oracle, hit, tol, monitor)
        return out if done is hit else done
    except BudgetExhausted:
        # NOTE: the iterations done are those recorded (the one the budget ran out in is not)
        return MethodResult(state["x"], state["f"], len(oracle.history["fun"]), MAXFEV,
                            "The evaluation budget ran out.", state.get("r", 1e-6))


def _loop(oracle: Oracle, x: np.ndarray, fx: float, gx: np.ndarray, tol: float, maxiter: int,
          monitor: Monitor, size: int, gamma: float, m_serious: float, r_base: float,
          dense: bool, state: dict, finish: bool = True) -> MethodResult:
    n = oracle.n
    bundle = _Bundle(n, size)
    metric = _Metric(n, 1.0 / max(float(np.linalg.norm(gx)), 1e-12), dense, bundle)
    bundle.add(x, fx, gx, metric.apply(gx))
    g_center = gx
    nulls = 0
    r_target = r_base
    rho = max(1e-4 * (1.0 + float(np.linalg.norm(x))), r_target)  # radius of the next test
    last_test = -_SPACING
    last_dir: tuple[float, np.ndarray] | None = None  # (radius, direction) of the last descent
    state["r"] = r_target
    for k in range(1, maxiter + 1):
        alpha = bundle.errors(x, fx, gamma)
        G, HG = bundle.G, bundle.HG
        if bundle.agg is not None:
            G, HG = np.vstack([G, bundle.agg[0]]), np.vstack([HG, bundle.agg[2]])
            alpha = np.append(alpha, bundle.agg[1])
        lam = _dual(G, HG, alpha) if len(G) > 1 else np.ones(1)
        ga, hga = lam @ G, lam @ HG
        ea = float(lam @ alpha)
        d = -hga
        v = float(ga @ -d) + ea
        step = float(np.linalg.norm(d))
        short = step <= rho and k - last_test >= _SPACING
        if (float(np.linalg.norm(ga)) <= tol or nulls >= _STALL or short
                or v <= 1e-15 * max(1.0, abs(fx))):
            last_test = k
            # NOTE: the aggregate only hints at stationarity, and steps shorter than rho mean
            # the metric has learnt a kink as curvature: kinkgrad decides at radius rho and
            # follows the exact descent direction of the set at that radius, if any.
            # NOTE: not below the spacing of x's dtype at x (float32 points cannot come
            # within 1e-8 of chained LQ's kinks: "not stationary", 2.8e-6, at its end)
            r_target = max(r_base, oracle.spacing(x))
            r = max(rho, r_target)
            state["r"] = r
            rep = oracle.stationarity(x, r, tol)
            if rep.verdict == "stationary" and r <= r_target:
                monitor(x, fx, k)
                oracle.record(fx)
                return MethodResult(x, fx, k, CONVERGED, f"Stationarity certified at radius "
                                    f"{r:.3g} after {k} iterations.", r)
            if oracle.norm_steps and finish and k - state.get("norms_at", -n) >= \
                    oracle.norm_interval(n + 10):
                state["norms_at"] = k  # NOTE: Newton steps on zero norms (_norm_finish.py)
                done = finish_on_zero_norms(oracle, x, fx, tol, r_target, k - 1, f"After "
                                            f"{k - 1} iterations.")  # x: iteration k - 1's
                if done is not None:
                    monitor(done[0].x, done[0].fun, done[0].nit)
                    return done[0]
                # NOTE: not certified, but their best point has f lower: go on from there
                # (a 3-10-1 ReLU net: certified at 1,513 iterations; 2,073 ended 1.6e-5 off)
                best = oracle.finish_best
                if best is not None and best[1] < fx - oracle.allowance(fx):
                    fb, gb = oracle.value_clarke(best[0])
                    if fb < fx - oracle.allowance(fx):
                        x, fx, g_center = best[0].copy(), fb, gb
                        bundle.add(x, fx, gb, metric.apply(gb))
                        state.update(x=x, f=fx)
                        bundle.agg, nulls = None, 0
                        if monitor(x, fx, k):
                            return _stop(oracle, x, fx, k, r)
                        oracle.record(fx)
                        continue
            moved = within = back = False
            if rep.descent is not None:
                dd = oracle.spec.from_tree(rep.descent, "minimize")
                # NOTE: a certified direction that turns back on the last one at this radius
                # (cos = -1 on chained Mifflin 2 at n = 200: 411 of 456 tests, 5,000
                # iterations between two faces of the ball) is a zig-zag: look closer
                back = last_dir is not None and last_dir[0] == r and float(dd @ last_dir[1]) < 0
                last_dir = (r, dd)
                x_new, f_new, g_new = _line(oracle, x, fx, dd, float(rep.slope), r)
                if x_new is not None:
                    s_, y_ = x_new - x, g_new - g_center
                    within = float(np.linalg.norm(s_)) < r
                    x, fx, g_center, moved = x_new, f_new, g_new, True
                    bundle.add(x, fx, g_new, metric.apply(g_new))
                    state.update(x=x, f=fx)
                    sy = float(s_ @ y_)
                    if sy > 0:  # restart the metric, scaled by the certified step
                        metric.restart(sy / float(y_ @ y_))
            if not moved or within or back:  # NOTE: a certified step inside the ball
                # (Armijo failed at the radius itself: the kinks curve away from their
                # linearizations there) zig-zags between the ball's faces, ~1e-8 per step on
                # chained Mifflin 2: the next test looks closer, as after an undecided one
                rho = max(r / 10, r_target)
            if not moved:  # stationary at a large radius, or undecided: look closer
                near = np.linalg.norm(bundle.Y - x, axis=1) <= rho
                near[np.argmin(np.linalg.norm(bundle.Y - x, axis=1))] = True
                bundle.keep(np.flatnonzero(near))
                if rep.verdict != "stationary" and r <= r_target:
                    why = ("the line search along the certified descent direction found no "
                           "decrease f's rounding can resolve" if rep.descent is not None
                           else "the test was undecided")
                    stalled = MethodResult(x, fx, k, STALLED, f"Stopped at the target radius "
                                           f"{r:.3g}: {why}.", r)
                    monitor(x, fx, k)  # NOTE: iteration k is counted: recorded, as the
                    oracle.record(fx)  # certified end's
                    return finish_stall(oracle, stalled, tol, monitor) if finish else stalled
            bundle.agg, nulls = None, 0
            if monitor(x, fx, k):
                return _stop(oracle, x, fx, k, r)
            oracle.record(fx)
            continue
        cap = 1e3 * (1.0 + float(np.linalg.norm(x)))
        if step > cap:  # NOTE: a metric learnt from kinks can ask for absurd steps
            d, v = d * (cap / step), v * (cap / step)
        y = x + d
        fy, gy = oracle.value_clarke(y)
        if not fy <= fx + 1e8 * (1.0 + abs(fx)):  # too long a step (or f not finite there):
            metric.scale(0.1)  # shrink, no cut
            nulls += 1
            continue
        if fy <= fx - m_serious * v:
            s, yv = y - x, gy - g_center
            metric.update(s, yv)
            if bundle.agg is not None:  # the aggregate linearization, re-measured at y
                ea_y = abs(fy - fx + bundle.agg[1] - float(bundle.agg[0] @ s))
                bundle.agg = (bundle.agg[0], max(ea_y, gamma * float(s @ s)), bundle.agg[2])
            x, fx, g_center = y, fy, gy
            state.update(x=x, f=fx)
            nulls = 0
        else:
            nulls += 1
            if nulls % 5 == 0:
                metric.scale(0.5)
            bundle.agg = (ga, ea, hga)
        bundle.add(y, fy, gy, metric.apply(gy))
        bundle.trim(lam)
        if monitor(x, fx, k):
            return _stop(oracle, x, fx, k, state["r"])
        oracle.record(fx)
    return MethodResult(x, fx, maxiter, MAXITER, f"maxiter={maxiter} iterations reached.",
                        state["r"])


def _stop(oracle: Oracle, x: np.ndarray, fx: float, k: int, r: float) -> MethodResult:
    oracle.record(fx)  # iteration k is done and counted in nit
    return MethodResult(x, fx, k, CALLBACK, "Stopped by the callback.", r)


def _dual(G: np.ndarray, HG: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """argmin over the simplex of 1/2 lam^T (G H G^T) lam + alpha . lam."""
    import piqp

    k = len(alpha)
    P = G @ HG.T
    P = 0.5 * (P + P.T)
    # NOTE: nearly identical cuts make P singular; a relative 1e-13 on the diagonal keeps the
    # interior-point iterations few, and any feasible lam still gives a valid aggregate.
    P[np.diag_indices(k)] += 1e-13 * max(float(np.max(np.diag(P))), 1e-300)
    P = np.asfortranarray(P)
    solver = piqp.DenseSolver()
    st = solver.settings
    st.eps_abs, st.eps_rel, st.max_iter, st.verbose = 1e-10, 1e-10, 60, False
    solver.setup(P, np.asarray(alpha, np.float64), np.ones((1, k)), np.ones(1), None, None,
                 None, np.zeros(k), None)
    solver.solve()
    lam = np.maximum(np.nan_to_num(np.asarray(solver.result.x), nan=0.0), 0.0)
    total = float(lam.sum())
    return lam / total if total > 0 else np.full(k, 1.0 / k)


class _Metric:
    """The inverse metric H (a dense BFGS matrix, or t I), and the bundle's products H g_j
    kept current through its updates.

    # NOTE: at n = 1000 forming G H (51 x 1000 by 1000 x 1000) every iteration and the BFGS
    # update with three outer products took three quarters of a bundle run (MaxQ: 9.1 of
    # 18.7 s in the update, 2.6 ms per product); the update is now two rank-1 BLAS updates
    # in place and the products follow it (H+ g = H g + s (w . g) + w (s . g)), one H g per
    # new cut."""

    def __init__(self, n: int, t: float, dense: bool, bundle: _Bundle) -> None:
        self.n, self.t, self.bundle = n, t, bundle
        self.H = np.eye(n) * t if dense else None

    def apply(self, g: np.ndarray) -> np.ndarray:
        return self.H @ g if self.H is not None else self.t * g

    def scale(self, c: float) -> None:
        self.t *= c
        if self.H is not None:
            self.H *= c
        b = self.bundle
        b.HG = b.HG * c
        if b.agg is not None:
            b.agg = (b.agg[0], b.agg[1], b.agg[2] * c)

    def restart(self, t: float) -> None:
        """H = t I."""
        self.t = t
        if self.H is not None:
            self.H[:] = 0.0
            self.H.flat[:: self.n + 1] = t
        b = self.bundle
        b.HG = b.G * t
        if b.agg is not None:
            b.agg = (b.agg[0], b.agg[1], b.agg[0] * t)

    def update(self, s: np.ndarray, y: np.ndarray) -> None:
        """After a serious step s with gradient change y: the BFGS update of a dense H (when
        s . y is not at rounding level), else H = (s . y / y . y) I (when s . y > 0)."""
        sy = float(s @ y)
        if self.H is not None:
            if sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
                self.bfgs(s, y, sy)
        elif sy > 0:
            self.restart(float(sy / (y @ y)))

    def bfgs(self, s: np.ndarray, y: np.ndarray, sy: float) -> None:
        """Inverse BFGS update H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T, written
        H + s w^T + w s^T with w = (c / 2) s - rho H y, c = rho (1 + rho y^T H y)."""
        from scipy.linalg.blas import dger

        H = self.H
        rho = 1.0 / sy
        Hy = H @ y
        w = (0.5 * rho * (1.0 + rho * float(y @ Hy))) * s - rho * Hy
        Ht = dger(1.0, w, s, a=H.T, overwrite_a=True)  # H.T is in Fortran order: in place
        self.H = dger(1.0, s, w, a=Ht, overwrite_a=True).T
        b = self.bundle
        b.HG = b.HG + np.outer(b.G @ w, s) + np.outer(b.G @ s, w)
        if b.agg is not None:
            g = b.agg[0]
            b.agg = (g, b.agg[1], b.agg[2] + s * float(w @ g) + w * float(s @ g))


def _line(oracle: Oracle, x: np.ndarray, fx: float, d: np.ndarray, slope: float, r: float
          ) -> tuple[np.ndarray | None, float, np.ndarray]:
    """Armijo search along a certified descent direction d (||d|| = 1): from ten times the
    radius it was certified for, doubling while f keeps decreasing, halving until Armijo's
    condition holds."""
    step = max(10 * r, 1e-12)
    best_step, best_f = 0.0, fx
    for _ in range(60):
        fy = oracle.value(x + step * d)
        if fy <= fx + 0.1 * step * slope and fy < best_f:
            best_step, best_f = step, fy
            step *= 2.0
            continue
        if best_step > 0:
            break
        step *= 0.25
    for _ in range(_FINITE_TRIES):  # NOTE: f may have no finite gradient where the search
        # ended (sqrt(sum((x - 1)^2)) exactly at x = 1, its minimiser): a shorter step then;
        # the point was kept with f = inf (its value_clarke) and returned as .fun before
        if best_step == 0:
            break
        fy, gy = oracle.value_clarke(x + best_step * d)
        if fy <= fx + 0.1 * best_step * slope and fy < fx:  # False for inf
            return x + best_step * d, fy, gy
        best_step *= 0.5
    return None, fx, np.zeros_like(x)
