"""Gradient sampling (Burke, Lewis and Overton), with Kiwiel's modifications: the robust,
slow baseline of :func:`kinkgrad.minimize` (``method="gradient-sampling"``).

The algorithm is Algorithm GS of the survey by Burke, Curtis, Lewis, Overton and Simões: BLO's
method in the form Kiwiel's analysis gave it (unnormalized search direction, stationarity
target nu_k shrinking with the radius, a perturbed iterate where f is not differentiable),
under which, with probability one, f(x_k) -> -inf or every cluster point of the iterates is
Clarke stationary (f locally Lipschitz and continuously differentiable on an open dense set,
m >= n + 1, no stopping tolerances). Iteration k at x_k, with sampling radius eps_k and
stationarity target nu_k:

1. Sample m points x_k1..x_km independently and uniformly in the ball of radius eps_k
   around x_k; f is differentiable at each of them with probability one, so plain backward
   mode (``oracle.value_grad``) gives the gradient there.
2. g_k = the minimum-norm element of G_k = conv{grad f(x_k), grad f(x_k1), ..., grad f(x_km)}
   (``simplex_qp``, PIQP). G_k approximates the Goldstein eps_k-subdifferential, the hull of
   the gradients in the ball. grad f(x_k) is in G_k, so -g_k is a descent direction at x_k
   (grad f(x_k) . g_k >= ||g_k||^2) and the line search below ends.
3. Stop (CONVERGED) when ||g_k|| <= tol and eps_k <= the final radius.
4. If ||g_k|| <= nu_k (x_k is (eps_k, nu_k)-stationary as far as the samples tell): a null
   step; eps and nu shrink by their factors (nu never below tol).
5. Otherwise an Armijo backtracking line search along the *unnormalized* direction -g_k
   (Kiwiel): the largest t in {1, gamma, gamma^2, ...} with
   f(x_k - t g_k) < f(x_k) - beta t ||g_k||^2. In exact arithmetic some t passes; in
   floating point none may pass within ``max_backtracks`` trials (near a minimizer the
   decrease drowns in the rounding error of f, or a kink lies closer than the rounding
   allows to resolve), or the sample set missed a piece that matters. Then the same ball is
   sampled again, up to ``retries`` times, each time with m fresh points added to the
   support of the last hull (the gradients carrying g_k, at most n + 1): all lie in the same
   ball, so the hull stays inside the Goldstein set and ||g_k|| can only drop. When the
   retries fail too, the step is null and eps and nu shrink, as BLO (2005, p. 767) do on
   line-search failure (HANSO 3 stops there instead): at a smaller radius the samples miss
   the far kinks and tiny steps along the remaining pieces still make progress.
6. The differentiability check (Algorithm GS, lines 11-14): the new iterate y = x_k - t g_k
   must be a point where f is differentiable, because grad f(x_{k+1}) enters G_{k+1}. In
   floating point no implementation can tell differentiability; kinkgrad can tell the
   sufficient condition that no kink is hit exactly (no switching variable is 0: the kink
   report of backward mode), and that check comes free with the gradient at y, which the
   next iteration needs anyway. When y hits a kink, random points z with
   ||z - y|| <= min(t, eps_k) ||g_k|| are tried (radius halved after each failure) until one
   hits no kink and still has f(z) < f(x_k) - beta t ||g_k||^2 (Algorithm GS, line 14); if
   none is found, y is kept with a limiting gradient (``oracle.value_clarke``). A starting
   point on a kink is kept, with a limiting gradient.

The method is monotone (f(x_{k+1}) < f(x_k) or x_{k+1} = x_k), so the last iterate is the
best point; it is returned also when ``maxfev`` runs out. The radius passed on to the final
:func:`kinkgrad.stationarity` verdict is the radius of the last sample set: on convergence
the samples showed a hull element of norm <= tol at that radius, and the verdict decides the
question exactly for its Goldstein-type set at that radius. The two can differ: the samples
see the true gradients in the ball, the verdict a first-order model of them at x. On
8|x1^2 - x2| + (1 - x1)^2 the samples near (1, 1) find a tiny hull element because the bent
kink curve turns the gradients of each piece within the ball, which the model does not see:
status CONVERGED with success False.

Cost. Every iteration evaluates m + 1 gradients (or more on kinks) and solves a dense QP
with m + 1 rows (up to m + n + 2 after a failed line search): O(m n) memory and
O(m^2 n + m^3) time. Kiwiel's convergence theory needs m >= n + 1, so the default is
m = n + 1 (BLO use m = 2n), capped at ``max_samples`` (1001): up to n = 1000 the theory
holds, and for n = 1000 an iteration costs 1001 gradients and a QP with 1002 rows (about a
second). Above the cap the method samples fewer points than n + 1, which works in practice
(HANSO allows it) but is not covered by the convergence theory.

References:
    J. V. Burke, A. S. Lewis, M. L. Overton, "A robust gradient sampling algorithm for
    nonsmooth, nonconvex optimization", SIAM J. Optim. 15(3) (2005) 751-779.
    K. C. Kiwiel, "Convergence of the gradient sampling algorithm for nonsmooth nonconvex
    optimization", SIAM J. Optim. 18(2) (2007) 379-388.
    J. V. Burke, F. E. Curtis, A. S. Lewis, M. L. Overton, L. E. A. Simões, "Gradient sampling
    methods for nonsmooth optimization", in Numerical Nonsmooth Optimization, Springer (2020)
    201-225 (Algorithm GS; HANSO 3.0's ``gradsamp`` implements it, with the defaults used
    here).
"""

