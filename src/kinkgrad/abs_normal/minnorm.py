"""Minimum-norm points of sums of convex hulls, with bounds that do not trust the solver.

The sets of this package are Minkowski sums  C = g0 + conv(V_1) + ... + conv(V_B)  of the
convex hulls of a few candidate vectors per block (the rows of V_b; a single hull of k
gradients is the case B = 1, g0 = 0). The minimum-norm point of C solves the QP

    min 1/2 ||g0 + sum_b V_b^T lam_b||^2   s.t.  lam_b >= 0,  sum(lam_b) = 1  (each b).

Solver: PIQP (Schwan, Jiang, Kuhn, Jones, "PIQP: A Proximal Interior-Point Quadratic
Programming Solver", IEEE CDC 2023), a maintained C++ solver with Python bindings and both a
dense and a sparse backend. It was chosen after measuring it side by side with DAQP,
quadprog, ProxQP, Clarabel and OSQP (through ``qpsolvers``) on the problems this package
poses: a few hundred to a few thousand generators in n = 200..10,000 dimensions, with a
Hessian that is only positive semidefinite (rank <= n), e.g. the 999 segments of chained LQ
at its minimizer (PIQP 4 ms, duality gap 1e-7 relative; Clarabel 15 ms; DAQP 6 s; ProxQP and
OSQP inaccurate at 1e-3..1e-2; quadprog refuses a semidefinite Hessian). Interior-point
accuracy (about 1e-9) is enough because nothing below trusts it:

* ``upper``: the solver's weights are projected onto the simplices (clipped at 0,
  renormalised) and the point g0 + sum V_b^T lam_b is recomputed: it lies in C, so its norm
  is an upper bound on dist(0, C) whatever the solver returned.
* ``lower``: for the unit vector u = w / ||w||, every point of C has  <c, u> >= <g0, u> +
  sum_b min_j <V_bj, u>  (the support function of C), so that number bounds dist(0, C) from
  below, exactly, again whatever the solver returned. At the true minimiser both bounds meet.

Small problems (up to about 600 generators) go to the dense backend with the reduced
Hessian V V^T; larger ones to the sparse backend with the lifted form (variables w and lam,
constraint w - V^T lam = g0), which keeps the sparsity of V (a chained problem's candidate
gradients have two nonzeros each). The interior-point answer is then *polished*: on the
support it found, the exact minimum norm is one least-squares solve (accepted when it stays
in the simplices and lowers the norm), which takes a zero distance from ~1e-10 to ~1e-16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._affine_lsq import affine_least_squares
from ._exact_minnorm import exact_lower
from ._stacked import feasible, full, offsets, stack, support

__all__ = ["MAX_ENTRIES", "MinNorm", "hull_by_columns", "min_norm", "support_lower"]

_DENSE_GENERATORS = 600
MAX_ENTRIES = 60_000_000  # generators x n above which the QP is not attempted
_DENSE_NNZ = 200_000  # candidates with more nonzeros go to column generation
_ROUNDS = 60
_BATCH = 32  # candidates added per block and round of column generation
_EXACT_ENTRIES = 20_000  # candidates x columns up to which the lower bound may go exact
_WOLFE_ROUNDS = 50
_WOLFE_SOLVES = 20  # least-squares solves per polish (the bounds stay valid when it stops)


@dataclass
class MinNorm:
    """The minimum-norm point of C = g0 + sum_b conv(V_b) and certified bounds.

    Attributes:
        point: a point of C (flat), the solver's minimiser made feasible.
        weights: its convex weights per block.
        upper: ||point||, an upper bound on dist(0, C).
        lower: a lower bound on dist(0, C) from the support function (0 if none better).
        status: the solver's status, in words.
        direction: the unit vector u whose support bound gives ``lower``: every c in C has
            <c, u> >= lower, so -u is a descent direction of the set when lower > 0.
    """

    point: np.ndarray
    weights: list
    upper: float
    lower: float
    status: str
    direction: np.ndarray | None = None


def support_lower(g0: np.ndarray, blocks: list, u: np.ndarray) -> float:
    """min over C of <c, u>: <g0, u> + sum_b min_j <V_bj, u> (a lower bound on the distance
    from 0 to C when u is a unit vector)."""
    bl = full(blocks, u.size)
    if not bl:
        return float(g0 @ u)
    return support(g0, stack(bl, u.size), offsets(bl), u)


def _simplices(sizes: list[int]) -> sp.csc_matrix:
    N = int(sum(sizes))
    rows = np.repeat(np.arange(len(sizes)), sizes)
    return sp.csc_matrix((np.ones(N), (rows, np.arange(N))), shape=(len(sizes), N))


def _solve_dense(g0: np.ndarray, V: sp.csr_matrix, sizes: list[int]) -> tuple[np.ndarray, str]:
    import piqp

    N = V.shape[0]
    if V.nnz > 0.05 * N * V.shape[1]:  # NOTE: BLAS on a dense copy beats a sparse product
        Vd = V.toarray()
        P = np.asfortranarray(Vd @ Vd.T)
    else:
        P = np.asfortranarray((V @ V.T).toarray())
    c = V @ g0
    solver = piqp.DenseSolver()
    _settings(solver)
    solver.setup(P, c, np.asfortranarray(_simplices(sizes).toarray()), np.ones(len(sizes)),
                 None, None, None, np.zeros(N), None)
    status = solver.solve()
    return np.asarray(solver.result.x), str(status)


def _solve_sparse(g0: np.ndarray, V: sp.csr_matrix, sizes: list[int]) -> tuple[np.ndarray, str]:
    import piqp

    N, n = V.shape
    B = len(sizes)
    P = sp.block_diag([sp.identity(n), sp.csc_matrix((N, N))], format="csc")
    A = sp.vstack([sp.hstack([sp.identity(n), -V.T]),
                   sp.hstack([sp.csc_matrix((B, n)), _simplices(sizes)])], format="csc")
    b = np.concatenate([g0, np.ones(B)])
    x_lb = np.concatenate([np.full(n, -np.inf), np.zeros(N)])
    solver = piqp.SparseSolver()
    _settings(solver)
    solver.setup(P, np.zeros(n + N), A, b, None, None, None, x_lb, None)
    status = solver.solve()
    return np.asarray(solver.result.x)[n:], str(status)


def _settings(solver: object) -> None:
    s = solver.settings  # type: ignore[attr-defined]
    s.eps_abs, s.eps_rel, s.max_iter, s.verbose = 1e-11, 1e-11, 400, False


def _affine_min(g0: np.ndarray, Vd: sp.csr_matrix, supports: list[np.ndarray]
                ) -> np.ndarray | None:
    """Weights (on all candidates, zero off the supports, summing to 1 per block, possibly
    negative) of the minimum-norm point of g0 + sum_b aff(support of b): with each block's
    weights written lam_b = e_first + sum_j y_j (e_j - e_first), one least-squares problem in
    y (no squared condition number), refined twice."""
    pairs = [(j, supp[0]) for supp in supports for j in supp[1:]]
    firsts = [supp[0] for supp in supports]
    base = g0 + np.asarray(Vd[firsts].sum(axis=0)).ravel()
    lam = np.zeros(Vd.shape[0])
    lam[firsts] = 1.0
    if not pairs:
        return lam
    M = (Vd[[j for j, _ in pairs]] - Vd[[f for _, f in pairs]]).T
    y = affine_least_squares(M, -base)
    for (j, f), yj in zip(pairs, y):
        lam[j] += yj
        lam[f] -= yj
    return lam


def _polish(g0: np.ndarray, V: sp.csr_matrix, sizes: list[int], weights: list[np.ndarray],
            enough: float = 0.0) -> list[np.ndarray] | None:
    """Wolfe's minimum-norm-point algorithm, block by block, started on the solver's support:
    minor cycles move to the affine minimiser of the support (stepping back to the simplices
    and dropping weights that reach 0), major cycles add, per block, a candidate with a
    smaller <v, p> than the support's. Finite; None when it fails to stay feasible. Stops as
    soon as a feasible point has norm <= ``enough`` (that already decides "stationary")."""
    Vd = V.tocsr()
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    # NOTE: start from the clearly used candidates only; major cycles add back what is needed
    # (each minor cycle drops one weight, so a bloated start costs one solve per weight)
    supports = _supports(weights, offs, 1e-3)
    if sum(map(len, supports)) > 400:
        return _affine_polish(g0, Vd, sizes, [supports, _supports(weights, offs, 1e-9)])
    lam = np.concatenate(weights)
    lam = np.where(np.isin(np.arange(lam.size), np.concatenate(supports)), lam, 0.0)
    for supp in supports:
        lam[supp] /= lam[supp].sum()
    vmax = float(np.max(np.abs(Vd.data), initial=1.0))
    solves = 0
    for _ in range(_WOLFE_ROUNDS):
        if solves >= _WOLFE_SOLVES:
            break
        for _ in range(min(lam.size + 1, 200)):  # minor cycles
            solves += 1
            if solves > _WOLFE_SOLVES:
                break
            y = _affine_min(g0, Vd, supports)
            if y is None or not np.all(np.isfinite(y)):
                return None
            supp_all = np.concatenate(supports)
            neg = supp_all[y[supp_all] < 0]
            if neg.size == 0:
                lam = y
                if enough > 0 and np.min(lam) >= -1e-12 and \
                        float(np.linalg.norm(g0 + Vd.T @ lam)) <= enough:
                    return feasible(lam, sizes)
                break
            theta = float(np.min(lam[neg] / (lam[neg] - y[neg])))
            lam = lam + theta * (y - lam)
            for b, supp in enumerate(supports):
                keep = supp[lam[supp] > 1e-15]
                supports[b] = keep if keep.size else supp[[int(np.argmax(lam[supp]))]]
            lam[~np.isin(np.arange(lam.size), np.concatenate(supports))] = 0.0
        p = g0 + Vd.T @ lam
        scores = Vd @ p
        eps = 1e-13 * vmax * max(float(np.linalg.norm(p)), 1e-300)
        added = False
        for b, supp in enumerate(supports):
            block = np.arange(offs[b], offs[b + 1])
            j = int(block[np.argmin(scores[block])])
            if j not in supp and scores[j] < float(np.min(scores[supp])) - eps:
                supports[b] = np.sort(np.append(supp, j))
                added = True
        if not added:
            break
    if np.min(lam) < -1e-12:
        return None
    return feasible(lam, sizes)


def _supports(weights: list[np.ndarray], offs: np.ndarray, rel: float) -> list[np.ndarray]:
    """Per block, the (global) indices of the candidates whose weight exceeds ``rel`` times the
    block's largest."""
    return [np.flatnonzero(w > rel * max(float(w.max()), 1e-300)) + offs[b]
            for b, w in enumerate(weights)]


