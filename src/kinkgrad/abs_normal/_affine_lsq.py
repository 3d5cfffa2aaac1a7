"""The least-squares solve on the affine hull of a support, shared by :mod:`.minnorm`'s
polish and the refined lower bound of :mod:`._exact_minnorm`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["affine_least_squares"]


def affine_least_squares(M: sp.spmatrix, b: np.ndarray) -> np.ndarray:
    """argmin_y ||M y - b|| for a sparse M: a dense pivoted QR (refined twice) up to 300
    columns and 10^6 entries, else LSQR at its tightest tolerances."""
    if M.shape[1] <= 300 and M.shape[0] * M.shape[1] <= 1_000_000:
        return _least_squares(M.toarray(), b)
    from scipy.sparse.linalg import lsqr

    return lsqr(M, b, atol=1e-15, btol=1e-15, iter_lim=min(10 * M.shape[1], 2000))[0]


def _least_squares(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ||M y - b||: one QR (Householder, no squared condition number), refined twice
    with the residual of the original data (nearly dependent candidates need it)."""
    import scipy.linalg as sla

    Q, R, perm = sla.qr(M, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int(np.count_nonzero(d > 1e-14 * max(float(d[0]) if d.size else 0.0, 1e-300)))

    def solve(rhs: np.ndarray) -> np.ndarray:
        z = np.zeros(M.shape[1])
        z[perm[:rank]] = sla.solve_triangular(R[:rank, :rank], (Q[:, :rank].T @ rhs))
        return z

    y = solve(b)
    for _ in range(2):
        y += solve(b - M @ y)
    return y
