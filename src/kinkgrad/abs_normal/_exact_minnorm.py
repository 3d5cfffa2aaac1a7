"""The lower bound of :mod:`.minnorm` in exact rational arithmetic, for points near 0."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["exact_lower"]

_EXACT_SUPPORT = 40  # largest support re-solved in fractions
_REFINED_SUPPORT = 5000  # largest support re-solved by refinement
_REFINEMENTS = 4


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
    cancellation), or None when inconclusive.

    Supports of more than 40 candidates (up to 5,000) are solved by :func:`_refined`
    instead: the float least-squares solve, refined with residuals computed exactly. Its
    point is the minimiser over the support's affine hull to far below rounding (not
    exactly), and its weights may be negative; the bound stays exact and valid, since
    min_c <c, u> <= dist(0, C) for *every* unit vector u."""
    n = g0.size
    supp = []  # (block, column indices, candidate row as fractions on all columns used)
    for b, ((cols, V), w) in enumerate(zip(bl, weights)):
        for j in np.flatnonzero(w > 1e-9 * max(float(w.max()), 1e-300)):
            supp.append((b, cols, V[j]))
    if len(supp) > _REFINED_SUPPORT:
        return None
    F = Fraction
    base: dict[int, Fraction] = {i: F(float(v)) for i, v in enumerate(g0) if v != 0}
    rows = [{int(c): F(float(v)) for c, v in zip(cols, r) if v != 0} for _, cols, r in supp]
    owner = [b for b, _, _ in supp]
    if len(supp) > _EXACT_SUPPORT:
        lams = _refined(base, rows, owner, n)
        if lams is None:
            return None
    else:
        lams = _kkt_exact(base, rows, owner, len(bl))
        if lams is None or any(v < 0 for v in lams):
            return None
    P = _point(base, rows, lams)
    norm2 = sum((v * v for v in P.values()), F(0))
    if norm2 == 0:
        return None
    num = _dot(base, P)
    for cols, V in bl:
        num += min(_dot({int(c): F(float(v)) for c, v in zip(cols, r) if v != 0}, P) for r in V)
    root = float(norm2) ** 0.5
    lower = float(num) / root
    big = max(float(np.max(np.abs(g0))), max(float(np.max(np.abs(V))) for _, V in bl))
    u = np.zeros(n)
    for c, v in P.items():
        u[c] = float(v / F(root))
    return max(0.0, lower - 64 * np.finfo(np.float64).eps * big * (len(bl) + 1) * n ** 0.5), u


def _dot(a: dict, b: dict) -> Fraction:
    if len(a) > len(b):
        a, b = b, a
    return sum((v * b[k] for k, v in a.items() if k in b), Fraction(0))


def _point(base: dict, rows: list[dict], lams: list) -> dict:
    """base + sum_i lams[i] rows[i], exactly (sparse vectors as dicts column -> Fraction)."""
    P = dict(base)
    for lam, r in zip(lams, rows):
        for c, v in r.items():
            P[c] = P.get(c, Fraction(0)) + lam * v
    return P


def _kkt_exact(base: dict, rows: list[dict], owner: list[int], B: int) -> list | None:
    """Weights of the minimum-norm point of base + sum_b aff(rows of block b): the KKT system
    of the equality-constrained least-squares problem, solved in fractions."""
    F = Fraction
    k = len(rows)
    size = k + B
    M = [[F(0)] * (size + 1) for _ in range(size)]
    for i in range(k):
        for j in range(i, k):
            M[i][j] = M[j][i] = _dot(rows[i], rows[j])
        M[i][k + owner[i]] = M[k + owner[i]][i] = F(1)
        M[i][size] = -_dot(rows[i], base)
    for b in range(B):
        M[k + b][size] = F(1)
    sol = _solve_exact(M)
    return None if sol is None else sol[:k]


def _refined(base: dict, rows: list[dict], owner: list[int], n: int) -> list | None:
    """Weights (exact dyadic fractions, summing to 1 per block) of a point of base +
    sum_b aff(rows of block b) that is its minimum-norm point to far below rounding.

    Each block's weights are e_first + sum_j y_j (e_j - e_first); y solves the float
    least-squares problem, and each refinement solves it again for the residual
    base + sum lam_i rows_i computed *exactly*, so the error shrinks by about cond * eps
    per step instead of stalling at eps |rows| (the size of a float residual's cancellation
    error, which the direction of a point ~1e-8 from 0 cannot afford)."""
    import scipy.sparse as sp

    from ._affine_lsq import affine_least_squares

    F = Fraction
    first: dict[int, int] = {}
    for i, b in enumerate(owner):
        first.setdefault(b, i)
    others = [i for i in range(len(rows)) if first[owner[i]] != i]
    lams = [F(0)] * len(rows)
    for i in first.values():
        lams[i] = F(1)
    if not others:
        return lams
    ri, ci, vi = [], [], []
    for j, i in enumerate(others):
        f = rows[first[owner[i]]]
        for c in set(rows[i]) | set(f):
            ri.append(c)
            ci.append(j)
            vi.append(float(rows[i].get(c, 0)) - float(f.get(c, 0)))
    M = sp.csr_matrix((vi, (ri, ci)), shape=(n, len(others)))
    for _ in range(_REFINEMENTS):
        P = _point(base, rows, lams)
        r = np.zeros(n)
        for c, v in P.items():
            r[c] = float(v)
        y = affine_least_squares(M, -r)
        if not np.all(np.isfinite(y)):
            return None
        for j, i in enumerate(others):
            d = F(float(y[j]))
            lams[i] += d
            lams[first[owner[i]]] -= d
        if float(np.max(np.abs(y))) <= 1e-30:
            break
    return lams


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
