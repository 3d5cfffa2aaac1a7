"""Concave terms of :mod:`.minimality`'s model written as the least of linear ones, and the
multipliers' bound maximised over them (the mathematics is in :class:`ConcaveSplit`)."""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from ._minimality_model import (
    LeastSquares,
    Norms,
    SlopeModel,
    _column_count,
    block_sums,
    over_regions,
)

__all__ = ["ConcaveSplit"]

_SPLIT_DIMS = 512  # concave terms' total dimension up to which they are split
_SOCP_VARIABLES = 20_000  # best_multipliers' SOCP up to this many variables
_REGION_VARIABLES = 3_000  # the regions' SOCPs (2^k of them) up to this many variables
_EPS = float(np.finfo(np.float64).eps)


class ConcaveSplit:
    """Concave terms as the least of linear ones: for bhat_i < 0 on a switch that no other
    reads (K's column i empty), bhat_i |z'_i| = min_{|s| <= 1} bhat_i s z'_i with z'_i =
    A_i d + K_i |z'|; for lambda_k < 0, lambda_k ||J_k d|| = min_{||w|| <= 1} lambda_k w .
    J_k d. So f'(d) = min_u f_u(d), f_u(d) = (g0 + P u) . d + (bhat + B u) . |z'| + (the
    convex norms), u in a product of unit balls (one per concave term; P's columns bhat_i
    A_i^T and lambda_k J_k^T, B's bhat_i K_i^T: a concave kink's own reads), and f'(d) >=
    -t ||d|| for every d iff f_u does for every u.

    Least-squares multipliers of the other terms' rows R are affine in u, theta(u) = theta0
    + Theta u, and so are the residual r(u) = r0 + Q u and each switch's mu_i(u) -+ c_i(u):
    the maximum over the balls of an affine function is its value at 0 plus the norms of
    its coefficients on each ball, which bounds :meth:`SlopeModel.lower_bound`'s terms for
    every u at once. Exact when the other terms are convex with independent rows (then
    f_u is minimal iff its multipliers' residual and excesses vanish, for each u
    separately): ||x||_1 - ||x||_2 and ||x||_2 - |x_0| / 2 at 0 are proven minimal. Where
    the other rows are dependent, least squares is one choice of theta0 and Theta among
    many: :meth:`best_multipliers` minimises the bound's terms over them (an SOCP; also
    for a model with norms and no concave term, where the LP of :mod:`._minimality_model`
    does not apply)."""

    def __init__(self, mdl: SlopeModel, ls: LeastSquares) -> None:
        K, m = mdl.K, mdl.m
        read = np.zeros(m, bool)
        read[K.indices] = True
        kinks = np.flatnonzero((mdl.bhat < 0) & ~read)
        concave = mdl.lam < 0
        norms = np.flatnonzero(concave)
        self.dims = np.concatenate([np.ones(kinks.size, np.int64), mdl.dims[norms]])
        self.applies = bool(self.dims.size or mdl.J.shape[0]) \
            and int(self.dims.sum()) <= _SPLIT_DIMS
        if not self.applies:
            return
        keep = np.setdiff1d(np.arange(m), kinks)
        rows = np.concatenate([np.arange(mdl.starts[k], mdl.starts[k + 1]) for k in norms]
                              + [np.zeros(0, np.int64)])
        P = sp.hstack([mdl.A[kinks].T @ sp.diags(mdl.bhat[kinks]),
                       mdl.J[rows].T @ sp.diags(np.repeat(mdl.lam[norms], mdl.dims[norms]))])
        self.P = P.toarray()
        self.B = np.zeros((keep.size, self.P.shape[1]))
        self.B[:, :kinks.size] = (K[kinks][:, keep].T @ sp.diags(mdl.bhat[kinks])).toarray()
        convex = np.flatnonzero(~concave)
        crows = np.concatenate([np.arange(mdl.starts[k], mdl.starts[k + 1]) for k in convex]
                               + [np.zeros(0, np.int64)])
        if self.dims.size:
            self.rest = SlopeModel(mdl.A[keep], K[keep][:, keep],
                                   Norms(mdl.J[crows], mdl.lam[convex], mdl.dims[convex]),
                                   mdl.g0, mdl.bhat[keep])
            self.ls = LeastSquares(self.rest.R)
        else:  # nothing to split: the model itself, for best_multipliers
            self.rest, self.ls = mdl, ls
        self.starts = np.concatenate([[0], np.cumsum(self.dims)])
        self.T = self.ls.multipliers(np.column_stack([mdl.g0, self.P]))

    def _max_norms(self, C: np.ndarray) -> np.ndarray:
        """sum_b ||C[:, block b]|| for each row of C (p columns): max over u of C u."""
        return sum(np.linalg.norm(C[:, lo:hi], axis=1)
                   for lo, hi in zip(self.starts[:-1], self.starts[1:])) * (1 + 4 * _EPS)

    def lower_bound(self, T: np.ndarray | None = None, signs: np.ndarray | None = None
                    ) -> tuple[float, list[np.ndarray], np.ndarray]:
        """(a lower bound on the least slope valid for every u, rounding included, from the
        multipliers theta(u) = T[:, 0] + T[:, 1:] u (any T; least squares by default); the
        u at which the worst switch, norm and residual terms are largest; the rest's
        switches' excess). ``signs`` (the rest's switches, in {-1, 0, 1}): the bound on
        the region sigma_i z'_i >= 0 where sigma_i = signs_i != 0, whose switch terms need
        one side only (:meth:`SlopeModel.lower_bound`)."""
        rest, T = self.rest, self.T if T is None else T
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
        CK = rest.K.T @ mu
        CB = CK[:, 1:] - self.B  # c(u) = bhat + B u - K^T mu(u) = c0 - CB u
        C_err = (_column_count(rest.K) + 4) * _EPS * 1.01 * (
            np.abs(np.column_stack([rest.bhat, self.B])) + abs(rest.K).T @ np.abs(mu))
        c0 = rest.bhat - CK[:, 0]
        up = mu[:, 0] - c0 + self._max_norms(mu[:, 1:] + CB)
        down = -mu[:, 0] - c0 + self._max_norms(-mu[:, 1:] + CB)
        err = C_err[:, 0] + self._max_norms(C_err[:, 1:])
        side = np.maximum(up, down) if signs is None else np.where(
            signs > 0, down, np.where(signs < 0, up, np.maximum(up, down)))
        excess = np.maximum(0.0, side + err)
        nu = T[m:]
        nu0 = np.sqrt(block_sums(nu[:, 0] ** 2, rest.dims))
        reach = np.zeros(rest.dims.size)  # ||N_{j,b}||_2 summed over the blocks b
        if rest.dims.size and self.dims.size:
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
            worst.append(mu[i, 1:] + CB[i] if up[i] >= down[i] else -mu[i, 1:] + CB[i])
        if ball_excess.size and ball_excess.max() > 0:
            j = int(np.argmax(ball_excess))
            lo, hi = rest.starts[j], rest.starts[j + 1]
            N = _scaled(nu[lo:hi, 1:])
            worst.append(N.T @ (_scaled(nu[lo:hi, 0]) if np.any(nu[lo:hi, 0])
                                else N @ np.ones(self.P.shape[1])))
        Qs = _scaled(Q[:, 1:])
        worst.append(Qs.T @ (_scaled(Q[:, 0]) if np.any(Q[:, 0]) else Qs.sum(axis=1)))
        return lower * (1 + (n + m + 8) * _EPS), [self._unit(u) for u in worst], excess

    def _unit(self, u: np.ndarray) -> np.ndarray:
        """u with each block scaled to norm 1 (a block of zeros: its first axis)."""
        u = _scaled(np.array(u, np.float64))
        for lo, hi in zip(self.starts[:-1], self.starts[1:]):
            nb = float(np.linalg.norm(u[lo:hi]))
            u[lo:hi] = u[lo:hi] / nb if nb > 0 and np.isfinite(nb) else np.eye(hi - lo)[0]
        return u

    def linear(self, u: np.ndarray, T: np.ndarray | None = None
               ) -> tuple[SlopeModel, np.ndarray]:
        """(f_u as a model, its affine multipliers theta(u)): a descent of f_u is one of f."""
        T = self.T if T is None else T
        rest = copy.copy(self.rest)
        rest.__dict__.pop("lp_rows", None)  # NOTE: cached with the old g0
        rest.g0, rest.bhat = rest.g0 + self.P @ u, rest.bhat + self.B @ u
        return rest, T[:, 0] + T[:, 1:] @ u

    def best_multipliers(self, signs: np.ndarray | None = None, limit: int = 0
                         ) -> np.ndarray | None:
        """T minimising the terms of :meth:`lower_bound` (Frobenius norms for the spectral
        ones; on the region of ``signs``), an SOCP solved by Clarabel, for rows that are
        dependent (least squares is then one choice of many); None when it has more than
        ``limit`` (default ``_SOCP_VARIABLES``) variables or is not solved. Only a
        candidate: :meth:`lower_bound` recomputes the bound from it with its rounding."""
        import clarabel

        rest, P = self.rest, self.P
        R, K, m, n = rest.R.tocsr(), rest.K.tocsr(), rest.m, rest.A.shape[1]
        rows, p = R.shape[0], P.shape[1]
        cols, nb, q = 1 + p, self.dims.size, rest.dims.size
        var = _Layout(T=rows * cols, Q=n * cols, Yp=m * p, Ym=m * p, t=1 + nb, a=m * nb,
                      b=m * nb, e=m, v=q, f=q * nb, w=q)
        if var.size > (limit or _SOCP_VARIABLES):
            return None
        T_at = var.index("T").reshape(cols, rows).T  # T[r, c]
        Q_at, Yp_at, Ym_at = (var.index("Q").reshape(cols, n).T,
                              var.index("Yp").reshape(p, m).T, var.index("Ym").reshape(p, m).T)
        a_at, b_at = var.index("a").reshape(m, nb), var.index("b").reshape(m, nb)
        f_at = var.index("f").reshape(q, nb)
        e_at, t_at, v_at, w_at = var.index("e"), var.index("t"), var.index("v"), var.index("w")
        eq = _Rows(var.size)
        Rt = R.T.tocsr()
        for c in range(cols):  # Q + R^T T = [g0, P]
            eq.add(np.arange(n), Q_at[:, c], 1.0)
            eq.add_matrix(Rt, T_at[:, c])
            eq.next(n)
        eq_rhs = np.concatenate([rest.g0, P.T.reshape(-1),
                                 *(np.r_[-self.B[:, c], -self.B[:, c]] for c in range(p))])
        I_m = sp.identity(m, format="csr")
        for c in range(p):  # Yp = (K^T + I) M - B, Ym = (K^T - I) M - B, M = T[:m, 1:]
            for Y_at, sign in ((Yp_at, 1.0), (Ym_at, -1.0)):
                eq.add(np.arange(m), Y_at[:, c], 1.0)
                eq.add_matrix(-(K.T + sign * I_m).tocsr(), T_at[:m, 1 + c])
                eq.next(m)
        le = _Rows(var.size)  # A x <= b
        for sign in (1.0, -1.0):  # -e_i + sum_b a_ib +- mu0_i + (K^T mu0)_i <= bhat_i
            le.add(np.arange(m), e_at, -1.0)
            for bb in range(nb):
                le.add(np.arange(m), (a_at if sign > 0 else b_at)[:, bb], 1.0)
            le.add_matrix((K.T + sign * I_m).tocsr(), T_at[:m, 0])
            le.next(m)
        le.add(np.arange(m), e_at, -1.0)
        le.next(m)
        for j in range(q):  # -w_j + v_j + sum_b f_jb <= lambda_j
            le.add(np.zeros(2 + nb, int), np.r_[w_at[j], v_at[j], f_at[j]],
                   np.r_[-1.0, np.ones(1 + nb)])
            le.next(1)
        le.add(np.arange(q), w_at, -1.0)
        le.next(q)
        le_rhs = np.concatenate([rest.bhat, rest.bhat, np.zeros(m), rest.lam, np.zeros(q)])
        sides = np.ones(le_rhs.size, bool)  # on a region, one side of each split switch
        if signs is not None:
            sides[:2 * m] = np.concatenate([signs <= 0, signs >= 0])
        soc, cone_dims = _Rows(var.size), []

        def cone(head: int, body: np.ndarray) -> None:
            soc.add(np.arange(1 + body.size), np.r_[head, body], -1.0)
            soc.next(1 + body.size)
            cone_dims.append(1 + body.size)
        cone(t_at[0], Q_at[:, 0])
        for bb, (lo, hi) in enumerate(zip(self.starts[:-1], self.starts[1:])):
            cone(t_at[1 + bb], Q_at[:, 1 + lo:1 + hi].T.reshape(-1))
            for i in range(m):
                cone(a_at[i, bb], Yp_at[i, lo:hi])
                cone(b_at[i, bb], Ym_at[i, lo:hi])
            for j in range(q):
                cone(f_at[j, bb], T_at[m + rest.starts[j]:m + rest.starts[j + 1],
                                       1 + lo:1 + hi].reshape(-1))
        for j in range(q):
            cone(v_at[j], T_at[m + rest.starts[j]:m + rest.starts[j + 1], 0])
        cost = np.zeros(var.size)
        cost[t_at], cost[e_at] = 1.0, rest.G
        cost[w_at] = np.sqrt(block_sums(np.asarray(rest.J.multiply(rest.J).sum(axis=1))
                                        .reshape(-1), rest.dims))
        le_rhs = le_rhs[sides]
        A = sp.vstack([eq.matrix(eq_rhs.size), le.matrix(sides.size)[sides],
                       soc.matrix(sum(cone_dims))], format="csc")
        cones = [clarabel.ZeroConeT(eq_rhs.size), clarabel.NonnegativeConeT(le_rhs.size),
                 *(clarabel.SecondOrderConeT(d) for d in cone_dims)]
        b = np.concatenate([eq_rhs, le_rhs, np.zeros(sum(cone_dims))])
        found = None
        # NOTE: Clarabel's default static regularization (1e-8) stalled an n = 200 model at
        # "AlmostSolved" with the bound's terms at 4e-8 (solved at 1e-10: 4e-10), while 1e-10
        # alone left half of the small random models unsolved: 1e-10 only as a second try
        for regularization in (1e-8, 1e-10):
            settings = clarabel.DefaultSettings()
            settings.verbose, settings.max_iter = False, 200
            settings.static_regularization_constant = regularization
            sol = clarabel.DefaultSolver(sp.csc_matrix((var.size, var.size)), cost, A, b,
                                         cones, settings).solve()
            x = np.asarray(sol.x, np.float64)
            if str(sol.status) in ("Solved", "AlmostSolved") and np.all(np.isfinite(x)):
                found = x[T_at]
                if str(sol.status) == "Solved":
                    break
        if found is None:
            return None
        # the interior point leaves a residual of about its tolerance in every column; where
        # the multipliers have slack, least squares removes it without creating excess
        fixed = found + self.ls.multipliers(np.column_stack([rest.g0, P]) - R.T @ found)
        return min((found, fixed), key=lambda T: -self.lower_bound(T, signs)[0])

    def regions(self, excess: np.ndarray, count: int, limit: int = _REGION_VARIABLES
                ) -> float:
        """A lower bound on the least slope from the 2^k regions of the signs of the k <=
        count switches of the rest with the largest excess G_i (each region's SOCP
        multipliers, one side of each split switch; :func:`._minimality_model.over_regions`,
        here with norms and u); -inf when an SOCP is not solved or larger than ``limit``
        variables, or after its time limit."""
        def bound(signs: np.ndarray) -> float | None:
            T = self.best_multipliers(signs, limit)
            return None if T is None else self.lower_bound(T, signs)[0]
        return over_regions(excess, self.rest.G, count, bound)


