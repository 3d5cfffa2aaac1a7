"""The proximal Newton step for a smooth function plus Euclidean norms near zero: the
finishing step where the held groups' rows are dependent (isotropic total variation).

Near x, with the groups w_k (k = 1..q) whose norms are at or near zero identified and f0
the function with them frozen (:mod:`._norm_finish`), the model

    m(dx) = f(x) + g . dx + 1/2 dx^T H dx + sum_k lambda_k (||w_k + J_k dx|| - ||w_k||),

g and H the gradient and (positive semidefinite) Hessian estimate of f0, keeps each norm
exact instead of its tangent plane. With every lambda_k >= 0 it is convex, and its minimiser
is a second-order cone program (t_k >= ||w_k + J_k dx||),

    min  1/2 dx^T (H + eps I) dx + g . dx + sum_k lambda_k t_k
    s.t. (t_k, w_k + J_k dx) in the second-order cone of R^{1 + d_k},

solved by Clarabel. Its solution says which groups the model puts at zero (the norms it
releases need no multipliers to say so: with dependent rows the multipliers of
:mod:`._norm_finish`'s equality-constrained step are not unique and cannot), and the
interior point's solution is accurate to ~1e-6: :mod:`._norm_finish` polishes it by one
Newton-SQP step on the manifold of those zero groups. On a quadratic
f0 (total-variation denoising) the model is f itself up to the curvature of the norms left
out, and two or three steps reach the minimiser.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["prox_newton_step", "model_zeros"]

_TOL = 1e-12  # Clarabel's gap and feasibility tolerances
_ZERO = 1e-7  # a group the model leaves below this (relative) size is at zero


def prox_newton_step(H: np.ndarray, g: np.ndarray, J: sp.csr_matrix, dims: np.ndarray,
                     lam: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """The minimiser dx of the model (module docstring); None when Clarabel does not solve
    it. A model without curvature along a descending ray is bounded only by eps I: its
    step is ~1/eps long, and the caller's test of f rejects it."""
    import clarabel

    n, q = g.size, dims.size
    eps = 1e-10 * max(1.0, float(np.max(np.abs(H), initial=0.0)))
    P = sp.block_diag([sp.csc_matrix(np.triu(H + eps * np.eye(n))),
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
    return dx if np.all(np.isfinite(dx)) else None


def model_zeros(J: sp.csr_matrix, dims: np.ndarray, w: np.ndarray, dx: np.ndarray
                ) -> np.ndarray:
    """(q,) bool: the groups the model's minimiser puts at zero, ||w_k + J_k dx|| <=
    1e-7 (1 + ||dx|| + max_k ||w_k||)."""
    starts = np.r_[0, np.cumsum(dims)[:-1]].astype(np.intp)
    after = np.sqrt(np.add.reduceat((w + J @ dx) ** 2, starts))
    before = np.sqrt(np.add.reduceat(w * w, starts))
    scale = 1.0 + float(np.linalg.norm(dx)) + float(np.max(before, initial=0.0))
    return after <= _ZERO * scale