def _affine_polish(g0: np.ndarray, Vd: sp.csr_matrix, sizes: list[int],
                   candidates: list[list[np.ndarray]]) -> list[np.ndarray] | None:
    """Large supports: one affine solve per candidate support, the feasible result of
    smallest norm (None if none is feasible).

    # NOTE: two supports are tried, the clearly used candidates (weights above 1e-3 of the
    # block's largest) and every candidate the interior point kept above 1e-9: a minimiser
    # using a candidate with a small weight (chained Mifflin 2 at n = 1000: 16 of 997
    # segments at s ~ 1e-4) is missed by the first, whose solve then lands 6e-8 away instead
    # of 2.5e-10, and a set with many barely used candidates is missed by the second."""
    best, best_norm, seen = None, np.inf, None
    for supports in candidates:
        flat = np.concatenate(supports)
        if seen is not None and np.array_equal(flat, seen):
            continue
        seen = flat
        y = _affine_min(g0, Vd, supports)
        if y is None or not np.all(np.isfinite(y)) or np.min(y) < -1e-12:
            continue
        lam = feasible(y, sizes)
        nrm = float(np.linalg.norm(g0 + Vd.T @ np.concatenate(lam)))
        if nrm < best_norm:
            best, best_norm = lam, nrm
    return best


