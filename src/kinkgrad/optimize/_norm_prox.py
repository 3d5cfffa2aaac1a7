"""Proximal Newton steps on f = phi + sum_k lambda_k ||w_k|| over the Euclidean norms of
a program: the finishing steps where the zero groups' rows are not single coordinates and
may be dependent (isotropic total variation), and f is convex in its norms.

At x, with every norm group w_k (k = 1..q) of the program, lambda_k = d phi / d ||w_k||,
J_k = w_k'(x), and g, H the gradient and a positive semidefinite Hessian estimate of phi (f
with all its norms frozen, :func:`kinkgrad.abs_normal.zero_norms.freeze`), the model

    m(dx) = f(x) + g . dx + 1/2 dx^T H dx + sum_k lambda_k (||w_k + J_k dx|| - ||w_k||)

keeps every norm exact instead of its tangent plane. With every lambda_k >= 0 it is convex
and its minimiser is a second-order cone program (t_k >= ||w_k + J_k dx||),

    min  1/2 dx^T (H + eps I) dx + g . dx + sum_k lambda_k t_k
    s.t. (t_k, w_k + J_k dx) in the second-order cone of R^{1 + d_k},

solved by Clarabel. Its solution says which groups are zero (with dependent rows the
multipliers of :mod:`._norm_finish`'s equality-constrained step are not unique and cannot
say which to release): a group is called zero where its size is small against its dual
slack (:func:`model_zeros`), and Newton-SQP steps on the manifold of those zero groups
polish the point (:func:`_polish`: H plus the exact curvature of the other norms, a
regularized sparse KKT solve refined against the exact one, which converges on dependent
but consistent rows). The interior point resolves a zero only to ~sqrt(mu) in the units
of its data (~1e-6 here), while a minimiser can have free groups of any size (total
variation at n = 4,096: sizes from 1e-10 up), and one such group held at zero moves the
point enough to turn the directions of the groups just above the test's radius: so the
steps after the first are *refined* (:func:`_model_step`): only the groups below
sigma = 1e-3 (1 + max ||w_k||) stay in cones, the others enter g and H by their quadratic
model, and the step is rescaled by sigma, which resolves zeros to ~1e-14. A norm with
lambda_k < 0 (concave in the model) is left in phi when far from zero; near zero, the step
does not apply. H is sparse: forward differences of the frozen gradient, compressed where
the columns' supports are disjoint (:mod:`._sparse_hessian`: total variation's H = I costs
about 30 gradients, not n), made positive semidefinite by a shift of its smallest
eigenvalue; it is re-estimated only where it mispredicted the last step's gradient, so a
quadratic phi (total-variation denoising) needs one estimate. Where the norms' inputs are
nonlinear or f is not linear in its norms (crescent's max of quadratics, a ReLU network's
|z| times its next weights), phi's Hessian misses curvature and H is the SQP Lagrangian's
instead (:mod:`._lagrangian`), plus ||residual|| I (regularized Newton, for minimisers that
are not isolated), re-estimated every step; the polish then takes the rows J_k at each
iterate.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgWarning, cho_factor, cho_solve, lu_factor, lu_solve
from scipy.sparse.linalg import splu

from ..abs_normal.stationarity import StationarityReport
from ..abs_normal.zero_norms import Balls
from ._lagrangian import curvature_missing, lagrangian_groups
from ._norm_groups import (
    certified,
    chosen_key,
    coordinate_roots,
    group_inputs,
    group_norms,
    regroup,
    zero_groups,
)
from ._sparse_hessian import sparse_hessian
from .common import MethodResult
from .oracle import Oracle

__all__ = ["KINK_GROUPS", "held_words", "model_zeros", "prox_newton_step", "proximal", "sparse_kkt"]

_STEPS = 5
_TOL = 1e-12  # Clarabel's gap and feasibility tolerances
_ZERO = 1e-7  # a group the model leaves below this (relative) size is at zero
_SEPARATE = 1e-4  # ... and below this times its dual slack (model_zeros)
_DENSE_FILL = 0.1  # a KKT matrix with more nonzeros than this fraction is factored dense
_DENSE_KKT = 6_000  # ... up to this order
KINK_GROUPS = " (its other kinks among them, as norms of one entry)"


def held_words(oracle: Oracle, k: int) -> str:
    """What k groups held at zero are, in words: Euclidean norms (with the kinks seen as
    norms of one entry), or kinks alone where f has no Euclidean norm (the message said
    "zero Euclidean norm(s)" for a program of kinks only)."""
    if not oracle.euclidean:
        return f"{k} kink(s) at zero (as norms of one entry)"
    return f"{k} zero Euclidean norm(s){KINK_GROUPS if oracle.kinks_as_norms else ''}"


def proximal(oracle: Oracle, x: np.ndarray, fx: float, tol: float, radius: float, nit: int,
             message: str, near: float) -> tuple[MethodResult, StationarityReport] | None:
    """The first point the test certifies at ``radius`` among at most five proximal
    Newton steps from x (module docstring), and its verdict; None when a step fails, f
    grows beyond its rounding, or a concave norm is within ``near`` of zero."""
    allowance = oracle.allowance(fx)
    H = pred = curved = None
    path: list[float] = []
    for moves in range(1, _STEPS + 1):
        balls = zero_groups(oracle, x, np.inf)
        if balls is None:
            return None
        w = group_inputs(oracle, x, balls.chosen)
        convex = balls.lam >= 0
        if not convex.all():  # NOTE: a norm with lambda_k < 0 is concave in the model:
            # left smooth (in phi) when far from zero; near zero, not this step's case
            sizes = group_norms(w, balls.dims)
            rows = np.asarray(balls.rows.multiply(balls.rows).sum(axis=1)).ravel()
            if np.any((sizes <= near * group_norms(np.sqrt(rows), balls.dims))[~convex]):
                return None
            w = w[np.repeat(convex, balls.dims)]
            balls = balls.subset(convex)
        chosen = balls.chosen
        g = oracle.frozen_gradient(x, chosen)
        if g is None:
            return None
        if pred is not None and (pred[2] != chosen_key(chosen) or np.linalg.norm(g - pred[0])
                                 > 0.1 * np.linalg.norm(g - pred[1])):
            H = None  # NOTE: a quadratic phi (total variation) needs one estimate
        if curved is None:
            curved = curvature_missing(oracle, x, balls, g)
        if H is None or curved:  # NOTE: the Lagrangian's directions move with x
            lin = lagrangian_groups(balls, w, g, near) if curved else chosen
            base = oracle.frozen_gradient(x, lin) if curved else g
            H = None if base is None else sparse_hessian(oracle, x, base, lin)
            if H is None:
                return None
            if curved:  # NOTE: regularized Newton (Li, Fukushima, Qi, Yamashita 2004):
                # + ||residual|| I, which keeps superlinear convergence where minimisers
                # are not isolated (a ReLU net's rescalings: the model flat, a step of 1.1)
                H = sp.csr_matrix(H + np.linalg.norm(base) * sp.identity(x.size))
        step = _model_step(oracle, x, H, g, balls, w, level=moves - 1)
        if step is None:
            return None
        dx, zero = step
        polished = _polish(oracle, x + dx, H, balls, zero, fx, bool(curved))
        if polished is None:
            return None
        xn, zero = _land_coordinates(oracle, *polished, balls, fx + allowance)
        fn = oracle.value(xn)
        if not fn <= fx + allowance:
            return None
        pred = (g + H @ (xn - x), g, chosen_key(chosen))
        x, fx = xn, fn
        path.append(fn)
        done = certified(oracle, x, fx, nit + moves, radius, tol, message,
                         f"{moves} proximal Newton step(s) " + (
                             f"on {balls.q} group(s): {held_words(oracle, int(zero.sum()))}"
                             if balls.q else "(no Euclidean norm or kink)"), path)
        if done is not None:
            return done
    return None


def _model_step(oracle: Oracle, x: np.ndarray, H: sp.csr_matrix, g: np.ndarray, balls: Balls,
                w: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, the groups it puts at zero): the model's minimiser with every norm in a cone
    (level 0), or, refined (after a first step and its polish), with only the groups below
    sigma = 1e-3^level (1 + max_k ||w_k||) in cones and the others' norms in g and H (their
    quadratic model: exact to third order in ||J_k dx|| / ||w_k||), the step rescaled by
    sigma. The interior point resolves a zero only to ~sqrt(mu) in the units of the data it
    is given: at n = 4,096 (TV) ~1e-6 among true group sizes from 1e-10 upwards, where the
    rescaled step's zeros fall below 1e-14; each level resolves 1e-3 finer (at n = 9,216
    a free group of size 3e-12, held at zero by level 1, turns a group of 2e-8 next to it
    by 1e-4)."""
    lam = np.asarray(balls.lam)
    if level == 0:
        step = prox_newton_step(H, g, balls.rows, balls.dims, lam, w)
        return None if step is None else (step[0], model_zeros(balls.rows, balls.dims, w,
                                                               *step))
    sizes = group_norms(w, balls.dims)
    sigma = 1e-3 ** level * (1.0 + float(np.max(sizes, initial=0.0)))
    cone = sizes <= sigma
    sub = balls.subset(cone)
    gs = oracle.frozen_gradient(x, sub.chosen)  # the free groups' norms included
    if gs is None:
        return None
    free = np.repeat(~cone, balls.dims)
    Hs = H + _norm_curvature(balls, ~cone, w[free])
    wc = w[~free]
    step = prox_newton_step(sigma * Hs, gs, sub.rows, sub.dims, lam[cone], wc / sigma)
    if step is None:
        return None
    zero = np.zeros(balls.q, bool)
    zero[np.flatnonzero(cone)] = model_zeros(sub.rows, sub.dims, wc / sigma, *step)
    return sigma * step[0], zero


