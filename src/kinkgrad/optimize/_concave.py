"""Leaving a Clarke-stationary point on a concave kink.

``stationarity`` decides Clarke stationarity: 0 in the (ball's) Clarke subdifferential.
That is necessary for a local minimiser, not sufficient, and it is weakest at a concave
kink: f = phi + lambda_k ||w_k|| with lambda_k < 0 (f = x^2 - |x| at 0, a ReLU before a
negative weight, the -||x||_2 of a difference-of-convex penalty). There, for a direction d
that keeps the other kinks at x unchanged to first order and moves w_k,
f'(x; d) + f'(x; -d) = 2 lambda_k ||J_k d|| < 0, so f falls along d or -d: the point is
stationary and no minimiser. Gradient sampling, which samples gradients in a ball, stops
at such points by design (sum(x^2 - |x|) from x0 = 0: x = 0, f = 0; the minimisers have
f = -n/4).

At a certified end point, :func:`concave_escape` looks for such kinks among the Euclidean
norms and kinks seen as norms (:mod:`kinkgrad.abs_normal.kinks_as_norms`) within the
verdict's radius. For each of up to 200 (most negative lambda_k first) d_k is the
least-norm direction with J_j d_k = 0 for the other zero groups and (J_k d_k)_1 = 1; one
step of 1e-6 (1 + ||x||_inf) each way picks the side where f falls, and the sum of the
chosen sides is followed with steps growing tenfold while f falls (the kinks of a separable
sum(x^2 - |x|) at 0 leave together, not one restart each). A point where f is lower beyond
its rounding is proof enough that x is no local minimiser, and :func:`kinkgrad.minimize`
runs its method again from there. Nothing is claimed where none is found (a concave kink
whose row is a combination of the others', as -||x||_2 beside ||x||_1 at 0, where 0 is
the minimiser).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from ..abs_normal.minimality import MinimalityReport, minimality
from ..abs_normal.stationarity import StationarityReport
from ..abs_normal.zero_norms import Balls
from ..errors import KinkgradError
from ._norm_groups import zero_groups
from .oracle import BudgetExhausted, Oracle

__all__ = ["concave_escape", "descent_escape"]

_DENSE_ENTRIES = 20_000_000  # the zero groups' rows times n up to which lstsq is dense
_TRIES = 200  # concave groups tried, most negative lambda_k first
_PROBE = 1e-6  # the step (times 1 + ||x||_inf) at which each direction's side is chosen


def concave_escape(oracle: Oracle, x: np.ndarray, fx: float, radius: float
                   ) -> tuple[np.ndarray, float] | None:
    """(a point, f there) with f lower than ``fx`` beyond rounding, reached from x along
    concave kinks' directions (module docstring), or None."""
    if not oracle.norm_steps:
        return None
    try:
        balls = zero_groups(oracle, x, max(radius, 1e-12))
        if balls is None or not np.any(balls.lam < 0):
            return None
        limit = fx - oracle.allowance(fx)
        scale = 1.0 + float(np.max(np.abs(x), initial=0.0))
        signed = []  # NOTE: each kink's side by one step each way; then all at once
        for d in _directions(balls, x.size):
            fp, fm = oracle.value(x + _PROBE * scale * d), oracle.value(x - _PROBE * scale * d)
            if min(fp, fm) < limit:
                signed.append(d if fp <= fm else -d)
        if not signed:
            return None
        d = np.sum(signed, axis=0)
        return _follow(oracle, x, fx, d / np.linalg.norm(d))
    except (KinkgradError, BudgetExhausted, np.linalg.LinAlgError):
        return None


def descent_escape(oracle: Oracle, x: np.ndarray, fx: float, radius: float, tol: float,
                   known: StationarityReport | None = None
                   ) -> tuple[tuple[np.ndarray, float] | None, MinimalityReport | None]:
    """(a point with f lower than ``fx`` beyond rounding, or None; the report) of
    :func:`kinkgrad.minimality` at x (one gradient-type call): where it gives a descent
    direction ("not minimal": a Clarke-stationary point from which f provably falls, its
    kinks need not be norms nor their rows independent; or "undecided" at a radius, where f
    rises first along it and then falls beyond rounding), steps along it growing tenfold
    from 1e-6 (1 + ||x||_inf) while f falls. ``known``: the verdict's report at x (reused)."""
    try:
        rep = oracle.counted(minimality, x, radius=radius, tol=tol, _known=known)
    except BudgetExhausted:  # NOTE: maxfev leaves no call for the check
        return None, None
    if rep is not None:
        oracle.cost += rep.num_active  # NOTE: its model's rows, as a stationarity test's
    if rep is None or rep.descent is None:  # NOTE: "not minimal", or "undecided" where f
        return None, rep  # rises first along d, then falls beyond rounding
    try:
        return _follow(oracle, x, fx, oracle.spec.from_tree(rep.descent, "minimize")), rep
    except (KinkgradError, BudgetExhausted, np.linalg.LinAlgError):
        return None, rep


def _follow(oracle: Oracle, x: np.ndarray, fx: float, d: np.ndarray
            ) -> tuple[np.ndarray, float] | None:
    """The last of the steps x + t d, t = 1e-6 (1 + ||x||_inf) growing tenfold up to
    1 + ||x||_inf while f falls, when f there is below fx beyond rounding; else None."""
    scale = 1.0 + float(np.max(np.abs(x), initial=0.0))
    t, best = _PROBE * scale, (x, fx)
    while t <= scale:  # NOTE: steps growing tenfold while f falls
        y = x + t * d
        fy = oracle.value(y)
        if not fy < best[1]:
            break
        best, t = (y, fy), 10.0 * t
    return best if best[1] < fx - oracle.allowance(fx) else None


def _directions(balls: Balls, n: int) -> list[np.ndarray]:
    """For up to 200 concave groups k (lambda_k < 0, most negative first), the unit
    least-norm d_k with J_j d_k = 0 for every other group j and (J_k d_k)_1 = 1 (a column
    of the pseudo-inverse of the stacked rows); none for a k whose first row is a
    combination of the others' (no direction moves it alone). Beyond 2e7 entries of the
    rows, from one sparse LU of A A^T (fewer rows than n; d = A^T (A A^T)^-1 e_k) or of
    A^T A (d = (A^T A)^-1 A^T e_k), none where that matrix is singular."""
    starts = np.r_[0, np.cumsum(balls.dims)[:-1]]
    concave = [int(k) for k in np.argsort(balls.lam)[:_TRIES] if balls.lam[k] < 0]
    A = balls.rows
    E = np.zeros((A.shape[0], len(concave)))
    E[starts[concave], np.arange(len(concave))] = 1.0
    if A.shape[0] * n <= _DENSE_ENTRIES:
        D = np.linalg.lstsq(A.toarray(), E, rcond=None)[0]
    else:
        A = sparse.csr_matrix(A)
        wide = A.shape[0] <= n
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", sparse_linalg.MatrixRankWarning)
                lu = sparse_linalg.splu(sparse.csc_matrix(A @ A.T if wide else A.T @ A))
                D = A.T @ lu.solve(E) if wide else lu.solve(np.asarray(A.T @ E))
        except (RuntimeError, sparse_linalg.MatrixRankWarning, MemoryError):
            return []
    out = []
    for j in range(len(concave)):
        d = D[:, j]
        size = float(np.linalg.norm(d))
        if size and np.linalg.norm(A @ d - E[:, j]) <= 1e-8 * max(1.0, size):
            out.append(d / size)
    return out
