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
moved onto its kink by a radius; otherwise, or when a check fails (sampled signatures must
give one of the listed values), the block is left to the generic treatment of
:mod:`.localset`.

Up to ``_MAX_LISTED`` = 7 entries the m! values are listed. Larger classes (up to
``_MAX_FITTED``) get a :class:`SortOracle` instead: h is affine in
the permutation matrix of the ordering, so the minimum of <h, u> over all orderings is a
linear assignment, and :mod:`.stationarity` generates the block's candidates as it needs
them and bounds the set from outside with the assignment's minimum.
"""

from __future__ import annotations

from itertools import permutations, product
from typing import Any

import numpy as np

from .lp import rounded_entries
from .tournament import LevelSolver, block_value, block_values

__all__ = ["Comparators", "SortOracle", "column_scales", "left_wires", "sort_oracle",
           "sort_orderings", "sort_row"]

_MAX_LISTED = 7  # the largest tie class whose m! orderings are listed
_MAX_FITTED = 40  # the largest one handled by its assignment oracle
_EXHAUSTIVE = 12  # blocks up to this many switches are checked on every signature
_CHECKS = 64  # sampled signatures checked on larger blocks


def left_wires(n: int) -> list[int]:
    """The upper wire i of every comparator (i, i + 1) of ``Sort.abs_form`` on n entries, in
    the order its ``abs`` nodes are made (the comparator's ordinal)."""
    return [i for rnd in range(n) for i in range(rnd % 2, n - 1, 2)]


def _class_signs(v: np.ndarray, value: float, ranks: np.ndarray) -> tuple[dict, dict]:
    """Run the network on the row ``v`` with the entries equal to ``value`` (the class, in
    order of position) ranked by each row of ``ranks`` (orderings x class size).

    Returns {comparator: sign(a - b) per ordering} for the comparators meeting two class
    entries, and {comparator: the value} for every comparator meeting two equal values
    (any class). The
    values on the wires do not depend on the tie-breaks, so one run of the values and one
    array of ranks per class wire (all orderings at once) suffice."""
    n = v.size
    vals = v.astype(np.float64, copy=True)
    on = {int(e): ranks[:, t] for t, e in enumerate(np.flatnonzero(vals == value))}
    signs: dict[int, np.ndarray] = {}
    ties: dict[int, float] = {}
    k0 = 0
    for rnd in range(n):
        i = np.arange(rnd % 2, n - 1, 2)
        a, b = vals[i], vals[i + 1]
        for p in np.flatnonzero(a == b):
            ties[k0 + int(p)] = float(a[p])
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


class Comparators:
    """Where the comparators of one row of one sort node sit in the abs-normal program:
    comparator k (upper wire ``left_wires(n)[k]``) is entry ``entry[k]`` of abs equation
    ``eq[k]``, switch ``switch[k]``; ``of_switch`` inverts ``switch``.

    ``Sort.abs_form`` makes one ``abs`` per round of the network, shaped (comparators,) +
    the other axes: comparator q of a round, row ``row`` is entry q R + row (R rows)."""

    def __init__(self, eq: np.ndarray, entry: np.ndarray, offsets: np.ndarray) -> None:
        self.eq, self.entry = eq, entry
        self.switch = offsets[eq] + entry
        self.of_switch = {int(sw): k for k, sw in enumerate(self.switch)}

    def z(self, exp: Any) -> np.ndarray:
        """The comparators' switching values z (one read per round's abs equation)."""
        out = np.zeros(self.eq.size)
        for j in np.unique(self.eq):
            at = np.flatnonzero(self.eq == j)
            out[at] = exp.z_values(int(j))[self.entry[at]]
        return out


def _rounds(exp: Any, origin: int, n: int, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(abs equation, comparator index within its round) of every comparator of one sort
    node in network order, or None when its abs equations are not the network's rounds."""
    cache = exp.__dict__.setdefault("_sort_rounds", {})
    if origin not in cache:
        js = sorted((exp.switch_meta(j).ordinal, j) for j in range(len(exp.abs_eqns))
                    if exp.switch_meta(j).origin == origin)
        sizes = [(n - rnd % 2) // 2 for rnd in range(n)]
        sizes = [h for h in sizes if h]
        eqs: list[int] = []
        pairs: list[int] = []
        ok = len(js) == len(sizes)
        for (_, j), h in zip(js, sizes):
            ok = ok and int(exp.offsets[j + 1] - exp.offsets[j]) == h * rows
            eqs.extend([j] * h)
            pairs.extend(range(h))
        cache[origin] = (np.array(eqs, dtype=np.int64), np.array(pairs, dtype=np.int64)
                         ) if ok else None
    return cache[origin]


def sort_row(model: Any, members: np.ndarray) -> tuple | None:
    """``(v, comp, net, switch_of)`` when the block's switches are comparators of one row of
    one sort: the row's values at x, the comparator (network order) of each member, the
    row's :class:`Comparators` and its map switch -> comparator; else None."""
    exp = model.exp
    ids = model.active[members]
    js, es = exp.locate_many(ids)
    metas = [exp.switch_meta(int(j)) for j in np.unique(js)]
    origin = metas[0].origin
    if any(m.producer != "sort" or m.origin != origin for m in metas):
        return None
    src = exp.original.eqns[origin].inputs[0]
    if not hasattr(src, "index"):
        return None
    x = np.moveaxis(np.asarray(exp.original.vals[src.index], dtype=np.float64),
                    metas[0].params["axis"], -1)
    n = x.shape[-1]
    rows = x.size // n if n else 0
    found = _rounds(exp, origin, n, rows) if rows else None
    if found is None or found[0].size != len(left_wires(n)):
        return None
    row = int(es[0] % rows)
    if np.any(es % rows != row):
        return None
    eq, pair = found
    net = Comparators(eq, pair * rows + row, exp.offsets)
    comp = [net.of_switch.get(int(i)) for i in ids]
    if None in comp:
        return None
    return x.reshape(-1, n)[row], comp, net, net.of_switch


def _class_of(model: Any, members: np.ndarray) -> tuple | None:
    """(row values v, tied value, comparator of each member, class size) when the block is
    the whole tie class of one sort row (see the module docstring), else None."""
    found = sort_row(model, members)
    if found is None:
        return None
    v, comp, net, switch_of = found
    exp, ids = model.exp, model.active[members]
    z = net.z(exp)
    if any(z[k] != 0 for k in comp):
        return None
    if any(exp.abs_eqns[j] in model._moved for j in set(net.eq.tolist())):
        return None  # a radius moved a comparator of this sort onto its kink
    _, ties = _class_signs(v, np.nan, np.zeros((1, 0)))
    if any(k not in ties for k in comp):
        return None
    value = ties[comp[0]]  # the class: the value compared at the first member
    size = int(np.count_nonzero(v == value))
    one, _ = _class_signs(v, value, np.arange(size, dtype=np.float64)[None])
    if any(k not in one for k in comp):
        return None  # a member compares another class
    in_model = model._cache.setdefault("sort_active", set(int(i) for i in model.active))
    mine = set(int(i) for i in ids)
    if any(s in in_model and s not in mine for s, k in switch_of.items() if k in one):
        return None  # a comparator of the class sits in another block
    return v, value, comp, size


def _full_rank(A: np.ndarray, size: int) -> bool:
    """rank(A) = size - 1: every ordering of the class is entered along some direction."""
    if not A.size:
        return False
    U = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    return int(np.count_nonzero(np.linalg.svd(U, compute_uv=False) > 1e-6)) == size - 1


def sort_orderings(model: Any, members: np.ndarray, A: np.ndarray, K: np.ndarray,
                   bhat: np.ndarray) -> tuple[np.ndarray, list, bool] | None:
    """The block values of a sort tie class over all its orderings.

    Returns ``(values, signatures, complete)``: the distinct values h_b(sigma(pi)) (one row
    each, on the block's columns), the signatures of the orderings giving each, and whether
    every ordering is entered along some direction (rank m - 1, see the module docstring).
    None when the block is not a whole tie class of one sort row or is too large to list.
    """
    found = _class_of(model, members)
    if found is None or found[3] > _MAX_LISTED:
        return None
    v, value, comp, size = found
    orders = np.array(list(permutations(range(size))), dtype=np.float64)
    signs, _ = _class_signs(v, value, orders)
    S = np.array([signs[k] for k in comp]).T  # orderings x members
    R = np.array(block_values(A, K, bhat, list(S)))
    if not _covers(A, K, bhat, R, column_scales(R), np.random.default_rng(0)):
        return None
    keys: dict[bytes, list[int]] = {}
    for i, r in enumerate(rounded_entries(R)):  # NOTE: each entry to its own size
        keys.setdefault(r.tobytes(), []).append(i)
    groups = sorted(keys.values())
    return (R[[g[0] for g in groups]], [[S[i] for i in g] for g in groups],
            _full_rank(A, size))


class SortOracle:
    """A tie class too large to list (``_MAX_LISTED`` < m <= ``_MAX_FITTED``): the block
    value is affine in the permutation matrix P of the ordering (output position j gets the
    entry ranked j), h(pi) = <H, P> (routing argument, module docstring). H is fitted by
    least squares to (m - 1)^2 + 1 + 2m random orderings (the dimension of the permutation
    matrices' span, and more) and checked on fresh ones; the minimum of <h, u> over all m!
    orderings is then a linear assignment. ``complete``: every ordering is entered along
    some direction (rank m - 1), so the values it returns are limiting gradients; otherwise
    they bound the set from outside only."""

    def __init__(self, H: np.ndarray, value_of: Any, size: int, err: float,
                 complete: bool) -> None:
        self.H, self.value_of, self.size, self.err = H, value_of, size, err
        self.complete = complete

    def argmin(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(h(pi*), sigma(pi*), a lower bound on min over all orderings of <h, u>) for the
        ordering pi* minimising <h, u>."""
        from scipy.optimize import linear_sum_assignment

        m = self.size
        cost = (self.H @ u).reshape(m, m)  # [position j, entry t]
        pos, ent = linear_sum_assignment(cost)
        rank = np.empty(m)
        rank[ent] = pos
        h, sigma = self.value_of(rank)
        slack = 10 * self.err * float(np.abs(u).sum())
        return h, sigma, float(cost[pos, ent].sum()) - slack


def sort_oracle(model: Any, members: np.ndarray, A: np.ndarray, K: np.ndarray,
                bhat: np.ndarray, rng: np.random.Generator) -> SortOracle | None:
    """The :class:`SortOracle` of a large tie class, or None (not a whole class, too large,
    or the fit is not exact)."""
    found = _class_of(model, members)
    if found is None or not _MAX_LISTED < found[3] <= _MAX_FITTED:
        return None
    v, value, comp, m = found
    solve = LevelSolver(A, K, bhat)  # one block, hundreds of signatures

    def values(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        signs, _ = _class_signs(v, value, ranks)
        S = np.array([signs[k] for k in comp]).T
        return solve(S), S

    def perm_matrices(ranks: np.ndarray) -> np.ndarray:
        P = np.zeros((ranks.shape[0], m, m))
        rows = np.arange(ranks.shape[0])[:, None]
        P[rows, ranks.astype(int), np.arange(m)[None, :]] = 1.0
        return P.reshape(ranks.shape[0], m * m)

    fit = np.array([rng.permutation(m) for _ in range((m - 1) ** 2 + 1 + 2 * m)], float)
    check = np.array([rng.permutation(m) for _ in range(_CHECKS)], float)
    Y, _ = values(fit)
    H = np.linalg.lstsq(perm_matrices(fit), Y, rcond=None)[0]
    Yc, _ = values(check)
    scale = column_scales(Y)  # NOTE: per coordinate (one of size 2^40 beside one of 1)
    cols = np.maximum(np.max(np.abs(perm_matrices(fit) @ H - Y), axis=0, initial=0.0),
                      np.max(np.abs(perm_matrices(check) @ H - Yc), axis=0, initial=0.0))
    err = float(np.max(cols, initial=0.0))
    if np.any(cols > 1e-9 * scale):
        return None

    def value_of(rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, S = values(rank[None])
        return h[0], S[0]

    return SortOracle(H, value_of, m, err, _full_rank(A, m))


def column_scales(R: np.ndarray) -> np.ndarray:
    """Each column's largest entry in size, at least 1e-15 of the largest of all (the scale
    a fit or a match is checked against, per coordinate: against the largest of all, a
    coordinate of size 1 beside one of 2^40 was checked to 1e2)."""
    top = np.max(np.abs(R), axis=0, initial=0.0)
    return np.maximum(top, 1e-15 * (float(np.max(top, initial=0.0)) or 1.0))


def _covers(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, R: np.ndarray, scale: Any,
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
        if np.min(np.max(np.abs(R - h) / scale, axis=1)) > 1e-9:
            return False
    return True