def _polish(oracle: Oracle, x: np.ndarray, H: sp.csr_matrix, balls: Balls, zero: np.ndarray,
            f_start: float, nonlinear: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Newton-SQP steps on the manifold of the zero groups from the proximal step's point:
    H plus the exact curvature of the other norms at each iterate, lambda_k J_k^T
    (I - u u^T) J_k / ||w_k||. A free group the step would move by more than its own size
    (||J_k dx|| > ||w_k||: beyond its model, whose curvature is 1 / ||w_k||, and in TV a
    zero the interior point left at ~1e-7) joins the zero groups and the step is
    recomputed. A step that puts the zero groups back at zero (the interior point leaves
    them at up to ~1e-6 at n = 4,096) can raise f: a step is halved only until f stays
    below ``f_start`` (f before the proximal step) plus its rounding, and the last step's
    f is then the bound. At most twenty steps, until they fall below rounding or three in
    a row fail to halve (a floor: f's rounding ranks no smaller step; at 128 x 128 TV, 18
    steps of ~3e-9 at 0.5 s each). Returns (x, the zero groups)."""
    zero = zero.copy()
    J = balls.rows[np.repeat(zero, balls.dims)]
    fx = f_start
    allowance = oracle.allowance(fx)
    sizes: list[float] = []
    for _ in range(20):
        if nonlinear:  # the rows and lambda_k at the iterate (the SQP step's Jacobian)
            balls = regroup(oracle, x, balls)
            if balls is None:
                return None
            J = balls.rows[np.repeat(zero, balls.dims)]
        g = oracle.frozen_gradient(x, balls.subset(zero).chosen)
        if g is None:
            return None
        every = group_inputs(oracle, x, balls.chosen)  # all groups, in balls' order
        wf = every[np.repeat(~zero, balls.dims)]
        HZ = H + _norm_curvature(balls, ~zero, wf)
        dx = sparse_kkt(HZ, J, g, every[np.repeat(zero, balls.dims)])
        if dx is None:
            return None
        dims = balls.dims[~zero]
        moved = balls.rows[np.repeat(~zero, balls.dims)] @ dx
        cross = group_norms(moved, dims) > group_norms(wf, dims)  # ||J_k dx|| > ||w_k||
        if cross.any():
            zero[np.flatnonzero(~zero)[cross]] = True
            J = balls.rows[np.repeat(zero, balls.dims)]
            continue
        for _ in range(30):
            fn = oracle.value(x + dx)
            if fn <= fx + allowance:
                break
            dx = 0.5 * dx
        else:
            return x, zero
        x, fx = x + dx, fn
        sizes.append(float(np.linalg.norm(dx)))
        if sizes[-1] <= 1e-14 * (1.0 + np.linalg.norm(x)) or (
                len(sizes) > 3 and all(b > 0.5 * a for a, b in zip(sizes[-4:], sizes[-3:]))):
            break
    return x, zero


def _land_coordinates(oracle: Oracle, x: np.ndarray, zero: np.ndarray, balls: Balls,
                      bound: float) -> tuple[np.ndarray, np.ndarray]:
    """x with the zero groups put exactly on their kinks where their rows are single
    coordinates (a group lasso's, w_r = v x_c + const: x_c -= w_r / v; a column that
    several rows hold, as a sparse group lasso's l1 and group terms, takes the root of its
    first), kept when f stays below ``bound``; (x, zero)."""
    if not zero.any():
        return x, zero
    J = balls.rows[np.repeat(zero, balls.dims)]
    if coordinate_roots(J, np.zeros(J.shape[0])) is None:  # the rows' shape only
        return x, zero
    cols, steps, _ = coordinate_roots(J, group_inputs(oracle, x, balls.subset(zero).chosen))
    landed = x.copy()
    landed[cols] += steps
    return (landed if oracle.value(landed) <= bound else x), zero


def _norm_curvature(balls: Balls, free: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    """sum over the free groups of lambda_k J_k^T (I - u_k u_k^T) J_k / ||w_k||, u_k =
    w_k / ||w_k||: the Hessian of lambda_k ||w_k(x)|| for affine w_k (w: their stacked
    values)."""
    n = balls.rows.shape[1]
    dims = balls.dims[free]
    if not dims.size:
        return sp.csr_matrix((n, n))
    size = group_norms(w, dims)
    ok = np.repeat(size > 0, dims)
    safe = np.repeat(np.where(size > 0, size, 1.0), dims)
    scale = np.repeat(np.abs(balls.lam[free]), dims) / safe
    A = sp.diags(np.sqrt(scale) * ok) @ balls.rows[np.repeat(free, balls.dims)]
    u = np.where(ok, w / safe, 0.0)
    U = sp.csr_matrix((u, (np.repeat(np.arange(dims.size), dims), np.arange(u.size))),
                      shape=(dims.size, u.size))
    V = sp.csr_matrix(U @ A)
    return sp.csr_matrix(A.T @ A - V.T @ V)


def sparse_kkt(H: sp.csr_matrix, J: sp.csr_matrix, g: np.ndarray, w: np.ndarray
               ) -> np.ndarray | None:
    """dx of [H + eps I, J^T; J, 0] [dx; mu] = [-g; -w], J's rows possibly dependent: one
    sparse LU of the regularized (quasi-definite) matrix with -delta I in the (2, 2) block
    (a dense LU where over a tenth of its entries are nonzero), then iterative refinement
    against the exact matrix, which converges for dx where w lies in J's range (consistent
    rows: mu is then not unique, and not returned). None where the factorization fails
    (singular, or beyond memory: active faces at n = 10^4, whose Hessian is dense)."""
    n, m = H.shape[0], J.shape[0]
    big = float(abs(H).max()) if H.nnz else 0.0
    eps = 1e-10 * max(1.0, big)
    reduced = _coordinate_kkt(H, J, g, w, eps)
    if reduced is not None:
        return reduced
    K = sp.bmat([[H + eps * sp.identity(n), J.T], [J, None]], format="csc") if m else \
        sp.csc_matrix(H + eps * sp.identity(n))
    delta = 1e-10 * max(1.0, float(abs(J).max()) if J.nnz else 0.0) ** 2  # NOTE: not H's
    # scale: the norms' curvature (up to 1e6 next to zero) would make it 1e-4, and the
    # refinement's contraction along J's small singular values slow
    reg = K - sp.block_diag([sp.csc_matrix((n, n)), delta * sp.identity(m)], format="csc") \
        if m else K
    rhs = np.concatenate([-g, -w])
    size = reg.shape[0]
    try:  # NOTE: MXHILB's Hilbert rows and Hessian fill the matrix: SuperLU took 0.7 s a
        if reg.nnz > _DENSE_FILL * size * size and size <= _DENSE_KKT:  # solve at n = 1,000
            with warnings.catch_warnings():
                warnings.simplefilter("error", LinAlgWarning)
                factors = lu_factor(reg.toarray(), check_finite=False)
            solve = lambda r: lu_solve(factors, r, check_finite=False)  # noqa: E731
        else:
            solve = splu(sp.csc_matrix(reg)).solve
    except (RuntimeError, MemoryError, LinAlgWarning):  # singular, or beyond memory
        return None
    sol = solve(rhs)
    for _ in range(20):
        step = solve(rhs - K @ sol)
        sol = sol + step
        if np.linalg.norm(step[:n]) <= 1e-15 * (1.0 + np.linalg.norm(sol[:n])):
            break
    dx = sol[:n]
    return dx if np.all(np.isfinite(dx)) else None


def _coordinate_kkt(H: sp.csr_matrix, J: sp.csr_matrix, g: np.ndarray, w: np.ndarray,
                    eps: float) -> np.ndarray | None:
    """:func:`sparse_kkt`'s dx where every row of J is one coordinate's (w_r = v x_c +
    const: an l1 term's and a group lasso's zeros; a column may hold several rows, whose
    roots must then agree): dx_C = -w / v and (H_FF + eps I) dx_F = -(g_F + H_FC dx_C) on
    the free coordinates F, by Cholesky where H_FF is dense (a sparse group lasso at
    n = 2,000: one 0.8 s sparse LU of the whole KKT matrix -> 0.03 s). None otherwise."""
    found = coordinate_roots(J, w)
    if found is None or not found[2]:  # rows on one column that disagree: the general solve
        return None
    cols, steps, _ = found
    n = H.shape[0]
    dx = np.zeros(n)
    dx[cols] = steps
    free = np.setdiff1d(np.arange(n), cols)
    if not free.size:
        return dx
    Hc = sp.csc_matrix(H)
    rhs = -(g[free] + Hc[free][:, cols] @ dx[cols])
    A = Hc[free][:, free] + eps * sp.identity(free.size, format="csc")
    try:
        if A.nnz > 0.1 * free.size ** 2:
            dx[free] = cho_solve(cho_factor(A.toarray()), rhs)
        else:
            dx[free] = splu(sp.csc_matrix(A)).solve(rhs)
    except (np.linalg.LinAlgError, RuntimeError):
        return None
    return dx if np.all(np.isfinite(dx)) else None


def prox_newton_step(H: sp.spmatrix | np.ndarray, g: np.ndarray, J: sp.csr_matrix,
                     dims: np.ndarray, lam: np.ndarray, w: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, slack): the minimiser dx of the model (module docstring) and each group's dual
    slack 1 - ||y_k|| / lambda_k, y_k the multiplier of its cone (||y_k|| <= lambda_k;
    1 where lambda_k = 0); None when Clarabel does not solve it. A model without curvature
    along a descending ray is bounded only by eps I: its step is ~1/eps long, and the
    caller's test of f rejects it."""
    import clarabel

    n, q = g.size, dims.size
    H = sp.csr_matrix(H)
    eps = 1e-10 * max(1.0, float(abs(H).max()) if H.nnz else 0.0)
    P = sp.block_diag([sp.triu(H + eps * sp.identity(n), format="csc"),
                       sp.csc_matrix((q, q))], format="csc")
    c = np.concatenate([g, lam])
    # the cone rows of group k: t_k first, then w_k + J_k dx (Clarabel's s = b - A z)
    starts = np.r_[0, np.cumsum(dims)[:-1]].astype(np.intp)
    t_row = starts + np.arange(q)  # where each group's t_k sits among the stacked rows
    w_rows = np.delete(np.arange(int(dims.sum()) + q), t_row)
    Jc = sp.csr_matrix(J)
    A_dx = sp.csr_matrix((-Jc.data, Jc.indices, Jc.indptr), shape=Jc.shape)
    A = sp.vstack([sp.hstack([A_dx, sp.csr_matrix((Jc.shape[0], q))]),
                   sp.hstack([sp.csr_matrix((q, n)), -sp.identity(q)])], format="csr")
    order = np.empty(A.shape[0], np.intp)
    order[w_rows] = np.arange(Jc.shape[0])
    order[t_row] = Jc.shape[0] + np.arange(q)
    A = A[order].tocsc()
    b = np.zeros(A.shape[0])
    b[w_rows] = w
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = _TOL
    settings.max_iter = 200
    cones = [clarabel.SecondOrderConeT(int(d) + 1) for d in dims]
    sol = clarabel.DefaultSolver(P, c, A, b, cones, settings).solve()
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        return None
    dx = np.asarray(sol.x, np.float64)[:n]
    if not np.all(np.isfinite(dx)):
        return None
    z = np.asarray(sol.z, np.float64)  # (z_t, y_k) per group, in the cone rows' order
    y = group_norms(np.delete(z, t_row), dims)
    top = z[t_row]
    slack = np.ones(q)
    np.divide(top - y, top, out=slack, where=top > 0)
    return dx, slack


def model_zeros(J: sp.csr_matrix, dims: np.ndarray, w: np.ndarray, dx: np.ndarray,
                slack: np.ndarray | None = None) -> np.ndarray:
    """(q,) bool: the groups the model's minimiser puts at zero: a = ||w_k + J_k dx|| /
    (1 + ||dx|| + max_k ||w_k||) <= 1e-7 and, given the dual slacks s_k, a <= 1e-4 s_k.
    On the interior point's central path a s_k ~ mu for every group: a zero group's a
    falls and its s_k stays, a free group's the other way; a group with both small (size
    and slack ~sqrt(mu): a true size below the interior point's resolution) is called free,
    the side :func:`_polish` can correct (a free group its step would cross joins the
    zeros; a group held at zero is never released)."""
    scale = 1.0 + float(np.linalg.norm(dx)) + float(np.max(group_norms(w, dims), initial=0.0))
    a = group_norms(w + J @ dx, dims) / scale
    zero = a <= _ZERO
    return zero if slack is None else zero & (a <= _SEPARATE * slack)

