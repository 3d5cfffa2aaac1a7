"""Newton steps on the manifold where Euclidean norms vanish: the finishing steps of a run
that stalls next to a group lasso's zero groups (or a Fermat-Weber data point).

A method driven by gradients ends near such a point, its zero groups ~1e-10 instead of 0:
there f is smooth, its gradient through ||w_k|| is a unit vector scaled by lambda_k (the
point is "not stationary" at radius 0), and the bundle's cutting planes approximate each
cone ||w_k|| by many planes (4,600 iterations on a 60-group multi-task lasso without
certifying). The abs-linear finishing steps do not apply (no abs-normal form at a zero
norm; near one, the form's curvature is 1/||w_k||).

Here the groups with ||w_k(x)|| <= r ||J_k|| (r = max(1e-3 (1 + ||x||_inf), radius): the
stationarity test's identification at a coarse radius) are held at zero and f with them
frozen (f0, :func:`kinkgrad.abs_normal.zero_norms.freeze`) is minimised on the manifold
{w_k = 0} by Newton-SQP steps: with H the forward-difference Hessian of f0 (n gradients,
symmetrized, negative curvature clipped) and J the stacked J_k,

    [H + eps I   J^T] [dx]   [-grad f0(x)]
    [J           0  ] [mu] = [-w(x)      ].

At a stationary point of f, grad f0 + sum_k lambda_k J_k^T u_k = 0 with ||u_k|| <= 1, so
mu_k = lambda_k u_k: a group whose multiplier has ||mu_k|| > |lambda_k| is not at zero
there and is released (an active-set step, x unmoved; H is re-estimated with its norm's
curvature, lambda_k / ||w_k||, which is large). After a step, a group
whose rows are single coordinates (w_k = x_g - c, the group lasso's) is set exactly onto its
kink. A step is kept when f does not grow beyond its rounding, and the run ends at the first
point :func:`kinkgrad.stationarity` certifies at the target radius; otherwise the method's
own point is kept. At most five steps; H is re-estimated after the first where the
frozen gradient there differs from H's prediction by more than a tenth of its change
(a quadratic smooth part, as a group lasso's, needs no second estimate).

Where no norm is near zero (f smooth near x: a Fermat-Weber minimiser away from the data
points), the proximal model with every norm in a cone is a Newton step, taken instead
(gradient sampling converges only linearly there).

On the 60-group multi-task lasso of ``benchmarks/regression.py`` the bundle method tries
this at its first test (iteration 233): 50 groups held, two steps, certified, 1.0 s; before,
4,600 iterations (46 s) ended 2.6e-4 from the minimiser, "not stationary".

Where the rows are not single coordinates and every lambda_k >= 0 (f convex in the norms:
isotropic total variation, whose flat regions give *dependent* rows, so that the multipliers
above are not unique and cannot say which group to release), proximal Newton steps are
taken instead (:mod:`._norm_prox`): every Euclidean norm of the program is kept exact in an
SOCP model with a sparse Hessian of the rest, the model's minimiser says which groups are
zero, and Newton-SQP steps on their manifold polish it. TV denoising of a 32 x 32 image
(1,024 norms, 606 at zero at the minimiser): the bundle's first test at iteration 254, one
step, certified, 3 s; 64 x 64 (n = 4,096): two steps, 3 s; 128 x 128 (n = 16,384): three
steps, 33 s.

Where the program has other kinks besides its norms and none of them reads another's
output (a sparse group lasso's l1 term, hinge losses, TV-L1's data term), the oracle shows
these steps every kink as a Euclidean norm of one entry
(:meth:`.oracle.Oracle.group_trace`, :mod:`kinkgrad.abs_normal.kinks_as_norms`): the same
steps then keep every kink exact, and the zeros they find include the l1 term's.

Where some kink reads another's output (a deep ReLU network, nested maxima) the conic
model is not exact, and only the Newton-SQP steps on the manifold are taken
(:func:`_nested`): the groups within 1e-6 (1 + ||x||_inf) ||J_k|| of zero held first (at
1e-3 a 3-6-6-1 net held three kinks 1e-3 off zero, its rows dependent, its step 5.6 long),
then those within 1e-3; H the Hessian of the SQP Lagrangian (:mod:`._lagrangian`, the held
groups linearized along mu_k / lambda_k, mu the least-squares multipliers) re-estimated at
every step, plus ||g + J^T mu|| I (regularized Newton: the net's rescalings and dead units
leave H singular along the manifold), and J_k taken at each iterate. The 3-6-6-1 net's
bundle run: certified at 593 iterations in 2.3 s, where 2,510 ended 5.2e-7 from
stationarity (with phi's Hessian alone the steps stalled at 2e-8). The same steps serve
kinks that are not nested where some lambda_k < 0 (a ReLU before a negative weight), and
there:

- a concave kink (lambda_k < 0) is never held: f'(x; d) + f'(x; -d) = 2 lambda_k |J_k d|
  < 0 at its zero, so no local minimiser has it there (held, the steps led a 3-8-1 net to
  a Clarke-stationary point that f falls from at slope 9e-4, and "certified" it);
- a group whose multiplier is out of its ball by less than a factor 2 is released only
  once the steps have converged (least-squares multipliers away from the manifold's
  stationary point only hint: a 3-6-6-1 net released a kink on 1.02 times its lambda_k);
- a step stops where it first crosses a (convex, one-entry) kink it does not hold, by the
  kinks' linearizations, and that kink is held from there (the Newton model is of one
  piece; a 3-6-6-1 net: certified in 1,689 iterations, where 2,513 ended 4.5e-8 short).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..abs_normal.stationarity import StationarityReport
from ..abs_normal.zero_norms import Balls
from ..errors import KinkgradError
from ._lagrangian import linearized, multiplier_directions, multipliers
from ._norm_groups import (
    better,
    certified,
    chosen_key,
    coordinate_rows,
    fd_columns,
    fd_hessian,
    group_inputs,
    group_norms,
    kkt,
    members,
    psd_part,
    regroup,
    step_size,
    zero_groups,
)
from ._norm_prox import held_words, proximal, sparse_kkt
from ._sparse_hessian import flat, sparse_hessian
from .common import MethodResult
from .oracle import BudgetExhausted, Oracle

__all__ = ["best_uncertified", "finish_on_zero_norms"]

_STEPS = 5  # Newton steps on the manifold
# ... regularized (nested or nonconvex kinks), each halving the last: gradient sampling's
# end on chained CB3 II (n = 50) took 7 steps contracting 4x each (certified in 1.1 s, not
# "not stationary" after 1,000 iterations, 16 s)
_REGULARIZED_STEPS = 10
_IDENTIFY = 1e-3  # relative radius within which groups are first held at zero
_NESTED = 1e-6  # ... where kinks are nested (then _IDENTIFY)
_DENSE = 300  # nested steps by dense algebra up to this n
_DENSE_LSQ = 250_000  # ... and their multipliers by dense least squares up to these entries


def finish_on_zero_norms(oracle: Oracle, x: np.ndarray, fx: float, tol: float,
                         radius: float, nit: int, message: str
                         ) -> tuple[MethodResult, StationarityReport] | None:
    """The first certified point of the Newton-SQP steps (module docstring) and its
    verdict, or None. A start point where they did not certify is not tried again (the
    bundle's stall and minimize's end can hand over the same point)."""
    key = x.tobytes()
    if key in oracle.norm_misses:
        return None
    try:
        done = _newton(oracle, x, fx, tol, radius, nit, message)
    except KinkgradError:  # NOTE: a point where the kinks cannot be seen as norms (a
        done = None  # nuclear norm at a rank drop): the method's own point stands
    except BudgetExhausted:  # NOTE: maxfev reached inside (zero_groups' trace): it raised
        return None  # BudgetExhausted out of minimize; the method's own point stands
    if done is None:
        oracle.norm_misses.add(key)
        oracle.norm_failures += 1
    return done


def best_uncertified(oracle: Oracle, out: MethodResult, rep: StationarityReport,
                     radius: float, tol: float
                     ) -> tuple[MethodResult, StationarityReport] | None:
    """The best point the finishing steps reached without certifying it
    (``oracle.finish_best``), with its verdict at ``radius``, where it beats the method's
    final point and verdict ``rep`` (:func:`._norm_groups.better`: f lower beyond rounding,
    or f as low and a smaller stationarity distance); else None. Its steps are counted
    after the method's iterations (nit and history).

    # NOTE: where the test cannot certify any point the steps reach (tol below what f's
    # rounding resolves: a float32 x at tol 1e-8), the method's own point stood even when
    # it was x0 and the steps had come within 1e-7 of f* (abs-linear, which stops at a
    # zero norm at once: f - f* = 145 on the multi-task lasso of regression.py), and the
    # bundle's point with its zero groups ~1e-10 off (distance 0.1)."""
    best = oracle.finish_best
    if best is None:
        return None
    x, fx, steps, path, _ = best
    rep_best = oracle.stationarity(x, radius, tol)
    if not better(oracle, fx, rep_best.distance, out.fun, rep.distance):
        return None
    for value in path:
        oracle.record(value)
    return MethodResult(x, fx, out.nit + len(path), out.status, f"{out.message} Then "
                        f"{steps}: not certified, their point kept.", radius), rep_best


