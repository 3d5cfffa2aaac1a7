"""Rank and least-squares tests of :mod:`.certify` on a sparse active switching Jacobian,
one connected component at a time.

A batch's switch rows are sparse: a first-layer unit's row touches that unit's weights and
bias only. Call two rows *linked* when they share a column; the connected components of
this row/column incidence graph (rows and the columns they touch) split A, after permuting
rows and columns, into diagonal blocks, each small on a network batch. Everything certify
asks of A is exact block by block:

* **Rank.** The Gram matrix U U^T of the unit rows is block diagonal, so its spectrum is the
  union of the blocks' spectra; a block's nonzero spectrum is also that of its smaller Gram
  (U_c^T U_c when the block has fewer columns than rows). The rank is counted with the dense
  test's threshold, eigenvalue <= 1e-12 max(lambda_max, 1) with lambda_max the largest over
  ALL blocks, so it is the dense test's count (up to rounding far below the threshold),
  never more. A block whose smaller side exceeds ``_EIG`` is not diagonalised: its rank is
  bounded below by its rows that own a private column entry of size >= tau
  (tau^2 = 2 threshold: those rows alone have sigma_min >= tau and, by Cauchy interlacing,
  U U^T has that many eigenvalues above the threshold), and lambda_max is bounded above by
  ||U_c||_1 ||U_c||_inf, which can only raise the threshold. The result is then a lower
  bound, flagged as such; it still proves LIKQ when it reaches m.
* **Least squares.** The minimum-norm least-squares solution of R y = 1 is the concatenation
  of the blocks' minimum-norm solutions (one-row and one-column blocks in closed form, the
  rest by dense ``lstsq``, LSMR past ``_DENSE``); a solution counts only with the margin
  the max-margin LP would demand of it (:func:`moves_all`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import lsmr

from .lp import MARGIN, margin, row_norms

__all__ = ["components", "dominant_sparse", "min_norm_ones", "moves_all", "reaches",
           "sparse_rank"]

_EIG = 4096  # largest Gram side diagonalised densely per block
_DENSE = 4_000_000  # largest block (rows x columns) solved by a dense lstsq


def components(S: sp.csr_matrix) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(rows, columns) of each connected block of S's pattern with at least one entry.
    Rows without entries and untouched columns belong to no block."""
    S = sp.csr_matrix(S)
    m = S.shape[0]
    used = np.unique(S.indices)
    if used.size == 0:
        return [], []
    col = np.searchsorted(used, S.indices)
    row = np.repeat(np.arange(m), np.diff(S.indptr))
    size = m + used.size
    G = sp.csr_matrix((np.ones(row.size, np.int8), (row, m + col)), shape=(size, size))
    _, lab = connected_components(G, directed=False)
    nonempty = np.flatnonzero(np.diff(S.indptr) > 0)
    rlab, clab = lab[nonempty], lab[m:]
    rows, cols = _split(nonempty, rlab), _split(used, clab)
    keys = sorted(rows)
    return [rows[k] for k in keys], [cols[k] for k in keys]


def _split(items: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    parts = np.split(items[order], cuts)
    return {int(labels[order[c]]): p for c, p in zip(np.r_[0, cuts], parts)}


def sparse_rank(A: sp.csr_matrix, eig_limit: int | None = None
                ) -> tuple[int, bool, Callable[[], list[int]]]:
    """Row rank of A under the dense test's threshold (see module doc).

    Returns (rank, exact, dependent): ``exact`` is False when some block was too large and
    ``rank`` is a lower bound; ``dependent()`` lists the rows that take part in a linear
    dependency (and zero rows), computed on demand."""
    limit = _EIG if eig_limit is None else eig_limit
    A = sp.csr_matrix(A)
    A.eliminate_zeros()
    norms = row_norms(A)
    zero = np.flatnonzero(norms == 0)
    U = sp.csr_matrix(sp.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0),
                                        0.0)) @ A)
    blocks = list(zip(*components(U)))
    sq = (norms > 0).astype(np.float64)  # ||u_i||^2
    spectra: list[np.ndarray | None] = []
    bounds: list[float] = [1.0]
    for rows, cols in blocks:
        if rows.size == 1 or cols.size == 1:  # U_c U_c^T = s s^T: one eigenvalue ||s||^2
            spectra.append(np.array([float(sq[rows].sum())]))
        elif min(rows.size, cols.size) <= limit:
            sub = U[rows][:, cols]
            G = (sub @ sub.T) if rows.size <= cols.size else (sub.T @ sub)
            spectra.append(np.linalg.eigvalsh(G.toarray()))
        else:
            sub = U[rows][:, cols]
            spectra.append(None)
            bounds.append(float(abs(sub).sum(axis=0).max() * abs(sub).sum(axis=1).max()))
        if spectra[-1] is not None:
            bounds.append(float(spectra[-1].max()))
    tol = 1e-12 * max(bounds)
    rank, exact, short = 0, True, []
    for (rows, cols), lam in zip(blocks, spectra):
        if lam is None:
            exact = False
            k = _private_rows(U[rows][:, cols], tol)
        else:
            k = int(np.count_nonzero(lam > tol))
        rank += k
        if k < rows.size:
            short.append((rows, cols))

    def dependent() -> list[int]:
        bad = set(zero.tolist())
        for rows, cols in short:
            if rows.size > limit or cols.size == 1:
                bad.update(rows.tolist())
                continue
            sub = U[rows][:, cols].toarray()
            lam, V = np.linalg.eigh(sub @ sub.T)
            null = lam <= tol
            bad.update(rows[np.any(np.abs(V[:, null]) > 1e-6, axis=1)].tolist())
        return sorted(int(i) for i in bad)

    return rank, exact, dependent


