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
the norm, which takes a zero distance from the interior point's ~1e-10 to rounding. The
lower bound is also taken along that solve's residual (orthogonal to the support's span):
where the distance is g0's from that span, as at total variation's flat regions, it is
tight, while along the interior point's direction the hundreds of balls' support terms
swallow it (bounds [0, 1.4e-7] before, undecided at tol 1e-8).
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
_POLISH_ROUNDS = 5  # least-squares solves of the polish (balls pushed out are then held)


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
        lam, us, point, resid = _polish(g0, V, sizes, lam, Mall, us, point)
        upper = float(np.linalg.norm(point))
        lower, e = 0.0, None
        for v in (point, *resid) if upper > 0 else ():  # NOTE: along the point's direction
            size = float(np.linalg.norm(v))  # and the polish's residuals' (the interior
            if size > 0:  # point's r / ||r|| missed total variation's 166 balls by ~1e-5:
                d = v / size  # its bound 0, the residual's 1.2e-7, the distance 1.38e-7)
                b = (support(g0, Vs, offs, d) if bl else float(g0 @ d)) \
                    - ball_support(Mall, dims_arr, d)
                if e is None or b > lower:
                    lower, e = b, d
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
            M: sp.csc_matrix, us: list, point: np.ndarray
            ) -> tuple[list, list, np.ndarray, list[np.ndarray]]:
    """r = 0 on the support: min ||g0 + V_S lam_S + M_I u_I + M_F u_F|| with sum(lam_b) = 1,
    u_F (balls on their sphere) held; kept when lam_S >= 0, ||u_I|| <= 1 and the norm falls
    (module docstring). Balls the solve takes out of their ball are held on their sphere
    (at the interior point's direction) and the solve repeated, up to 5 times: total
    variation's balls at 1 - 1e-7 counted as free (the test at radius 1e-4 of a 16 x 16
    image: "undecided", [0, 1.4e-7]). Also returns the first solve's residual r and r /
    ||r|| less its own least-squares part (directions orthogonal to the free balls'
    columns, once to r's rounding and once to 1's: whose support bound is tight where the
    minimum is g0's distance from their span; TV 32 x 32: 3e-8, the first one's bound 0)."""
    flat = np.concatenate(lam) if lam else np.zeros(0)
    S = np.flatnonzero(flat > 1e-9)
    dims = [u.size for u in us]
    starts = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    free = [k for k, u in enumerate(us) if np.linalg.norm(u) < _INSIDE]
    block_of = np.repeat(np.arange(sizes.size), sizes)[S]
    resid: list[np.ndarray] = []
    for _ in range(_POLISH_ROUNDS):
        solved = _support_solve(g0 + M @ _held(us, free, starts, M.shape[1]), V, S,
                                block_of, M, free, starts)
        if solved is None:
            return lam, us, point, resid
        y, r = solved
        if not resid and np.any(r):
            again = _support_solve(r / np.linalg.norm(r), V, S, block_of, M, free, starts,
                                   simplex=0.0)
            resid = [r] if again is None else [r, again[1]]
        if np.any(y[: S.size] < 0):
            return lam, us, point, resid
        new_us = [u.copy() for u in us]
        lo, out = S.size, []
        for k in free:
            new_us[k] = y[lo: lo + dims[k]]
            lo += dims[k]
            if np.linalg.norm(new_us[k]) > 1.0:
                out.append(k)
        if not out:
            break
        us = [u / np.linalg.norm(u) if k in out and np.any(u) else u for k, u in enumerate(us)]
        free = [k for k in free if k not in out]
    else:
        return lam, us, point, resid
    new_flat = np.zeros_like(flat)
    new_flat[S] = y[: S.size]
    new_lam = feasible(new_flat, sizes) if flat.size else []
    new_point = _point(g0, V, new_lam, M, new_us)
    if np.linalg.norm(new_point) < np.linalg.norm(point):
        return new_lam, new_us, new_point, resid
    return lam, us, point, resid


def _held(us: list, free: list, starts: np.ndarray, size: int) -> np.ndarray:
    """The u of the balls not in ``free``, zeros for the free ones."""
    held = np.zeros(size)
    for k in set(range(len(us))) - set(free):
        held[starts[k]:starts[k + 1]] = us[k]
    return held


def _support_solve(c: np.ndarray, V: sp.csc_matrix, S: np.ndarray, block_of: np.ndarray,
                   M: sp.csc_matrix, free: list, starts: np.ndarray, simplex: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """argmin ||c + V_S lam_S + M_free u|| with sum(lam_b) = ``simplex`` per block, as
    (lam_S, u), and its residual; None where there is nothing to solve or the solve is not
    finite. Each block's weights are lam_b = simplex e_first + sum_j y_j (e_j - e_first)
    (one least-squares problem in y and u, as :mod:`.minnorm`'s affine step: the simplex
    rows weighted by 1e8 instead made the augmented solve's damping 1e-16 max|M|^2 = 1,
    and TV-L1's residual 3.0 where the interior point's was 1.3e-7)."""
    cols_u = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in free]) \
        if free else np.zeros(0, int)
    first = np.r_[True, block_of[1:] != block_of[:-1]] if S.size else np.zeros(0, bool)
    head = np.flatnonzero(first)  # positions in S of each block's first weight
    rest = np.flatnonzero(~first)
    of = head[np.cumsum(first)[rest] - 1]  # the first weight of each other one's block
    A = sp.hstack([V[:, S[rest]] - V[:, S[of]], M[:, cols_u]], format="csr")
    if A.shape[1] == 0:
        return None
    base = c + simplex * np.asarray(V[:, S[head]].sum(axis=1)).ravel()
    y = affine_least_squares(A, -base)
    if not np.all(np.isfinite(y)):
        return None
    lam = np.zeros(S.size)
    lam[head] = simplex
    lam[rest] = y[: rest.size]
    np.add.at(lam, of, -y[: rest.size])
    return np.concatenate([lam, y[rest.size:]]), base + A @ y
