"""The linear programs of this package, solved by HiGHS (``highspy``, one solver object per
thread, reused: through SciPy's ``linprog`` the argument checks cost twice the solve on these
small LPs; 46,860 margin LPs of one test took 67 s there).

* Realisability of a signature: sigma is realised on an open piece next to x iff some
  direction d makes every active switch derivative take its sign, sigma_i w_i . d > 0, where
  w_i are the rows of W(sigma) = (I - K Sigma)^{-1} A (zero rows are dropped: such a switch
  is identically zero to first order on the piece and cannot change the gradient). Solved as
  a max-margin LP on unit rows: max t s.t. r_i . d >= t, E d = 0, -1 <= d <= 1, t <= 1.
  Realised iff t* > 0 (numerically, t* > ``MARGIN``).
* Convex hull membership: g in conv{g_1..g_k} iff min ||g - G^T lam||_1 over the simplex is
  0 (numerically, below a tolerance relative to the scale of the data).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["MARGIN", "ZERO_ROW", "margin", "nonzero_rows", "rounded_entries", "row_norm",
           "row_norms", "row_terms", "nonzeros", "hull_tolerance", "in_hull", "quiet_fd",
           "in_sum_of_hulls", "proven_infeasible", "row_duals", "solve_lp"]

MARGIN = 1e-9
ZERO_ROW = 1e-14  # a row cancelled to this fraction of its terms is 0 (nonzero_rows)
_SPAN_FROM, _SPAN_RATIO = 200, 4  # margin LPs in the rows' span from n >= 200, k <= n / 4


_LOCAL = threading.local()
_INF = float("inf")


@contextlib.contextmanager
def quiet_fd(fd: int = 1) -> Iterator[None]:
    """Silence file descriptor ``fd`` (1: HiGHS prints its banner from C++ when a solver
    object is constructed, before any option can be set; SuperLU's BLAS reports an
    illegal argument there on some singular matrices before SciPy raises)."""
    (sys.stdout if fd == 1 else sys.stderr).flush()
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor (some embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _highs() -> Any:
    h = getattr(_LOCAL, "highs", None)
    if h is None:
        import highspy

        with quiet_fd(1):
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        _LOCAL.highs = h
    return h


def solve_lp(c: np.ndarray, A: Any, row_lower: np.ndarray, row_upper: np.ndarray,
             col_lower: np.ndarray, col_upper: np.ndarray
             ) -> tuple[np.ndarray, float] | None:
    """min c . x  s.t.  row_lower <= A x <= row_upper, col_lower <= x <= col_upper (A dense
    or SciPy sparse; infinite bounds as +-inf), by HiGHS. Returns (x, c . x) at an optimum,
    None otherwise (infeasible, unbounded, or a failure)."""
    import highspy

    start, index, value = _colwise(A)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = start.size - 1, np.shape(A)[0]
    lp.col_cost_ = np.asarray(c, np.float64)
    lp.col_lower_, lp.col_upper_ = np.asarray(col_lower, np.float64), np.asarray(col_upper,
                                                                                 np.float64)
    lp.row_lower_, lp.row_upper_ = np.asarray(row_lower, np.float64), np.asarray(row_upper,
                                                                                 np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = start, index, value
    h = _highs()
    h.clearModel()
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(h.getSolution().col_value, np.float64)
    return x, float(np.dot(c, x))


def _colwise(A: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, index, value) of A by columns (HiGHS's format). A dense array is read
    directly: through ``scipy.sparse.csc_matrix`` the conversion cost more than HiGHS's
    solve on the small LPs of an enumeration (20 of 73 s of 46,867 margin LPs)."""
    if sp.issparse(A):
        A = sp.csc_matrix(A, dtype=np.float64)
        A.sort_indices()
        return A.indptr.astype(np.int32), A.indices.astype(np.int32), A.data
    A = np.asarray(A, np.float64)
    col, row = np.nonzero(A.T)  # column-major order, rows ascending within a column
    start = np.zeros(A.shape[1] + 1, np.int32)
    np.cumsum(np.bincount(col, minlength=A.shape[1]), out=start[1:])
    return start, row.astype(np.int32), A.T[col, row]


def proven_infeasible() -> bool:
    """Whether HiGHS found the last LP of this thread infeasible (not merely unsolved)."""
    import highspy

    return bool(_highs().getModelStatus() == highspy.HighsModelStatus.kInfeasible)


def row_duals() -> np.ndarray:
    """The row duals of the last LP :func:`solve_lp` solved optimally in this thread."""
    return np.asarray(_highs().getSolution().row_dual, np.float64)