def _columns(g0: np.ndarray, V: sp.csr_matrix, sizes: np.ndarray) -> tuple[np.ndarray, str]:
    """Many dense candidates: column generation (Wolfe's restricted master). Solve on a few
    candidates per block, then add, per block, the candidates scoring below the block's
    current ones along the unit vector of the current point (at most ``_BATCH``, the most
    violating; with a dense master, while it has room). Candidates are V's rows, block b's
    rows offs[b]:offs[b + 1]."""
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    block = np.repeat(np.arange(sizes.size), sizes)
    dense_master = V.nnz > 0.05 * V.shape[0] * V.shape[1]
    # NOTE: blocks of at most _BATCH candidates add every violating one: all blocks at once
    # (10^5 blocks of a chained max); otherwise block by block, as the rule reads
    together = not dense_master and int(sizes.max()) <= _BATCH
    mean = g0 + V.T @ np.repeat(1.0 / sizes, sizes)
    chosen = np.zeros(V.shape[0], bool)
    chosen[_first_argmin(V @ mean, offs, block)] = True
    status = "column generation"
    lam_full = np.zeros(V.shape[0])
    for rnd in range(_ROUNDS):
        idx = np.flatnonzero(chosen)
        sub_sizes = np.add.reduceat(chosen.astype(np.intp), offs[:-1])
        Vs = V[idx]
        if Vs.shape[0] <= _DENSE_GENERATORS or dense_master:
            lam, st = _solve_dense(g0, Vs, sub_sizes)
        else:
            lam, st = _solve_sparse(g0, Vs, sub_sizes)
        lam_full[:] = 0.0
        lam_full[idx] = np.concatenate(feasible(lam, sub_sizes))
        w = g0 + V.T @ lam_full
        nw = float(np.linalg.norm(w))
        if nw <= 1e-300:
            break
        scores = V @ (w / nw)
        cur = np.minimum.reduceat(np.where(chosen, scores, np.inf), offs[:-1])
        beat = scores < (cur - 1e-13 * np.maximum(1.0, np.abs(cur)))[block]
        if together:
            new = beat & ~chosen
        else:
            new = np.zeros_like(chosen)
            for b in range(sizes.size):
                lo = offs[b]
                room = (_DENSE_GENERATORS - int(chosen.sum() + new.sum()) if dense_master
                        else _BATCH)  # NOTE: keep a dense master small; a sparse one may grow
                for j in lo + np.argsort(scores[lo:offs[b + 1]])[:max(0, min(_BATCH, room))]:
                    new[j] = beat[j] and not chosen[j]
        chosen |= new
        status = f"column generation ({rnd + 1} rounds, {idx.size} columns; {st})"
        if not new.any():
            break
    return lam_full, status


