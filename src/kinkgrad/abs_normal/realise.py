"""Whether a sign pattern of switch rows is realised: a witness, a certificate, or undecided.

A partial signature with signed rows r_j (unit rows u_j = r_j / ||r_j||, the matrix U) is
realised to first order when some direction d has u_j . d > 0 for every j. By Gordan's
alternative it is not realised iff some convex combination y of the rows is 0, and for every
convex y and every d in the box -1 <= d <= 1,

    min_j u_j . d  <=  (y^T U) d  <=  ||y^T U||_1,

so the margin t* of :func:`.lp.margin` (max t s.t. U d >= t in the box) lies below every
such residual, and the two meet at the optimum (LP duality). :func:`realised` answers:

* True with a direction d in the box whose margin min_j u_j . d, evaluated in float64
  *less its rounding bound*, exceeds ``MARGIN``: the pattern's piece is entered along d;
* False with a convex y whose residual ||y^T U||_1 is at most ``DEPENDENT``: rows that
  cancel to twelve digits are taken to cancel exactly (a model's rows carry f's rounding,
  and exact cancellations, x_a < x_b < x_c < x_a, are the common case);
* None (undecided) between: the pattern's cone is thinner than ``MARGIN`` but not
  provably empty, so a list that drops it is not proven complete.

HiGHS solves to a feasibility tolerance of about 1e-7, so on nearly parallel rows its t can
even have the wrong sign: relu(x0 + x1 - 2) - relu(x0 + (1 + 2^-26) x1 - (2 + 2^-26)) at
(1, 1) has the piece u1 . d < 0 < u2 . d with margin 5e-9, the LP answered -5e-9, and the
piece was dropped from a list called complete (in_clarke's wrong False). When the first LP
settles nothing, the problem is solved again in the rows' singular coordinates: with
U = P S V^T (rank r kept), d = V_r S_r^{-1} z gives U d = P_r z exactly, and P_r has
orthonormal columns. Rows independent to rounding (r = k) then enter every pattern, at
d = V S^{-1} P^T 1; otherwise the LP on the rows of P_r is far better conditioned than on U.
The duals of either LP are polished into a certificate (the least singular vector of the
rows they support) before the residual is read.
"""

from __future__ import annotations

import numpy as np

from .lp import MARGIN, margin, row_duals

__all__ = ["DEPENDENT", "realised"]

DEPENDENT = 1e-14  # a convex combination of unit rows within this (l1) of 0: they cancel
_RANK = 1e-14  # singular values below this times the largest are dropped (rounding)
_SUPPORT = 1e-9  # duals below this times the largest are outside a certificate's support
_EPS = float(np.finfo(np.float64).eps)


def realised(R: np.ndarray) -> tuple[bool | None, np.ndarray | None]:
    """Whether some d has r_j . d > 0 for every row r_j of R (nonzero rows; see the module
    docstring). Returns (True, d) with d in the box and a verified margin above ``MARGIN``,
    (False, y) with y a convex combination (y >= 0, sum 1) of the rows whose l1 residual
    ||y^T U||_1 is at most ``DEPENDENT``, or (None, None): undecided, or an LP HiGHS
    failed to solve."""
    k = R.shape[0]
    if k == 0:
        return True, np.zeros(R.shape[1])
    U = R / np.linalg.norm(R, axis=1, keepdims=True)
    t, d = margin(U)
    if d is not None:
        if t > MARGIN and _verified(U, d) > MARGIN:
            return True, d
        if t <= MARGIN:
            y = _certificate(U, np.asarray(row_duals(), np.float64)[:k])
            if y is not None:
                return False, y
    return _conditioned(U)


def _verified(U: np.ndarray, d: np.ndarray) -> float:
    """min_j u_j . d for d scaled into the box, less the float64 rounding bound of each
    product ((n + 2) eps sum_i |u_ji d_i|): a lower bound on the exact margin at d."""
    top = float(np.max(np.abs(d), initial=0.0))
    if not (np.isfinite(top) and top > 0.0):
        return -np.inf
    d = d / top
    err = (U.shape[1] + 2) * _EPS * (np.abs(U) @ np.abs(d))
    return float(np.min(U @ d - err))


def _conditioned(U: np.ndarray) -> tuple[bool | None, np.ndarray | None]:
    """:func:`realised` in the rows' singular coordinates (module docstring)."""
    k = U.shape[0]
    P, S, Vt = np.linalg.svd(U, full_matrices=False)
    r = int(np.count_nonzero(S > _RANK * S[0]))
    if r == k:  # NOTE: rows independent: U d = 1 at d = V S^-1 P^T 1
        d = Vt.T @ ((P.T @ np.ones(k)) / S)
        if _verified(U, d) > MARGIN:
            return True, d / float(np.max(np.abs(d)))
    Pr = P[:, :r]
    norms = np.linalg.norm(Pr, axis=1)
    rows = Pr / np.where(norms > 0, norms, 1.0)[:, None]
    t, z = margin(rows)
    if z is None:
        return None, None
    d = Vt[:r].T @ (z / S[:r])
    if _verified(U, d) > MARGIN:
        return True, d / float(np.max(np.abs(d)))
    y = _certificate(U, np.asarray(row_duals(), np.float64)[:k] / np.where(norms > 0, norms,
                                                                          1.0))
    return (False, y) if y is not None else (None, None)


def _certificate(U: np.ndarray, duals: np.ndarray) -> np.ndarray | None:
    """A convex combination y of the rows of U with ||y^T U||_1 <= ``DEPENDENT``, from an
    LP's duals (their absolute values normalised) or, polished, from the least left singular
    vector of the rows the duals support; None when neither is one."""
    y = np.abs(duals)
    top = float(np.max(y, initial=0.0))
    if not (np.isfinite(top) and top > 0.0):
        return None
    support = np.flatnonzero(y > _SUPPORT * top)
    y = np.zeros_like(y)
    y[support] = np.abs(duals[support]) / float(np.abs(duals[support]).sum())
    if float(np.abs(y @ U).sum()) <= DEPENDENT:
        return y
    Q, _, _ = np.linalg.svd(U[support], full_matrices=True)
    v = np.clip(Q[:, -1] * np.sign(Q[:, -1].sum() or 1.0), 0.0, None)
    if not v.sum() > 0:
        return None
    y = np.zeros(U.shape[0])
    y[support] = v / float(v.sum())
    return y if float(np.abs(y @ U).sum()) <= DEPENDENT else None
