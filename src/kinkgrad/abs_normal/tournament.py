"""k-way max/min blocks: the tournament tree of comparisons read from the coupling K.

A block of active comparisons of ``max``/``min`` over an axis, or of ``maximum``/``minimum``
(the abs form's tournament (a + b +- |a - b|)/2, or a chain the user wrote), is a binary
tree whose leaves are items; a leaf's item may hold switches of its own (a max of |.|).
Whatever the signs, the block's output is one leaf's item, so the block contributes the
t = m + 1 leaf values (times each leaf's own patterns), not 2^m signatures. Everything read
from K is checked exactly, and sampled full signatures (all of them for small blocks) must
give their leaf's value; :mod:`.localset` treats the block generically otherwise.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
from scipy.sparse import csc_matrix, csr_matrix

from .lp import MARGIN, margin, nonzero_rows, row_norms, row_terms
from .realise import realised

__all__ = ["MAX_PRODUCERS", "MEMO_SWITCHES", "MIN_PRODUCERS", "LevelSolver", "block_value",
           "block_values", "components", "memo_key", "pure_roles", "signature_values",
           "tournament", "winner"]

_LEAF_PATTERNS = 64  # most patterns of the switches inside one tournament leaf
_EXHAUSTIVE = 8  # tournaments up to this size are checked on every signature
MEMO_SWITCHES = _EXHAUSTIVE  # tournaments up to this size are memoised (checked on every
#   signature, on the coefficient vectors)
MAX_PRODUCERS = {"max", "maximum", "max_pool2d"}
MIN_PRODUCERS = {"min", "minimum"}
_CHECKS = 32  # sampled signatures checked against a larger tournament's leaves
_BATCH_ABOVE = 32  # switches above which many signatures go through one LevelSolver


def block_value(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, sigma: np.ndarray
                ) -> np.ndarray:
    """h(sigma) = (sigma * bhat) (I - K Sigma)^{-1} A for one block. Row j of the transposed
    system reads w_j = sigma_j (bhat_j + sum_k K_kj w_k), so w vanishes where sigma does and
    only the support of sigma is solved (a tournament path is a handful of switches)."""
    supp, w = _weights(K, bhat, sigma)
    if supp.size == 0:
        return np.zeros(A.shape[1])
    return w @ A[supp]


def _weights(K: np.ndarray, bhat: np.ndarray, sigma: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(support of sigma, w on it): h(sigma) = w A[support] (see :func:`block_value`)."""
    supp = np.flatnonzero(sigma)
    if supp.size == 0:
        return supp, np.zeros(0)
    Ks = K[np.ix_(supp, supp)]
    s = sigma[supp]
    if supp.size > 16:
        from scipy.linalg import solve_triangular

        M = np.eye(supp.size) - Ks * s[None, :]
        return supp, solve_triangular(M, s * bhat[supp], lower=True, unit_diagonal=True,
                                      trans="T")
    w = np.zeros(supp.size)
    for r in range(supp.size - 1, -1, -1):  # later switches first (K strictly lower)
        w[r] = s[r] * (bhat[supp[r]] + Ks[r + 1:, r] @ w[r + 1:])
    return supp, w