def _newton(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
            message: str) -> tuple[MethodResult, StationarityReport] | None:
    if oracle.kinks_as_norms is None:
        oracle.group_trace(x)  # decides kinks_as_norms and nested_kinks
    if oracle.nested_kinks:
        return _nested(oracle, x, fx, tol, radius, nit, message)
    near = max(_IDENTIFY * (1.0 + float(np.max(np.abs(x), initial=0.0))), radius)
    balls = zero_groups(oracle, x, near)
    if balls is None:  # NOTE: no norm near zero: f is smooth near x, and the proximal
        try:  # model (every norm in a cone) is a Newton step; gradient sampling ends its
            return proximal(oracle, x, fx, tol, radius, nit, message, near)  # runs 4e-7 off
        except BudgetExhausted:
            return None
    if not np.all(balls.lam >= 0):  # (its second radius is near: the groups known)
        return _nested(oracle, x, fx, tol, radius, nit, message, balls)
    done = None
    if coordinate_rows(balls.rows) is not None:
        done = _manifold(oracle, x, fx, tol, radius, nit, message, balls)
    if done is None:  # NOTE: rows not single coordinates (TV), or the manifold
        try:  # steps failed (a start at x0 = 0 with every group held): proximal steps
            done = proximal(oracle, x, fx, tol, radius, nit, message, near)
        except BudgetExhausted:
            return None
    return done