def row_norms(W: np.ndarray) -> np.ndarray:
    """The Euclidean norm of each row, each scaled by its own largest entry first (no
    overflow near 1e200, no underflow near 1e-200)."""
    with np.errstate(under="ignore"):  # NOTE: an entry far below its row's largest
        if sp.issparse(W):
            W = sp.csr_matrix(W, dtype=np.float64)
            top = np.asarray(abs(W).max(axis=1).todense(), np.float64).reshape(-1)
            scaled = sp.diags(1.0 / np.where(top > 0, top, 1.0)) @ W
            return np.sqrt(np.asarray(scaled.multiply(scaled).sum(axis=1)).reshape(-1)) * top
        W = np.asarray(W, np.float64).reshape(np.shape(W)[0], -1)
        top = np.max(np.abs(W), axis=1, initial=0.0)
        safe = np.where(top > 0, top, 1.0)
        return np.linalg.norm(W / safe[:, None], axis=1) * top


def row_norm(w: np.ndarray) -> float:
    """||w|| of one dense row: sqrt(w . w), or :func:`row_norms` where that overflows or
    underflows (a few microseconds fewer per node of an enumeration)."""
    with np.errstate(over="ignore", under="ignore"):
        sq = float(w @ w)
    if 1e-290 < sq < np.inf:
        return math.sqrt(sq)
    return float(row_norms(w.reshape(1, -1))[0])


def rounded_entries(G: np.ndarray, bits: int = 40) -> np.ndarray:
    """G with each entry rounded to ``bits`` bits of its own size (40: 12 digits), the key
    under which rows count as the same vector. Against the largest entry of all, (1, -1, 0)
    beside (0, 0, 2^40) rounded to 0 and merged with (0, 0, 0)."""
    mant, ex = np.frexp(np.asarray(G, np.float64))
    return np.ldexp(np.round(mant * 2.0 ** bits), ex - bits) + 0.0


