"""Test functions with known minimizers and an independent stationarity check (shared by the
optimizer tests): a min-norm computed with SciPy's NNLS from gradients sampled around x."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

import kinkgrad
import kinkgrad.numpy as knp

C3 = np.array([1.0, -2.0, 0.5])


def hull_min_norm(G: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bounds on min ||G^T lam|| over the unit simplex, by Lawson and Hanson's
    least-distance programming: the NNLS solution u of [G^T; 1^T] u ~ (0, 1) is a multiple
    of the optimal weights. upper is the norm of the hull element it gives; lower is
    min_i <G_i, v> along that element's unit vector v (every hull element c has
    <c, v> >= lower, hence ||c|| >= lower)."""
    k, n = G.shape
    u, _ = nnls(np.vstack([G.T, np.ones((1, k))]), np.r_[np.zeros(n), 1.0], maxiter=50 * k)
    g = G.T @ (u / u.sum())
    upper = float(np.linalg.norm(g))
    lower = max(0.0, float(np.min(G @ (g / upper)))) if upper > 0 else 0.0
    return lower, upper


def sampled_min_norm(f, x: np.ndarray, radius: float, k: int = 300, seed: int = 7
                     ) -> tuple[float, float]:
    """Bounds on the min-norm of the hull of gradients at k random points of the ball of the
    given radius around x (uniform in the ball; plain kinkgrad.grad there)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((k, x.size))
    u *= (rng.random((k, 1)) ** (1.0 / x.size)) / np.linalg.norm(u, axis=1, keepdims=True)
    G = np.array([np.asarray(kinkgrad.grad(f)(x + radius * ui), np.float64) for ui in u])
    return hull_min_norm(G)


def l1(x):
    return knp.sum(knp.abs(x - C3))


def linf(x):
    return knp.max(knp.abs(x - C3))


# max of the squared distances to the vertices of an equilateral triangle centred at 0: the
# minimizer is the centre (the circumcentre of an acute triangle), f* = 1.
TRI = np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])


def max_quad(x):
    return knp.max(knp.sum((x[None, :] - TRI) ** 2, axis=1))


def rosen_abs(x):
    return 8.0 * knp.abs(x[0] ** 2 - x[1]) + (1.0 - x[0]) ** 2