def _nested(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
            message: str, coarse: Balls | None = None
            ) -> tuple[MethodResult, StationarityReport] | None:
    """Newton-SQP steps on the manifold of the zero groups where kinks are nested (module
    docstring): the convex groups within r ||J_k|| of zero held for r = 1e-6 (1 +
    ||x||_inf), then for r = 1e-3 (1 + ||x||_inf) where that holds others, or none where
    neither holds any (f smooth near x but for kinks that no minimiser holds at zero); the
    steps regularized. ``coarse``: the groups at the second radius, where the caller has
    them."""
    scale = 1.0 + float(np.max(np.abs(x), initial=0.0))
    tried: set[tuple] = set()
    for i, r in enumerate((max(_NESTED * scale, radius), max(_IDENTIFY * scale, radius))):
        balls = coarse if i and coarse is not None else zero_groups(oracle, x, r)
        # NOTE: a concave kink (lambda_k < 0) is never at zero at a local minimiser
        # (f'(x; d) + f'(x; -d) = 2 lambda_k |J_k d| < 0); held, the steps found a
        # Clarke-stationary point of a 3-8-1 net that f falls from at slope 9e-4
        balls = None if balls is None else balls.subset(balls.lam >= 0)
        if balls is None or not balls.q:
            continue
        key = chosen_key(balls.chosen)
        if key in tried:
            continue
        tried.add(key)
        done = _manifold(oracle, x, fx, tol, radius, nit, message, balls, regularized=True)
        if done is not None:
            return done
    if not tried:  # NOTE: no convex kink near zero: regularized Newton steps holding none
        full = zero_groups(oracle, x, np.inf)  # (a 3-8-1 net: certified at 358 iterations)
        if full is not None:
            return _manifold(oracle, x, fx, tol, radius, nit, message,
                             full.subset(np.zeros(full.q, bool)), regularized=True)
    return None