from __future__ import annotations

import math

import numpy as np

from .._core.checks import is_real
from ..errors import KinkgradError
from ._norm_finish import finish_on_zero_norms
from .common import CALLBACK, CONVERGED, MAXFEV, MAXITER, STALLED, MethodResult, Monitor, simplex_qp
from .oracle import BudgetExhausted, Oracle

__all__ = ["run"]

_WHERE = "minimize(method='gradient-sampling')"
_NORMS_EVERY = 10  # iterations between tries of the zero-norm finishing steps, at most


def run(oracle: Oracle, *, tol: float, maxiter: int | None, monitor: Monitor,
        samples: int | None = None, max_samples: int = 1001, radius: float = 0.1,
        radius_factor: float = 0.1, target: float = 0.1, target_factor: float = 0.1,
        final_radius: float = 1e-6, min_radius: float = 1e-12, armijo: float = 1e-4,
        backtrack: float = 0.5, max_backtracks: int = 60, retries: int = 3,
        max_perturb: int = 10) -> MethodResult:
    """Minimize by gradient sampling (see the module docstring for the algorithm).

    The defaults are those of HANSO 3's ``gradsamp`` (Overton's implementation of the
    survey's Algorithm GS): eps_0 = nu_0 = 0.1, both reduced by 0.1, beta = 1e-4,
    gamma = 0.5, final radius 1e-6; except m = n + 1 instead of 2n (the least Kiwiel's
    theory allows: half the gradients per iteration) and nu_opt = tol.

    Args:
        oracle: the counting oracle of f.
        tol: stationarity tolerance: the run converges when the sampled minimum-norm element
            has norm <= tol at a sampling radius <= ``final_radius``.
        maxiter: most iterations (None: 1000). An iteration is one sample set and one QP,
            followed by a line search or a null step.
        monitor: called once per iteration (the user's callback and the progress bar).
        samples: sampled gradients per iteration, m (None: min(n + 1, max_samples)).
        max_samples: cap on the default m (see "Cost" in the module docstring).
        radius: initial sampling radius eps_0 (2-norm ball).
        radius_factor: eps shrinks by this factor in (0, 1) after a null step.
        target: initial stationarity target nu_0.
        target_factor: nu shrinks by this factor in (0, 1] after a null step (never below tol).
        final_radius: convergence needs eps_k <= final_radius. The default 1e-6 (Algorithm
            GS's eps_opt) does not depend on tol: tol bounds a gradient norm, the radius a
            distance in x. On a sharp minimum the iterate ends within about the final radius
            of the minimizer; at smooth ones ||g_k|| <= tol asks for more, and usually the
            radius has shrunk below 1e-6 by then (nu_k reaches tol first).
        min_radius: when eps would shrink below it the run stops as STALLED: samples closer
            than that to x_k say nothing more in float64 (for |x| up to about 1e3).
        armijo: Armijo parameter beta in (0, 1).
        backtrack: backtracking factor gamma in (0, 1).
        max_backtracks: most trial steps of one line search.
        retries: failed line searches at one point and radius before the radius shrinks;
            each retry samples m fresh points and keeps the hull's support (at most n + 1
            gradients) from before.
        max_perturb: most random points tried when the new iterate hits a kink. When every
            one of them hits a kink too, the kinks are structural (present at almost every
            point, e.g. abs(x - x)), not the ones the check is for, and the check is turned
            off for the rest of the run.

    Returns:
        The final (best) point, f there, the iterations done, the status and the radius of
        the last sample set.

    Raises:
        KinkgradError: an option is out of range.
    """
    n = oracle.n
    _check(samples=1 if samples is None else samples, max_samples=max_samples, radius=radius,
           radius_factor=radius_factor, target=target, target_factor=target_factor,
           final_radius=final_radius, min_radius=min_radius, armijo=armijo,
           backtrack=backtrack, max_backtracks=max_backtracks, retries=retries,
           max_perturb=max_perturb)
    m = int(samples) if samples is not None else min(n + 1, int(max_samples))
    maxiter = 1000 if maxiter is None else int(maxiter)
    rng = oracle.rng
    x, fx = oracle.x0.copy(), oracle.f0
    eps, nu, nit, gn, fails = float(radius), max(float(target), tol), 0, math.inf, 0
    sampled = eps  # the radius of the last sample set (the one the verdict is taken at)
    kept = np.empty((0, n))  # support of the last hull, kept after a failed line search
    check = True  # the differentiability check is on
    norms_at = -_NORMS_EVERY  # the iteration of the last zero-norm finishing steps
    try:
        fx, gx = _iterate_gradient(oracle, x)
        while True:
            if nit >= maxiter:
                return MethodResult(x, fx, nit, MAXITER, f"maxiter={maxiter} iterations "
                                    f"reached; sampled min-norm {gn:.3g} at radius "
                                    f"{sampled:.3g}.", sampled)
            # 1-2: sample the ball, min-norm element of the hull of the gradients
            rows = [gx] if gx is not None else []
            rows.extend(kept)
            for p in x + eps * _ball(rng, m, n):
                v, gp = oracle.value_grad(p)
                if np.isfinite(v):  # f not finite there: f is not Lipschitz; drop the sample
                    rows.append(gp)
            sampled = eps
            if not rows:
                return MethodResult(x, fx, nit, STALLED, "No finite gradient in the ball of "
                                    f"radius {eps:.3g}.", sampled)
            G = np.array(rows)
            lam = simplex_qp(G)
            g = G.T @ lam
            gn = float(np.linalg.norm(g))
            nit += 1
            if gn <= tol and eps <= final_radius:  # 3: converged
                oracle.record(fx)
                monitor(x, fx, nit)
                return MethodResult(x, fx, nit, CONVERGED, f"Sampled min-norm {gn:.3g} <= "
                                    f"tol at sampling radius {eps:.3g}.", sampled)
            step = None
            if gn > nu:  # 5: line search along -g
                step = _line_search(oracle, x, fx, g, gn, armijo, backtrack, max_backtracks)
            if step is not None:  # 6: move, with the differentiability check
                x, fx, gx, check = _accept(oracle, rng, x, fx, g, gn, eps, armijo, step,
                                           max_perturb if check else -1)
                kept, fails = kept[:0], 0
            elif gn > nu and fails < retries:  # failed line search: resample, same ball
                first = 0 if gx is None else 1  # grad f(x_k) is row 0 anyway
                kept, fails = _support(G[first:], lam[first:], n + 1), fails + 1
            else:  # 4 (or failed retries): null step, shrink eps and nu
                if oracle.norm_steps and nit - norms_at >= oracle.norm_interval(_NORMS_EVERY):
                    norms_at = nit  # NOTE: as the bundle at its tests (each iteration here
                    # costs n + 1 gradients), less often after tries that did not certify
                    done = finish_on_zero_norms(oracle, x, fx, tol, min(final_radius, tol),
                                                nit - 1, f"After {nit - 1} iterations.")
                    if done is not None:
                        monitor(done[0].x, done[0].fun, done[0].nit)
                        return done[0]
                eps, nu = eps * radius_factor, max(nu * target_factor, tol)
                if abs(eps - final_radius) <= 1e-9 * final_radius:  # 0.1^5 != 1e-6 in float64
                    eps = float(final_radius)
                kept, fails = kept[:0], 0
            oracle.record(fx)
            if monitor(x, fx, nit):
                return MethodResult(x, fx, nit, CALLBACK, "Stopped by the callback.", sampled)
            if eps < min_radius:
                return MethodResult(x, fx, nit, STALLED, f"Sampling radius {eps:.3g} below "
                                    f"min_radius={min_radius:.3g} before the sampled min-norm "
                                    f"({gn:.3g}) reached tol.", sampled)
    except BudgetExhausted:
        done = len(oracle.history["fun"])  # the iterations recorded: the last is not
        return MethodResult(x, fx, done, MAXFEV, f"Evaluation budget spent in iteration "
                            f"{done + 1}; sampled min-norm {gn:.3g}.", sampled)