class LevelSolver:
    """h(sigma) of :func:`block_value` for many signatures of one block (A, K, bhat).

    The transposed systems w_j = sigma_j (bhat_j + sum_{k > j} K_kj w_k) are solved by back
    substitution one *level* at a time, all signatures side by side: level 0 holds the
    switches whose column of K is zero, level l those reading a switch of level l - 1 at
    most. Switches of one level do not read each other, so a level is one product
    W[:, rows] @ K[rows, level] (a tournament has log2 m levels, a sorting network's rounds
    are its levels), and W's entries still to come are 0 where K reads them not at all.
    """

    def __init__(self, A: np.ndarray, K: Any, bhat: np.ndarray) -> None:
        self.A, self.bhat = A, bhat
        m = K.shape[0]
        Kc = csc_matrix(K)
        Kc.eliminate_zeros()
        ptr, rows = Kc.indptr, Kc.indices
        level = np.zeros(m, dtype=np.int64)
        for j in range(m - 1, -1, -1):  # K strictly lower: the switches read come later
            if ptr[j + 1] > ptr[j]:
                level[j] = level[rows[ptr[j]:ptr[j + 1]]].max() + 1
        self.steps: list[tuple[np.ndarray, np.ndarray | None, Any]] = []
        order = np.argsort(level, kind="stable")
        bounds = np.searchsorted(level[order], np.arange(int(level.max(initial=0)) + 2))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            J = order[lo:hi]
            sub = Kc[:, J]
            read = np.unique(sub.indices)
            self.steps.append((J, read if read.size else None,
                               sub[read].toarray() if read.size else None))

    def __call__(self, sigmas: np.ndarray) -> np.ndarray:
        """h(sigma) for every row of ``sigmas`` (c x m): a (c x n) array."""
        sigmas = np.asarray(sigmas, np.float64)
        W = np.zeros(sigmas.shape)
        for J, read, KJ in self.steps:
            acc = self.bhat[J] if read is None else W[:, read] @ KJ + self.bhat[J]
            W[:, J] = sigmas[:, J] * acc
        return W @ self.A


def signature_values(A: np.ndarray, K: Any, bhat: np.ndarray, sigmas: np.ndarray
                     ) -> np.ndarray:
    """h(sigma) of :func:`block_value` for every row of ``sigmas`` (c x m) at once (one
    :class:`LevelSolver`)."""
    return LevelSolver(A, K, bhat)(sigmas)


def block_values(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, sigmas: list[np.ndarray]
                 ) -> list[np.ndarray]:
    """``[block_value(A, K, bhat, s) for s in sigmas]``, by one batched back substitution
    when there are many (its Python loop runs over all m switches, each signature's over its
    support only)."""
    m = K.shape[0]
    if m > _BATCH_ABOVE and len(sigmas) * 4 > m:
        if 8 * sum(np.count_nonzero(s) for s in sigmas) < len(sigmas) * m:
            # NOTE: signatures with small supports (a tournament's leaves: the path to the
            # root) as a sparse coefficient matrix W, values W A: the level solver's dense
            # W is (leaves x m), cubic in n for a max over n items (active faces at
            # n = 3000: 5 s of 7)
            rows, cols, vals = [], [], []
            for k, s in enumerate(sigmas):
                supp, w = _weights(K, bhat, s)
                rows.append(np.full(supp.size, k))
                cols.append(supp)
                vals.append(w)
            W = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(len(sigmas), m))
            return list(np.asarray(W @ A))
        return list(signature_values(A, K, bhat, np.asarray(sigmas, np.float64)))
    return [block_value(A, K, bhat, s) for s in sigmas]


def components(K: object) -> list[np.ndarray]:
    """Connected components of the coupling graph (i ~ j when K[i, j] != 0), each sorted."""
    from scipy.sparse.csgraph import connected_components

    m = K.shape[0]  # type: ignore[attr-defined]
    if m == 0:
        return []
    K = csr_matrix(K)
    K.eliminate_zeros()
    _, labels = connected_components(K, directed=True, connection="weak")
    order = np.argsort(labels, kind="stable")
    splits = np.flatnonzero(np.diff(labels[order])) + 1
    return sorted(np.split(order, splits), key=lambda c: int(c[0]))