def _manifold(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
              message: str, balls: Balls, regularized: bool = False
              ) -> tuple[MethodResult, StationarityReport] | None:
    """The Newton-SQP steps on the manifold of the groups identified (module docstring);
    ``regularized``: H + ||g + J^T mu|| I, mu the least-squares multipliers (regularized
    Newton, for minimisers that are not isolated: a ReLU network's rescalings and dead
    units leave H singular along the manifold, and its steps ~5 long)."""
    allowance = oracle.allowance(fx)
    held = np.ones(balls.q, bool)
    H, moves, pred, last = None, 0, None, np.inf
    path: list[float] = []
    try:
        for _ in range(2 * (_REGULARIZED_STEPS if regularized else _STEPS)):
            chosen = balls.subset(held).chosen
            g = oracle.frozen_gradient(x, chosen)
            if g is None:
                return None
            if pred is not None:  # NOTE: after the first step, H is re-estimated only
                stale = np.linalg.norm(g - pred[0]) > 0.1 * np.linalg.norm(g - pred[1])
                H, pred = (None if stale else H), None  # where it missed the gradient
            full = None  # every group at x, where this iteration computes it
            if regularized and moves:  # NOTE: nonlinear w_k: the rows at the iterate
                full = zero_groups(oracle, x, np.inf)
                balls = None if full is None else regroup(oracle, x, balls, full)
                if balls is None:
                    return None
            rows = balls.rows[np.repeat(held, balls.dims)]
            w = group_inputs(oracle, x, chosen)
            single = coordinate_rows(rows) if rows.shape[0] else None
            if single is not None:  # the held coordinates' steps are fixed: H on the others
                step = _coordinate_step(oracle, x, g, chosen, single, w)
            elif regularized:
                step = _regularized_step(oracle, x, g, balls.subset(held), w)
            else:
                if H is None:
                    H = fd_hessian(oracle, x, g, chosen)
                step = None if H is None else kkt(H, rows.toarray(), g, w)
            if step is None:
                return None
            dx, mu = step
            # NOTE: a group whose multiplier leaves its ball (||mu_k|| > |lambda_k|) is not
            # at zero at the solution: released (the active-set step), x unmoved. With
            # dependent rows mu is not unique (None) and one choice proves nothing
            ratio = np.zeros(0) if mu is None else group_norms(mu, balls.dims[held]) / (
                np.abs(balls.lam[held]) * (1.0 + 1e-6) + 1e-12)
            out = ratio > 1.0
            if regularized and out.any() and not np.any(ratio > 2.0) and float(
                    np.linalg.norm(dx)) > 1e-6 * (1.0 + float(np.linalg.norm(x))):
                out[:] = False  # NOTE: least-squares multipliers away from the manifold's
                # stationary point only hint: a group just out of its ball is released once
                # the steps have converged (a 3-6-6-1 net: certified, not 4e-8 short)
            if out.any():
                held[np.flatnonzero(held)[out]] = False
                if not held.any():
                    return None
                H, last = None, np.inf  # NOTE: a released group's norm is smooth again,
                # its curvature lambda / ||w_k|| large: the Newton step needs it
                continue
            size = float(np.linalg.norm(dx))
            if regularized and moves and size > 0.5 * last:  # NOTE: no Newton contraction:
                return None  # a degenerate manifold (MaxQ's |x_i| all equal, J -> 0 at x*)
            last = size
            if regularized:
                cut = _first_crossing(oracle, x, dx, balls, held, full)
                if cut is not None:
                    t, balls, held = cut
                    dx, last = t * dx, np.inf
            xn = x + dx
            if single is not None:  # w_r = v x_c + const: its root, exactly
                cols, vals = single
                xn[cols] = x[cols] - w / vals
            fn = oracle.value(xn)
            if not fn <= fx + allowance:
                return None
            if moves == 0 and H is not None:  # the gradient H predicts at xn, and g
                pred = (g + H @ (xn - x), g)
            x, fx, moves = xn, fn, moves + 1
            path.append(fn)
            done = certified(oracle, x, fx, nit + moves, radius, tol, message,
                             f"{moves} Newton step(s) " + (
                                 f"on the manifold of {held_words(oracle, int(held.sum()))}"
                                 if held.any() else "(no zero norm or kink held)"), path)
            if done is not None:
                return done
            if moves >= (_REGULARIZED_STEPS if regularized else _STEPS):
                return None
    except BudgetExhausted:
        return None
    return None


