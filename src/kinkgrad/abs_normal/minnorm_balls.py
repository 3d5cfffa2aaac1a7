"""Minimum-norm points of sums of hulls and ellipsoids, with bounds that do not trust the
solver: the sets of :mod:`.minnorm` plus one term M_k B_k per Euclidean norm at zero,

    C = g0 + conv(V_1) + ... + conv(V_B) + M_1 B_1 + ... + M_q B_q,

B_k the unit ball of R^{d_k} and M_k (n x d_k) = |lambda_k| J_k^T (:mod:`.zero_norms`). The
minimum-norm point is a second-order cone program,

    min t   s.t.  ||r|| <= t,  r = g0 + sum_b V_b^T lam_b + sum_k M_k u_k,
                  lam_b >= 0, sum(lam_b) = 1,  ||u_k|| <= 1,

solved by Clarabel (Goulart and Chen, "Clarabel: An interior-point solver for conic programs
with quadratic objectives", 2024), the maintained conic interior-point solver CVXPY ships
with; PIQP (:mod:`.minnorm`) solves QPs only, and a ball is not a polytope. As there:

* ``upper``: the weights are projected onto the simplices and each u_k into its ball, and
  the point is recomputed from the data: it lies in C, whatever the solver returned;
* ``lower``: along the unit vector e of that point, every c in C has
  <c, e> >= <g0, e> + sum_b min_j <V_bj, e> - sum_k ||M_k^T e||  (the support function);

then a *polish*: on the support found (weights above 1e-9, balls strictly inside), the
point with r = 0 is one least-squares solve; it is kept when it stays feasible and lowers
the norm, which takes a zero distance from the interior point's ~1e-10 to rounding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._affine_lsq import affine_least_squares
from ._stacked import feasible, full, offsets, stack, support
from .minnorm import MinNorm

__all__ = ["min_norm_balls", "ball_support"]

_TOL = 1e-12  # Clarabel's gap and feasibility tolerances
_INSIDE = 1.0 - 1e-7  # a ball whose u has a smaller norm is free in the polish


def ball_support(M: sp.csr_matrix, dims: np.ndarray, e: np.ndarray) -> float:
    """sum_k max over B_k of <M_k u, e> = sum_k ||M_k^T e|| (M = [M_1 ... M_q], M_k having
    dims[k] columns)."""
    if not len(dims):
        return 0.0
    v = np.asarray(M.T @ e).reshape(-1)
    starts = np.r_[0, np.cumsum(dims)[:-1]].astype(np.intp)
    return float(np.sqrt(np.add.reduceat(v * v, starts)).sum())


def min_norm_balls(g0: np.ndarray, blocks: list, M: sp.csr_matrix | None = None,
                   dims: np.ndarray | None = None, tol: float | None = None) -> MinNorm:
    """The minimum-norm point of C (module docstring) and its certified bounds: M holds the
    ellipsoids' matrices side by side, M_k the next dims[k] columns; ``weights`` holds the
    blocks' convex weights, then the balls' u_k. Where the bounds straddle ``tol`` (lower <=
    tol < upper), the point is solved again with the objective 1/2 ||r||^2 instead of t:
    away from the cone's apex the interior point resolves r's direction there, and the
    lower bound along it is tight (the t-form's apex is degenerate: at total variation's
    zero groups its bound along r / ||r|| was 0 where the distance is 9.2e-6); the best
    bound of each kind is kept (each is proven for any point)."""
    n = g0.size
    bl = full(blocks, n)
    offs = offsets(bl)
    Vs = stack(bl, n) if bl else None  # candidates as rows (the support bound reads them)
    V = Vs.T.tocsc() if bl else sp.csc_matrix((n, 0))
    sizes = np.diff(offs)
    dims_arr = np.zeros(0, np.intp) if dims is None else np.asarray(dims, np.intp)
    Mall = sp.csc_matrix(M) if M is not None and dims_arr.sum() else sp.csc_matrix((n, 0))

    def bounds(quadratic: bool) -> MinNorm:
        x, status = _solve(g0, V, sizes, Mall, dims_arr, quadratic)
        T = V.shape[1]
        lam = feasible(x[:T], sizes) if T else []
        us = _into_balls(np.split(x[T:], np.cumsum(dims_arr)[:-1]) if dims_arr.size else [])
        point = _point(g0, V, lam, Mall, us)
        lam, us, point = _polish(g0, V, sizes, lam, Mall, us, point)
        upper = float(np.linalg.norm(point))
        lower, e = 0.0, None
        if upper > 0:
            e = point / upper
            lower = (support(g0, Vs, offs, e) if bl else float(g0 @ e)) \
                - ball_support(Mall, dims_arr, e)
        return MinNorm(point, [*lam, *us], upper, max(0.0, min(lower, upper)), status, e)

    best = bounds(quadratic=False)
    if tol is None or not best.lower <= tol < best.upper:
        return best
    other = bounds(quadratic=True)
    if other.upper < best.upper:
        best, other = other, best  # the point, weights and upper bound of the nearer one
    if other.lower > best.lower:  # the lower bound with the direction it was proven along
        best = MinNorm(best.point, best.weights, best.upper, min(other.lower, best.upper),
                       best.status, other.direction)
    return best


def _solve(g0: np.ndarray, V: sp.csc_matrix, sizes: np.ndarray, M: sp.csc_matrix,
           dims: np.ndarray, quadratic: bool) -> tuple[np.ndarray, str]:
    """Clarabel's (lam, u) of the module docstring's SOCP (``quadratic``: the objective
    1/2 ||r||^2 and no cone on (t, r)), and its status."""
    import clarabel

    n, T, B, D = g0.size, V.shape[1], sizes.size, int(dims.sum())
    # variables [t, r (n), lam (T), u (D)] (t only in the cone form); rows: zero cones
    # (n + B), lam >= 0 (T), SOC (t, r), SOC (1, u_k) per ball
    lead = 0 if quadratic else 1
    nv = lead + n + T + D
    eq = sp.hstack([sp.csc_matrix((n, lead)), sp.identity(n, format="csc"), -V, -M],
                   format="csc")
    simp = sp.csc_matrix((np.ones(T), (np.repeat(np.arange(B), sizes), lead + n + np.arange(T))),
                         shape=(B, nv))
    nonneg = sp.csc_matrix((-np.ones(T), (np.arange(T), lead + n + np.arange(T))),
                           shape=(T, nv))
    rows, rhs, cones = [eq, simp], [g0, np.ones(B)], [clarabel.ZeroConeT(n + B)]
    if T:
        rows.append(nonneg)
        rhs.append(np.zeros(T))
        cones.append(clarabel.NonnegativeConeT(T))
    if not quadratic:
        rows.append(-sp.identity(nv, format="csc")[: 1 + n])
        rhs.append(np.zeros(1 + n))
        cones.append(clarabel.SecondOrderConeT(1 + n))
    if D:  # per ball (1, u_k) in a cone: rows [t_k = 1, -u_k], built at once (a block
        # per ball cost 7 of a 9 s test with 6,900 balls of total variation)
        first = np.r_[0, np.cumsum(1 + dims)[:-1]]  # each ball's t row
        r = np.repeat(first + 1, dims) + (np.arange(D) - np.repeat(np.cumsum(dims) - dims,
                                                                   dims))
        rows.append(sp.csc_matrix((-np.ones(D), (r, lead + n + T + np.arange(D))),
                                  shape=(D + dims.size, nv)))
        top = np.zeros(D + dims.size)
        top[first] = 1.0
        rhs.append(top)
        cones.extend(clarabel.SecondOrderConeT(1 + int(d)) for d in dims)
    q = np.zeros(nv)
    if quadratic:
        P = sp.block_diag([sp.identity(n), sp.csc_matrix((T + D, T + D))], format="csc")
    else:
        P, q[0] = sp.csc_matrix((nv, nv)), 1.0
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = _TOL
    if quadratic:  # NOTE: 1/2 ||r||^2 is tiny near a stationary point: a relative gap
        settings.tol_gap_abs = 1e-30
    settings.max_iter = 200
    sol = clarabel.DefaultSolver(P, q, sp.vstack(rows, format="csc"), np.concatenate(rhs),
                                 cones, settings).solve()
    return np.nan_to_num(np.asarray(sol.x, np.float64))[lead + n:], str(sol.status)


def _into_balls(us: list[np.ndarray]) -> list[np.ndarray]:
    return [u / max(1.0, float(np.linalg.norm(u))) for u in us]


def _point(g0: np.ndarray, V: sp.csc_matrix, lam: list, M: sp.csc_matrix, us: list
           ) -> np.ndarray:
    p = g0.copy()
    if lam:
        p += V @ np.concatenate(lam)
    if us:
        p += M @ np.concatenate(us)
    return p


def _polish(g0: np.ndarray, V: sp.csc_matrix, sizes: np.ndarray, lam: list,
            M: sp.csc_matrix, us: list, point: np.ndarray) -> tuple[list, list, np.ndarray]:
    """r = 0 on the support: min ||g0 + V_S lam_S + M_I u_I + M_F u_F|| with sum(lam_b) = 1,
    u_F (balls on their sphere) held; kept when lam_S >= 0, ||u_I|| <= 1 and the norm falls
    (module docstring)."""
    flat = np.concatenate(lam) if lam else np.zeros(0)
    S = np.flatnonzero(flat > 1e-9)
    dims = [u.size for u in us]
    starts = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    free = [k for k, u in enumerate(us) if np.linalg.norm(u) < _INSIDE]
    cols_u = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in free]) \
        if free else np.zeros(0, int)
    held = np.zeros(M.shape[1])
    for k, u in enumerate(us):
        if k not in free:
            held[starts[k]:starts[k + 1]] = u
    block_of = np.repeat(np.arange(sizes.size), sizes)[S]
    simp = sp.csr_matrix((np.ones(S.size), (block_of, np.arange(S.size))),
                         shape=(sizes.size, S.size + cols_u.size))
    top = sp.hstack([V[:, S], M[:, cols_u]], format="csr")
    # the simplex rows weighted heavily: the affine constraint, to rounding
    w = 1e8 * max(1.0, float(np.max(np.abs(top.data), initial=1.0)))
    Mls = sp.vstack([top, w * simp], format="csr")
    rhs = np.concatenate([-(g0 + M @ held), w * np.ones(sizes.size)])
    if Mls.shape[1] == 0:
        return lam, us, point
    y = affine_least_squares(Mls, rhs)
    if not np.all(np.isfinite(y)) or np.any(y[: S.size] < 0):
        return lam, us, point
    new_flat = np.zeros_like(flat)
    new_flat[S] = y[: S.size]
    new_lam = feasible(new_flat, sizes) if flat.size else []
    new_us = [u.copy() for u in us]
    lo = S.size
    for k in free:
        new_us[k] = y[lo: lo + dims[k]]
        lo += dims[k]
    if any(np.linalg.norm(new_us[k]) > 1.0 for k in free):
        return lam, us, point
    new_point = _point(g0, V, new_lam, M, new_us)
    if np.linalg.norm(new_point) < np.linalg.norm(point):
        return new_lam, new_us, new_point
    return lam, us, point
