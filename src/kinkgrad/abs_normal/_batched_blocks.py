"""Many small k-way max/min blocks of one structure, described together.

A chained max over 10^5 segments has 10^5 blocks of two comparisons each, alike up to their
rows A: per block, reading its rows, checking its tournament and listing its leaf values
cost ~0.1 ms of Python, 10 s in all. Blocks with the same number of switches, producers and
columns are read as 3-D arrays at once (A: blocks x m x cols, K: blocks x m x m) and split
by structure (K and bhat alike, bytes for bytes). The first block of a structure goes
through the ordinary path (:func:`.localset._block`: the tree read from K and checked, the
check on coefficient vectors that makes it reusable for every A, :func:`.tournament.tournament`'s
``memo``); when that makes it a convex tournament whose structure is memoised, every other
block of the structure gets its leaf values as W A_b (W the memoised coefficients), the
same product the memo gives one block at a time, and its distinct rows by one comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .lp import rounded_entries
from .tournament import MEMO_SWITCHES, memo_key, pure_roles

__all__ = ["batched_tournaments"]

_MIN_BLOCKS = 64  # blocks of one shape below which the ordinary path is used


def batched_tournaments(rows: Any, comps: list[np.ndarray], producers: list[str],
                        memo: dict, first: Callable[[int], Any]
                        ) -> dict[int, tuple[str, np.ndarray, np.ndarray, list]]:
    """For blocks that repeat a convex tournament structure: {block: (kind, cols, leaf
    values (distinct, in order), their signatures)}. ``first(b)`` describes block b by the
    ordinary path (and fills ``memo``); blocks not returned are left to it."""
    shapes: dict[tuple, list[int]] = {}
    for b, comp in enumerate(comps):
        if 2 <= comp.size <= MEMO_SWITCHES:
            shapes.setdefault(tuple(producers[int(i)] for i in comp), []).append(b)
    out: dict[int, tuple[str, np.ndarray, np.ndarray, list]] = {}
    for prods, ids in shapes.items():
        roles = pure_roles(prods)
        if len(ids) < _MIN_BLOCKS or roles is None:
            continue
        _, T, S = roles
        for cols, A3, K3, B2, members in _gather(rows, np.asarray(ids)):
            keys = np.concatenate([K3.reshape(len(members), -1), B2], axis=1)
            _, head, label = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            label = label.ravel()
            for s, h in enumerate(head):
                blk = first(int(members[h]))
                hit = memo.get(memo_key(K3[h], B2[h], T, S))
                if hit is None or not (blk.convex and blk.kind.startswith("k-way")):
                    continue
                sigs, _, W = hit
                same = np.flatnonzero(label == s)
                same = same[same != h]
                values = np.einsum("tm,gmc->gtc", W, A3[same])
                for g, v, keep in zip(same, values, _distinct(values)):
                    out[int(members[g])] = (blk.kind, cols[g], v[keep],
                                            [sigs[i] for i in np.flatnonzero(keep)])
    return out


def _distinct(values: np.ndarray) -> np.ndarray:
    """Per block (values: blocks x t x cols), the rows that are not equal (each entry to 40
    bits of its own size, as localset._unique) to an earlier row."""
    Q = rounded_entries(values)
    same = np.all(Q[:, :, None, :] == Q[:, None, :, :], axis=-1)
    return ~np.any(np.tril(same, -1), axis=2)


def _gather(rows: Any, ids: np.ndarray):
    """Blocks ``ids`` (same number m of switches) grouped by their number of columns, each
    group as (cols (G x c), A (G x m x c), K (G x m x m), bhat (G x m), block ids)."""
    start = rows.start[ids]
    m = int(rows.start[ids[0] + 1] - start[0])
    A, K = rows.A, rows.K
    at = _ranges(A.indptr[start], A.indptr[start + m])
    seg = np.repeat(np.arange(ids.size), A.indptr[start + m] - A.indptr[start])
    width = A.shape[1] + 1
    blk, col = np.divmod(np.unique(seg.astype(np.int64) * width + A.indices[at]), width)
    count = np.bincount(blk, minlength=ids.size)
    first = np.concatenate([[0], np.cumsum(count)])
    for c in np.unique(count):
        pick = np.flatnonzero(count == c)
        cols = col[(first[pick][:, None] + np.arange(c)).ravel()].reshape(pick.size, c)
        A3 = np.zeros((pick.size, m, c))
        K3 = np.zeros((pick.size, m, m))
        for r in range(m):  # row r of every picked block
            rr = start[pick] + r
            for M, dest in ((A, A3), (K, K3)):
                idx = _ranges(M.indptr[rr], M.indptr[rr + 1])
                g = np.repeat(np.arange(pick.size), M.indptr[rr + 1] - M.indptr[rr])
                j = (np.argmax(cols[g] == M.indices[idx][:, None], axis=1) if dest is A3
                     else M.indices[idx] - start[pick][g])
                dest[g, r, j] = M.data[idx]
        B2 = rows.bhat[start[pick][:, None] + np.arange(m)]
        yield cols, A3, K3, B2, ids[pick]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of range(lo_i, hi_i)."""
    n = hi - lo
    return np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(n.sum())
