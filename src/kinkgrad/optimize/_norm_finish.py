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

On the 60-group multi-task lasso of ``benchmarks/regression.py`` the bundle method tries
this at its first test (iteration 233): 50 groups held, two steps, certified, 1.0 s; before,
4,600 iterations (46 s) ended 2.6e-4 from the minimiser, "not stationary".

Where the rows are not single coordinates and every lambda_k >= 0 (f convex in the norms:
isotropic total variation, whose flat regions give *dependent* rows, so that the multipliers
above are not unique and cannot say which group to release), proximal Newton steps are
taken instead (:mod:`._norm_prox`): every Euclidean norm of the program is kept exact in an
SOCP model with the Hessian of the rest, the model's minimiser says which groups are zero,
and one Newton-SQP step on their manifold (rows reduced to their row space) polishes it.
TV denoising of a 32 x 32 image (1,024 norms, 606 at zero at the minimiser): the bundle's
first test at iteration 254, one step, certified, 7.7 s; before, not certified.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..abs_normal._flat import FlatSpec, scalar_output, trace_at
from ..abs_normal.stationarity import StationarityReport
from ..abs_normal.zero_norms import Balls, group_values, split_zero_norms
from ._norm_prox import model_zeros, prox_newton_step
from .common import CONVERGED, MethodResult
from .oracle import BudgetExhausted, Oracle

__all__ = ["finish_on_zero_norms"]

_STEPS = 5
_IDENTIFY = 1e-3  # relative radius within which groups are first held at zero


def finish_on_zero_norms(oracle: Oracle, x: np.ndarray, fx: float, tol: float,
                         radius: float, nit: int, message: str
                         ) -> tuple[MethodResult, StationarityReport] | None:
    """The first certified point of the Newton-SQP steps (module docstring) and its
    verdict, or None. A start point where they did not certify is not tried again (the
    bundle's stall and minimize's end can hand over the same point)."""
    key = x.tobytes()
    if key in oracle.norm_misses:
        return None
    done = _newton(oracle, x, fx, tol, radius, nit, message)
    if done is None:
        oracle.norm_misses.add(key)
    return done


def _newton(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
            message: str) -> tuple[MethodResult, StationarityReport] | None:
    scale = 1.0 + float(np.max(np.abs(x), initial=0.0))
    balls = _zero_groups(oracle, x, max(_IDENTIFY * scale, radius))
    if balls is None:
        return None
    allowance = 4.0 * oracle.unit_roundoff * (1.0 + abs(fx))
    if np.all(balls.lam >= 0) and _coordinate_rows(balls.rows.toarray()) is None:
        try:
            return _proximal(oracle, x, fx, tol, radius, nit, message, allowance)
        except BudgetExhausted:
            return None
    held = np.ones(balls.q, bool)
    H, moves, pred = None, 0, None
    try:
        for _ in range(2 * _STEPS):
            chosen = balls.subset(held).chosen
            g = oracle.frozen_gradient(x, chosen)
            if g is None:
                return None
            if pred is not None:  # NOTE: after the first step, H is re-estimated only
                stale = np.linalg.norm(g - pred[0]) > 0.1 * np.linalg.norm(g - pred[1])
                H, pred = (None if stale else H), None  # where it missed the gradient
            J = balls.rows[np.repeat(held, balls.dims)].toarray()
            w = _w(oracle, x, chosen)
            single = _coordinate_rows(J)
            if single is not None:  # the held coordinates' steps are fixed: H on the others
                step = _coordinate_step(oracle, x, g, chosen, single, w)
                if step is None:
                    return None
                dx, mu = step
            else:
                if H is None:
                    H = _hessian(oracle, x, g, chosen)
                    if H is None:
                        return None
                dx, mu = _kkt(H, J, g, w)
            # NOTE: a group whose multiplier leaves its ball (||mu_k|| > |lambda_k|) is not
            # at zero at the solution: released (the active-set step), x unmoved. With
            # dependent rows mu is not unique (None) and one choice proves nothing
            out = np.zeros(0, bool) if mu is None else _group_norms(
                mu, balls.dims[held]) > np.abs(balls.lam[held]) * (1.0 + 1e-6) + 1e-12
            if out.any():
                held[np.flatnonzero(held)[out]] = False
                if not held.any():
                    return None
                H = None  # NOTE: a released group's norm is smooth again, its curvature
                continue  # lambda / ||w_k|| large: the Newton step needs it
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
            rep = oracle.stationarity(x, radius, tol)
            if rep.verdict == "stationary":
                return MethodResult(x, fx, nit + moves, CONVERGED,
                                    f"{message} Then {moves} Newton step(s) on the manifold "
                                    f"of {int(held.sum())} zero Euclidean norm(s): "
                                    f"stationarity certified at radius {radius:.3g}.",
                                    radius), rep
            if moves >= _STEPS:
                return None
    except BudgetExhausted:
        return None
    return None


