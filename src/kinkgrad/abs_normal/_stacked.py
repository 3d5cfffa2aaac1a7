"""Candidate blocks of a sum of hulls stacked as one CSR matrix, and the computations on
them that :mod:`.minnorm` does for every block at once.

A set g0 + conv(V_1) + ... + conv(V_B) is held as (cols, V_b) pairs, V_b (t_b x len(cols))
dense or a scipy sparse matrix (a large k-way max's leaves). Stacked, block b's candidates
are rows offs[b]:offs[b + 1] of one CSR matrix with global columns, so per-block work (a
chained function's 10^5 blocks) becomes one product and one ``reduceat``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .lp import nonzeros

__all__ = ["Blocks", "feasible", "full", "offsets", "stack", "support"]

Blocks = list  # of (cols, V): V (t, len(cols)) holds candidates supported on columns cols


def full(blocks: list, n: int) -> Blocks:
    """Accept (cols, V) pairs or full (t, n) arrays, V dense or a scipy sparse matrix (a
    large k-way max's leaves); drop empty blocks."""
    out = []
    for b in blocks:
        cols, V = b if isinstance(b, tuple) else (None, b)
        cols = np.arange(n) if cols is None else np.asarray(cols, int)
        V = sp.csr_matrix(V, dtype=np.float64) if sp.issparse(V) else np.asarray(
            V, np.float64).reshape(-1, cols.size)
        if V.shape[0]:
            out.append((cols, V))
    return out


def offsets(bl: Blocks) -> np.ndarray:
    """First candidate of each block in the stacked rows (and their total, last)."""
    return np.concatenate([[0], np.cumsum([V.shape[0] for _, V in bl])]).astype(np.intp)


def support(g0: np.ndarray, V: sp.csr_matrix, offs: np.ndarray, u: np.ndarray) -> float:
    """<g0, u> + sum over blocks (rows offs[b]:offs[b + 1] of V) of min_j <V_j, u>."""
    return float(g0 @ u + np.minimum.reduceat(V @ u, offs[:-1]).sum())


def feasible(lam: np.ndarray, sizes: Any) -> list[np.ndarray]:
    """Weights projected onto the simplices: clipped at 0 (NaN -> 0) and renormalised per
    block (uniform where a block's weights vanish)."""
    sizes = np.asarray(sizes, dtype=np.intp)
    lam = np.maximum(np.nan_to_num(np.asarray(lam, np.float64), nan=0.0), 0.0)
    offs = np.concatenate([[0], np.cumsum(sizes)])
    total = np.add.reduceat(lam, offs[:-1]) if lam.size else np.zeros(0)
    per = np.repeat(total, sizes)
    w = np.where(per > 0, lam / np.where(per > 0, per, 1.0), 1.0 / np.repeat(sizes, sizes))
    return np.split(w, offs[1:-1])


def stack(blocks: Blocks, n: int) -> sp.csr_matrix:
    """All candidates as one CSR (rows in block order, columns global); dense blocks of one
    shape are gathered as a 3-D array (a chained function's 10^5 blocks in one step)."""
    rows, cols, vals = [], [], []
    offs = offsets(blocks)
    groups: dict[tuple[int, int], list[int]] = {}
    for b, (c, V) in enumerate(blocks):
        if sp.issparse(V):
            r, k, v = nonzeros(V)
            rows.append(r + offs[b])
            cols.append(c[k])
            vals.append(v)
        else:
            groups.setdefault(V.shape, []).append(b)
    for ids in groups.values():
        V3 = np.array([blocks[b][1] for b in ids])
        C2 = np.array([blocks[b][0] for b in ids]).reshape(len(ids), -1)
        g, r, k = np.nonzero(V3)
        rows.append(offs[np.asarray(ids)][g] + r)
        cols.append(C2[g, k])
        vals.append(V3[g, r, k])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(int(offs[-1]), n))