def _tree(K: np.ndarray, bhat: np.ndarray, T: np.ndarray) -> tuple[dict, int] | None:
    """The binary tree of the comparisons T, (child map, root), or None when K and bhat on
    T are not exactly those of a tournament of (a + b +- |a - b|)/2: a comparison j at depth
    k below an ancestor i on i's side s (the sign of sigma_i that selects j's subtree) has
    K[i, j] = s 2^-k, non-descendants K[i, j] = 0, and bhat_j = bhat_root 2^-depth(j)."""
    m = T.size
    KT = K[np.ix_(T, T)]
    parent = np.full(m, -1)
    child: dict[tuple[int, int], int] = {}
    for j in range(m):
        later = np.flatnonzero(KT[j + 1:, j] != 0)
        if later.size:
            parent[j] = p = j + 1 + int(later[0])
            key = (int(p), int(np.sign(KT[p, j])))
            if key in child:
                return None
            child[key] = j
    roots = np.flatnonzero(parent < 0)
    if roots.size != 1:
        return None
    root = int(roots[0])
    depth = np.zeros(m, int)
    for j in range(m - 1, -1, -1):  # parents come later in program order
        if parent[j] >= 0:
            depth[j] = depth[parent[j]] + 1
    want = np.zeros((m, m))
    for j in range(m):
        i, below = parent[j], j
        while i >= 0:
            side = 1.0 if child.get((int(i), 1)) == below else -1.0
            want[i, j] = side * 2.0 ** -(depth[j] - depth[i])
            below, i = i, parent[i]
    bT = bhat[T]
    scale = max(float(np.max(np.abs(KT), initial=0.0)), abs(float(bT[root])), 1e-300)
    if not (np.allclose(KT, want, rtol=0, atol=1e-12 * scale) and np.allclose(
            bT, bT[root] * 2.0 ** -depth, rtol=1e-12, atol=1e-12 * scale)):
        return None
    return {(int(T[i]), s): int(T[j]) for (i, s), j in child.items()}, int(T[root])


def _leaves(K: np.ndarray, bhat: np.ndarray, T: np.ndarray, S: np.ndarray
            ) -> tuple[list[np.ndarray], dict, int, dict] | None:
    """Signatures of every (leaf, pattern of the leaf's own switches), the child map, the
    root and each leaf's own switches; None when the block is not a tournament (over leaves
    that may hold switches of their own)."""
    tree = _tree(K, bhat, T)
    if tree is None:
        return None
    child, root = tree
    m = K.shape[0]
    inT = np.zeros(m, bool)
    inT[T] = True
    if S.size and np.any(K[np.ix_(S, T)]):
        return None  # a leaf switch depending on a comparison: not a leaf of the tree
    # NOTE: the leaf switches form components (coupled among themselves only); each hangs
    # below the lowest comparison it feeds, on the side where its item enters that max.
    own: dict[tuple[int, int], list[int]] = {}
    comps = components(K[np.ix_(S, S)]) if S.size else []
    for comp in comps:
        mem = S[comp]
        feeds = np.flatnonzero(np.any(K[:, mem] != 0, axis=1) & inT)
        if feeds.size == 0:
            return None
        low = int(feeds[0])
        hit = mem[K[low, mem] != 0]
        sides = {int(np.sign(K[low, j] * bhat[j] * bhat[root])) for j in hit}
        if len(sides) != 1:
            return None
        key = (low, sides.pop())
        if key in child:
            return None
        own.setdefault(key, []).extend(int(j) for j in mem)
    out: list[np.ndarray] = []

    def walk(i: int, sigma: np.ndarray) -> bool:
        for side in (1, -1):
            s = sigma.copy()
            s[i] = side
            if (i, side) in child:
                if not walk(child[(i, side)], s):
                    return False
                continue
            mine = own.get((i, side), [])
            if 2 ** len(mine) > _LEAF_PATTERNS:
                return False
            for pat in product((1.0, -1.0), repeat=len(mine)):
                s2 = s.copy()
                s2[mine] = pat
                out.append(s2)
        return True

    if not walk(root, np.zeros(m)):
        return None
    return out, child, root, own


def _leaf_of(sigma: np.ndarray, child: dict, root: int, leaf_sigs: dict) -> np.ndarray:
    """The (leaf, pattern) signature that the full signature sigma selects."""
    i, path = root, np.zeros_like(sigma)
    while True:
        side = int(sigma[i])
        path[i] = side
        if (i, side) not in child:
            break
        i = child[(i, side)]
    mine = leaf_sigs.get((i, side), [])
    path[mine] = sigma[mine]
    return path


