"""The piece QPs of :mod:`._abs_linear_model`, solved by PIQP and polished.

On the piece of a definite signature sigma in {-1, +1}^s write u = sigma * z = |z| (so
u >= 0 is exactly the piece). Because Sigma^2 = I, (I - L Sigma) z = cz + Z dx becomes
(Sigma - L) u - Z dx = cz, and Y |z| = Y u. The piece problem is therefore the convex QP in
w = (dx, u) in R^(n+s)

    min  J dx + Y u + 1/2 dx^T (B + q I) dx   s.t.  -Z dx + (Sigma - L) u = cz,   u >= 0,

(B a positive semidefinite metric, the curvature of the smooth part learnt by
:mod:`._metric`; B = 0 gives the proximal term alone) whose data depend on sigma only
through the diagonal of the equality matrix (sparsity pattern, cost and bounds are the
same on every piece, so PIQP's ``update`` reuses the symbolic factorization). With PIQP's
convention P w + c + A^T y - z_bl + z_bu = 0, the reduced cost of u_i is r_i = Y_i +
sigma_i y_i - (L^T y)_i = z_bl_i >= 0. Flipping sigma_i at a switch with u_i = 0 keeps the
point feasible and every other KKT equation unchanged (the column of u_i only changes its
diagonal entry); the new reduced cost is r'_i = r_i - 2 sigma_i y_i, so r'_i < 0 proves
that the point is not optimal on the flipped piece (the model decreases on the other side
of the kink): the multiplier sign test. With L = 0 it reads multiplier > 2 Y_i (Griewank
and Walther's test for a convex kink) and any positive multiplier for Y_i < 0.

The convex relaxation (|z| replaced by t >= |z|) is solved by the same class
(:meth:`PieceQP.solve_relaxed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..abs_normal.lp import quiet_fd

if TYPE_CHECKING:
    from ._abs_linear_model import AbsLinearModel

__all__ = ["PieceQP"]

_DENSE_QP = (300, 3000, 0.05)  # backend="auto": dense for n + s <= 300, or <= 3000 when the
#   equality matrix has >= 0.05 (n + s)^2 nonzeros (a dense KKT system, e.g. mxhilb's Z; at
#   n = 1000, n + s = 3,000: 22 s per iteration dense, 70 s sparse)
_EPS = 1e-10  # PIQP's eps_abs and eps_rel (on the scaled QP)
_KINK = 1e-7  # u_i <= _KINK mu_i: switch i is at its kink
_VIOLATION = 1e-8  # scaled reduced cost below -_VIOLATION: the flip test fails
_REG, _REFINE = 1e-8, 12  # regularization and refinement steps of the polish
_FLOOR = 1e-12  # smallest scale delta, relative to ||g|| / q
_MAX_ITER = 80  # PIQP iterations (an interior point method needing more is failing)
_ORDERING = "MMD_AT_PLUS_A"  # the polish's K is symmetric: minimum degree on K + K^T (SciPy's
#   default COLAMD, for unsymmetric matrices, filled a ReLU net's K 12x: 0.020 -> 0.004 s),
#   kept by pivoting on the diagonal of the regularized (quasi-definite) K: SuperLU's
#   default partial pivoting left the order (chained CB3 I at n = 3,000: 1.8e7 entries in
#   L + U and 11 s per factorization, n = 10^4 unfinished in 280 s; diagonal pivots: 4.8e4
#   and 0.014 s; with a 1% threshold still 1.4e7). The result is verified either way.
_LU_OPTIONS = {"permc_spec": _ORDERING, "diag_pivot_thresh": 0.0,
               "options": {"SymmetricMode": True}}


@dataclass
class _Piece:
    """Solution of one piece QP: dx, u = |z|, the equality multipliers y (original units),
    success, and whether the active-set polish verified it."""

    dx: np.ndarray
    u: np.ndarray
    y: np.ndarray
    ok: bool
    polished: bool


class PieceQP:
    """The piece QP of the module docstring, set up once per model and updated per piece.

    The QP is solved in scaled variables dx = delta d, u = mu v, every equality row divided
    by its mu_i and the cost by (q + lam) delta^2 (lam = ||B||_F, 0 without a metric), so
    that PIQP's tolerances are relative to the step: delta starts at ||g|| / (q + lam) (g the
    model's gradient on the piece of x; a failed solve is retried at ||(B + q I)^-1 g||,
    :meth:`_newton_scale`), mu from
    :meth:`AbsLinearModel.switch_scale`, and delta follows the steps found (a solve whose
    step is off the scale by more than 1e3 and could not be polished is repeated at the
    step's scale: near a sharp minimizer the step is far below ||g|| / q).

    Args:
        model: the abs-linear model.
        backend: "dense", "sparse" or "auto" (dense when n + s <= 300, or n + s <= 3000
            with at least 0.05 (n + s)^2 nonzeros in the equality matrix).
        metric: B of the module docstring, a dense symmetric positive semidefinite n x n
            array, or None for B = 0.
    """

    def __init__(self, model: AbsLinearModel, backend: str = "auto",
                 metric: np.ndarray | None = None) -> None:
        import piqp

        self._piqp = piqp
        self.model = model
        n, s = model.n, model.s
        A = sp.hstack([-model.Z, sp.identity(s, format="csr") - model.L], format="csc")
        A.sort_indices()
        full = n + s <= _DENSE_QP[0] or (n + s <= _DENSE_QP[1]
                                          and A.nnz >= _DENSE_QP[2] * (n + s) ** 2)
        self.dense = backend == "dense" or (backend == "auto" and full)
        self._A = A
        self._col = np.repeat(np.arange(n + s), np.diff(A.indptr))
        # u_i's column holds -L[:, i] strictly below row i, so its first entry is the diagonal
        self._diag = A.indptr[n:n + s].copy()
        self._xl = np.concatenate([np.full(n, -np.inf), np.zeros(s)])
        self.sigma0 = np.where(model.z0 < 0, -1.0, 1.0)
        self._g = model.piece_gradient(self.sigma0)
        g = float(np.linalg.norm(self._g))
        if not g > 0.0:  # x is stationary on its own piece: take the size of any gradient
            g = float(np.linalg.norm(model.J) + np.linalg.norm(model.Z.T @ np.abs(model.Y)))
        self._gnorm = g if np.isfinite(g) and g > 0.0 else 1.0
        self._zn = np.sqrt(np.asarray(model.Z.multiply(model.Z).sum(axis=1)).reshape(-1))
        L = sp.csr_matrix(model.L)  # switches that neither read nor are read through L
        self._alone = (np.diff(L.indptr) == 0) & (np.bincount(L.indices, minlength=s) == 0)
        self.metric = metric
        # the curvature the scaling divides by is q + lam, lam = ||B||_F >= ||B||_2
        self._lam = 0.0 if metric is None else float(np.linalg.norm(metric))
        self._solver = None
        self._q = 0.0
        self.delta = 0.0

    def _rescale(self, delta: float) -> None:
        model, n = self.model, self.model.n
        if not (np.isfinite(delta) and delta > 0.0):
            delta = 1.0
        mu = model.switch_scale(delta)
        self.delta, self.mu, self.phi = delta, mu, (self._q + self._lam) * delta * delta
        cols = np.concatenate([np.full(n, delta), mu])
        self._data = self._A.data * (1.0 / mu)[self._A.indices] * cols[self._col]
        self._c = np.concatenate([model.J * delta, model.Y * mu]) / self.phi
        self._far = self._alone & (np.abs(model.z0) > 100.0 * delta * self._zn)
        self._b = model.cz / mu
        self._fresh = True

    def _hessian(self) -> np.ndarray | sp.csc_matrix:
        """P of the scaled QP: ``self._pblock`` = (B + q I) / (q + lam) on the dx block (the
        cost is divided by (q + lam) delta^2, dx = delta d, lam = ||B||_F), zero on u; dense
        for the dense backend, else sparse with the whole upper triangle of the dx block
        stored (PIQP reads the upper triangle, and an update must keep the sparsity
        pattern)."""
        n, N = self.model.n, self.model.n + self.model.s
        block = np.eye(n) if self._pblock is None else self._pblock
        if self.dense:
            P = np.zeros((N, N), order="F")
            P[:n, :n] = block
            return P
        if self.metric is None:
            return sp.csc_matrix((np.ones(n), (np.arange(n), np.arange(n))), shape=(N, N))
        i, j = np.triu_indices(n)
        order = np.lexsort((i, j))  # column-major, as CSC stores it
        i, j = i[order], j[order]
        ptr = np.concatenate([[0], np.cumsum(np.bincount(j, minlength=n)),
                              np.full(N - n, i.size)])
        return sp.csc_matrix((block[i, j], i, ptr), shape=(N, N))

    def _set_q(self, q: float) -> None:
        if q != self._q:
            old, self._q = self._q + self._lam, q
            self._pblock = None if self.metric is None else (  # P's dx block, None for I
                (self.metric + q * np.eye(self.model.n)) / (q + self._lam))
            self._P = self._hessian()
            self._P_fresh = True
            self._delta0 = self._gnorm / (q + self._lam)
            delta = self.delta * old / (q + self._lam) if self.delta > 0.0 else self._delta0
            self._rescale(max(delta, _FLOOR * self._delta0))

    def _newton_scale(self, q: float) -> float:
        """||(B + q I)^-1 g||, the length of the step on the piece of x without its kinks
        (g its gradient), by an LU solve: at least ||g|| / (q + lam), and far longer
        where B is ill-conditioned. A solve that fails is retried once at this scale.

        # NOTE: at ||g|| / (q + lam) a ReLU network's loss (||B||_F ~ 4e5, B's smallest
        # eigenvalues ~0: the net's rescaling symmetries) had steps 1e5 delta, and PIQP
        # declared the (strictly convex) piece QPs dual infeasible on every iteration from
        # the 274th: the walk took their unsolved points (steps of 1e-7 where the model's
        # were 1e-2), q fell to qmin and the run crawled. Starting every solve at this scale
        # instead left more solves unpolished on random ill-conditioned metrics (the kink
        # test u_i <= 1e-7 mu_i coarsens with the scale), so it only rescues failures."""
        short = self._delta0  # ||g|| / (q + lam), set by _set_q(q)
        if self.metric is None or not np.all(np.isfinite(self._g)) or not np.any(self._g):
            return short
        try:
            step = np.linalg.solve(self.metric + q * np.eye(self.model.n), self._g)
        except np.linalg.LinAlgError:  # NOTE: not SciPy's solve, which warns (an error
            #                             under the tests) where B + q I is ill-conditioned
            return short
        nd = float(np.linalg.norm(step))
        return nd if np.isfinite(nd) and nd > short else short

    def _off_scale(self, nd: float) -> bool:
        """Whether a step of norm nd calls for a new scale: it differs from delta by more
        than 1e3 (steps below 1e-12 ||g|| / q count as zero: rescaling to them would only
        amplify rounding, as at a point where the model's minimizer is dx = 0 exactly)."""
        nd = max(nd, _FLOOR * self._delta0)
        return abs(np.log10(nd / self.delta)) > 3.0

    def _follow(self, nd: float) -> None:
        self._rescale(max(nd, _FLOOR * self._delta0))

    def solve(self, sigma: np.ndarray, q: float) -> _Piece:
        """Solve the QP on the piece of ``sigma`` with proximal weight q: PIQP, then a
        polish of its active set (:func:`_polish`)."""
        self._set_q(q)
        newton = self.metric is not None  # a failed solve may be retried at that scale
        for _ in range(4):
            piece = self._solve_scaled(sigma)
            nd = float(np.linalg.norm(piece.dx))
            if not piece.ok and newton:
                newton, step = False, self._newton_scale(q)
                if self._off_scale(step):
                    self._follow(step)
                    continue
            if not (piece.ok and self._off_scale(nd)):
                return piece
            self._follow(nd)
            if piece.polished:
                return piece
        return piece

    def solve_relaxed(self, q: float) -> tuple[np.ndarray, float] | None:
        """The convex relaxation: every |z_i| replaced by a t_i >= |z_i| (z = cz + Z dx + L t):

            min  J dx + Y t + 1/2 dx^T (B + q I) dx   s.t.  t - L t - Z dx >= cz,
                                                     t + L t + Z dx >= -cz,  t >= 0,

        (scaled like the piece QPs). Every dx with t = |z(dx)| is feasible, so its value is
        a lower bound on the model's minimum. Returns (dx, the relaxation's value at its
        solution, relative to phi(0)) or None when PIQP does not solve it (e.g. when it is
        unbounded, as with Y_i < 0)."""
        piqp, model = self._piqp, self.model
        n, s = model.n, model.s
        self._set_q(q)
        out = None
        for _ in range(3):
            A = self._A.copy()
            A.data = self._data.copy()
            A.data[self._diag] = 1.0
            E = sp.hstack([sp.csc_matrix((s, n)), sp.identity(s, format="csc")], format="csc")
            G = sp.vstack([A, 2.0 * E - A], format="csc")
            solver = piqp.DenseSolver() if self.dense else piqp.SparseSolver()
            st = solver.settings
            st.eps_abs, st.eps_rel, st.max_iter, st.verbose = _EPS, _EPS, _MAX_ITER, False
            if self.dense:
                G = np.asfortranarray(G.toarray())
            solver.setup(self._P, self._c, None, None, G, np.concatenate([self._b, -self._b]),
                         None, self._xl, None)
            if solver.solve() != piqp.PIQP_SOLVED:
                return out
            w = np.asarray(solver.result.x, np.float64)
            if not np.all(np.isfinite(w)):
                return out
            dx, t = w[:n] * self.delta, w[n:] * self.mu
            value = float(model.J @ dx + model.Y @ (t - np.abs(model.z0))
                          + 0.5 * q * (dx @ dx) + self.curvature(dx))
            out = (dx, value)
            nd = float(np.linalg.norm(dx))
            if not self._off_scale(nd):
                return out
            self._follow(nd)
        return out

    def _reduced_cost(self, A: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(c - A^T lam0, lam0): the scaled cost less the multiples lam0_i = sigma_i c_i of
        the equality rows of the switches far from their kinks (|z_i| > 100 delta ||Z_i||)
        and outside L (no row, no column), the same QP on the feasible set. Their u_i ~
        |z_i| is pinned by row i, and Y_i |z_i| / ((q + lam) delta^2) made the objective
        ~1e20 once the steps were far below the switches' scale: PIQP then stopped at its
        iteration limit on every late piece (a linear SVM, m = 500: 80 iterations where
        6-26 had sufficed). The QP's multipliers y' give y = y' - lam0.

        # NOTE: all far switches (lam0 by a triangular solve through L) took MXHILB's runs
        # (Hilbert rows read by a tournament) from 54 to 152 forms at n = 200 and ended
        # n = 50 "not stationary"; with switches outside L the published problems' runs are
        # unchanged."""
        lam0 = np.zeros(self.model.s)
        if not self._far.any():
            return self._c, lam0
        n, far = self.model.n, self._far
        lam0[far] = A.diagonal(n)[far] * self._c[n:][far]  # diagonal entry sigma_i = 1/sigma_i
        c = self._c - A.T @ lam0
        c[n:][far] = 0.0  # exactly, not the rounding of the subtraction
        return c, lam0

    def _solve_scaled(self, sigma: np.ndarray) -> _Piece:
        piqp, n = self._piqp, self.model.n
        A = self._A.copy()
        A.data = self._data.copy()
        A.data[self._diag] = sigma
        c, lam0 = self._reduced_cost(A)
        Am = np.asfortranarray(A.toarray()) if self.dense else A
        if self._solver is None:
            self._solver = piqp.DenseSolver() if self.dense else piqp.SparseSolver()
            st = self._solver.settings
            st.eps_abs, st.eps_rel, st.max_iter, st.verbose = _EPS, _EPS, _MAX_ITER, False
            self._solver.setup(self._P, c, Am, self._b, None, None, None, self._xl, None)
        elif self._P_fresh and self.metric is not None:  # P = (B + q I) / (q + lam) moved
            self._solver.update(P=self._P, c=c, A=Am, b=self._b)
        elif self._fresh:
            self._solver.update(c=c, A=Am, b=self._b)
        else:
            self._solver.update(c=c, A=Am)
        self._fresh = self._P_fresh = False
        status = self._solver.solve()
        res = self._solver.result
        w = np.asarray(res.x, np.float64)
        ok = status == piqp.PIQP_SOLVED and bool(np.all(np.isfinite(w)))
        w = np.nan_to_num(w)
        y = np.nan_to_num(np.asarray(res.y, np.float64))
        polished = _polish(A, c, self._b, w, n, self._pblock)
        if polished is None and self._pblock is not None:
            polished = _polish(A, c, self._b, w, n, self._pblock, exact=True)
        if polished is not None:
            w, y = polished
        y = (y - lam0) * self.phi / self.mu
        return _Piece(w[:n] * self.delta, np.maximum(w[n:], 0.0) * self.mu, y,
                      ok or polished is not None, polished is not None)

    def curvature(self, dx: np.ndarray) -> float:
        """1/2 dx^T B dx (0 without a metric)."""
        return 0.0 if self.metric is None else 0.5 * float(dx @ (self.metric @ dx))

    def flip_candidates(self, piece: _Piece, sigma: np.ndarray) -> np.ndarray:
        """Switches at their kink whose flipped reduced cost is negative, most violated first
        (the multiplier sign test of the module docstring, in the scaled units)."""
        model = self.model
        r_flip = (model.Y - sigma * piece.y - model.LT @ piece.y) * self.mu / self.phi
        at_kink = piece.u <= _KINK * self.mu
        bad = np.flatnonzero(at_kink & (r_flip < -_VIOLATION))
        return bad[np.argsort(r_flip[bad])]


def _polish(A: sp.csc_matrix, c: np.ndarray, b: np.ndarray, w: np.ndarray, n: int,
            block: np.ndarray | None = None, exact: bool = False
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact solution of the scaled piece QP on the active set PIQP found (v_i = 0 where
    v_i <= _KINK), as in OSQP's solution polishing (``block``: P's dx block, None for the
    identity): the KKT system
    [[P_FF, A_F^T], [A_F, 0]] is factored once regularized (+eps on the primal, -eps on the
    dual diagonal, which also covers active switches violating LIKQ, where it is singular)
    and solved by iterative refinement; up to three primal-dual corrections follow (a free
    v_i < 0 becomes active, an active v_i with a negative multiplier becomes free). Returns
    (w, y) when the result is a verified KKT point (equalities and stationarity to 1e-9,
    v >= 0, multipliers >= 0), else None (PIQP's solution is then kept).

    ``exact``: factor K itself (one refinement step), the caller's second try when a
    metric is set. The refinement on the regularized factors stalls when _REG ||K^-1|| ~ 1,
    as when a Newton step far below the switches' scale makes c and y ~ 1e9 (steps of 5e-6
    where |z_i| ~ 1: the equalities were off by 0.03, the step was left unpolished, and
    its model value came out positive).

    # NOTE: without a metric the second try is not made: on MXHILB at n = 200 (Hilbert
    # rows, K ill-conditioned) it took the run from 75 iterations to more than 200."""
    from scipy.sparse.linalg import splu

    s, N = A.shape
    Pb = None if block is None else sp.csr_matrix(block)
    act = w[n:] <= _KINK
    tol = 1e-9 * (1.0 + float(np.max(np.abs(b), initial=0.0)))
    with np.errstate(all="ignore"):
        for _ in range(4):
            F = np.flatnonzero(np.concatenate([np.ones(n, bool), ~act]))
            AF = A[:, F]
            Pd = np.zeros(F.size)
            Pd[:n] = 1.0
            PFF = sp.diags(Pd) if Pb is None else sp.bmat(
                [[Pb, None], [None, sp.csr_matrix((F.size - n,) * 2)]] if F.size > n
                else [[Pb]])
            K = sp.bmat([[PFF, AF.T], [AF, None]], format="csc")
            rhs = np.concatenate([-c[F], b])
            reg = np.concatenate([np.full(F.size, _REG), np.full(s, -_REG)])
            try:
                if exact:  # NOTE: a singular K can make SuperLU's BLAS print (stdout)
                    with quiet_fd(1), quiet_fd(2):
                        lu = splu(K, permc_spec=_ORDERING)
                else:
                    lu = splu((K + sp.diags(reg)).tocsc(), **_LU_OPTIONS)
            except RuntimeError:
                return None
            sol = lu.solve(rhs)
            for _ in range(1 if exact else _REFINE):
                sol = sol + lu.solve(rhs - K @ sol)
            if not np.all(np.isfinite(sol)):
                return None
            wn = np.zeros(N)
            wn[F] = sol[:F.size]
            y = sol[F.size:]
            r = c + A.T @ y
            r[:n] += wn[:n] if block is None else block @ wn[:n]  # the Lagrangian's gradient
            if not (np.max(np.abs(A @ wn - b), initial=0.0) <= tol and np.max(
                    np.abs(r[F]), initial=0.0) <= 1e-9 * (1.0 + np.max(np.abs(c)))):
                return None
            r = r[n:]
            bad_free = ~act & (wn[n:] < -1e-9)
            bad_act = act & (r < -1e-9)
            if not (bad_free.any() or bad_act.any()):
                wn[n:] = np.maximum(wn[n:], 0.0)
                return wn, y
            act = (act | bad_free) & ~bad_act
    return None