def _check(**opts: float) -> None:
    """Raise KinkgradError for an option out of its range."""
    ranges = {"radius_factor": "(0, 1)", "armijo": "(0, 1)", "backtrack": "(0, 1)",
              "target_factor": "(0, 1]", "max_perturb": ">= 0", "retries": ">= 0",
              "samples": ">= 1", "max_samples": ">= 1", "max_backtracks": ">= 1"}
    for key, val in opts.items():
        rule = ranges.get(key, "> 0")
        ok = (is_real(val)
              and {"(0, 1)": 0 < val < 1, "(0, 1]": 0 < val <= 1, ">= 0": val >= 0,
                   ">= 1": val >= 1, "> 0": val > 0}[rule])
        if ok and rule.startswith(">="):
            ok = float(val).is_integer()
        if not ok:
            raise KinkgradError(f"{_WHERE}: {key}={val!r}; pass "
                                f"{'an integer' if rule.startswith('>=') else 'a number'} "
                                f"{rule}.")


def _support(G: np.ndarray, lam: np.ndarray, k: int) -> np.ndarray:
    """The rows of G that carry the min-norm element (weight > 1e-9 of the largest; at most
    k of them, the heaviest): their hull still holds the min-norm element, so adding fresh
    samples to them can only lower the norm."""
    if lam.size == 0:
        return G
    order = np.argsort(-lam)[:k]
    return G[order[lam[order] > 1e-9 * lam.max()]]


