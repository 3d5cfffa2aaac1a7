"""k-way max/min blocks too large for dense arrays: the tournament of :mod:`.tournament`
read from sparse A (m x cols) and K (m x m), with sparse leaf signatures and values.

A max over 2 x 10^4 items at a tie (active faces at x = 0, n = 10^4) is one block of
m = 4 x 10^4 switches over 10^4 columns: its dense A and K are 9.6 GB, while K holds
m log2 m entries (a comparison reads the comparisons below it) and A, the leaves' values and
their signatures (a root-to-leaf path plus the leaf's own switches) a few per row. The same
checks as the dense path, in sparse form:

* the tree read from K exactly: every comparison's parent is the first later comparison
  reading it, each (parent, side) holds one child, one root, and K on the comparisons equals
  the tournament's s 2^-(depth difference) on every ancestor pair and nothing else, bhat
  bhat_root 2^-depth (one sparse difference);
* leaf switches (an item's own |.|) feed only comparisons, hang below the first comparison
  they feed, on one side, at most ``_LEAF_PATTERNS`` patterns per leaf;
* ``_CHECKS`` random full signatures give exactly their leaf's value (the same
  back substitution as the leaves, :func:`sparse_weights`).

A leaf value is h(sigma) = w A with w = sigma (bhat + K^T w) (:func:`.tournament.block_value`);
:func:`sparse_weights` solves it for many sparse signatures level by level (level 0: the
switches no other reads), keeping w sparse: w vanishes where sigma does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..errors import KinkgradError
from .lp import rounded_entries
from .minnorm import MAX_ENTRIES

__all__ = ["BlockTooLarge", "entered_signatures", "relative_values", "sparse_tournament",
           "sparse_weights", "unique_rows"]

_LEAF_PATTERNS = 64  # most patterns of the switches inside one leaf (as the dense path)
_CHECKS = 32  # random full signatures checked against their leaf's value
_RELAX = 64  # levels found by vectorised relaxation before a loop over switches
_DENSE_ROWS = 64  # signatures up to which the coefficients are solved as a dense array
_MAX_WORK = 1_000_000_000  # products forming the leaf values above which the block is not
#   described (max_i x_i^2 near a tie at n = 10^4: 2 x 10^8, 3 s)
_CHUNK = 10_000_000  # products per chunk of leaves
_MAX_VALUES = MAX_ENTRIES  # nonzeros of the leaves' differences kept: what min_norm takes


class BlockTooLarge(KinkgradError):
    """A block of coupled active switches too large to describe (as dense arrays, or, for
    a k-way max/min, its leaf values as a sparse matrix)."""


def _levels(Kc: sp.csc_matrix) -> list[np.ndarray]:
    """Switches grouped by level: 0 for those no switch reads (column of K empty), l for
    those read by a switch of level l - 1 at most (K strictly lower: readers come later).

    Relaxed for all switches at once (level_j = 1 + max over j's readers), one pass per
    level; a deep chain (more than ``_RELAX`` levels) finishes by a loop over switches."""
    m = Kc.shape[0]
    level = np.zeros(m, dtype=np.int64)
    ptr, rows = Kc.indptr, Kc.indices
    read = np.flatnonzero(np.diff(ptr) > 0)
    for _ in range(_RELAX):
        if read.size == 0:
            break
        new = np.maximum.reduceat(level[rows] + 1, ptr[read]) if rows.size else level[read]
        if np.array_equal(new, level[read]):
            break
        level[read] = new
    else:
        for j in range(m - 1, -1, -1):
            if ptr[j + 1] > ptr[j]:
                level[j] = level[rows[ptr[j]:ptr[j + 1]]].max() + 1
    order = np.argsort(level, kind="stable")
    bounds = np.searchsorted(level[order], np.arange(int(level.max(initial=0)) + 2))
    return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def sparse_weights(K: Any, bhat: np.ndarray, sigmas: Any,
                   levels: list[np.ndarray] | None = None) -> sp.csr_matrix:
    """The coefficients w(sigma) (h(sigma) = w A) of every row of ``sigmas`` (c x m, sparse
    or dense): w_j = sigma_j (bhat_j + sum_k K_kj w_k), solved one level at a time, all rows
    together (a level's switches read none of each other).

    # NOTE: the sum is formed only where sigma_j != 0: the full product W K[:, level] is
    # dense for a tournament (the root reads every comparison), 2 x 10^8 entries for a max
    # over 10^4 items. Many sparse rows: one sparse dot product per entry of sigma; a few
    # rows (the full signatures of the checks): W dense, one sparse product per level."""
    Kc = sp.csc_matrix(K)
    Kc.eliminate_zeros()
    c, m = sigmas.shape
    Kt = Kc.T.tocsr()  # row j: the switches reading j, with their coefficients
    levels = _levels(Kc) if levels is None else levels
    if c <= _DENSE_ROWS:
        ST = (sigmas.toarray() if sp.issparse(sigmas) else np.asarray(sigmas, np.float64)).T
        WT = np.zeros((m, c))
        for J in levels:
            WT[J] = ST[J] * (Kt[J] @ WT + bhat[J, None])
        return sp.csr_matrix(WT.T)
    Sc = sp.csc_matrix(sigmas)
    rows_all, cols_all, vals_all = [], [], []
    W = sp.csr_matrix((c, m))
    for J in levels:
        SJ = Sc[:, J].tocoo()
        if SJ.nnz == 0:
            continue
        acc = bhat[J[SJ.col]].astype(np.float64)
        if W.nnz:
            acc = acc + np.asarray(W[SJ.row].multiply(Kt[J[SJ.col]]).sum(axis=1)).ravel()
        rows_all.append(SJ.row)
        cols_all.append(J[SJ.col])
        vals_all.append(SJ.data * acc)
        W = sp.csr_matrix((np.concatenate(vals_all),
                           (np.concatenate(rows_all), np.concatenate(cols_all))), shape=(c, m))
    return W


def _tree(K: sp.csr_matrix, bhat: np.ndarray, T: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(parent, side, depth, root) of the comparisons T (positions within T), or None when
    K and bhat on T are not exactly a tournament's (see :func:`.tournament._tree`)."""
    KT = sp.csc_matrix(K[T][:, T])
    KT.eliminate_zeros()
    KT.sort_indices()
    m = T.size
    has = np.diff(KT.indptr) > 0
    parent = np.full(m, -1)
    side = np.zeros(m)
    first = KT.indptr[:-1][has]
    parent[has] = KT.indices[first]  # sorted rows: the first reader
    side[has] = np.sign(KT.data[first])
    kids = parent[has] * 2 + (side[has] > 0)
    if np.unique(kids).size != kids.size or np.count_nonzero(~has) != 1:
        return None
    root = int(np.flatnonzero(~has)[0])
    if np.any(parent[has] <= np.flatnonzero(has)):
        return None
    depth = np.zeros(m, dtype=np.int64)
    for j in range(m - 1, -1, -1):  # parents come later
        if parent[j] >= 0:
            depth[j] = depth[parent[j]] + 1
    rows, cols, vals = [], [], []
    for j, below, anc in _climb(parent, np.arange(m)):
        rows.append(anc)
        cols.append(j)
        vals.append(side[below] * 2.0 ** -(depth[j] - depth[anc]).astype(np.float64))
    want = sp.csc_matrix((np.concatenate(vals) if vals else np.zeros(0),
                          (np.concatenate(rows) if rows else np.zeros(0, int),
                           np.concatenate(cols) if cols else np.zeros(0, int))), shape=(m, m))
    bT = bhat[T]
    scale = max(float(np.max(np.abs(KT.data), initial=0.0)), abs(float(bT[root])), 1e-300)
    diff = (KT - want).tocsr()
    if np.max(np.abs(diff.data), initial=0.0) > 1e-12 * scale or not np.allclose(
            bT, bT[root] * 2.0 ** -depth.astype(np.float64), rtol=1e-12, atol=1e-12 * scale):
        return None
    return parent, side, depth, root


def _climb(parent: np.ndarray, start: np.ndarray):
    """Walk the nodes ``start`` up to the root together: per step, the positions in
    ``start`` still climbing, the node each just left and its parent."""
    below, anc = start.copy(), parent[start]
    while True:
        live = np.flatnonzero(anc >= 0)
        if live.size == 0:
            return
        yield live, below[live], anc[live]
        below[live] = anc[live]
        anc = np.where(anc >= 0, parent[np.maximum(anc, 0)], -1)


def _own(K: sp.csr_matrix, bhat: np.ndarray, T: np.ndarray, S: np.ndarray, root: int
         ) -> tuple[np.ndarray, np.ndarray] | None:
    """The leaf switches inside items and the slot each hangs in, as (switches, slot keys)
    sorted by key (key = 2 * comparison position in T + (side > 0)); None when a leaf switch
    reads a comparison or feeds none, or a component's switches enter on two sides."""
    if S.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if K[S][:, T].nnz:
        return None
    KTS = sp.csc_matrix(K[T][:, S])
    KTS.eliminate_zeros()
    KTS.sort_indices()
    if np.any(np.diff(KTS.indptr) == 0):
        return None
    first = KTS.indptr[:-1]
    low = KTS.indices[first]  # position in T of the first comparison each feeds
    sign = np.sign(KTS.data[first] * bhat[S] * bhat[T[root]]).astype(np.int64)
    # NOTE: a component of coupled leaf switches hangs below the lowest comparison any of
    # them feeds, on the side of those feeding it (all the same side)
    _, label = connected_components(K[S][:, S], directed=True, connection="weak")
    lo = np.full(label.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(lo, label, low)
    hit = low == lo[label]
    smin = np.full(lo.size, 2)
    smax = np.full(lo.size, -2)
    np.minimum.at(smin, label[hit], sign[hit])
    np.maximum.at(smax, label[hit], sign[hit])
    if np.any(smin != smax):
        return None
    key = 2 * lo[label] + (smax[label] > 0)
    order = np.argsort(key, kind="stable")
    return S[order].astype(np.int64), key[order]


def _paths(parent: np.ndarray, side: np.ndarray, slots: np.ndarray, slot_side: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO (row, comparison position, sign) of the root-to-leaf signatures of the leaf
    slots (comparison position, side), one row per slot."""
    rows, cols, vals = [np.arange(slots.size)], [slots], [slot_side.astype(np.float64)]
    for j, below, anc in _climb(parent, slots):
        rows.append(j)
        cols.append(anc)
        vals.append(side[below])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _leaf_signatures(m: int, T: np.ndarray, parent: np.ndarray, side: np.ndarray,
                     own: tuple[np.ndarray, np.ndarray]) -> sp.csr_matrix | None:
    """Every (leaf, pattern of the leaf's own switches) signature as a sparse row; None when
    an item's switches sit where a comparison hangs or a leaf has too many patterns."""
    used = np.zeros((T.size, 2), bool)
    has = parent >= 0
    used[parent[has], (side[has] > 0).astype(int)] = True
    switch, key = own
    if np.any(used.ravel()[key]):
        return None
    pos, which = np.nonzero(~used)  # leaf slots: (comparison, side) with no child
    slot_side = np.where(which == 1, 1.0, -1.0)
    counts = np.bincount(key, minlength=2 * T.size)[2 * pos + which]
    if np.any(counts > np.log2(_LEAF_PATTERNS)):
        return None
    reps = 2 ** counts  # rows per slot
    first = np.concatenate([[0], np.cumsum(reps)])
    r, c, v = _paths(parent, side, pos, slot_side)
    copies = reps[r]  # each path entry once per pattern row of its slot
    e = np.repeat(np.arange(r.size), copies)
    k = np.arange(e.size) - np.repeat(np.cumsum(copies) - copies, copies)
    rows, cols, vals = [first[r[e]] + k], [T[c[e]]], [v[e]]
    for k in np.unique(counts[counts > 0]):  # leaf switch patterns, slots of k switches
        at = np.flatnonzero(counts == k)
        start = np.searchsorted(key, 2 * pos[at] + which[at])
        mine = switch[start[:, None] + np.arange(k)]  # (slots, k)
        pats = 1.0 - 2.0 * ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1)  # (2^k, k)
        rows.append(np.repeat(first[at][:, None] + np.arange(2 ** k), k, axis=1).ravel())
        cols.append(np.broadcast_to(mine[:, None, :], (at.size, 2 ** k, k)).ravel())
        vals.append(np.broadcast_to(pats, (at.size, 2 ** k, k)).ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(int(first[-1]), m))


def _leaf_of(full: np.ndarray, T: np.ndarray, child: dict, root: int,
             own: tuple[np.ndarray, np.ndarray], m: int) -> np.ndarray:
    """The (leaf, pattern) signature a full signature selects (walk from the root)."""
    sig = np.zeros(m)
    i = root
    while True:
        s = 1 if full[T[i]] > 0 else -1
        sig[T[i]] = s
        if (i, s) not in child:
            break
        i = child[(i, s)]
    mine = own[0][own[1] == 2 * i + (s > 0)]
    sig[mine] = full[mine]
    return sig


def sparse_tournament(A: sp.csr_matrix, K: sp.csr_matrix, bhat: np.ndarray, T: np.ndarray,
                      S: np.ndarray, rng: np.random.Generator
                      ) -> tuple[sp.csr_matrix, bool, sp.csr_matrix] | None:
    """(leaf signatures, convex, leaf coefficients W) of a checked tournament block given as
    sparse arrays, one row per (leaf, pattern): the leaf values are W A
    (:func:`relative_values`); None when the block is not a tournament."""
    m = K.shape[0]
    tree = _tree(K, bhat, T)
    if tree is None:
        return None
    parent, side, _, root = tree
    own = _own(K, bhat, T, S, root)
    if own is None:
        return None
    sigs = _leaf_signatures(m, T, parent, side, own)
    if sigs is None:
        return None
    levels = _levels(sp.csc_matrix(K))
    W = sparse_weights(K, bhat, sigs, levels)
    convex = bool(np.all(bhat > 0)) and not (S.size and K[S][:, S].nnz)
    if not convex:  # NOTE: refuse values too long to form before checking (a convex block
        _differences(W, A)  # still has the mean of its leaves, see localset._sparse_block)
    child = {(int(parent[j]), 1 if side[j] > 0 else -1): j for j in np.flatnonzero(parent >= 0)}
    full = rng.choice([-1.0, 1.0], size=(_CHECKS, m))
    leaf = np.array([_leaf_of(f, T, child, root, own, m) for f in full])
    got = sparse_weights(K, bhat, full, levels) @ A
    want = sparse_weights(K, bhat, leaf, levels) @ A
    terms = sparse_weights(abs(K), np.abs(bhat), np.ones((1, m)), levels) @ abs(A)  # NOTE:
    scale = float(np.max(np.abs(terms.data if sp.issparse(terms) else terms),  # the values'
                         initial=0.0)) or 1.0  # terms (tournament.tournament's check)
    if np.max(np.abs((got - want).data), initial=0.0) > 1e-11 * scale:
        return None
    return sigs, convex, W


def relative_values(W: sp.csr_matrix, A: sp.csr_matrix
                    ) -> tuple[np.ndarray, sp.csr_matrix, float]:
    """The leaf values w_l A as (shift, D, slack): w_l A = shift + D_l + e_l with ||e_l|| <=
    slack, shift the first leaf's value (dense on the block's columns), D sparse.

    Leaf values of a max over items are dense where the items' differences are sparse: for
    max_i x_i^2 near a tie a leaf's value is grad u_l minus the tournament's weighted mean of
    all items' gradients (g0's part), and its path sums comparison rows of up to n entries
    that cancel. So the differences (w_l - w_0) A are formed (in chunks of rows) and an
    entry is dropped when it lies within the rounding bound of its own sum,
    |v| <= gamma (|w_l - w_0| |A|) with gamma = 2 (k + 1) eps for sums of k products: what
    is dropped is indistinguishable from 0 at this precision, and its largest row norm is
    returned as ``slack`` for callers that widen their bounds by it."""
    t = W.shape[0]
    shift = np.asarray((W[0] @ A).todense()).ravel()
    Dw, work = _differences(W, A)
    k = int(np.diff(Dw.indptr).max(initial=0))
    gamma = 2.0 * (k + 1) * np.finfo(np.float64).eps
    Aa = abs(A)
    parts, slack = [], 0.0
    cum = np.cumsum(work)
    cuts = np.searchsorted(cum, np.arange(_CHUNK, cum[-1] if t else 0, _CHUNK), side="right")
    edges = [0, *np.unique(cuts[(cuts > 0) & (cuts < t)]).tolist(), t]
    for lo, hi in zip(edges[:-1], edges[1:]):
        P = (Dw[lo:hi] @ A).tocsr()
        E = (abs(Dw[lo:hi]) @ Aa).tocsr()
        D = sp.csr_matrix(P.multiply(abs(P) > gamma * E))
        gone = P - D
        if gone.nnz:
            slack = max(slack, float(np.sqrt(gone.multiply(gone).sum(axis=1).max())))
        D.eliminate_zeros()
        parts.append(D)
        kept = sum(d.nnz for d in parts)
        if kept > _MAX_VALUES:  # NOTE: leaves that differ densely (MXHILB's Hilbert rows)
            raise BlockTooLarge(
                f"a k-way max/min block with {t} leaves over {A.shape[1]} columns: their "
                f"values differ in over {kept:.2e} entries, more than a hull can be solved "
                "on here, so the answer is undecided. Ask at a point off the ties or with a "
                "smaller radius (fewer switches count as active).")
    return shift, sp.csr_matrix(sp.vstack(parts)), slack


def entered_signatures(A: Any, K: Any, rng: np.random.Generator, count: int = 8
                       ) -> np.ndarray:
    """Signatures entered along 2 ``count`` directions +-d (d random): z = A d + K |z| in
    program order (K strictly lower, one level of reads at a time), kept where no switch is
    0. Each is realised (the piece is entered along d), and +-d finds both sides of a
    symmetric block (max |x_i|: e_j and -e_j). A and K dense or sparse."""
    d = rng.standard_normal((A.shape[1], count))
    return entered_along(A, K, np.hstack([d, -d]))


def entered_along(A: Any, K: Any, D: np.ndarray, keep_all: bool = False) -> Any:
    """The full signatures entered along the columns of D (z = A d + K |z|, level by level),
    one row per direction on which every |z_j| exceeds 1e-9 of the magnitudes summed into
    it (|A| |d| + |K| |z|: its sign is not rounding's); the other directions are dropped
    (``keep_all``: every row, and the mask of those that count)."""
    Z = np.asarray(A @ D, np.float64)
    M = np.asarray(abs(A) @ np.abs(D), np.float64)
    Kr = sp.csr_matrix(K)
    Ka = abs(Kr)
    for J in reader_levels(Kr)[1:]:  # level 0 reads nothing
        Z[J] += Kr[J] @ np.abs(Z)
        M[J] += Ka[J] @ M
    keep = np.all(np.abs(Z) > 1e-9 * M, axis=0)
    return (np.sign(Z).T, keep) if keep_all else np.sign(Z[:, keep]).T


def reader_levels(K: Any) -> list[np.ndarray]:
    """Switches by level of K (strictly lower): level 0 reads no switch, level l reads
    switches of levels below l only."""
    return _levels(sp.csc_matrix(sp.csr_matrix(K).T))


def _differences(W: sp.csr_matrix, A: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(W - W[0], the products per row of (W - W[0]) A); BlockTooLarge past ``_MAX_WORK``."""
    t = W.shape[0]
    Dw = sp.csr_matrix(W - sp.csr_matrix(np.ones((t, 1))) @ W[0])
    Dw.eliminate_zeros()
    work = np.asarray(abs(Dw.sign()) @ np.diff(A.indptr)).ravel()
    if work.sum() > _MAX_WORK:
        raise BlockTooLarge(
            f"a k-way max/min block with {t} leaves over {A.shape[1]} columns: their values "
            f"are sums of {work.sum():.2e} products (dense rows); the set is too large to "
            "describe here, so the answer is undecided. Ask at a point off the ties or with "
            "a smaller radius (fewer switches count as active).")
    return Dw, work


def unique_rows(V: sp.csr_matrix, sigs: sp.csr_matrix
                ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Distinct rows of V (each entry to 40 bits of its own size, as
    :func:`.localset._unique`), first
    occurrences in order, with their signature rows.

    Rows are keyed by their count of nonzeros and two random projections of the rounded row;
    a row is dropped only when its rounded entries equal those of the first row with its
    key (a collision of distinct rows keeps both: duplicates only cost work)."""
    R = sp.csr_matrix(V, copy=True)
    R.data = rounded_entries(R.data)
    R.eliminate_zeros()
    R.sort_indices()
    proj = np.random.default_rng(0).standard_normal((R.shape[1], 2))
    keys = np.column_stack([np.diff(R.indptr), R @ proj])
    _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    head = first[inv.ravel()]
    keep = head == np.arange(R.shape[0])
    for i in np.flatnonzero(~keep):  # confirm each duplicate entry by entry
        a, b = slice(R.indptr[i], R.indptr[i + 1]), slice(R.indptr[head[i]],
                                                           R.indptr[head[i] + 1])
        if not (np.array_equal(R.indices[a], R.indices[b])
                and np.array_equal(R.data[a], R.data[b])):
            keep[i] = True
    idx = np.flatnonzero(keep)
    return V[idx], sigs[idx]
