"""Blocks of a tie in ``sort``: the pieces are the orderings of the tied entries.

``sort`` is expanded into an odd-even transposition network (:mod:`.expand`): comparator
(a, b) gives (a + b - |a - b|)/2 and (a + b + |a - b|)/2, switch z = a - b. At a tie of m
entries of one row (a *tie class*) every comparator that meets two of them is active, and
they form one block of m(m - 1)/2 switches, too many to list 2^M patterns for m >= 6.

Routing. With |z| replaced by sigma z for ANY sign sigma, a comparator outputs its two inputs
in one order or the other, so the linearised network sends its inputs to its outputs by a
permutation; a comparator whose switch is inactive routes by value. At x the values on each
wire do not depend on sigma (only equal values are exchanged), so sigma permutes the tie
class among its own output positions and nothing else. The selection gradient is that of f
composed with the routing, so it depends on sigma only through the permutation Q of the
class; and the same Q is what the network does when the class's entries are ordered by Q
(rank j to the entry Q routes to position j). Hence, for the block b of the class's
comparators,

    {h_b(sigma) : sigma in {-1, 1}^M}  =  {h_b(sigma(pi)) : pi an ordering of the class},

where sigma(pi) is read off the network run on the values at x with ties broken by pi
(m! orderings instead of 2^M patterns). Every ordering is entered along some direction when
the block's rows have rank m - 1 (their span is that of the differences of the class's input
rows), and then the block is described exactly. The argument needs the block to hold every
relevant comparator of the class (none in another block) and no switch of that sort to be
moved onto its kink by a radius; otherwise, or when m! exceeds ``_MAX_ORDERINGS``, or when a
check fails (sampled signatures must give one of the listed values), the block is left to the
generic treatment of :mod:`.localset`.
"""

from __future__ import annotations

from itertools import permutations, product
from typing import Any

import numpy as np

from .tournament import block_value

__all__ = ["sort_orderings"]

_MAX_ORDERINGS = 5040  # 7!: the largest tie class listed
_EXHAUSTIVE = 12  # blocks up to this many switches are checked on every signature
_CHECKS = 64  # sampled signatures checked on larger blocks


def _comparators(n: int) -> int:
    """The number of comparators (``abs`` nodes) of ``Sort.abs_form`` on n entries."""
    return sum(len(range(rnd % 2, n - 1, 2)) for rnd in range(n))


def _class_signs(v: np.ndarray, value: float, ranks: np.ndarray) -> tuple[dict, set]:
    """Run the network on the row ``v`` with the entries equal to ``value`` (the class, in
    order of position) ranked by each row of ``ranks`` (orderings x class size).

    Returns {comparator: sign(a - b) per ordering} for the comparators meeting two class
    entries, and the set of every comparator meeting two equal values (any class). The
    values on the wires do not depend on the tie-breaks, so one run of the values and one
    array of ranks per class wire (all orderings at once) suffice."""
    n = v.size
    vals = v.astype(np.float64, copy=True)
    on = {int(e): ranks[:, t] for t, e in enumerate(np.flatnonzero(vals == value))}
    signs: dict[int, np.ndarray] = {}
    ties: set[int] = set()
    k0 = 0
    for rnd in range(n):
        i = np.arange(rnd % 2, n - 1, 2)
        a, b = vals[i], vals[i + 1]
        for p in np.flatnonzero(a == b):
            ties.add(k0 + int(p))
        for p in np.flatnonzero((a == value) | (b == value)):
            lo, hi = int(i[p]), int(i[p]) + 1
            if a[p] == b[p]:  # two class entries: ordered by their ranks
                ra, rb = on[lo], on[hi]
                signs[k0 + int(p)] = np.sign(ra - rb)
                on[lo], on[hi] = np.minimum(ra, rb), np.maximum(ra, rb)
            elif a[p] > b[p]:  # a class entry moves by value, whichever it is
                if a[p] == value:
                    on[hi] = on.pop(lo)
                else:
                    on[lo] = on.pop(hi)
        vals[i], vals[i + 1] = np.minimum(a, b), np.maximum(a, b)
        k0 += i.size
    return signs, ties


def _abs_of(exp: Any, origin: int) -> dict[int, int]:
    """Comparator (ordinal in the abs form) -> abs equation number, for one sort node."""
    cache = exp.__dict__.setdefault("_sort_abs_of", {})
    if origin not in cache:
        found = {}
        for j in range(len(exp.abs_eqns)):
            m = exp.switch_meta(j)
            if m.origin == origin:
                found[m.ordinal] = j
        cache[origin] = found
    return cache[origin]


