"""Near ties of ``sort`` in a ball: comparators a radius moves onto their kinks.

With ``radius > 0`` (:func:`~.stationarity.stationarity`) the comparators of a sort whose
two inputs are within the ball of a tie are *moved* onto their kinks: the model is that of
the program in which they are ties. The values at x are not equal, so the orderings
argument of :mod:`.sort_block` does not apply as it stands; its derivative form does.

Token routing. In the model, a comparator routes the derivatives on its two wires to its
outputs straight or crossed: by its sign at x when it is not in the model (inactive, or
dropped as irrelevant), by sigma when it is. Follow each input's derivative as a token:
a token leaves the wires that carry, at x, the values of the *class* (the entries joined by
the block's comparators) only through a comparator of the block, which joins two such
wires; so every sign pattern sigma of the block sends the class's tokens to the class's
output positions by a permutation P_sigma, and the block value is affine in it,
h(sigma) = <H, P_sigma> (output weight c_j times input row L_t, as in :mod:`.sort_block`).

H is fitted by least squares to random sign patterns; the fit is used only when their
permutation matrices span the whole span of the permutation matrices ((m - 1)^2 + 1
dimensions), so that <H, P> is h on every permutation, and when fresh patterns confirm it.
The block's hull then lies in that of <H, P> over all m! permutations: an outer set whose
minimum along u is a linear assignment (:class:`~.sort_block.SortOracle`). When every
comparator between two class wires is in the block and the rows have rank m - 1, every
permutation is entered along a direction (the block's comparators sort the tokens by their
derivatives), and the oracle's values are limiting gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sort_block import _CHECKS, SortOracle, _full_rank, column_scales, left_wires, sort_row
from .tournament import block_value

__all__ = ["near_oracle"]

_MAX_NEAR = 20  # the largest class handled (the routings' span is found by sampling)
_BATCHES = 40  # most batches of (m - 1)^2 + 1 random patterns drawn to span it
_STEPS = 3_000_000  # and most comparator steps of the token routing spent on them


class _Network:
    """The odd-even network of one sort row with the block's comparators free."""

    def __init__(self, n: int, swap: np.ndarray, member: dict[int, int]) -> None:
        self.left = left_wires(n)
        self.n, self.swap, self.member = n, swap, member
        self.loose: dict[int, int] = {}  # irrelevant comparators on class wires: either way

    def route(self, sigma: np.ndarray | None = None, rank: np.ndarray | None = None,
              loose: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        """Final token on every wire, and the block's signs: given (``sigma``, and ``loose``
        for the loose comparators) or decided by the tokens' ranks (``rank``, a value per
        entry: sigma = sign(rank_a - rank_b))."""
        tokens = list(range(self.n))
        sig = np.zeros(len(self.member)) if sigma is None else sigma
        for k, i in enumerate(self.left):
            a, b = tokens[i], tokens[i + 1]
            mi, li = self.member.get(k), self.loose.get(k)
            if mi is None and li is None:
                crossed = self.swap[k]
            elif rank is not None:
                crossed = rank[a] > rank[b]
                if mi is not None:
                    sig[mi] = 1.0 if crossed else -1.0
            elif mi is not None:
                crossed = sig[mi] > 0
            else:
                crossed = loose is not None and loose[li] > 0
            if crossed:  # z = a - b > 0: the min (wire i) gets b
                tokens[i], tokens[i + 1] = b, a
        return tokens, sig


def near_oracle(model: Any, members: np.ndarray, A: np.ndarray, K: np.ndarray,
                bhat: np.ndarray, rng: np.random.Generator) -> SortOracle | None:
    """The :class:`~.sort_block.SortOracle` of a block of one sort row's comparators
    with moved ones (see the module docstring), or None."""
    found = sort_row(model, members)
    if found is None:
        return None
    v, comp, wires_at, _ = found
    exp = model.exp
    n = v.size
    member = {k: p for p, k in enumerate(comp)}
    z = wires_at.z(exp)
    net = _Network(n, z > 0, member)
    # the class: entries whose tokens meet at the block's comparators on the run at x
    tokens, wires = list(range(n)), []
    for k, i in enumerate(net.left):
        wires.append((tokens[i], tokens[i + 1]))
        if z[k] > 0:
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
    klass: set[int] = set()
    for k in member:
        klass.update(wires[k])
    in_model = model._cache.setdefault("sort_active", set(int(i) for i in model.active))
    free = True  # every comparator joining two class wires can go either way
    for k, (a, b) in enumerate(wires):
        if k in member or not (a in klass or b in klass):
            continue
        if int(wires_at.switch[k]) in in_model:
            return None  # a comparator on the class's wires sits in another block
        if a in klass and b in klass:
            sel = model._moved.get(exp.abs_eqns[wires_at.eq[k]])
            if z[k] == 0 or (sel is not None and sel.reshape(-1)[wires_at.entry[k]] == 0):
                # NOTE: active (at or moved onto its kink) but dropped from the model as
                # irrelevant: its sign changes no gradient, so its routing is free too
                net.loose[k] = len(net.loose)
            else:
                free = False
    ent = np.array(sorted(klass))
    m = ent.size
    if m > _MAX_NEAR:
        return None
    pos = np.array(sorted(p for p, t in enumerate(tokens) if t in klass))
    index = {int(t): c for c, t in enumerate(ent)}

    def matrix(final: list[int]) -> np.ndarray | None:
        P = np.zeros((m, m))
        for j, p in enumerate(pos):
            t = index.get(final[p])
            if t is None:
                return None
            P[j, t] = 1.0
        return P.reshape(-1)

    def routings(count: int) -> tuple[list, list] | None:
        X, S = [], []
        for c in range(count):
            if c % 2:  # the signs of a random ordering of the tokens: a uniform permutation
                final, sig = net.route(rank=rng.permutation(n).astype(float))  # when free
            else:  # random signs: routings the orderings may not give
                sig = rng.choice((-1.0, 1.0), len(member))
                final, _ = net.route(sigma=sig, loose=rng.choice((-1.0, 1.0), len(net.loose)))
            P = matrix(final)
            if P is None:
                return None  # a token left the class: the argument does not hold
            X.append(P)
            S.append(sig)
        return X, S

    # NOTE: random signs give correlated routings (a token walks at random: a class of 12
    # in a row of 50, 2,440 of them spanned 121 of the 122 dimensions); half of the patterns
    # are those of random orderings. Collect until they span, then fit on a basis of them
    # (pivoted QR) and check on fresh ones
    target = (m - 1) ** 2 + 1
    X: list = []
    S: list = []
    batches = min(_BATCHES, max(1, _STEPS // (target * len(net.left))))
    for _ in range(batches):
        got = routings(target)
        if got is None:
            return None
        X += got[0]
        S += got[1]
        if np.linalg.matrix_rank(np.array(X)) >= target:
            break
    else:
        return None  # the routings do not span: <H, P> is not known everywhere
    from scipy.linalg import qr

    piv = qr(np.array(X).T, pivoting=True, mode="economic")[2]
    rest = np.setdiff1d(np.arange(len(X)), piv[:target])
    pick = np.concatenate([piv[:target], rng.permutation(rest)[:2 * m]]).astype(int)
    fresh = routings(_CHECKS)
    if fresh is None:
        return None
    fit = (np.array(X)[pick], np.array([block_value(A, K, bhat, S[i]) for i in pick]))
    check = (np.array(fresh[0]), np.array([block_value(A, K, bhat, s) for s in fresh[1]]))
    H = np.linalg.lstsq(fit[0], fit[1], rcond=None)[0]
    scale = column_scales(fit[1])  # NOTE: per coordinate (sort_block.column_scales)
    cols = np.max([np.max(np.abs(X @ H - Y), axis=0, initial=0.0) for X, Y in (fit, check)],
                  axis=0)
    err = float(np.max(cols, initial=0.0))
    if np.any(cols > 1e-9 * scale):
        return None
    complete = free and _full_rank(A, m)

    def value_of(rank: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        want = np.zeros(m * m)
        want[rank.astype(int) * m + np.arange(m)] = 1.0  # position rank[t] gets entry t
        if complete:  # the block's comparators sort the tokens by rank: exact value
            full = np.zeros(n)
            full[ent] = rank
            final, sig = net.route(rank=full)
            P = matrix(final)
            if P is not None and np.array_equal(P, want):
                return block_value(A, K, bhat, sig), sig
        return want @ H, None

    return SortOracle(H, value_of, m, err, complete)