def _ball(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    """m points drawn independently and uniformly in the unit 2-norm ball of R^n."""
    if n == 0:  # R^0's ball is its one point
        return np.zeros((m, 0))
    u = rng.standard_normal((m, n))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * rng.random((m, 1)) ** (1.0 / n)


def _probe(oracle: Oracle, x: np.ndarray) -> tuple[float, np.ndarray, bool]:
    """(f(x), gradient, kinked): plain backward mode with its kink report, counted as one
    gradient evaluation. kinked is True when a kink is hit exactly (f may then be
    nondifferentiable at x and the gradient is only the kink policy's choice) or when f or
    the gradient is not finite there."""
    return oracle.value_grad_kinks(x)


def _iterate_gradient(oracle: Oracle, x: np.ndarray) -> tuple[float, np.ndarray | None]:
    """(f(x), a gradient at the iterate x): the gradient where no kink is hit, else a limiting
    gradient (None when none is finite, and then only the samples enter the hull)."""
    v, g, kinked = _probe(oracle, x)
    if not kinked:
        return v, g
    vc, gc = oracle.value_clarke(x)
    return (v if math.isfinite(v) else oracle.f0), (gc if math.isfinite(vc) else None)


def _line_search(oracle: Oracle, x: np.ndarray, fx: float, g: np.ndarray, gn: float,
                 beta: float, gamma: float, max_backtracks: int
                 ) -> tuple[float, np.ndarray, float] | None:
    """Armijo backtracking along -g: (t, x - t g, f there) for the first t in 1, gamma,
    gamma^2, ... with f(x - t g) < f(x) - beta t ||g||^2, or None when none passes."""
    t = 1.0
    with np.errstate(all="ignore"):
        for _ in range(max_backtracks):
            y = x - t * g
            if np.array_equal(y, x):  # the step is below the resolution of x
                return None
            fy = oracle.value(y)
            if fy < fx - beta * t * gn * gn:
                return t, y, fy
            t *= gamma
    return None


def _accept(oracle: Oracle, rng: np.random.Generator, x: np.ndarray, fx: float,
            g: np.ndarray, gn: float, eps: float, beta: float,
            step: tuple[float, np.ndarray, float], max_perturb: int
            ) -> tuple[np.ndarray, float, np.ndarray | None, bool]:
    """The next iterate after a successful line search, its f, its gradient, and whether the
    differentiability check stays on: y = x - t g if no kink is hit there, else a random
    nearby point that hits none and keeps the Armijo decrease (the perturbation of Algorithm
    GS), else y with a limiting gradient. max_perturb < 0: no check (plain gradient at y)."""
    t, y, fy = step
    if max_perturb < 0:
        v, gy = oracle.value_grad(y)
        return y, fy, (gy if math.isfinite(v) else None), False
    v, gy, kinked = _probe(oracle, y)
    if not kinked:
        return y, v, gy, True
    bound = fx - beta * t * gn * gn
    r, structural = min(t, eps) * gn, max_perturb > 0
    for _ in range(max_perturb):
        z = y + r * _ball(rng, 1, oracle.n)[0]
        vz, gz, kz = _probe(oracle, z)
        if not kz and vz < bound:
            return z, vz, gz, True
        structural = structural and kz
        r *= 0.5
    vc, gc = oracle.value_clarke(y)
    return y, fy, (gc if math.isfinite(vc) else None), not structural
