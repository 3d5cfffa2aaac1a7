"""The least-squares solve on the affine hull of a support, shared by :mod:`.minnorm`'s
polish and the refined lower bound of :mod:`._exact_minnorm`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["affine_least_squares"]


_SPARSE_LU_NNZ = 2_000_000  # larger M: LSQR instead of a sparse LU of the augmented system


def affine_least_squares(M: sp.spmatrix, b: np.ndarray) -> np.ndarray:
    """argmin_y ||M y - b|| for a sparse M: a dense pivoted QR (refined twice) up to 300
    columns and 10^6 entries, else a sparse LU of the augmented system (refined twice),
    else (or when that fails) LSQR at its tightest tolerances."""
    if M.shape[1] <= 300 and M.shape[0] * M.shape[1] <= 1_000_000:
        return _least_squares(M.toarray(), b)
    if M.nnz <= _SPARSE_LU_NNZ:
        y = _augmented(M, b)
        if y is not None:
            return y
    from scipy.sparse.linalg import lsqr

    return lsqr(M, b, atol=1e-15, btol=1e-15, iter_lim=min(10 * M.shape[1], 2000))[0]


def _augmented(M: sp.spmatrix, b: np.ndarray) -> np.ndarray | None:
    """Least squares by the augmented system [[I, M], [M^T, -delta I]] [r; y] = [b; 0]
    (Bjorck's: the condition of M, not its square), one sparse LU, refined twice; delta =
    1e-16 max|M|^2 keeps it regular when candidates are dependent (a damped solution; the
    caller checks feasibility and computes the norm from the data). None when the
    factorization fails.

    # NOTE: LSQR on the chained zonotopes of a stationarity test at n = 10^4 (condition
    # ~1e5) stopped 5e-6 from the minimiser; this solve reaches it to 1e-10 in ~0.5 s."""
    from scipy.sparse.linalg import splu

    m, k = M.shape
    M = sp.csc_matrix(M, dtype=np.float64)
    delta = 1e-16 * float(np.max(np.abs(M.data), initial=1.0)) ** 2
    K = sp.bmat([[sp.identity(m, format="csc"), M], [M.T, -delta * sp.identity(k)]],
                format="csc")
    rhs = np.concatenate([np.asarray(b, np.float64), np.zeros(k)])
    try:
        lu = splu(K, permc_spec="COLAMD")
        sol = lu.solve(rhs)
        for _ in range(2):
            sol += lu.solve(rhs - K @ sol)
    except (RuntimeError, MemoryError, ValueError):
        return None
    y = sol[m:]
    return y if np.all(np.isfinite(y)) else None


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
