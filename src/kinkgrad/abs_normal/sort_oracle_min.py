"""The minimum-norm point of a sum of hulls in which some blocks are given by an oracle.

A tie class of a sort too large to list its orderings (:class:`~.sort_block.SortOracle`)
contributes the hull of m! values, of which only the minimiser of <h, u> for a given u is
computed (a linear assignment). The minimum-norm point of C = g0 + sum_b conv(block b) is
then found by column generation: solve over the candidates listed so far
(:func:`~.minnorm.min_norm`), ask each oracle for the value minimising <h, p> at the current
point p, add it when it lies beyond the listed ones, and stop when none does (then p is
the minimum-norm point of C: the optimality condition <c - p, p> >= 0 holds for every
c in C, block by block).

Bounds, with no trust in the QP solver: when the listed candidates are values of orderings
entered along some direction (oracle blocks of rank m - 1, see ``SortOracle.complete``, and
listed blocks whose outer set is realised), ||p|| bounds the distance from above; from below,
in every case, for u = p / ||p||, every c in C has <c, u> >= <g0, u> + sum of the
blocks' minima of <h, u>, the oracle blocks' minima taken over all orderings by the
assignment (less a slack for the fit of the affine map, see ``SortOracle.argmin``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .minnorm import MinNorm, min_norm

__all__ = ["by_oracles", "realised", "with_oracles"]

_ROUNDS = 100  # column-generation rounds


def by_oracles(ls: Any) -> bool:
    """Is the set of ``ls`` bounded through oracles: some block is a sort tie with a
    :class:`~.sort_block.SortOracle`, and every other block has an outer set?"""
    return not ls.has_outer and any(b.oracle is not None for b in ls.blocks) and all(
        b.oracle is not None or b.outer is not None for b in ls.blocks)


def realised(ls: Any) -> bool:
    """Are the candidates :func:`with_oracles` lists limiting gradients whose sums lie in the
    set (every oracle complete, every listed block's outer realised, the sums proven)?"""
    return ls.inner_exact and all(
        b.oracle.complete if b.oracle is not None else (b.complete or b.convex)
        for b in ls.blocks)


def with_oracles(g0: np.ndarray, blocks: list, tol: float) -> MinNorm | None:
    """The minimum-norm point of g0 + sum of the blocks' hulls (``Block.outer`` for listed
    blocks, ``Block.oracle`` for the others) with certified bounds; None when the QP is
    too large. ``upper`` is infinite when a candidate is an oracle's fitted value (no
    signature gives it exactly), which proves no element of the set."""
    cand: list[Any] = [b.inner if b.oracle is not None else b.outer for b in blocks]
    fitted = False
    for i, b in enumerate(blocks):
        if b.oracle is not None and cand[i].shape[0] == 0:  # no piece found: any ordering
            h, sig, _ = b.oracle.argmin(np.ones(b.cols.size))
            cand[i], fitted = h[None], fitted or sig is None
    mn = None
    for _ in range(_ROUNDS):
        mn = min_norm(g0, [(b.cols, V) for b, V in zip(blocks, cand)], tol)
        if mn is None:
            return None
        p = mn.point
        if mn.upper <= tol:
            break
        added = False
        for i, b in enumerate(blocks):
            if b.oracle is None:
                continue
            pc = p[b.cols]
            h, sig, _ = b.oracle.argmin(pc)
            listed = float(np.min(cand[i] @ pc))
            if h @ pc < listed - 1e-12 * max(1.0, abs(listed)):
                cand[i] = np.vstack([cand[i], h])
                added, fitted = True, fitted or sig is None
        if not added:
            break
    assert mn is not None
    upper = float("inf") if fitted else mn.upper
    nrm = float(np.linalg.norm(mn.point))
    if nrm == 0:
        return MinNorm(mn.point, mn.weights, upper, 0.0, mn.status, None)
    u = mn.point / nrm
    lower = float(g0 @ u)
    for b, V in zip(blocks, cand):
        uc = u[b.cols]
        lower += b.oracle.argmin(uc)[2] if b.oracle is not None else float(np.min(V @ uc))
    return MinNorm(mn.point, mn.weights, upper, max(0.0, lower), mn.status, u)
