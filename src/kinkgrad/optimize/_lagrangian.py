"""The curvature the proximal model of :mod:`._norm_prox` needs beyond its smooth part's:
the SQP Lagrangian's.

The model keeps each norm exact in its linearization, lambda_k ||w_k + J_k dx||, and its
quadratic term is the Hessian of phi, f with every norm frozen at its value. Where the w_k
are affine and f is linear in its norms (norm penalties: group lasso, total variation) that
is f's whole second-order model. Otherwise two terms are missing: lambda_k d_k^T grad^2 w_k
(a kink whose input is nonlinear: crescent's max of two quadratics, whose phi is linear,
its model unbounded) and the cross terms d^2 f / dy dn_k d_k^T J_k (f not linear in n_k: a
ReLU network's |z| times the next layer's weights, where a step of 7e-4 from a point 1.8e-6
from a minimiser raised f). Both are the Hessian of f with each norm replaced by n_k(x) +
d_k . (w_k(y) - w_k(x)) (:class:`kinkgrad.abs_normal.zero_norms.Linearized`), with d_k the
direction of the norm's multiplier: w_k / ||w_k|| at a free group, mu_k / lambda_k at a
zero one, mu the least-squares multipliers of stationarity, min ||grad phi + sum_free
lambda_k J_k^T u_k + sum_zero J_k^T mu_k||, each d_k clipped to the unit ball (where the
point is stationary, ||mu_k|| <= lambda_k).

Whether they are missing is measured, not assumed: one difference of the frozen gradient
along a random v, with random directions d_k and with the norms frozen; equal to the
differences' rounding (every norm penalty) -> phi's Hessian is kept, at no extra cost per
step. The Newton-SQP steps on the manifold of nested kinks (:mod:`._norm_finish`) take the
same Hessian, their held groups linearized by :func:`linearized`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import lsqr

from ..abs_normal.zero_norms import Balls, Linearized
from ._norm_groups import group_norms, step_size
from .oracle import Oracle

__all__ = ["curvature_missing", "lagrangian_groups", "linearized", "multiplier_directions",
           "multipliers"]

_DENSE_LSQ = 2_000_000  # entries of J_Z up to which the multipliers come from dense lstsq


def curvature_missing(oracle: Oracle, x: np.ndarray, balls: Balls, g: np.ndarray) -> bool:
    """Whether linearizing the norms along random directions changes the frozen gradient's
    difference along a random unit v beyond its rounding (module docstring); g: the frozen
    gradient at x with every group of ``balls`` frozen. Three gradients, two calls of f."""
    v = oracle.rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    h = step_size(oracle, x)
    d = oracle.rng.standard_normal(int(balls.dims.sum()))
    d /= np.repeat(np.maximum(group_norms(d, balls.dims), 1e-300), balls.dims)
    lin = linearized(balls, d)
    got = list(oracle.frozen_gradients(x, lin, [x, x + h * v]))
    plain = oracle.frozen_gradient(x + h * v, balls.chosen)
    if plain is None or any(gi is None for gi in got):
        return False
    change = (got[1] - got[0]) - (plain - g)
    noise = 10.0 * oracle.unit_roundoff * (1.0 + float(np.max(np.abs(g), initial=0.0)))
    scale = float(np.max(np.abs(plain - g), initial=0.0))
    return bool(np.max(np.abs(change)) > 10.0 * noise + 1e-6 * scale)


def lagrangian_groups(balls: Balls, w: np.ndarray, g: np.ndarray, near: float) -> Linearized:
    """``balls``' groups linearized along their multipliers' directions (module docstring):
    a group with ||w_k|| <= near ||J_k||_F counts as zero; w: the stacked w_k(x); g: the
    frozen gradient with every group frozen."""
    dims = balls.dims
    sizes = group_norms(w, dims)
    rows = np.sqrt(np.asarray(balls.rows.multiply(balls.rows).sum(axis=1)).ravel())
    zero = sizes <= near * group_norms(rows, dims)
    zrows = np.repeat(zero, dims)
    d = np.where(zrows, 0.0, w / np.repeat(np.where(zero, 1.0, sizes), dims))
    lam = np.asarray(balls.lam, np.float64)
    if zero.any():
        free_part = balls.rows[~zrows].T @ (np.repeat(lam[~zero], dims[~zero]) * d[~zrows])
        mu = multipliers(sp.csr_matrix(balls.rows[zrows]), -(g + free_part), _DENSE_LSQ,
                         lsqr_tol=1e-12)
        d[zrows] = multiplier_directions(mu, lam[zero], dims[zero])
    return linearized(balls, d)


def multiplier_directions(mu: np.ndarray, lam: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """The zero groups' directions d_k = mu_k / lambda_k clipped to the unit ball (at a
    stationary point mu_k = lambda_k u_k with ||u_k|| <= 1, so the clip changes nothing
    there; elsewhere it keeps the linearization's slope within the norm's); 0 where
    lambda_k = 0 (a norm f does not read). mu stacked, lam and dims one entry per group."""
    lz = np.repeat(lam, dims)
    d = np.divide(mu, lz, out=np.zeros_like(mu), where=lz != 0)
    return d / np.repeat(np.maximum(group_norms(d, dims), 1.0), dims)


def linearized(balls: Balls, d: np.ndarray) -> Linearized:
    """``balls.chosen`` with the stacked directions d split per norm equation."""
    starts = np.r_[0, np.cumsum(balls.dims)]  # group j's entries: starts[j]:starts[j + 1]
    directions, i = {}, 0
    for k, groups in balls.chosen.items():
        directions[k] = d[starts[i]:starts[i + groups.size]].reshape(groups.size, -1)
        i += groups.size
    return Linearized(balls.chosen, directions)


def multipliers(J: sp.csr_matrix, r: np.ndarray, dense_up_to: float,
                lsqr_tol: float = 1e-14) -> np.ndarray:
    """The least-squares (minimum-norm) mu of J^T mu = r: dense lstsq up to ``dense_up_to``
    entries of J, else LSQR."""
    if J.shape[0] * J.shape[1] <= dense_up_to:
        return np.linalg.lstsq(J.T.toarray(), r, rcond=None)[0]
    return lsqr(J.T, r, atol=lsqr_tol, btol=lsqr_tol, iter_lim=10 * J.shape[0])[0]
