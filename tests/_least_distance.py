"""The tests' least-distance truth: min ||G^T lam|| over the unit simplex (the distance from 0
to the hull of the rows of G), by Lawson and Hanson's reduction to nonnegative least squares,
[G^T; 1^T] u ~ (0, 1) with u >= 0, whose solution is a multiple of the optimal weights.

The reduction is solved by SciPy's BVLS (``lsq_linear``), not ``nnls``: the nnls rewritten
for SciPy 1.15 returns suboptimal points (scipy/scipy#25389); on 1.15.3, the last SciPy for
Python 3.10, 93 of 2,000 random reductions failed the optimality test below and three
tests of the sort ties took its wrong distances for truth.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear


def least_distance_weights(G: np.ndarray) -> np.ndarray:
    """Weights lam on the unit simplex with G^T lam the point of the rows' hull nearest 0."""
    k, n = G.shape
    E = np.vstack([G.T, np.ones((1, k))])
    u = lsq_linear(E, np.r_[np.zeros(n), 1.0], bounds=(0.0, np.inf), method="bvls",
                   tol=1e-14, max_iter=50 * k + 100).x
    return u / u.sum()


def hull_min_norm(G: np.ndarray, check: bool = True) -> float:
    """min ||G^T lam|| over the simplex; with ``check``, asserts the optimality condition
    (g = G^T lam is nearest iff <G_i, g> >= ||g||^2 for every row i) to 1e-9 of the data."""
    g = G.T @ least_distance_weights(G)
    if check:
        scale = 1.0 + float(np.max(np.abs(G))) ** 2
        assert float(np.min(G @ g)) >= float(g @ g) - 1e-9 * scale, "least distance not optimal"
    return float(np.linalg.norm(g))


def exact_hull_min_norm(G: np.ndarray) -> float:
    """The same by Caratheodory: the minimiser lies in the hull of at most n + 1 points, so
    the best affine-hull projection over all such subsets with nonnegative weights is it
    (small k only; an independent, exact method)."""
    from itertools import combinations

    G = np.unique(np.round(G, 12), axis=0)
    k, n = G.shape
    best = min(float(np.linalg.norm(g)) for g in G)
    for size in range(2, min(k, n + 1) + 1):
        for idx in combinations(range(k), size):
            P = G[list(idx)]
            M = (P[1:] - P[0]).T
            y = np.linalg.lstsq(M, -P[0], rcond=None)[0]
            lam = np.r_[1 - y.sum(), y]
            if np.all(lam >= -1e-12):
                best = min(best, float(np.linalg.norm(P[0] + M @ y)))
    return best
