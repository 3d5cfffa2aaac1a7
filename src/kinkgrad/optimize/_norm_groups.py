"""What the finishing steps at Euclidean norms share (:mod:`._norm_finish`,
:mod:`._norm_prox`): the norm groups of the program at a point, their values, and
forward-difference Hessians and KKT solves of f with groups frozen."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from ..abs_normal._flat import FlatSpec, scalar_output
from ..abs_normal.stationarity import StationarityReport
from ..abs_normal.zero_norms import Balls, group_values, split_zero_norms
from .common import CONVERGED, MethodResult
from .oracle import Oracle

__all__ = ["better", "certified", "chosen_key", "coordinate_roots", "coordinate_rows",
           "differences", "fd_columns", "fd_hessian", "group_inputs", "group_norms", "kkt",
           "members", "psd_part", "regroup", "step_size", "zero_groups"]


def certified(oracle: Oracle, x: np.ndarray, fx: float, nit: int, radius: float, tol: float,
              message: str, steps: str, path: list[float]
              ) -> tuple[MethodResult, StationarityReport] | None:
    """(the converged result, its verdict) where the test certifies x at ``radius``, else
    None; the message appends "Then {steps}: stationarity certified ...". ``path`` holds f
    after each step taken: the history records them when certified (one entry per
    iteration counted in ``nit``). The best uncertified x so far (:func:`better`) is kept in
    ``oracle.finish_best`` (:func:`._norm_finish.best_uncertified`)."""
    rep = oracle.stationarity(x, radius, tol)
    if rep.verdict != "stationary":
        best = oracle.finish_best
        if best is None or better(oracle, fx, rep.distance, best[1], best[4]):
            oracle.finish_best = (x.copy(), fx, steps, list(path), rep.distance)
        return None
    for value in path:
        oracle.record(value)
    return MethodResult(x, fx, nit, CONVERGED, f"{message} Then {steps}: stationarity "
                        f"certified at radius {radius:.3g}.", radius), rep


def better(oracle: Oracle, f1: float, d1: float, f0: float, d0: float) -> bool:
    """Whether a point with f = f1 and stationarity distance d1 beats one with (f0, d0):
    f lower beyond its rounding, or not higher beyond it and a smaller distance (where f
    cannot rank the points: a float32 x's zero groups landed against a point ~1e-10 off
    them, distance 0.1)."""
    allowance = oracle.allowance(f0)
    return f1 < f0 - allowance or (f1 <= f0 + allowance and d1 < d0)


def chosen_key(chosen: dict) -> tuple:
    """A hashable key of a choice of groups (norm equation -> output entries)."""
    return tuple((k, v.tobytes()) for k, v in chosen.items())


def coordinate_rows(J: np.ndarray | sp.spmatrix) -> tuple[np.ndarray, np.ndarray] | None:
    """(columns, coefficients) when every row of J has one nonzero, in distinct columns (a
    group lasso's groups: w_r = v x_c + const), else None."""
    S = sp.csr_matrix(J, copy=True)
    S.eliminate_zeros()
    if not np.all(np.diff(S.indptr) == 1) or np.unique(S.indices).size != S.shape[0]:
        return None
    return S.indices.astype(np.intp), S.data.astype(np.float64)


def coordinate_roots(J: sp.spmatrix, w: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """Where every row of J is one coordinate's (w_r = v x_c + const; a column may hold
    several rows, as a sparse group lasso's l1 and group terms): (the columns, the step
    dx_c = -w_r / v of each column's first row, whether every row on a column agrees with
    it to 1e-12); else None."""
    S = sp.csr_matrix(J, copy=True)
    S.eliminate_zeros()
    if not S.shape[0] or not np.all(np.diff(S.indptr) == 1):
        return None
    roots = -w / S.data
    cols, first, inverse = np.unique(S.indices, return_index=True, return_inverse=True)
    agree = not np.any(np.abs(roots - roots[first][inverse]) > 1e-12 * (1.0 + np.abs(roots)))
    return cols, roots[first], agree


def zero_groups(oracle: Oracle, x: np.ndarray, r: float) -> Balls | None:
    """The norm groups with ||w_k(x)|| <= r ||J_k||_2 (every group at r = inf), or None."""
    tr = oracle.group_trace(x)
    out, _ = scalar_output(tr, "minimize")
    _, balls = split_zero_norms(tr, FlatSpec(tr), out, r)
    return balls


def regroup(oracle: Oracle, x: np.ndarray, balls: Balls, full: Balls | None = None
            ) -> Balls | None:
    """``balls``' groups with their Jacobians' rows and lambda_k at another point x (where
    some w_k is nonlinear, an SQP step needs them at its iterate: with the rows of the
    step's start, the manifold steps of crescent moved 2.4e-4 back from 8e-8 off its
    minimiser); None where the program's norms there are not the same. ``full``: every
    group at x (``zero_groups(oracle, x, inf)``), where the caller has it."""
    full = zero_groups(oracle, x, np.inf) if full is None else full
    keep = None if full is None else members(full, balls)
    return None if keep is None else full.subset(keep)


def members(full: Balls, balls: Balls) -> np.ndarray | None:
    """The mask over ``full``'s groups of those ``balls`` holds (both in the trace's order,
    so the i-th True is ``balls``' i-th group), or None where ``balls`` holds a group that
    ``full`` has not."""
    if not balls.chosen.keys() <= full.chosen.keys():
        return None
    keep = np.concatenate([np.isin(full.chosen[k], balls.chosen.get(k, ()))
                           for k in full.chosen])
    sub = full.subset(keep)
    same = all(np.array_equal(sub.chosen.get(k, ()), v) for k, v in balls.chosen.items())
    return keep if same else None


def group_inputs(oracle: Oracle, x: np.ndarray, chosen: dict) -> np.ndarray:
    """The stacked group values w_k(x) (the norms' inputs at the chosen groups)."""
    return group_values(oracle.group_trace(x), chosen)


def group_norms(v: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """The Euclidean norms of the consecutive groups of v (sizes dims)."""
    if not dims.size:
        return np.zeros(0)
    return np.sqrt(np.add.reduceat(v * v, np.r_[0, np.cumsum(dims)[:-1]].astype(np.intp)))


def step_size(oracle: Oracle, x: np.ndarray) -> float:
    """The forward-difference step h = sqrt(2 u) (1 + ||x||)."""
    return float(np.sqrt(2.0 * oracle.unit_roundoff)) * (1.0 + float(np.linalg.norm(x)))


def differences(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict,
                idx: np.ndarray) -> Iterator[np.ndarray | None]:
    """For j in idx, the forward difference (g(x + h e_j) - g) / h of the frozen gradient
    (h = :func:`step_size`), or None where that gradient is missing."""
    h = step_size(oracle, x)

    def points() -> Iterator[np.ndarray]:
        for j in idx:
            xj = x.copy()
            xj[j] += h
            yield xj

    for gj in oracle.frozen_gradients(x, chosen, points()):
        yield None if gj is None else (gj - g) / h


def fd_columns(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict, idx: np.ndarray
               ) -> np.ndarray | None:
    """(len(idx), n): the :func:`differences` stacked; None where a gradient is missing."""
    G = np.empty((idx.size, x.size))
    for i, col in enumerate(differences(oracle, x, g, chosen, idx)):
        if col is None:
            return None
        G[i] = col
    return G


def fd_hessian(oracle: Oracle, x: np.ndarray, g: np.ndarray, chosen: dict
               ) -> np.ndarray | None:
    """Forward differences of the frozen gradient, symmetrized, negative curvature set to
    0 (n gradients)."""
    G = fd_columns(oracle, x, g, chosen, np.arange(x.size))
    return None if G is None else psd_part(G)


def psd_part(S: np.ndarray) -> np.ndarray:
    """The symmetric part of S with its negative eigenvalues set to 0."""
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.maximum(lam, 0.0)) @ V.T


def kkt(H: np.ndarray, J: np.ndarray, g: np.ndarray, w: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray | None]:
    """(dx, mu) of [H + eps I, J^T; J, 0] [dx; mu] = [-g; -w]: one LU (least squares if
    singular). Dependent rows (isotropic TV's flat regions) make the matrix singular and
    its LU garbage: the system is then solved on their row space (J = U S V^T, rows
    S_r V_r^T, w -> U_r^T w, consistent near the manifold) and mu, not unique, is None."""
    n, m = H.shape[0], J.shape[0]
    dependent = False
    if m:
        U, sv, Vt = np.linalg.svd(J, full_matrices=False)
        r = int(np.sum(sv > 1e-10 * sv[0])) if sv[0] > 0 else 0
        if r < m:
            J, w, m, dependent = sv[:r, None] * Vt[:r], U[:, :r].T @ w, r, True
    eps = 1e-10 * max(1.0, float(np.max(np.abs(H), initial=0.0)))
    K = np.block([[H + eps * np.eye(n), J.T], [J, np.zeros((m, m))]])
    rhs = np.concatenate([-g, -w])
    try:
        sol = np.linalg.solve(K, rhs)
    except np.linalg.LinAlgError:
        sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
    return sol[:n], None if dependent else sol[n:]
