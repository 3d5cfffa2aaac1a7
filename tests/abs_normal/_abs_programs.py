"""Random small abs-smooth programs (hypothesis) and brute-force oracles for the tests.

Programs are scalar DAGs over x in R^n built from every nonsmooth primitive with an abs form
(relu, abs, leaky_relu, maximum, minimum, clip, max/min over a stack, sort, norm 1 and inf,
hinge written with relu) and linear combinations. Inputs and coefficients live on a dyadic
grid, so floating-point sums are exact, kinks are hit exactly and the programs are
piecewise linear: one-sided finite differences with a small step are exact up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import kinkgrad.numpy as knp

GRID = [-1.0, -0.5, 0.0, 0.5, 1.0]
COEF = [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]
OPS = ["lin", "relu", "abs", "leaky", "maximum", "minimum", "clip", "max3", "min3", "sort",
       "norm1", "norminf", "hinge"]


@dataclass
class Prog:
    n: int
    x: np.ndarray
    ops: list
    weights: list

    def __call__(self, x: Any) -> Any:
        v = [x[i] for i in range(self.n)]
        for kind, a, c in self.ops:
            v.append(_apply(kind, [v[i] for i in a], c))
        out = None
        for w, val in zip(self.weights, v[self.n:]):
            out = w * val if out is None else out + w * val
        return out


def _apply(kind: str, a: list, c: list) -> Any:
    u = c[0] * a[0] + c[1] * a[1]
    three = [c[0] * a[0], c[1] * a[1], c[2] * a[2]]
    if kind == "lin":
        return u
    if kind == "relu":
        return knp.relu(u)
    if kind == "abs":
        return knp.abs(u)
    if kind == "leaky":
        return knp.leaky_relu(u, 0.25)
    if kind == "maximum":
        return knp.maximum(three[0], three[1])
    if kind == "minimum":
        return knp.minimum(three[0], three[1])
    if kind == "clip":
        return knp.clip(u, -0.5, 0.5)
    if kind == "max3":
        return knp.max(knp.stack(three))
    if kind == "min3":
        return knp.min(knp.stack(three))
    if kind == "sort":
        return knp.sum(knp.sort(knp.stack(three)) * np.array([1.0, -2.0, 0.5]))
    if kind == "norm1":
        return knp.linalg.norm(knp.stack(three), ord=1)
    if kind == "norminf":
        return knp.linalg.norm(knp.stack(three), ord=np.inf)
    if kind == "hinge":
        return knp.relu(0.5 - u)
    raise ValueError(kind)


@st.composite
def programs(draw: Any, n_max: int = 3, ops_max: int = 5, grid: list | None = None) -> Prog:
    """A random program and its point (entries from ``grid``, default ``GRID``; {0, +-1/2}
    puts more of the ops on their kinks)."""
    n = draw(st.integers(1, n_max))
    x = np.array(draw(st.lists(st.sampled_from(grid or GRID), min_size=n, max_size=n)))
    ops = []
    for k in range(draw(st.integers(1, ops_max))):
        kind = draw(st.sampled_from(OPS))
        args = draw(st.lists(st.integers(0, n + k - 1), min_size=3, max_size=3))
        coefs = draw(st.lists(st.sampled_from(COEF), min_size=3, max_size=3))
        ops.append((kind, args, coefs))
    weights = draw(st.lists(st.sampled_from(COEF), min_size=len(ops), max_size=len(ops)))
    return Prog(n, x, ops, weights)


# ---------------------------------------------------------------------------- oracles
def fd_gradient(f: Any, y: np.ndarray, h: float) -> np.ndarray | None:
    """Forward and backward differences per coordinate; None when they disagree (a kink
    within h of y)."""
    f0 = float(f(y))
    g = np.zeros(y.size)
    for i in range(y.size):
        e = np.zeros(y.size)
        e[i] = h
        fwd = (float(f(y + e)) - f0) / h
        bwd = (f0 - float(f(y - e))) / h
        if abs(fwd - bwd) > 1e-5 * (1 + abs(fwd)):
            return None
        g[i] = 0.5 * (fwd + bwd)
    return g


def unit_directions(n: int, count: int) -> np.ndarray:
    """Evenly spread unit directions: +-1 (n = 1), a fine circle (n = 2), a Fibonacci sphere
    (n = 3)."""
    if n == 1:
        return np.array([[1.0], [-1.0]])
    if n == 2:
        t = (np.arange(count) + 0.37) * 2 * np.pi / count
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    i = np.arange(count) + 0.5
    phi = np.arccos(1 - 2 * i / count)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def brute_gradients(f: Any, x: np.ndarray, count: int = 720, eps: float = 1e-5,
                    h: float = 1e-9, tol: float = 1e-4) -> np.ndarray:
    """Distinct gradients (up to tol) at points x + eps u next to x, by finite differences.
    It misses thin cones (2% of the programs with x in {0, +-1/2}^3 and 6 ops); the random
    programs' exact truth is ``_exact_pl.limiting_gradients``."""
    found: list[np.ndarray] = []
    for u in unit_directions(x.size, count):
        g = fd_gradient(f, x + eps * u, h)
        if g is not None and not any(np.max(np.abs(g - q)) <= tol for q in found):
            found.append(g)
    return np.array(found)


def same_sets(A: np.ndarray, B: np.ndarray, tol: float = 1e-4) -> bool:
    """Every row of A is within tol (max norm) of a row of B and vice versa."""
    A, B = np.atleast_2d(A), np.atleast_2d(B)

    def covered(P: np.ndarray, Q: np.ndarray) -> bool:
        return all(len(Q) and np.min(np.max(np.abs(Q - p), axis=1)) <= tol for p in P)

    return covered(A, B) and covered(B, A)
