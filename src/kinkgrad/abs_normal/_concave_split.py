"""Concave terms of :mod:`.minimality`'s model written as the least of linear ones, and the
multipliers' bound maximised over them (the mathematics is in :class:`ConcaveSplit`)."""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from ._minimality_model import LeastSquares, Norms, SlopeModel, _column_count, block_sums

__all__ = ["ConcaveSplit"]

_SPLIT_DIMS = 512  # concave terms' total dimension up to which they are split
_EPS = float(np.finfo(np.float64).eps)


class ConcaveSplit:
    """Concave terms as the least of linear ones: for bhat_i < 0 on a switch that no other
    reads and reads none (K's row and column i empty), bhat_i |z'_i| = min_{|s| <= 1}
    bhat_i s A_i d; for lambda_k < 0, lambda_k ||J_k d|| = min_{||w|| <= 1} lambda_k w . J_k d.
    So f'(d) = min_u f_u(d), f_u(d) = (g0 + P u) . d + (the other terms), u in a product of
    unit balls (one per concave term, P's columns bhat_i A_i^T and lambda_k J_k^T), and
    f'(d) >= -t ||d|| for every d iff f_u does for every u.

    Least-squares multipliers of the other terms' rows R are affine in u, theta(u) = theta0
    + Theta u, and so are the residual r(u) = r0 + Q u and each switch's mu_i(u) -+ c_i(u):
    the maximum over the balls of an affine function is its value at 0 plus the norms of
    its coefficients on each ball, which bounds :meth:`SlopeModel.lower_bound`'s terms for
    every u at once. Exact when the other terms are convex with independent rows (then
    f_u is minimal iff its multipliers' residual and excesses vanish, for each u
    separately): ||x||_1 - ||x||_2 and ||x||_2 - |x_0| / 2 at 0 are proven minimal."""

    def __init__(self, mdl: SlopeModel) -> None:
        K, m = mdl.K, mdl.m
        linked = np.zeros(m, bool)
        linked[np.flatnonzero(np.diff(K.indptr))] = True
        linked[K.indices] = True
        kinks = np.flatnonzero((mdl.bhat < 0) & ~linked)
        concave = mdl.lam < 0
        norms = np.flatnonzero(concave)
        self.dims = np.concatenate([np.ones(kinks.size, np.int64), mdl.dims[norms]])
        self.applies = bool(self.dims.size) and int(self.dims.sum()) <= _SPLIT_DIMS
        if not self.applies:
            return
        keep = np.setdiff1d(np.arange(m), kinks)
        rows = np.concatenate([np.arange(mdl.starts[k], mdl.starts[k + 1]) for k in norms]
                              + [np.zeros(0, np.int64)])
        P = sp.hstack([mdl.A[kinks].T @ sp.diags(mdl.bhat[kinks]),
                       mdl.J[rows].T @ sp.diags(np.repeat(mdl.lam[norms], mdl.dims[norms]))])
        self.P = P.toarray()
        convex = np.flatnonzero(~concave)
        crows = np.concatenate([np.arange(mdl.starts[k], mdl.starts[k + 1]) for k in convex]
                               + [np.zeros(0, np.int64)])
        self.rest = SlopeModel(mdl.A[keep], K[keep][:, keep],
                               Norms(mdl.J[crows], mdl.lam[convex], mdl.dims[convex]),
                               mdl.g0, mdl.bhat[keep])
        self.ls = LeastSquares(self.rest.R)
        self.starts = np.concatenate([[0], np.cumsum(self.dims)])
        self.T = self.ls.multipliers(np.column_stack([mdl.g0, self.P]))

    def _max_norms(self, C: np.ndarray) -> np.ndarray:
        """sum_b ||C[:, block b]|| for each row of C (p columns): max over u of C u."""
        return sum(np.linalg.norm(C[:, lo:hi], axis=1)
                   for lo, hi in zip(self.starts[:-1], self.starts[1:])) * (1 + 4 * _EPS)

    def lower_bound(self) -> tuple[float, list[np.ndarray]]:
        """(a lower bound on the least slope valid for every u, rounding included; the u
        at which the worst switch, norm and residual term is largest)."""
        rest, T = self.rest, self.T
        R, m, n = rest.R, rest.m, rest.A.shape[1]
        G0 = np.column_stack([rest.g0, self.P])
        Q = G0 - R.T @ T
        Q_err = (_column_count(R) + 3) * _EPS * 1.01 * (np.abs(G0) + abs(R).T @ np.abs(T))
        residual = float(np.linalg.norm(Q[:, 0]) + np.linalg.norm(Q_err[:, 0]))
        for lo, hi in zip(1 + self.starts[:-1], 1 + self.starts[1:]):
            block = Q[:, lo:hi]
            spec = float(np.linalg.norm(block, 2)) if hi - lo > 1 else float(
                np.linalg.norm(block))
            residual += spec * (1 + 16 * (n + hi - lo) * _EPS) + float(
                np.linalg.norm(Q_err[:, lo:hi]))
        mu = T[:m]
        CK = rest.K.T @ mu  # c(u) = bhat - CK[:, 0] - CK[:, 1:] u
        C_err = (_column_count(rest.K) + 3) * _EPS * 1.01 * (
            np.abs(np.column_stack([rest.bhat, np.zeros((m, self.P.shape[1]))]))
            + abs(rest.K).T @ np.abs(mu))
        c0 = rest.bhat - CK[:, 0]
        up = mu[:, 0] - c0 + self._max_norms(mu[:, 1:] + CK[:, 1:])
        down = -mu[:, 0] - c0 + self._max_norms(-mu[:, 1:] + CK[:, 1:])
        err = C_err[:, 0] + self._max_norms(C_err[:, 1:])
        excess = np.maximum(0.0, np.maximum(up, down) + err)
        nu = T[m:]
        nu0 = np.sqrt(block_sums(nu[:, 0] ** 2, rest.dims))
        reach = np.zeros(rest.dims.size)  # ||N_{j,b}||_2 summed over the blocks b
        if rest.dims.size:
            sq = np.add.reduceat(nu[:, 1:] ** 2, self.starts[:-1], axis=1)
            frob = np.sqrt(np.add.reduceat(sq, rest.starts[:-1], axis=0))
            if frob.size <= 2_000:  # spectral norms (smaller) of the few blocks
                for j, b in zip(*np.nonzero(frob)):
                    frob[j, b] = np.linalg.norm(nu[rest.starts[j]:rest.starts[j + 1], 1:][
                        :, self.starts[b]:self.starts[b + 1]], 2) * (1 + 1e-12)
            reach = frob.sum(axis=1)
        ball_excess = np.maximum(0.0, (nu0 + reach) * (1 + 16 * _EPS) - rest.lam)
        lower = -(residual + float(excess @ rest.G) + rest._ball_terms(ball_excess))
        worst = []
        if excess.size and excess.max() > 0:
            i = int(np.argmax(excess * rest.G))
            worst.append(mu[i, 1:] + CK[i, 1:] if up[i] >= down[i] else -mu[i, 1:] + CK[i, 1:])
        if ball_excess.size and ball_excess.max() > 0:
            j = int(np.argmax(ball_excess))
            lo, hi = rest.starts[j], rest.starts[j + 1]
            worst.append(nu[lo:hi, 1:].T @ (nu[lo:hi, 0] if np.any(nu[lo:hi, 0])
                                             else nu[lo:hi, 1:] @ np.ones(self.P.shape[1])))
        worst.append(Q[:, 1:].T @ (Q[:, 0] if np.any(Q[:, 0]) else Q[:, 1:].sum(axis=1)))
        return lower * (1 + (n + m + 8) * _EPS), [self._unit(u) for u in worst]

    def _unit(self, u: np.ndarray) -> np.ndarray:
        """u with each block scaled to norm 1 (a block of zeros: its first axis)."""
        u = np.array(u, np.float64)
        for lo, hi in zip(self.starts[:-1], self.starts[1:]):
            nb = float(np.linalg.norm(u[lo:hi]))
            u[lo:hi] = u[lo:hi] / nb if nb > 0 and np.isfinite(nb) else np.eye(hi - lo)[0]
        return u

    def linear(self, u: np.ndarray) -> tuple[SlopeModel, np.ndarray]:
        """(f_u as a model, its affine multipliers theta(u)): a descent of f_u is one of f."""
        rest = copy.copy(self.rest)
        rest.__dict__.pop("lp_rows", None)  # NOTE: cached with the old g0
        rest.g0 = rest.g0 + self.P @ u
        return rest, self.T[:, 0] + self.T[:, 1:] @ u