def sort_orderings(model: Any, members: np.ndarray, A: np.ndarray, K: np.ndarray,
                   bhat: np.ndarray) -> tuple[np.ndarray, list, bool] | None:
    """The block values of a sort tie class over all its orderings.

    Returns ``(values, signatures, complete)``: the distinct values h_b(sigma(pi)) (one row
    each, on the block's columns), the signatures of the orderings giving each, and whether
    every ordering is entered along some direction (rank m - 1, see the module docstring).
    None when the block is not a whole tie class of one sort row or is too large to list.
    """
    exp = model.exp
    ids = model.active[members]
    locs = [exp.locate(int(i)) for i in ids]
    metas = [exp.switch_meta(j) for j, _ in locs]
    origin, row = metas[0].origin, locs[0][1]
    if any(m.producer != "sort" or m.origin != origin for m in metas) \
            or any(e != row for _, e in locs) \
            or any(exp.z_values(j)[e] != 0 for j, e in locs):
        return None
    src = exp.original.eqns[origin].inputs[0]
    if not hasattr(src, "index"):
        return None
    x = np.moveaxis(np.asarray(exp.original.vals[src.index], dtype=np.float64),
                    metas[0].params["axis"], -1)
    n = x.shape[-1]
    v = x.reshape(-1, n)[row]
    abs_of = _abs_of(exp, origin)
    if sorted(abs_of) != list(range(_comparators(n))):
        return None
    if any(exp.abs_eqns[j] in model._moved for j in abs_of.values()):
        return None  # a radius moved a comparator of this sort onto its kink
    switch_of = {int(exp.offsets[j]) + row: k for k, j in abs_of.items()}
    comp = [switch_of.get(int(i)) for i in ids]  # the comparator of each member
    if None in comp:
        return None
    # the class: the value compared at the first member (its wires hold equal values)
    _, ties = _class_signs(v, np.nan, np.zeros((1, 0)))
    if any(k not in ties for k in comp):
        return None
    value = _tied_value(v, comp[0])
    size = int(np.count_nonzero(v == value))
    if size > 7:
        return None
    orders = np.array(list(permutations(range(size))), dtype=np.float64)
    signs, _ = _class_signs(v, value, orders)
    if any(k not in signs for k in comp):
        return None  # a member compares another class
    in_model = model._cache.setdefault("sort_active", set(int(i) for i in model.active))
    mine = set(int(i) for i in ids)
    if any(s in in_model and s not in mine for s, k in switch_of.items() if k in signs):
        return None  # a comparator of the class sits in another block
    S = np.array([signs[k] for k in comp]).T  # orderings x members
    R = np.array([block_value(A, K, bhat, s) for s in S])
    scale = max(1.0, float(np.max(np.abs(R), initial=0.0)))
    if not _covers(A, K, bhat, R, scale, np.random.default_rng(0)):
        return None
    keys: dict[bytes, list[int]] = {}
    for i, r in enumerate(np.round(R / scale, 11) + 0.0):
        keys.setdefault(r.tobytes(), []).append(i)
    groups = sorted(keys.values())
    sv = np.linalg.svd(A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300),
                       compute_uv=False) if A.size else np.zeros(0)
    complete = int(np.count_nonzero(sv > 1e-6)) == size - 1
    return R[[g[0] for g in groups]], [[S[i] for i in g] for g in groups], complete


def _tied_value(v: np.ndarray, comparator: int) -> float:
    """The value on both wires of a tied comparator (a run of the values alone)."""
    n = v.size
    vals = v.astype(np.float64, copy=True)
    k0 = 0
    for rnd in range(n):
        i = np.arange(rnd % 2, n - 1, 2)
        if k0 <= comparator < k0 + i.size:
            return float(vals[i[comparator - k0]])
        a, b = vals[i], vals[i + 1]
        vals[i], vals[i + 1] = np.minimum(a, b), np.maximum(a, b)
        k0 += i.size
    raise ValueError(comparator)


def _covers(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, R: np.ndarray, scale: float,
            rng: np.random.Generator) -> bool:
    """Do signatures of the block (all of them for small blocks, else sampled ones) give
    values among the rows of R? (The routing argument says every one does.)"""
    M = A.shape[0]
    if M <= _EXHAUSTIVE:
        pats = (np.array(p) for p in product((1.0, -1.0), repeat=M))
    else:
        pats = (rng.choice((-1.0, 1.0), M) for _ in range(_CHECKS))
    for s in pats:
        h = block_value(A, K, bhat, s)
        if np.min(np.max(np.abs(R - h), axis=1)) > 1e-9 * scale:
            return False
    return True
