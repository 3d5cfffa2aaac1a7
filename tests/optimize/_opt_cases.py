"""Test functions with known minimizers and an independent stationarity check (shared by the
optimizer tests): a min-norm computed by least-distance programming (SciPy's BVLS, see
``_least_distance``) from gradients sampled around x."""

from __future__ import annotations

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp
from _least_distance import least_distance_weights

C3 = np.array([1.0, -2.0, 0.5])


def hull_min_norm(G: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bounds on min ||G^T lam|| over the unit simplex, by Lawson and Hanson's
    least-distance programming (:func:`_least_distance.least_distance_weights`). upper is the
    norm of the hull element it gives; lower is min_i <G_i, v> along that element's unit vector
    v (every hull element c has <c, v> >= lower, hence ||c|| >= lower)."""
    g = G.T @ least_distance_weights(G)
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




def mifflin2_clarke_distance(x: np.ndarray, on_kink: float) -> tuple[float, int]:
    """(distance from 0 to the Clarke set, number of terms on their kinks) of chained Mifflin 2,
    f = sum_i -a_i + 2 q_i + 1.75 |q_i|, q_i = a_i^2 + b_i^2 - 1, (a_i, b_i) = (x_i, x_(i+1)),
    with the terms |q_i| <= on_kink taken as kinks: the zonotope g + sum_i t_i 1.75 grad q_i
    (|t_i| <= 1) of hand-derived gradients, its distance by SciPy's bounded least squares."""
    import scipy.sparse as sp
    from scipy.optimize import lsq_linear

    a, b = x[:-1], x[1:]
    q = a ** 2 + b ** 2 - 1
    kink = np.abs(q) <= on_kink
    i, k = np.arange(x.size - 1), np.flatnonzero(kink)
    side = 1.75 * np.where(kink, 0.0, np.sign(q))  # the smooth terms' |q_i| slope
    g = (np.bincount(i, -1.0 + (4 + 2 * side) * a, minlength=x.size)
         + np.bincount(i + 1, (4 + 2 * side) * b, minlength=x.size))
    cols = np.tile(np.arange(k.size), 2)
    D = sp.csr_matrix((3.5 * np.r_[a[k], b[k]], (np.r_[k, k + 1], cols)), shape=(x.size, k.size))
    t = lsq_linear(D, -g, bounds=(-1, 1), method="trf", tol=1e-15, lsmr_tol=1e-15).x
    return float(np.linalg.norm(g + D @ t)), int(k.size)


def max_affine_quad(n: int, seed: int):
    """max_i (a_i . x + c_i) + 1/2 ||Q x||^2 with Q Gaussian / sqrt(n) (ill-conditioned
    Q^T Q), and f* from SciPy's SLSQP on the epigraph form min t + 1/2 ||Q x||^2,
    A x + c <= t (an independent solver)."""
    from scipy.optimize import minimize as sp_minimize

    rng = np.random.default_rng(seed)
    A, c = rng.standard_normal((4, n)), rng.standard_normal(4)
    Q = rng.standard_normal((n, n)) / np.sqrt(n)
    H = Q.T @ Q

    def epi(v):
        return v[n] + 0.5 * v[:n] @ H @ v[:n]

    def epi_grad(v):
        return np.concatenate([H @ v[:n], [1.0]])

    x0 = rng.standard_normal(n)
    cons = {"type": "ineq", "fun": lambda v: v[n] - A @ v[:n] - c,
            "jac": lambda v: np.hstack([-A, np.ones((4, 1))])}
    v0 = np.concatenate([x0, [np.max(A @ x0 + c)]])
    sol = sp_minimize(epi, v0, jac=epi_grad, constraints=[cons], method="SLSQP",
                      options={"ftol": 1e-15, "maxiter": 2000})
    xs = sol.x[:n]
    f_star = float(np.max(A @ xs + c) + 0.5 * xs @ H @ xs)

    def f(x):
        return knp.max(A @ x + c) + 0.5 * knp.sum((Q @ x) ** 2)

    return f, x0, f_star, H