def _proximal(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
              message: str, allowance: float
              ) -> tuple[MethodResult, StationarityReport] | None:
    """Proximal Newton steps (:mod:`._norm_prox`) on f = phi + sum_k lambda_k ||w_k||
    over every Euclidean norm of the program (all lambda_k >= 0, else None): H is the
    Hessian of phi alone (all norms frozen), re-estimated only where it mispredicted the
    last step's gradient; each step is polished onto the model's zero groups and tested."""
    H = pred = None
    near = max(_IDENTIFY * (1.0 + float(np.max(np.abs(x), initial=0.0))), radius)
    for moves in range(1, _STEPS + 1):
        balls = _zero_groups(oracle, x, np.inf)
        if balls is None:
            return None
        convex = balls.lam >= 0
        if not convex.all():  # NOTE: a norm with lambda_k < 0 is concave in the model:
            # left smooth (in phi) when far from zero; near zero, not this step's case
            sizes = _group_norms(_w(oracle, x, balls.chosen), balls.dims)
            rows = np.asarray(balls.rows.multiply(balls.rows).sum(axis=1)).ravel()
            if np.any((sizes <= near * _group_norms(np.sqrt(rows), balls.dims))[~convex]):
                return None
            balls = balls.subset(convex)
        chosen = balls.chosen
        g = oracle.frozen_gradient(x, chosen)
        if g is None:
            return None
        if pred is not None and (pred[2] != _key(chosen) or np.linalg.norm(g - pred[0])
                                 > 0.1 * np.linalg.norm(g - pred[1])):
            H = None  # NOTE: a quadratic phi (total variation) needs one estimate
        if H is None:
            H = _hessian(oracle, x, g, chosen)
            if H is None:
                return None
        w = _w(oracle, x, chosen)
        dx = prox_newton_step(H, g, balls.rows, balls.dims, np.asarray(balls.lam), w)
        if dx is None:
            return None
        zero = model_zeros(balls.rows, balls.dims, w, dx)
        xn = _polish(oracle, x + dx, H, balls, zero)
        if xn is None:
            return None
        fn = oracle.value(xn)
        if not fn <= fx + allowance:
            return None
        pred = (g + H @ (xn - x), g, _key(chosen))
        x, fx = xn, fn
        rep = oracle.stationarity(x, radius, tol)
        if rep.verdict == "stationary":
            return MethodResult(x, fx, nit + moves, CONVERGED,
                                f"{message} Then {moves} proximal Newton step(s) on "
                                f"{balls.q} Euclidean norm(s) ({int(zero.sum())} at zero): "
                                f"stationarity certified at radius {radius:.3g}.",
                                radius), rep
    return None


def _key(chosen: dict) -> tuple:
    return tuple((k, v.tobytes()) for k, v in chosen.items())


def _polish(oracle: Oracle, x: np.ndarray, H: np.ndarray, balls: Balls, zero: np.ndarray
            ) -> np.ndarray | None:
    """One Newton-SQP step on the manifold of the model's zero groups from the proximal
    step's point (the interior point's ~1e-6 to rounding): H plus the exact curvature of
    the other identified norms, lambda_k J_k^T (I - u u^T) J_k / ||w_k||."""
    chosen = balls.subset(zero).chosen
    g = oracle.frozen_gradient(x, chosen)
    if g is None:
        return None
    HZ = H + _norm_curvature(balls, ~zero, _w(oracle, x, balls.subset(~zero).chosen))
    J = balls.rows[np.repeat(zero, balls.dims)].toarray()
    w = _w(oracle, x, chosen) if zero.any() else np.zeros(0)
    dx, _ = _kkt(HZ, J, g, w)
    return x + dx


