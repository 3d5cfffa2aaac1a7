"""Depth-first enumeration of the realised signatures of the active switches.

The enumeration is a depth-first search over the active switches in program order (which is
topological: switch i depends only on the |z_j| of j < i). At depth i the rows of switches
0..i are known from sigma_0..sigma_{i-1}, and one LP decides whether the partial signature
is realised; an unrealised partial signature prunes its whole subtree. The LP solution d of
a node also realises one of its two children for free (the side d itself enters), so each
internal node costs at most one LP. The number of realised signatures can be exponential in
the number of active switches (deciding whether there are two distinct Clarke gradients is
NP-hard, paper A); ``limit`` caps the enumeration.

Unrealised partial signatures recur under many prefixes; the Gordan certificate (the LP's
duals) of one infeasible LP rejects every later one containing the same rows without an LP
(:mod:`.gordan`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .active import ActiveModel
from .gordan import GordanCache, row_key
from .lp import ZERO_ROW, row_norm, row_norms
from .realise import realised

__all__ = ["enumerate_signatures"]


def enumerate_signatures(model: ActiveModel, limit: int, seed: int = 0,
                         stop: Callable[[np.ndarray], bool] | None = None
                         ) -> tuple[list[np.ndarray], np.ndarray, bool, int]:
    """Depth-first enumeration of the realised signatures of the active switches.

    Returns (signatures, their selection gradients as a (k, n) array, complete, number of
    LPs). Entries of a signature are +-1, or 0 where the switch's derivative row vanishes on
    the piece (its sign cannot change the gradient). A gradient is g0 + (sigma * bhat) W
    with W = (I - K Sigma)^{-1} A, whose rows the search has formed by then.

    Unrealised partial signatures are recognised by the Gordan certificates of earlier
    infeasible LPs where one applies (:mod:`.gordan`), and only the others cost an LP.

    ``stop``: called with the gradients found so far once there are 16, 32, 64, ... of
    them; True ends the search there (reported incomplete), e.g. once a vector lies in
    their hull (``in_clarke``'s answer True is then proven)."""
    m, n = model.m, model.spec.n
    A, K = model.A, model.K
    g0, bhat = np.asarray(model.g0, np.float64).reshape(-1), model.bhat
    grads: list[np.ndarray] = []
    norms_A, norms_W = row_norms(A), np.zeros(m)  # NOTE: each row against its own terms
    sigma = np.zeros(m)
    W = np.zeros((m, n))
    U = np.zeros((m, n))  # unit rows, and their keys for either sign (:mod:`.gordan`)
    keys: list[tuple[bytes, bytes]] = [(b"", b"")] * m
    certificates = GordanCache()
    d0 = np.random.default_rng(seed).standard_normal(n)
    found: list[np.ndarray] = []
    lps, check, failed = 0, 16, False
    if m == 0:
        return [sigma], g0.reshape(1, n).copy(), True, 0
    # frame: [i, d, options]; options: list of (sign, direction or None: needs an LP)
    stack: list[list] = [[0, d0, None]]
    while stack:
        frame = stack[-1]
        i, d, options = frame
        if options is None:
            W[i] = A[i] + (K[i, :i] * sigma[:i]) @ W[:i]
            terms = norms_A[i] + np.abs(K[i, :i] * sigma[:i]) @ norms_W[:i]
            norms_W[i] = row_norm(W[i])
            if not norms_W[i] > ZERO_ROW * terms:  # NOTE: lp.nonzero_rows, inline
                options = [(0.0, d)]
            else:
                U[i] = W[i] / norms_W[i]
                keys[i] = (row_key(U[i]), row_key(-U[i]))
                v = float(W[i] @ d)
                clear = abs(v) > 1e-9 * np.linalg.norm(W[i]) * np.linalg.norm(d)
                first = np.sign(v) if clear else 1.0
                options = [(first, d if clear else None), (-first, None)]
            frame[2] = options
        if not options:
            sigma[i] = 0.0
            stack.pop()
            continue
        s, child = options.pop(0)
        sigma[i] = s
        if child is None:
            rows = np.flatnonzero(sigma[: i + 1] != 0)
            R = sigma[rows, None] * U[rows]
            signed = [keys[j][0] if sigma[j] > 0 else keys[j][1] for j in rows]
            if certificates.refutes(signed, R):
                continue
            lps += 1
            entered, child = realised(R)
            if not entered:
                if entered is False:  # a certificate: the rows cancel (:mod:`.realise`)
                    certificates.learn(signed, R, child)
                else:  # NOTE: undecided (rows nearly dependent) or a failed LP: the list
                    failed = True  # may miss this subtree
                continue
        if i + 1 == m:
            found.append(sigma.copy())
            grads.append(g0 + (sigma * bhat) @ W)
            if len(found) >= limit:
                return found, np.array(grads), False, lps
            if stop is not None and len(found) >= check:
                check *= 2
                if stop(np.array(grads)):
                    return found, np.array(grads), False, lps
            continue
        stack.append([i + 1, child, None])
    return found, np.array(grads).reshape(len(found), n), not failed, lps
