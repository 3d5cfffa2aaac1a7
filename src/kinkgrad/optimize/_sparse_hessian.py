"""Sparse forward-difference Hessians of f with Euclidean-norm groups frozen: the smooth
part phi of the proximal models of :mod:`._norm_prox`.

Column j of H is (g(x + h e_j) - g(x)) / h, g the frozen gradient: n gradients (12 s of
a 25 s total-variation run at n = 4,096). Where H is sparse (total variation: phi =
1/2 ||x - y||^2, H = I), columns whose supports are pairwise disjoint share one
difference: for such a group G, (g(x + h sum_{j in G} e_j) - g) / h holds every column of
G, each on its own rows (Curtis, Powell and Reid, "On the estimation of sparse Jacobian
matrices", 1974). The supports are measured, not assumed: a NaN at x_S reaches the rows of
the columns S (:meth:`Oracle.nan_reach`), and with B = ceil(log2 |G|) the 2B probes
"columns of G whose bit b is 1" and "... is 0" tell for every row whether no column of G
reaches it, exactly one does (named by its bits) or two or more do
(:func:`kinkgrad.modes.sparse_rows.owners`, the same test for rows of reverse sweeps).
Groups: every column first (a diagonal H: 2 log2 n probes and one difference), then
residues mod 2, 6, 12, 36, ... of a group found shared, while a level costs at most half the
plain differences of the columns it tests and all probes at most n / 4 (a miss costs at most
a quarter more than plain differences); a sample of eight single-column probes first sends
a dense H to plain differences (up to n = 3,000; beyond, no H). Before all that, one
difference along a random direction: where it changes nothing, H = 0 (a polyhedral f).

A comparison with NaN picks a branch and can drop the NaN (a missed support), so the
compressed H is checked against one difference along a random direction; where they
disagree beyond the differences' own error, every column is differenced.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from ..modes.sparse_rows import bit_probes, group_owners, probe_count
from ._norm_groups import differences, step_size
from .oracle import Oracle

__all__ = ["flat", "sparse_hessian"]

_SAMPLE = 8  # single-column probes that detect a dense H
_DENSE = 0.125  # median sampled support above this fraction of n: plain differences
_BUDGET = 4  # all probes together at most n / _BUDGET
_MIN_N = 64  # fewer columns: plain differences (probes cannot pay)
_DENSE_MAX = 3_000  # a dense H of more columns is not estimated (None)
# a group found shared is split by residues mod the next modulus: factors 2 and 3 in turn,
# as a grid of width 2^k has stencil offsets (1, 2^k, 2^(k+1)) that no power of 2 avoids
_MODULI = [1, 2, 6, 12, 36, 72, 216, 432, 1296, 2592, 7776, 15552, 46656]


def sparse_hessian(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict
                   ) -> sp.csr_matrix | None:
    """Forward differences of the frozen gradient (compressed where the columns' supports
    allow, module docstring) as a sparse matrix: entries below ten times the differences'
    rounding, 10 u (1 + ||g||_inf) / h, or below 1e-9 of the largest, are dropped;
    symmetrized; shifted by its smallest eigenvalue where that is negative. None where a
    gradient is missing, or where H is dense and n > 3,000."""
    n = x.size
    noise = _noise(oracle, x, g)
    S = None
    if n >= _MIN_N:
        if flat(oracle, x, g, chosen):  # NOTE: a polyhedral f (MXHILB's maximum of
            return sp.csr_matrix((n, n))  # |linear|): 1,000 differences found H = 0
        reach = _sampled_reach(oracle, x, chosen)
        if reach is not None and reach > _DENSE * n:
            if n > _DENSE_MAX:  # NOTE: n gradients, n^2 entries and a factorization that
                return None  # fills in (active faces at n = 10^4: SuperLU out of memory)
        elif reach is not None:
            S = _compressed(oracle, x, g, chosen, noise)
    if S is None:
        S = _plain(oracle, x, g, chosen, noise)
        if S is None:
            return None
    S = sp.csr_matrix(0.5 * (S + S.T))
    if S.nnz:
        S.data[np.abs(S.data) <= 1e-9 * float(np.max(np.abs(S.data)))] = 0.0
        S.eliminate_zeros()
    if not S.nnz:
        return S
    low = _lowest_eigenvalue(S)
    if low < 0:
        S = sp.csr_matrix(S + (-low * (1.0 + 1e-8)) * sp.identity(n))
    return S


def _plain(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict, noise: float
           ) -> sp.csr_matrix | None:
    """Every column by its own difference (n gradients), entries above ``noise``."""
    parts = _own_differences(oracle, x, g, chosen, np.arange(x.size), noise)
    return None if parts is None else _matrix(parts, x.size)


def _own_differences(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict,
                     idx: np.ndarray, noise: float) -> list | None:
    """(rows, columns, values) of the columns idx, each by its own difference, entries
    above ``noise``; None where a gradient is missing."""
    parts = []
    for j, col in zip(idx, differences(oracle, x, g, chosen, idx)):
        if col is None:
            return None
        keep = np.flatnonzero(np.abs(col) > noise)
        parts.append((keep, np.full(keep.size, j), col[keep]))
    return parts


def _matrix(parts: list, n: int) -> sp.csr_matrix:
    if not parts:
        return sp.csr_matrix((n, n))
    rows, cols, vals = (np.concatenate(p) for p in zip(*parts))
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def _compressed(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict, noise: float
                ) -> sp.csr_matrix | None:
    """H from differences along groups of structurally disjoint columns (module docstring),
    or None where the supports cannot be measured, do not pay, or the check fails."""
    n = x.size
    found, plain = _disjoint_groups(oracle, x, chosen, n, _SAMPLE)
    if found is None:
        return None
    h = step_size(oracle, x)
    parts = []
    for G, own in found:
        xg = x.copy()
        xg[G] += h
        gg = oracle.frozen_gradient(xg, chosen)
        if gg is None:
            return None
        d = (gg - g) / h
        i = np.flatnonzero(own >= 0)
        keep = i[np.abs(d[i]) > noise]
        parts.append((keep, G[own[keep]], d[keep]))
    rest = _own_differences(oracle, x, g, chosen, plain, noise)
    if rest is None:
        return None
    S = _matrix(parts + rest, n)
    return S if _agrees(oracle, x, g, chosen, S, noise) else None


def flat(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict) -> bool:
    """Whether one difference along a random unit v changes no entry of the frozen gradient
    g beyond ten times its rounding, 10 u (1 + ||g||_inf) / h (H v = 0 for a random v:
    H = 0, up to the entries that the estimates drop anyway)."""
    got = _random_difference(oracle, x, g, chosen)
    return got is not None and bool(np.max(np.abs(got[1])) <= _noise(oracle, x, g))


def _random_difference(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """(v, (g(x + h v) - g) / h) for a random unit v, or None where the gradient is
    missing."""
    v = oracle.rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    h = step_size(oracle, x)
    gv = oracle.frozen_gradient(x + h * v, chosen)
    return None if gv is None else (v, (gv - g) / h)


def _noise(oracle: Oracle, x: np.ndarray, g: np.ndarray) -> float:
    """Ten times the rounding of a forward difference of g: 10 u (1 + ||g||_inf) / h."""
    h = step_size(oracle, x)
    return 10.0 * oracle.unit_roundoff * (1.0 + float(np.max(np.abs(g), initial=0.0))) / h


def _sampled_reach(oracle: Oracle, x: np.ndarray, chosen: dict) -> float | None:
    """The median number of rows that a NaN in one of eight spread columns reaches (None
    where a probe fails): above n / 8, H is taken as dense."""
    n = x.size
    sample = [np.array([j]) for j in np.unique(np.linspace(0, n - 1, _SAMPLE).astype(int))]
    got = oracle.nan_reach(x, chosen, sample)
    return None if got is None else float(np.median([m.sum() for m in got]))


def _disjoint_groups(oracle: Oracle, x: np.ndarray, chosen: dict, n: int, spent: int
                     ) -> tuple[list | None, np.ndarray]:
    """(groups proven disjoint, each with the owner (local index, -1: none) of every row;
    the columns left to plain differences); (None, ...) where a probe fails."""
    budget = max(4 * _SAMPLE, n // _BUDGET)
    pending = [(np.arange(n), 1)]
    found: list = []
    plain: list[np.ndarray] = []
    while pending:
        plain.extend(G for G, _ in pending if G.size == 1)
        test = [(G, m) for G, m in pending if G.size > 1]
        cost = sum(probe_count(G.size) for G, _ in test)
        if 2 * cost > sum(G.size for G, _ in test) or spent + cost > budget:
            plain.extend(G for G, _ in test)
            break
        sets = [probe for G, _ in test for probe in bit_probes(G)]
        masks = oracle.nan_reach(x, chosen, sets) if sets else []
        if masks is None:
            return None, np.zeros(0, np.intp)
        spent += len(sets)
        pending = []
        for (G, m), own in zip(test, group_owners([G for G, _ in test], [np.array(masks)])):
            if own is not None:
                found.append((G, own[0]))
            else:
                nxt = _MODULI[_MODULI.index(m) + 1] if m != _MODULI[-1] else 2 * m
                r = G[0] % m
                pending.extend((part, nxt) for part in (G[G % nxt == r + k * m]
                                                        for k in range(nxt // m)) if part.size)
    return found, (np.concatenate(plain) if plain else np.zeros(0, np.intp))


def _agrees(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict, S: sp.csr_matrix,
            noise: float) -> bool:
    """Whether S v matches one difference of the frozen gradient along a random unit v
    (to the differences' rounding and a thousandth of their size)."""
    got = _random_difference(oracle, x, g, chosen)
    if got is None:
        return False
    v, d = got
    return bool(np.max(np.abs(S @ v - d)) <= 10.0 * noise + 1e-3 * np.max(np.abs(d)))


def _lowest_eigenvalue(S: sp.csr_matrix) -> float:
    """The smallest eigenvalue of the symmetric S: dense up to n = 2000; beyond, Lanczos
    to 1e-4, or Gershgorin's lower bound (which can only shift more) where it does not
    converge (a near-identity H clusters the spectrum)."""
    n = S.shape[0]
    if n <= 2000:
        return float(np.linalg.eigvalsh(S.toarray())[0])
    try:
        low = float(eigsh(S, k=1, which="SA", tol=1e-4, maxiter=50 * n,
                          return_eigenvectors=False)[0])
        return low - 1e-4 * float(abs(S).max())
    except ArpackNoConvergence:
        off = np.asarray(abs(S).sum(axis=1)).ravel() - np.abs(S.diagonal())
        return float(np.min(S.diagonal() - off))