def _norm_curvature(balls: Balls, free: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum over the free groups of lambda_k J_k^T (I - u_k u_k^T) J_k / ||w_k||, u_k =
    w_k / ||w_k||: the Hessian of lambda_k ||w_k(x)|| for affine w_k (w: their stacked
    values)."""
    n = balls.rows.shape[1]
    dims = balls.dims[free]
    if not dims.size:
        return np.zeros((n, n))
    size = _group_norms(w, dims)
    ok = np.repeat(size > 0, dims)
    scale = np.repeat(np.abs(balls.lam[free]) / np.where(size > 0, size, 1.0), dims)
    A = sp.diags(np.sqrt(scale) * ok) @ balls.rows[np.repeat(free, balls.dims)]
    u = np.where(ok, w / np.repeat(np.where(size > 0, size, 1.0), dims), 0.0)
    U = sp.csr_matrix((u, (np.repeat(np.arange(dims.size), dims), np.arange(u.size))),
                      shape=(dims.size, u.size))
    V = (U @ A).toarray()
    return (A.T @ A).toarray() - V.T @ V


def _group_norms(v: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """The Euclidean norms of the consecutive groups of v (sizes dims)."""
    if not dims.size:
        return np.zeros(0)
    return np.sqrt(np.add.reduceat(v * v, np.r_[0, np.cumsum(dims)[:-1]].astype(np.intp)))


def _zero_groups(oracle: Oracle, x: np.ndarray, r: float) -> Balls | None:
    tr = trace_at(oracle.f, oracle.tree(x), "minimize")
    out, _ = scalar_output(tr, "minimize")
    _, balls = split_zero_norms(tr, FlatSpec(tr), out, r)
    return balls


def _w(oracle: Oracle, x: np.ndarray, chosen: dict) -> np.ndarray:
    """The stacked group values w_k(x) (the norms' inputs at the chosen groups)."""
    return group_values(trace_at(oracle.f, oracle.tree(x), "minimize"), chosen)


def _coordinate_rows(J: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(columns, coefficients) when every row of J has one nonzero, in distinct columns."""
    nz = J != 0
    if not np.all(nz.sum(axis=1) == 1):
        return None
    cols = np.argmax(nz, axis=1)
    if np.unique(cols).size != cols.size:
        return None
    return cols, J[np.arange(J.shape[0]), cols]


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
    h = _step_size(oracle, x)
    dx = np.zeros(n)
    dx[cols] = -w / vals
    G = _columns(oracle, x, g, chosen, free)  # rows: H e_j (columns of a symmetric H)
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
        Hff = _psd(G[:, free])
        eps = 1e-10 * max(1.0, float(np.max(np.abs(Hff), initial=0.0)))
        dx[free] = np.linalg.lstsq(Hff + eps * np.eye(free.size), -(g[free] + hd[free]),
                                   rcond=None)[0]
    return dx, -(g + G.T @ dx[free] + hd)[cols] / vals


def _hessian(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict
             ) -> np.ndarray | None:
    """Forward differences of the frozen gradient, symmetrized, negative curvature set to
    0 (n gradients)."""
    G = _columns(oracle, x, g, chosen, np.arange(x.size))
    return None if G is None else _psd(G)


def _step_size(oracle: Oracle, x: np.ndarray) -> float:
    return float(np.sqrt(2.0 * oracle.unit_roundoff)) * (1.0 + float(np.linalg.norm(x)))


def _columns(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict, idx: np.ndarray
             ) -> np.ndarray | None:
    """(len(idx), n): forward differences (g(x + h e_j) - g) / h of the frozen gradient,
    h = sqrt(2 u) (1 + ||x||); None where a gradient is missing."""
    h = _step_size(oracle, x)
    G = np.empty((idx.size, x.size))
    for i, j in enumerate(idx):
        xi = x.copy()
        xi[j] += h
        gi = oracle.frozen_gradient(xi, chosen)
        if gi is None:
            return None
        G[i] = (gi - g) / h
    return G


def _psd(S: np.ndarray) -> np.ndarray:
    """The symmetric part of S with its negative eigenvalues set to 0."""
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.maximum(lam, 0.0)) @ V.T


def _kkt(H: np.ndarray, J: np.ndarray, g: np.ndarray, w: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """(dx, mu) of the KKT system (module docstring): one LU (least squares if singular).
    Dependent rows (isotropic TV's flat regions) make K singular and its LU garbage: the
    system is then solved on their row space (J = U S V^T, rows S_r V_r^T, w -> U_r^T w,
    consistent near the manifold) and mu, not unique, is None."""
    n, m = H.shape[0], J.shape[0]
    dependent = False
    if m:
        U, sv, Vt = np.linalg.svd(J, full_matrices=False)
        r = int(np.sum(sv > 1e-10 * sv[0])) if sv[0] > 0 else 0
        if r < m:
            J, w, m, dependent = sv[:r, None] * Vt[:r], U[:, :r].T @ w, r, True
    eps = 1e-10 * max(1.0, float(np.max(np.abs(H), initial=0.0)))
    K = np.block([[H + eps * np.eye(n), J.T], [J, np.zeros((m, m))]])
    rhs = np.concatenate([-g, -w])
    try:
        sol = np.linalg.solve(K, rhs)
    except np.linalg.LinAlgError:
        sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
    return sol[:n], None if dependent else sol[n:]