def pure_roles(producers: Any) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(kind, comparisons T, leaf switches S) of a block whose comparisons are all of max or
    all of min (positions among its switches); None when it has none or both."""
    is_max = np.array([p in MAX_PRODUCERS for p in producers])
    is_min = np.array([p in MIN_PRODUCERS for p in producers])
    if is_max.any() == is_min.any():
        return None
    comp = is_max | is_min
    return ("k-way max" if is_max.any() else "k-way min"), np.flatnonzero(comp), \
        np.flatnonzero(~comp)


def memo_key(K: np.ndarray, bhat: np.ndarray, T: np.ndarray, S: np.ndarray) -> tuple:
    """The key under which :func:`tournament` memoises a block's structure."""
    return K.shape, K.tobytes(), bhat.tobytes(), T.tobytes(), S.tobytes()


def tournament(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, T: np.ndarray, S: np.ndarray,
                rng: np.random.Generator, memo: dict | None = None
                ) -> tuple[list[np.ndarray], bool, np.ndarray] | None:
    """Leaf signatures of a checked tournament block, whether it is convex, and the leaf
    values h(leaf) (one row per signature).

    ``memo`` (one dict per local set) remembers a structure (K, bhat, T, S, bytes alike)
    whose check passed on the coefficient vectors w(sigma) themselves (h = w A, so it
    passes for every A): later blocks of that structure (a chained max's 10^4 blocks) get
    the signatures, and their values as one product W A, without the walk and the checks."""
    m = K.shape[0]
    key = None
    if memo is not None:
        key = memo_key(K, bhat, T, S)
        hit = memo.get(key)
        if hit is not None:
            sigs, convex, W = hit
            return sigs, convex, W @ A
    found = _leaves(K, bhat, T, S)
    if found is None:
        return None
    sigs, child, root, own = found
    checks = np.array(list(product((1.0, -1.0), repeat=m)) if m <= _EXHAUSTIVE
                      else rng.choice([-1.0, 1.0], size=(_CHECKS, m)))
    # NOTE: the size of the values' terms, |bhat| (I - |K|)^-1 |A| (max |bhat| max |A| was
    # 1e25 where K is 6.6e12: leaves 2.5e-6 apart passed as one and the outer set missed a
    # limiting gradient, in_clarke's wrong False)
    scale = float(np.max(block_value(np.abs(A), np.abs(K), np.abs(bhat), np.ones(m)),
                         initial=0.0)) or 1.0
    got = (signature_values(A, K, bhat, checks) if m > _BATCH_ABOVE
           else [block_value(A, K, bhat, full) for full in checks])
    for full, g in zip(checks, got):
        want = block_value(A, K, bhat, _leaf_of(full, child, root, own))
        if np.max(np.abs(g - want), initial=0.0) > 1e-11 * scale:
            return None
    # NOTE: bhat_root = beta/2 for f = beta max(..) and -beta/2 for beta min(..): the block's
    # part of f'(x; .) is convex iff bhat_root > 0 and every leaf switch enters its item
    # convexly, i.e. (same sign argument) bhat_j > 0, with no coupling among leaf switches.
    convex = bool(np.all(bhat > 0)) and not (S.size and np.any(K[np.ix_(S, S)]))
    if memo is not None and m <= MEMO_SWITCHES:
        eye = np.eye(m)
        W = np.array(block_values(eye, K, bhat, sigs))
        tol = 1e-12 * (float(np.max(np.abs(bhat))) or 1.0)
        if all(np.max(np.abs(block_value(eye, K, bhat, full) - block_value(
                eye, K, bhat, _leaf_of(full, child, root, own)))) <= tol for full in checks):
            memo[key] = (sigs, convex, W)
            return sigs, convex, W @ A
    return sigs, convex, np.array(block_values(A, K, bhat, sigs)).reshape(len(sigs), -1)