def _scaled(v: np.ndarray) -> np.ndarray:
    """v divided by its largest entry in size (a direction; no overflow in products)."""
    top = float(np.max(np.abs(v), initial=0.0))
    return v / top if top > 0 and np.isfinite(top) else v


class _Layout:
    """Named blocks of an optimisation variable, laid end to end."""

    def __init__(self, **sizes: int) -> None:
        self.starts, at = {}, 0
        for name, size in sizes.items():
            self.starts[name] = (at, at + int(size))
            at += int(size)
        self.size = at

    def index(self, name: str) -> np.ndarray:
        return np.arange(*self.starts[name])


class _Rows:
    """A sparse constraint matrix assembled row block by row block from triplets."""

    def __init__(self, width: int) -> None:
        self.width, self.top = width, 0
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: float | np.ndarray) -> None:
        rows, cols = np.asarray(rows), np.asarray(cols)
        self.r.append(self.top + rows)
        self.c.append(cols)
        self.v.append(np.broadcast_to(np.asarray(vals, np.float64), rows.shape))

    def add_matrix(self, M: sp.csr_matrix, cols: np.ndarray) -> None:
        """M's entries on the variables ``cols`` (one per column of M), rows from here."""
        C = M.tocoo()
        self.add(C.row, np.asarray(cols)[C.col], C.data)

    def next(self, count: int) -> None:
        self.top += count

    def matrix(self, height: int) -> sp.csr_matrix:
        if not self.r:
            return sp.csr_matrix((height, self.width))
        return sp.csr_matrix((np.concatenate(self.v), (np.concatenate(self.r),
                                                        np.concatenate(self.c))),
                             shape=(height, self.width))
