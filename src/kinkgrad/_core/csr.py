"""CSR from a dense 2-D array without scipy's detour through COO."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["dense_to_csr"]


def dense_to_csr(C: np.ndarray) -> sp.csr_matrix:
    """The CSR matrix of the nonzeros of a 2-D array, built from one flat nonzero scan
    (row-major, so each row's columns come sorted) and the per-row counts; equal to
    ``sp.csr_matrix(C)``, which converts through COO with a 2-D nonzero and a sort (MXHILB's
    stationarity tests at n = 1000: 4 s of scipy's conversion in a 44 s bundle run)."""
    C = np.ascontiguousarray(C)
    flat = np.flatnonzero(C)
    indptr = np.zeros(C.shape[0] + 1, np.int64)
    np.cumsum(np.count_nonzero(C, axis=1), out=indptr[1:])
    return sp.csr_matrix((C.reshape(-1)[flat], flat % C.shape[1], indptr), shape=C.shape)