def _first_argmin(s: np.ndarray, offs: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Per block (rows offs[b]:offs[b + 1] of s), the position of its first minimum."""
    low = np.minimum.reduceat(s, offs[:-1])
    at = np.flatnonzero(s == low[block])
    _, first = np.unique(block[at], return_index=True)
    return at[first]


def min_norm(g0: np.ndarray, blocks: list, enough: float = 0.0) -> MinNorm | None:
    """The minimum-norm point of g0 + sum_b conv(candidates of block b) (None: too large).

    ``blocks`` holds full (t, n) arrays or pairs (cols, V) with V (t, len(cols)) supported on
    the columns ``cols``. Returns a :class:`MinNorm` whose ``upper`` and ``lower`` bound
    dist(0, C) with no trust in the QP solver (see the module docstring)."""
    g0 = np.asarray(g0, np.float64)
    n = g0.size
    bl = full(blocks, n)
    if not bl:
        nrm = float(np.linalg.norm(g0))
        return MinNorm(g0.copy(), [], nrm, nrm, "no blocks", g0 / nrm if nrm > 0 else None)
    offs = offsets(bl)
    sizes = np.diff(offs)
    if sum(V.nnz if sp.issparse(V) else V.size for _, V in bl) > MAX_ENTRIES:
        return None
    V = stack(bl, n)
    if enough > 0:  # NOTE: symmetric sets (max |h_i x| at x = 0) hold 0 at their centroid
        centre = g0 + V.T @ np.repeat(1.0 / sizes, sizes)
        nc = float(np.linalg.norm(centre))
        if nc <= enough:
            return MinNorm(centre, [np.full(t, 1.0 / t) for t in sizes], nc, 0.0,
                           "the centroid of every block is within the tolerance", None)
    # NOTE: a block's candidates often share a dense part (a tournament's leaves differ from
    # beta * mean by one item each): moving the first candidate into g0 leaves sparse
    # differences, and the set g0 + sum conv(V_b) is the same. (Sparse blocks are sparse.)
    dense = np.array([not sp.issparse(B) for _, B in bl])
    shift = np.repeat(np.where(dense, offs[:-1], -1), sizes)  # each row's block's first
    on = np.flatnonzero(shift >= 0)
    first = sp.csr_matrix((np.ones(on.size), (on, shift[on])), shape=(V.shape[0],) * 2)
    g0 = g0 + np.asarray(V[offs[:-1][dense]].sum(axis=0)).ravel()
    V = sp.csr_matrix(V - first @ V)
    V.eliminate_zeros()
    # NOTE: the solvers' tolerances are absolute: the QP is posed on data scaled to O(1)
    # (the weights do not change), so tiny gradients near a minimiser are solved as
    # accurately as large ones.
    c = max(float(np.max(np.abs(V.data), initial=0.0)), float(np.max(np.abs(g0))), 1e-300)
    # NOTE: differences of candidates computed along different paths leave rounding-level
    # entries everywhere; the solver sees them dropped (sparse again). Only its weights are
    # used: the point and both bounds below are computed from the data as it is.
    Vc, gc = V / c, g0 / c
    Vc.data[np.abs(Vc.data) <= 1e-13] = 0.0
    Vc.eliminate_zeros()
    if np.all(sizes == 1):
        lam, status = np.ones(V.shape[0]), "every block a single point"
    elif V.shape[0] <= _DENSE_GENERATORS:
        lam, status = _solve_dense(gc, Vc, sizes)
    elif V.nnz > _DENSE_NNZ:
        lam, status = _columns(gc, Vc, sizes)
    else:
        lam, status = _solve_sparse(gc, Vc, sizes)
    weights = feasible(lam, sizes)
    point = g0 + V.T @ np.concatenate(weights)
    upper = float(np.linalg.norm(point))
    # NOTE: every unit vector gives a valid lower bound; the solver's point and the polished
    # one (exact on the support, so orthogonal to its faces to rounding) are both tried.
    best: tuple[float, np.ndarray | None] = (0.0, None)
    if upper > 0:
        best = _better(best, g0, V, offs, point / upper)
    # NOTE: a point within rounding of 0 cannot be improved; a bound that already meets it
    # to 1e-10 needs no polish either (at 1e-6, an "exact" distance of 1 was 1.0000000271)
    if upper > max(1e-13 * c, enough) and best[0] < upper * (1 - 1e-10):
        better = _polish(g0, V, sizes, weights, enough)
        if better is not None:
            p2 = g0 + V.T @ np.concatenate(better)
            n2 = float(np.linalg.norm(p2))
            if n2 <= upper * (1 + 1e-9):
                weights, point, upper = better, p2, n2
                status += ", polished"
            if n2 > 0:
                best = _better(best, g0, V, offs, p2 / n2)
    scale = max(float(np.max(np.abs(V.data), initial=0.0)), float(np.max(np.abs(g0))))
    # NOTE: the exact bound is tried when the float one is poor, or when it is what decides
    # the caller's verdict (tol = ``enough`` between the bounds): near a minimiser the float
    # direction's quality depends on rounding far below the candidates' size
    if max(0.0, enough) < upper < 1e-5 * scale and (
            best[0] < 0.5 * upper or best[0] <= enough) and \
            sum(V_b.shape[0] * V_b.shape[1] for _, V_b in bl) <= _EXACT_ENTRIES:
        exact = exact_lower(g0, [(cols, V[lo:hi][:, cols].toarray()) for (cols, _), lo, hi
                                 in zip(bl, offs[:-1], offs[1:])], weights)
        if exact is not None and exact[0] > best[0]:
            best = exact
    return MinNorm(point, weights, upper, max(0.0, min(best[0], upper)), status, best[1])


def _better(best: tuple, g0: np.ndarray, V: sp.csr_matrix, offs: np.ndarray,
            u: np.ndarray) -> tuple:
    """The support bound along u (:func:`support_lower` on the stacked candidates) if it
    beats ``best``."""
    low = support(g0, V, offs, u)
    return (low, u) if low > best[0] or best[1] is None else best


def hull_by_columns(first: np.ndarray, enter: Callable[[np.ndarray], np.ndarray], tol: float,
                    rounds: int) -> tuple[np.ndarray, float]:
    """Frank-Wolfe's column generation on the hull of pieces a generator can give: the
    minimum-norm point w of the pieces held (rows of ``first``, then those added), then the
    pieces ``enter(u)`` gives for u = -w / ||w|| (a direction along which a piece lower on w
    is entered), added while one of them has <p, w> < ||w||^2 (else no piece enter can give
    lowers the norm) and the norm shrinks; stops at ``tol`` or after ``rounds``. Returns
    (w, its certified norm :attr:`MinNorm.upper`), or (0, inf) without pieces. Every piece
    held belongs to the set, so w is an element of it (an inner bound)."""
    n = first.shape[1]
    seen: set[bytes] = set()
    rows: list[np.ndarray] = []

    def add(new: np.ndarray) -> None:  # NOTE: not np.unique(axis=0): 0.4 s of a 0.5 s test
        for r in new:  # on 16,896-wide rows (it sorts them as structured records)
            key = r.tobytes()
            if key not in seen:
                seen.add(key)
                rows.append(r)

    add(first)
    P, best = np.array(rows).reshape(-1, n), (np.zeros(n), np.inf)
    for _ in range(rounds):
        if not P.shape[0]:
            break
        mn = min_norm(np.zeros(n), [P])
        if mn is None or mn.upper >= best[1]:
            break
        best = (mn.point, mn.upper)
        if mn.upper <= tol:
            break
        w = mn.point
        scale = float(np.max(np.abs(w)))  # NOTE: ||w||^2 underflows for entries below 1e-154
        if scale == 0:
            break
        u = w / scale
        new = np.atleast_2d(enter(-u / np.linalg.norm(u)))
        if not new.shape[0] or float(np.min(new @ w)) >= mn.upper ** 2 * (1 - 1e-9):
            break
        add(new)
        P = np.array(rows)
    return best
