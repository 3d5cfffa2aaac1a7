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
gradients have two nonzeros each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["MinNorm", "min_norm", "support_lower"]

_DENSE_GENERATORS = 600
_MAX_ENTRIES = 60_000_000  # generators x n above which the QP is not attempted


@dataclass
class MinNorm:
    """The minimum-norm point of C = g0 + sum_b conv(V_b) and certified bounds.

    Attributes:
        point: a point of C (flat), the solver's minimiser made feasible.
        weights: its convex weights per block.
        upper: ||point||, an upper bound on dist(0, C).
        lower: a lower bound on dist(0, C) from the support function (0 if none better).
        status: the solver's status, in words.
    """

    point: np.ndarray
    weights: list
    upper: float
    lower: float
    status: str


def support_lower(g0: np.ndarray, blocks: list[np.ndarray], u: np.ndarray) -> float:
    """min over C of <c, u>: <g0, u> + sum_b min_j <V_bj, u> (a lower bound on the distance
    from 0 to C when u is a unit vector)."""
    return float(g0 @ u + sum(float(np.min(V @ u)) for V in blocks if len(V)))


def _feasible(lam: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, lo = [], 0
    for t in sizes:
        w = np.maximum(np.nan_to_num(lam[lo:lo + t], nan=0.0), 0.0)
        total = float(w.sum())
        out.append(w / total if total > 0 else np.full(t, 1.0 / t))
        lo += t
    return out


def _solve_dense(g0: np.ndarray, V: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, str]:
    import piqp

    N = V.shape[0]
    P = np.asfortranarray(V @ V.T)
    c = V @ g0
    S = np.zeros((len(sizes), N))
    lo = 0
    for b, t in enumerate(sizes):
        S[b, lo:lo + t] = 1.0
        lo += t
    solver = piqp.DenseSolver()
    _settings(solver)
    solver.setup(P, c, np.asfortranarray(S), np.ones(len(sizes)), None, None, None,
                 np.zeros(N), None)
    status = solver.solve()
    return np.asarray(solver.result.x), str(status)


def _solve_sparse(g0: np.ndarray, V: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, str]:
    import piqp

    N, n = V.shape
    B = len(sizes)
    Vs = sp.csc_matrix(V)
    P = sp.block_diag([sp.identity(n), sp.csc_matrix((N, N))], format="csc")
    rows = np.repeat(np.arange(B), sizes)
    S = sp.csc_matrix((np.ones(N), (rows, np.arange(N))), shape=(B, N))
    A = sp.vstack([sp.hstack([sp.identity(n), -Vs.T]), sp.hstack([sp.csc_matrix((B, n)), S])],
                  format="csc")
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


def min_norm(g0: np.ndarray, blocks: list[np.ndarray]) -> MinNorm | None:
    """The minimum-norm point of g0 + sum_b conv(rows of blocks[b]) (None: too large).

    Returns a :class:`MinNorm` whose ``upper`` and ``lower`` bound dist(0, C) with no trust in
    the QP solver (see the module docstring)."""
    g0 = np.asarray(g0, np.float64)
    blocks = [np.asarray(V, np.float64).reshape(-1, g0.size) for V in blocks]
    blocks = [V for V in blocks if len(V)]
    if not blocks:
        nrm = float(np.linalg.norm(g0))
        return MinNorm(g0.copy(), [], nrm, nrm, "no blocks")
    sizes = [V.shape[0] for V in blocks]
    V = np.vstack(blocks)
    if V.size > _MAX_ENTRIES:
        return None
    fixed = [V_b[0] for V_b in blocks if V_b.shape[0] == 1]
    if len(fixed) == len(blocks):
        lam, status = np.ones(V.shape[0]), "every block a single point"
    elif V.shape[0] <= _DENSE_GENERATORS or np.count_nonzero(V) > 0.2 * V.size:
        lam, status = _solve_dense(g0, V, sizes)
    else:
        lam, status = _solve_sparse(g0, V, sizes)
    weights = _feasible(lam, sizes)
    point = g0 + sum(w @ V_b for w, V_b in zip(weights, blocks))
    upper = float(np.linalg.norm(point))
    lower = 0.0
    if upper > 0:
        lower = max(0.0, min(upper, support_lower(g0, blocks, point / upper)))
    return MinNorm(point, weights, upper, lower, status)