def winner(H: np.ndarray, j: int, bhat_root: float) -> bool | None:
    """Leaf j of a pure tournament wins strictly along some direction: the leaf values
    differ by beta (grad u_j - grad u_k), beta = +-2 bhat_root, so j wins iff
    sign(bhat_root) (h_j - h_k) . d > 0 for every other distinct leaf k. Decided by
    :func:`.realise.realised` (a verified witness, or a certificate that it wins nowhere);
    None where its cone is too thin to tell (max(x0 + x1, x0 - x1, (1 + 2^-36) x0) at 0:
    the last leaf wins on a cone 3e-11 wide, the LP's t fell below 1e-9, and HiGHS put the
    leaf inside the others' hull: dropped from a list called complete)."""
    R = np.sign(bhat_root) * (H[j] - np.delete(H, j, axis=0))
    norms = row_norms(H)
    rows = nonzero_rows(R, norms[j] + np.delete(norms, j))  # NOTE: against h_j and h_k
    return realised(R[rows])[0]


def signature_margin(A: np.ndarray, K: np.ndarray, sigma: np.ndarray,
                     levels: list[np.ndarray]) -> tuple[float, np.ndarray | None]:
    """(t, d) of the LP max t s.t. sigma_j w_j . d >= t ||w_j|| for the switches with a
    nonzero row w_j = ((I - K Sigma)^{-1} A)_j and sigma_j != 0, |d|_inf <= 1: t > MARGIN
    means d enters the piece of sigma (a full signature; a 0 in sigma drops that switch's
    |z| from the rows reading it). The rows are formed one level of K at a time (``levels``:
    :func:`._sparse_tournament.reader_levels`)."""
    return margin(signature_rows(A, K, sigma, levels))


def signature_rows(A: np.ndarray, K: np.ndarray, sigma: np.ndarray,
                   levels: list[np.ndarray]) -> np.ndarray:
    """The rows sigma_j w_j of :func:`signature_margin`'s LP (nonzero w_j, sigma_j != 0)."""
    W = A.copy()
    for J in levels[1:]:  # level 0 reads nothing
        W[J] += (K[J] * sigma) @ W
    rows = nonzero_rows(W, row_terms(A, K, sigma, W)) & (sigma != 0)
    return sigma[rows, None] * W[rows]


def leaves_entered(A: np.ndarray, K: np.ndarray, leaves: list[np.ndarray],
                   rng: np.random.Generator, tries: int = 3) -> list[np.ndarray]:
    """For each leaf of a tournament block, a full signature entered along some direction
    that agrees with the leaf on its switches; the leaves without one are left out.

    An LP on the rows of the leaf's switches proposes a direction; z = A d + K |z| is then
    evaluated exactly along it (slightly perturbed, so that no switch is 0), and the leaf is
    kept when the signature entered there is the leaf's. The first LP drops the |z| of the
    switches the leaf leaves free (the other items' own kinks), which the path's comparisons
    may read, so its direction can miss; then the free switches take the signs entered
    there and the LP is solved again, now exact for that completion; a direction on which a
    switch stays at rounding level is perturbed again (up to ``tries`` rounds, each
    evaluating all its directions at once). Sound: every kept signature's piece is
    entered along its direction, so its value is a limiting gradient. (With the first LP
    trusted, -max_i (|a_i . x| + b_i . x) at 0 got a leaf whose cone is empty: item 1 beats
    every other item's pieces only on a plane.)"""
    from ._sparse_tournament import entered_along, reader_levels

    levels = reader_levels(K)
    sigmas = [leaf.astype(float) for leaf in leaves]
    found: dict[int, np.ndarray] = {}
    pending = list(range(len(leaves)))
    for _ in range(tries):
        dirs, asked = [], []
        for i in pending:
            t, d = signature_margin(A, K, sigmas[i], levels)
            if t > MARGIN and d is not None:
                dirs.append(d + 1e-3 * t * rng.uniform(-1.0, 1.0, d.size))
                asked.append(i)
        if not dirs:
            break
        signs, keep = entered_along(A, K, np.array(dirs).T, keep_all=True)
        pending = []
        for j, i in enumerate(asked):
            on = leaves[i] != 0
            if not keep[j]:  # a switch at 0 along this draw: perturb again
                pending.append(i)
            elif np.array_equal(signs[j][on], leaves[i][on]):
                found[i] = signs[j]
            else:  # complete the leaf as entered there, and retry
                sigmas[i] = np.where(on, leaves[i], signs[j])
                pending.append(i)
    return [found[i] for i in sorted(found)]