def _private_rows(sub: sp.csr_matrix, tol: float) -> int:
    """Rows owning an entry >= sqrt(2 tol) in a column no other row touches (a lower bound
    on the rank at threshold tol, see module doc)."""
    C = sp.csc_matrix(sub)
    single = np.flatnonzero(np.diff(C.indptr) == 1)
    big = np.abs(C.data[C.indptr[single]]) >= np.sqrt(2.0 * tol)
    return int(np.unique(C.indices[C.indptr[single[big]]]).size)


def min_norm_ones(R: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least-squares solution y of R y = 1 (block by block, see module doc),
    and per row the largest |y_j| over the row's block (0 for an empty row)."""
    R = sp.csr_matrix(R)
    y, top = np.zeros(R.shape[1]), np.zeros(R.shape[0])
    C = sp.csc_matrix(R)
    one = [(np.zeros(1, int), R.indices)]  # a single row: no graph needed
    for rows, cols in zip(*components(R)) if R.shape[0] > 1 else one:
        if rows.size == 1:
            a, b = R.indptr[rows[0]], R.indptr[rows[0] + 1]
            vals = R.data[a:b]
            y[R.indices[a:b]] = vals / float(vals @ vals)
        elif cols.size == 1:
            vals = C.data[C.indptr[cols[0]]:C.indptr[cols[0] + 1]]
            y[cols[0]] = float(vals.sum()) / float(vals @ vals)
        elif rows.size * cols.size <= _DENSE:
            sub = R[rows][:, cols].toarray()
            y[cols] = np.linalg.lstsq(sub, np.ones(rows.size), rcond=None)[0]
        else:
            sub = R[rows][:, cols]
            y[cols] = lsmr(sub, np.ones(rows.size), atol=1e-12, btol=1e-12,
                           maxiter=max(1000, 4 * min(sub.shape)))[0]
        top[rows] = np.max(np.abs(y[cols]), initial=0.0)
    return y, top


def moves_all(R: sp.csr_matrix, norms: np.ndarray, margin: float) -> bool:
    """Does y = :func:`min_norm_ones` (R) move every row, R y >= 1/2, with the LP's margin?
    The blocks share no column, so d = y_c / ||y_c||_inf on each block c is a feasible point
    of the max-margin LP (:func:`.lp.margin`: unit rows, |d| <= 1); require its margin
    (R_i . y) / (norms_i ||y_c||_inf) > ``margin``, with ``norms`` the full rows' norms, so
    that a move resting on rounding-level entries is refused. Non-finite y: no."""
    with np.errstate(all="ignore"):  # a near-singular block may overflow: refused below
        y, top = min_norm_ones(R)
        if not np.all(np.isfinite(y)):
            return False
        v = R @ y
        return bool(np.all(v >= 0.5) and np.all(v > margin * norms * top))


def reaches(K: sp.csr_matrix, members: np.ndarray) -> bool:
    """Does some member depend on another member through a path of K (K[i, j] != 0: switch
    i depends on |z_j|)? Breadth first from the members' direct dependents."""
    T = sp.csr_matrix(K.T)
    inside = np.zeros(K.shape[0], bool)
    inside[members] = True
    seen = np.zeros(K.shape[0], bool)
    front = np.unique(T[members].indices)
    while front.size:
        if inside[front].any():
            return True
        seen[front] = True
        nxt = np.unique(T[front].indices)
        front = nxt[~seen[nxt]]
    return False


def dominant_sparse(A: sp.csr_matrix, blocks: list[np.ndarray], lp_entries: int) -> bool:
    """The structural grouped test of :mod:`.certify` (``_dominant``) on the sparse A: every
    block moved, R y >= 1/2, by a y on the columns no earlier block touches (so the earlier
    blocks stay fixed), solved block by block (:func:`moves_all`); else the max-margin LP
    (:func:`.lp.margin`, dense) when (rows x n) is at most ``lp_entries``, as the dense
    path does."""
    norms = row_norms(A)
    used = np.zeros(A.shape[1], bool)
    done = np.zeros(A.shape[0], bool)
    for blk in blocks:
        if not np.all(norms[blk] > 0):  # NOTE: rows of A are read as they are (lp.nonzero_rows)
            return False
        R = A[blk]
        cols = np.unique(R.indices)
        cols = cols[~used[cols]]
        ok = bool(cols.size) and moves_all(R[:, cols], norms[blk], MARGIN)
        if not ok and (len(blk) + int(done.sum())) * A.shape[1] <= lp_entries:
            t, _ = margin(R.toarray(), A[np.flatnonzero(done)].toarray())
            ok = t > MARGIN
        if not ok:
            return False
        done[blk] = True
        used[R.indices] = True
    return True