def row_terms(A: np.ndarray, K: Any, sigma: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The size of the terms each row W_i = A_i + sum_j K_ij sigma_j W_j was summed from:
    ||A_i|| + sum_j |K_ij sigma_j| ||W_j|| (K dense or SciPy sparse)."""
    return row_norms(A) + np.asarray(abs(K) @ (np.abs(sigma) * row_norms(W))).reshape(-1)


def nonzero_rows(W: np.ndarray, terms: Any) -> np.ndarray:
    """Mask of rows that did not cancel: ||W_i|| > ``ZERO_ROW`` terms_i, with terms_i the
    size of the terms W_i was summed from (:func:`row_terms`; an array, or one number for
    every row; a row read as it is, such as a row of A, is its own term: nonzero iff not 0).

    A row is judged only against its own terms, never against the other rows: against the
    largest row, the rows of relu(x0) beside 2^-34 relu(2^34 x1) were "zero", and pieces
    they separate were merged in lists called complete (in_clarke's wrong True and False).
    A row that cancels to ``ZERO_ROW`` is rounding; one counted nonzero that is rounding
    noise only splits a piece in two with the same gradient (to that noise)."""
    W = np.asarray(W, np.float64).reshape(np.shape(W)[0], -1)
    if W.size == 0:
        return np.zeros(W.shape[0], bool)
    with np.errstate(over="ignore", under="ignore"):
        return row_norms(W) > ZERO_ROW * np.asarray(terms, np.float64)


def _unit(R: np.ndarray) -> np.ndarray:
    nr = np.linalg.norm(R, axis=1, keepdims=True)
    return R / np.where(nr > 0, nr, 1.0)


def margin(R: np.ndarray, E: np.ndarray | None = None) -> tuple[float, np.ndarray | None]:
    """max t s.t. unit(R) d >= t, unit(E) d = 0, -1 <= d <= 1, t <= 1.

    Returns (t*, d*); t* = -1 and d* = None when the LP fails. With few rows in many
    dimensions (:func:`_margin_in_span`) the answer can instead be (t, d) with d feasible
    and MARGIN < t = min(1, min unit(R) d) <= t*, or t <= MARGIN / sqrt(n) where t* <=
    MARGIN is proven: the same decisions against ``MARGIN``."""
    n = R.shape[1]
    if R.shape[0] == 0:
        return 1.0, np.zeros(n)
    k = R.shape[0] + (0 if E is None else E.shape[0])
    if n >= _SPAN_FROM and k * _SPAN_RATIO <= n:
        fast = _margin_in_span(R, E)
        if fast is not None:
            return fast
    return _margin_lp(R, E)


def _margin_in_span(R: np.ndarray, E: np.ndarray | None) -> tuple[float, np.ndarray] | None:
    """:func:`margin` in the span V of the rows (an orthonormal basis Q, d = Q y), where the
    LP has k instead of n variables (n = 10^4, 12 rows: 0.13 s each, 388 of them in one
    stationarity test). Since unit(R) d = unit(R) Q Q^T d and ||Q^T d||_inf <= sqrt(n) for a
    box point d, t* <= sqrt(n) t_V: t_V <= MARGIN / sqrt(n) proves t* <= MARGIN (the row
    duals of this LP are then the last ones, for :func:`row_duals`). Otherwise Q y, scaled
    into the box, is a feasible d whose own t bounds t* from below; None (the full LP) when
    neither settles it against MARGIN."""
    n = R.shape[1]
    rows = R if E is None or not E.shape[0] else np.vstack([R, E])
    Q, _ = np.linalg.qr(rows.T)
    RQ = R @ Q
    EQ = None if E is None or not E.shape[0] else E @ Q
    t_V, y = _margin_lp(RQ, EQ)  # NOTE: ||R_i Q|| = ||R_i||: the rows lie in V
    if y is None:
        return None
    if t_V <= MARGIN / np.sqrt(n):
        return t_V, Q @ y
    d = Q @ y
    top = float(np.max(np.abs(d), initial=0.0))
    if not top > 0:
        return None
    d = d / top
    t = min(float(np.min(_unit(R) @ d)), 1.0)  # NOTE: the LP's t <= 1
    return (t, d) if t > MARGIN else None


def _margin_lp(R: np.ndarray, E: np.ndarray | None) -> tuple[float, np.ndarray | None]:
    """:func:`margin`'s LP as stated; t is read back as min(t, min unit(R) d), the margin d
    itself has (HiGHS meets its rows only to a feasibility tolerance)."""
    n = R.shape[1]
    A = np.hstack([_unit(R), -np.ones((R.shape[0], 1))])  # r_i . d - t >= 0
    lower, upper = np.zeros(R.shape[0]), np.full(R.shape[0], _INF)
    if E is not None and E.shape[0]:
        keep = np.linalg.norm(E, axis=1) > 0
        if keep.any():
            k = int(keep.sum())
            A = np.vstack([A, np.hstack([_unit(E[keep]), np.zeros((k, 1))])])
            lower, upper = np.r_[lower, np.zeros(k)], np.r_[upper, np.zeros(k)]
    c = np.zeros(n + 1)
    c[-1] = -1.0
    out = solve_lp(c, A, lower, upper, np.r_[np.full(n, -1.0), -_INF], np.r_[np.ones(n), 1.0])
    if out is None:
        return -1.0, None
    d = out[0][:n]  # NOTE: HiGHS's t can exceed d's own margin by its tolerance (1e-7)
    return min(float(out[0][-1]), float(np.min(A[:R.shape[0], :n] @ d))), d


def hull_tolerance(sizes: list[float], n: int, rtol: float = 1e-7, unit: float = 1.0
                   ) -> float:
    """The l1 residual within which a vector counts as in a set (hull or sum of hulls) whose
    data have the largest entries ``sizes`` in size (the vector's, the sets'), in n
    dimensions: rtol n (unit + sum(sizes)).

    Two uses, two sides. "Outside" (False) is proven beyond it with ``unit`` the size of the
    terms whose rounded sums made the set's vectors (:func:`._flat.gradient_unit`; 1 by
    default, f at unit scale): those vectors can be far smaller than their terms (0.1 x +
    0.2 x - 0.3 x has the gradient 5.6e-17 as computed, 2.8e-17 exactly). "Inside" (True)
    holds within the tolerance with ``unit`` the vectors' own rounding (64 u G / rtol,
    :func:`._flat.hull_units`; 0: purely relative), so that s f answers as f for every
    s > 0: with the unit 1, s (3, 1) counted as a Clarke gradient of s f at s <= 1e-8 where
    (3, 1) is none of f's. Between the two nothing is proven."""
    return rtol * (unit + float(sum(sizes))) * max(n, 1)


def _size(V: Any) -> float:
    data = V.data if sp.issparse(V) else np.asarray(V)
    return float(np.max(np.abs(data), initial=0.0))


_DENSE_ENTRIES = 4_000_000  # in_hull's constraint matrix is sparse beyond this many entries


