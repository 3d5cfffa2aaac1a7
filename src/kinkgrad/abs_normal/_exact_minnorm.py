"""The lower bound of :mod:`.minnorm` in exact rational arithmetic, for points near 0."""

from __future__ import annotations

import numpy as np

__all__ = ["exact_lower"]

_EXACT_SUPPORT = 40  # largest support re-solved in fractions


def exact_lower(g0: np.ndarray, bl: list, weights: list[np.ndarray]
                 ) -> tuple[float, np.ndarray] | None:
    """The support-function bound in exact rational arithmetic on the float data.

    Near a minimiser the minimum norm is far below the candidates' size (a max of three
    gradients of norm 40 whose hull passes within 3e-7 of 0), and any float point carries an
    absolute error ~ eps max|v| from cancellation, which swamps <v_j, u> - |p|. Here the
    minimum norm on the solver's support is re-solved exactly (the KKT system of the
    equality-constrained least-squares problem, in fractions); when its weights stay >= 0
    its point p is the exact minimiser over the hull of those candidates, and
    min_c <c, p> / |p| over all candidates is evaluated exactly. A margin covers the rounding
    of the data itself (the distance is 1-Lipschitz in the candidates). Returns the bound and
    the unit vector p / |p| (rounded once: accurate to eps, unlike a float point formed with
    cancellation), or None when inconclusive."""
    from fractions import Fraction

    n = g0.size
    supp = []  # (block, column indices, candidate row as fractions on all columns used)
    for b, ((cols, V), w) in enumerate(zip(bl, weights)):
        for j in np.flatnonzero(w > 1e-9 * max(float(w.max()), 1e-300)):
            supp.append((b, cols, V[j]))
    if len(supp) > _EXACT_SUPPORT:
        return None
    F = Fraction
    base: dict[int, Fraction] = {i: F(float(v)) for i, v in enumerate(g0) if v != 0}
    rows = [{int(c): F(float(v)) for c, v in zip(cols, r) if v != 0} for _, cols, r in supp]

    def dot(a: dict, b: dict) -> Fraction:
        if len(a) > len(b):
            a, b = b, a
        return sum((v * b[k] for k, v in a.items() if k in b), F(0))

    k, B = len(supp), len(bl)
    size = k + B
    M = [[F(0)] * (size + 1) for _ in range(size)]
    for i in range(k):
        for j in range(i, k):
            M[i][j] = M[j][i] = dot(rows[i], rows[j])
        M[i][k + supp[i][0]] = M[k + supp[i][0]][i] = F(1)
        M[i][size] = -dot(rows[i], base)
    for b in range(B):
        M[k + b][size] = F(1)
    sol = _solve_exact(M)
    if sol is None or any(v < 0 for v in sol[:k]):
        return None
    P = dict(base)
    for lam, r in zip(sol[:k], rows):
        for c, v in r.items():
            P[c] = P.get(c, F(0)) + lam * v
    norm2 = sum((v * v for v in P.values()), F(0))
    if norm2 == 0:
        return None
    num = dot(base, P)
    for cols, V in bl:
        num += min(dot({int(c): F(float(v)) for c, v in zip(cols, r) if v != 0}, P) for r in V)
    root = float(norm2) ** 0.5
    lower = float(num) / root
    big = max(float(np.max(np.abs(g0))), max(float(np.max(np.abs(V))) for _, V in bl))
    u = np.zeros(n)
    for c, v in P.items():
        u[c] = float(v / F(root))
    return max(0.0, lower - 64 * np.finfo(np.float64).eps * big * (len(bl) + 1) * n ** 0.5), u


def _solve_exact(M: list[list]) -> list | None:
    """Gauss-Jordan elimination in fractions on the augmented matrix M (None: singular)."""
    size = len(M)
    for col in range(size):
        piv = next((r for r in range(col, size) if M[r][col] != 0), None)
        if piv is None:
            return None
        M[col], M[piv] = M[piv], M[col]
        p = M[col][col]
        M[col] = [v / p for v in M[col]]
        for r in range(size):
            if r != col and M[r][col] != 0:
                fac = M[r][col]
                M[r] = [a - fac * b for a, b in zip(M[r], M[col])]
    return [M[r][size] for r in range(size)]
