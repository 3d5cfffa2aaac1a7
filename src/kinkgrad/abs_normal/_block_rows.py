"""A local model's active switch rows grouped by block, read off CSR arrays.

Rows of A and K (and K's columns) are ordered by block, so a block's rows are a contiguous
range of the CSR arrays (K has no entry between blocks): no sparse indexing per block. A
block is handed out dense on the columns its rows touch (``block``), or sparse for a k-way
max/min too large for dense arrays (``sparse``, :mod:`._sparse_tournament`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from ._sparse_tournament import BlockTooLarge

__all__ = ["BlockRows", "BlockTooLarge", "DENSE_BLOCK", "canonical", "too_large"]

DENSE_BLOCK = 200_000_000  # entries (A and K of one block as dense arrays) above which a
#   block is not described: 1.6 GB (active faces: n = 3000 needs 5.4e7 and is decided in
#   4 s; n = 10^4, 6e8, was undecided after 52 s and 13 GB; n = 10^5 raised MemoryError)


class BlockRows:
    """A and K with rows (and K's columns) ordered by block, so that a block's rows are a
    contiguous range read off the CSR arrays (K has no entry between blocks): no sparse
    indexing per block, which cost ~1 ms each for 10^4 blocks."""

    def __init__(self, model: Any, comps: list[np.ndarray]) -> None:
        order = np.concatenate(comps) if comps else np.zeros(0, np.intp)
        self.start = np.concatenate([[0], np.cumsum([c.size for c in comps])]).astype(np.intp)
        self.A = canonical(model.A_sparse[order])
        self.K = canonical(model.K_sparse[order][:, order])
        self.bhat = model.bhat[order]

    def _used(self, lo: int, hi: int) -> np.ndarray:
        """Mask of the columns rows lo:hi of A touch (not np.unique: 10^8 entries, MXHILB)."""
        used = np.zeros(self.A.shape[1], bool)
        used[self.A.indices[self.A.indptr[lo]:self.A.indptr[hi]]] = True
        return used

    def entries(self, b: int) -> int:
        """m (cols + m): the b-th block's A and K as dense arrays."""
        lo, hi = int(self.start[b]), int(self.start[b + 1])
        return (hi - lo) * (int(self._used(lo, hi).sum()) + hi - lo)

    def sparse(self, b: int) -> tuple[np.ndarray, Any, Any, np.ndarray]:
        """(cols, A_b as CSR on cols, K_b as CSR, bhat_b) of the b-th block."""
        lo, hi = int(self.start[b]), int(self.start[b + 1])
        A = self.A[lo:hi]
        used = self._used(lo, hi)
        cols = np.flatnonzero(used)
        local = (np.cumsum(used) - 1)[A.indices]
        A_b = csr_matrix((A.data, local, A.indptr), shape=(hi - lo, cols.size))
        K = self.K[lo:hi][:, lo:hi]
        return cols.astype(np.intp), A_b, canonical(K), self.bhat[lo:hi]

    def block(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cols, A_b dense on cols, K_b dense, bhat_b) of the b-th block."""
        lo, hi = int(self.start[b]), int(self.start[b + 1])
        A, K = self.A, self.K
        a0, a1 = A.indptr[lo], A.indptr[hi]
        if hi - lo == 1:  # a lone switch: its row as stored (canonical), no coupling
            return (A.indices[a0:a1].astype(np.intp), A.data[a0:a1][None, :],
                    np.zeros((1, 1)), self.bhat[lo:hi])
        cols = np.unique(A.indices[a0:a1]).astype(np.intp)
        m = hi - lo
        if m * (cols.size + m) > DENSE_BLOCK:
            raise too_large(m, cols.size)
        Ab = np.zeros((hi - lo, cols.size))
        Ab[np.repeat(np.arange(hi - lo), np.diff(A.indptr[lo:hi + 1])),
           np.searchsorted(cols, A.indices[a0:a1])] = A.data[a0:a1]
        k0, k1 = K.indptr[lo], K.indptr[hi]
        Kb = np.zeros((hi - lo, hi - lo))
        Kb[np.repeat(np.arange(hi - lo), np.diff(K.indptr[lo:hi + 1])),
           K.indices[k0:k1] - lo] = K.data[k0:k1]
        return cols, Ab, Kb, self.bhat[lo:hi]


def too_large(m: int, cols: int) -> BlockTooLarge:
    return BlockTooLarge(
        f"a block of {m} coupled active switches over {cols} columns would need "
        f"{8e-9 * m * (cols + m):.1f} GB as dense arrays and is not a k-way max or min "
        "(which is described sparse); the set is too large to describe here, so the answer "
        "is undecided. Ask at a point off the ties or with a smaller radius (fewer switches "
        "count as active).")


def canonical(M: Any) -> Any:
    """CSR with sorted indices, no duplicates and no explicit zeros (the components of K
    are those of its nonzeros)."""
    M = M.tocsr()
    M.sum_duplicates()
    M.eliminate_zeros()
    return M