def in_hull(G: np.ndarray, g: np.ndarray, rtol: float = 1e-7, unit: float = 1.0
            ) -> tuple[bool, float]:
    """Whether g lies in the convex hull of the rows of G: (answer, l1 residual), within
    :func:`hull_tolerance` (whose ``unit`` says which side it proves)."""
    k, n = G.shape
    if k == 0:
        return False, float("inf")
    # variables: lam (k), s+ (n), s- (n); G^T lam + s+ - s- = g / u, sum lam = 1 (u: the
    # data's size; HiGHS called the unscaled LP of 1e-5 gradients "infeasible")
    u = max(_size(G), _size(g)) or 1.0
    if (n + 1) * (k + 2 * n) > _DENSE_ENTRIES:  # NOTE: a net's 48k parameters asked 35 GiB
        eye = sp.identity(n, format="csc")
        A_eq: Any = sp.vstack([sp.hstack([sp.csc_matrix(G.T / u), eye, -eye]),
                               sp.hstack([sp.csc_matrix(np.ones((1, k))),
                                          sp.csc_matrix((1, 2 * n))])], format="csc")
    else:
        A_eq = np.zeros((n + 1, k + 2 * n))
        A_eq[:n, :k] = G.T / u
        A_eq[:n, k:k + n] = np.eye(n)
        A_eq[:n, k + n:] = -np.eye(n)
        A_eq[n, :k] = 1.0
    b_eq = np.concatenate([g / u, [1.0]])
    c = np.concatenate([np.zeros(k), np.ones(2 * n)])
    N = k + 2 * n
    out = solve_lp(c, A_eq, b_eq, b_eq, np.zeros(N), np.full(N, _INF))
    res = out[1] * u if out is not None else _nnls_residual(A_eq[:, :k], b_eq) * u
    return bool(res <= hull_tolerance([_size(G), _size(g)], n, rtol, unit)), res


def _nnls_residual(E: Any, rhs: np.ndarray) -> float:
    """l1 norm of E lam - rhs at the nonnegative least-squares lam (lam >= 0): where the LP
    failed (a status other than optimal proves nothing), an upper bound on its optimum."""
    from scipy.optimize import nnls

    E = E.toarray() if sp.issparse(E) else np.asarray(E)
    lam = nnls(E, rhs, maxiter=50 * E.shape[1] + 100)[0]
    return float(np.sum(np.abs(E @ lam - rhs)))


def nonzeros(V: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of the nonzero entries of a dense array or a scipy sparse
    matrix (a large k-way max's leaf values)."""
    import scipy.sparse as sp

    if sp.issparse(V):
        C = sp.coo_matrix(V)
        keep = C.data != 0
        return C.row[keep], C.col[keep], C.data[keep]
    r, k = np.nonzero(V)
    return r, k, V[r, k]


def in_sum_of_hulls(g: np.ndarray, g0: np.ndarray, blocks: list, rtol: float = 1e-7,
                    widen: float = 0.0, unit: float = 1.0) -> tuple[bool, float]:
    """Whether g lies in g0 + sum_b conv(rows of V_b), blocks given as (cols, V_b) with V_b
    supported on the columns cols: (answer, l1 residual of the closest point). One LP:
    min ||s+|| + ||s-|| s.t. sum_b V_b^T lam_b + s+ - s- = g - g0, lam_b in the simplex.

    ``widen``: the set is known only to within this 2-norm distance (``LocalSet.slack``), so
    g counts as inside when its residual is within the tolerance plus sqrt(n) widen (the
    largest l1 norm of a vector of 2-norm widen): a False then proves g outside the true set.
    The tolerance is :func:`hull_tolerance`'s (whose ``unit`` says which side it proves).
    The LP is solved on the data divided by their size (HiGHS' tolerances are absolute).
    """
    n = g.size
    extra = float(np.sqrt(max(n, 1))) * widen
    rows, cols, vals, srows = [], [], [], []
    off = 0
    for b, (c, V) in enumerate(blocks):
        r, k, v = nonzeros(V)
        rows.append(np.asarray(c)[k])
        cols.append(r + off)
        vals.append(v)
        srows.append(np.full(V.shape[0], b))
        off += V.shape[0]
    N, B = off, len(blocks)
    sizes = [_size(g), _size(g0)]
    if N == 0:
        res = float(np.sum(np.abs(g - g0)))
        return res <= hull_tolerance(sizes, n, rtol, unit) + extra, res
    sizes.append(float(np.max(np.abs(np.concatenate(vals)), initial=0.0)))
    u = max(sizes) or 1.0  # NOTE: solved on the data / u (s = 1e16 f: wrong inside answers)
    M = sp.csr_matrix((np.concatenate(vals) / u, (np.concatenate(rows),
                                                  np.concatenate(cols))), shape=(n, N))
    S = sp.csr_matrix((np.ones(N), (np.concatenate(srows), np.arange(N))), shape=(B, N))
    eye = sp.identity(n, format="csr")
    A_eq = sp.vstack([sp.hstack([M, eye, -eye]), sp.hstack([S, sp.csr_matrix((B, 2 * n))])])
    b_eq = np.concatenate([(g - g0) / u, np.ones(B)])
    c = np.concatenate([np.zeros(N), np.ones(2 * n)])
    out = solve_lp(c, A_eq, b_eq, b_eq, np.zeros(c.size), np.full(c.size, _INF))
    # NOTE: a failed LP proves nothing (the point would be called outside): the nonnegative
    # least-squares residual of the same equations bounds the LP's optimum from above
    res = (out[1] if out is not None else _nnls_residual(sp.vstack([M, S]), b_eq)) * u
    return bool(res <= hull_tolerance(sizes, n, rtol, unit) + extra), res