def _first_crossing(oracle: Oracle, x: np.ndarray, dx: np.ndarray, balls: Balls,
                    held: np.ndarray, full: Balls | None = None
                    ) -> tuple[float, Balls, np.ndarray] | None:
    """(t, balls', held') where a kink not held (a group of one entry) reaches zero at the
    fraction t in (0, 1) of the step dx by its linearization w_k + t J_k dx, the first such:
    balls' holds it besides ``balls``' groups, held' marks it held. None where none does
    (module docstring). A group released earlier is not held again (it would cycle), nor a
    concave one (lambda_k < 0). ``full``: every group at x, where the caller has it."""
    full = zero_groups(oracle, x, np.inf) if full is None else full
    mine = None if full is None else members(full, balls)
    if mine is None:
        return None
    free = (full.dims == 1) & ~mine & (full.lam >= 0)
    if not free.any():
        return None
    starts = np.r_[0, np.cumsum(full.dims)[:-1]]
    w = group_inputs(oracle, x, full.chosen)[starts]
    s = (full.rows @ dx)[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(free & (w * s < 0), -w / s, np.inf)
    j = int(np.argmin(t))
    if not 0.0 < t[j] < 1.0:
        return None
    keep = mine.copy()
    keep[j] = True
    held_new = np.ones(int(keep.sum()), bool)
    held_new[mine[keep]] = held  # NOTE: members keeps the trace's order, as balls does
    return float(t[j]), full.subset(keep), held_new


def _regularized_step(oracle: Oracle, x: np.ndarray, g: np.ndarray, held: Balls,
                      w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(dx, mu) of the Newton-SQP step on the held groups' manifold with the Lagrangian's
    Hessian H at the least-squares multipliers mu0 of J^T mu = -g, plus ||g + J^T mu0|| I.
    Up to n = 300 dense (forward differences with negative curvature set to 0, :func:`kkt`:
    mu None where J's rows are dependent); beyond, sparse (compressed differences shifted
    to positive semidefinite, :func:`._norm_prox.sparse_kkt`, mu the least-squares
    multipliers of J^T mu = -(g + H dx); chained CB3 I at n = 1,000: dense SVDs took 7 of
    15 s), and no H where J has as many rows as columns (a vertex, whose rows fix the step:
    a try there costs no differences). The shift regularizes every direction where the
    Lagrangian has negative curvature, and at n <= 200 it cost MXHILB 10x the iterations."""
    J = held.rows
    dense = x.size <= _DENSE
    mu0 = multipliers(J, -g, np.inf if dense else _DENSE_LSQ)
    rho = float(np.linalg.norm(g + J.T @ mu0))
    if not dense and J.shape[0] >= x.size:
        H = sp.csr_matrix((x.size, x.size))
    else:
        H = _lagrangian_hessian(oracle, x, held, mu0, dense)
        if H is None:
            return None
    if dense:
        return kkt(H + rho * np.eye(x.size), J.toarray(), g, w)
    H = sp.csr_matrix(H + rho * sp.identity(x.size))
    dx = sparse_kkt(H, J, g, w)
    return None if dx is None else (dx, multipliers(J, -(g + H @ dx), _DENSE_LSQ))


def _lagrangian_hessian(oracle: Oracle, x: np.ndarray, held: Balls, mu: np.ndarray,
                        dense: bool) -> np.ndarray | sp.csr_matrix | None:
    """The Hessian of f with the held groups linearized along mu_k / lambda_k clipped to
    the unit ball (:mod:`._lagrangian`), the SQP Lagrangian's on their manifold, positive
    semidefinite: :func:`fd_hessian` (dense; 0 where one random difference is flat) or
    :func:`._sparse_hessian.sparse_hessian`."""
    lin = linearized(held, multiplier_directions(mu, held.lam, held.dims))
    gl = oracle.frozen_gradient(x, lin)
    if gl is None:
        return None
    if not dense:
        return sparse_hessian(oracle, x, gl, lin)
    return np.zeros((x.size, x.size)) if flat(oracle, x, gl, lin) else fd_hessian(
        oracle, x, gl, lin)  # NOTE: MXHILB's polyhedral f: n gradients per step for H = 0


def _coordinate_step(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict,
                     single: tuple[np.ndarray, np.ndarray], w: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, mu) where every held row is one coordinate's (w_r = v x_c + const): dx_C =
    -w / v, and H's columns by forward differences on the free coordinates only, plus one
    difference along dx_C (a group lasso at n = 1,600 with 1,560 held coordinates: 41
    gradients instead of 1,600)."""
    cols, vals = single
    n = x.size
    free = np.setdiff1d(np.arange(n), cols)
    h = step_size(oracle, x)
    dx = np.zeros(n)
    dx[cols] = -w / vals
    G = fd_columns(oracle, x, g, chosen, free)  # rows: H e_j (columns of a symmetric H)
    if G is None:
        return None
    hd = np.zeros(n)
    size = float(np.linalg.norm(dx))
    if size > 0:  # H dx_C by one difference along it
        gd = oracle.frozen_gradient(x + h * dx / size, chosen)
        if gd is None:
            return None
        hd = (gd - g) / h * size
    if free.size:
        Hff = psd_part(G[:, free])
        eps = 1e-10 * max(1.0, float(np.max(np.abs(Hff), initial=0.0)))
        dx[free] = np.linalg.lstsq(Hff + eps * np.eye(free.size), -(g[free] + hd[free]),
                                   rcond=None)[0]
    return dx, -(g + G.T @ dx[free] + hd)[cols] / vals


