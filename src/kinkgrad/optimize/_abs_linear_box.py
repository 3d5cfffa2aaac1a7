"""The piece QPs of :mod:`._abs_linear_model` when every switch is a kink of one coordinate,
z_i = cz_i + v_i dx_j(i) (L = 0, one entry in Z's row; at most one switch per coordinate):
the l1 terms of a lasso, an elastic net or an l1-regularised loss.

On the piece of sigma, u_i = sigma_i z_i >= 0 is the bound sigma_i v_i dx_j >= -sigma_i cz_i,
so u is eliminated and the piece QP of :mod:`._abs_linear_qp` becomes the bound-constrained

    min  c . dx + 1/2 dx^T (B + q I) dx   s.t.  lo <= dx <= hi

(c = J + sum_i Y_i sigma_i v_i e_j(i))
in R^n instead of R^(n+s) with s equality rows: PIQP's dense KKT system is n x n (a lasso at
n = 1000 with a learnt metric: 8 s per iteration for the relaxation and the piece QP in
R^2000, ~1 s here). With mu_j >= 0 the multiplier of switch i's bound (per unit of dx_j),
its reduced cost is r_i = mu_j / |v_i| and the equality multiplier of the full QP is
y_i = sigma_i (r_i - Y_i); the multiplier sign test reads r_i > 2 Y_i (flipping sigma_i
decreases the model). There is no convex relaxation here (:meth:`solve_relaxed` returns
None): the walk starts on the piece of x.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._abs_linear_qp import _EPS, _KINK, _MAX_ITER, _VIOLATION, PieceQP, _Piece

if TYPE_CHECKING:
    from ._abs_linear_model import AbsLinearModel

__all__ = ["BoxPieceQP", "piece_qp"]


def piece_qp(model: AbsLinearModel, backend: str, metric: np.ndarray | None
             ) -> PieceQP | BoxPieceQP:
    """:class:`BoxPieceQP` where it applies (backend "auto"), else :class:`PieceQP`."""
    if backend == "auto" and BoxPieceQP.applies(model):
        return BoxPieceQP(model, metric)
    return PieceQP(model, backend, metric)


class BoxPieceQP:
    """The bound-constrained piece QP of the module docstring (PIQP's dense solver, then an
    exact active-set polish), with :class:`PieceQP`'s interface."""

    @staticmethod
    def applies(model: AbsLinearModel) -> bool:
        """Every switch a kink of one coordinate, no two on the same coordinate."""
        rows, cols, _ = model.coordinate_kinks
        return rows.size == model.s > 0 and np.unique(cols).size == cols.size

    def __init__(self, model: AbsLinearModel, metric: np.ndarray | None = None) -> None:
        import piqp

        self._piqp, self.model, self.metric = piqp, model, metric
        rows, cols, vals = model.coordinate_kinks
        order = np.argsort(rows)
        self._col, self._v = cols[order], vals[order]  # switch i acts on coordinate _col[i]
        self.sigma0 = np.where(model.z0 < 0, -1.0, 1.0)
        self._lam = 0.0 if metric is None else float(np.linalg.norm(metric))
        g = float(np.linalg.norm(model.piece_gradient(self.sigma0)))
        self._gnorm = g if np.isfinite(g) and g > 0.0 else 1.0
        self._q = -1.0

    def _set_q(self, q: float) -> None:
        if q != self._q:
            self._q, n = q, self.model.n
            self.phi = self._gnorm ** 2 / (q + self._lam)  # the model's scale (q + lam) delta^2
            self.delta = self._gnorm / (q + self._lam)
            P = q * np.eye(n) if self.metric is None else self.metric + q * np.eye(n)
            self._P = P / (q + self._lam)  # the QP in d = dx / delta, cost / ((q + lam) delta^2)

    @property
    def mu(self) -> np.ndarray:
        """A magnitude of every |z_i| over steps of length delta."""
        return np.maximum(np.abs(self.model.cz), self.delta * np.abs(self._v))

    def solve(self, sigma: np.ndarray, q: float) -> _Piece:
        """The QP on the piece of ``sigma`` with proximal weight q."""
        model, n = self.model, self.model.n
        self._set_q(q)
        c = model.J.copy()
        np.add.at(c, self._col, model.Y * sigma * self._v)
        bound = -model.cz / self._v  # dx_j at switch i's kink
        lower = sigma * self._v > 0
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        lo[self._col[lower]], hi[self._col[~lower]] = bound[lower], bound[~lower]
        scale = (self._q + self._lam) * self.delta
        cs, los, his = c / scale, lo / self.delta, hi / self.delta
        solver = self._piqp.DenseSolver()
        st = solver.settings
        st.eps_abs, st.eps_rel, st.max_iter, st.verbose = _EPS, _EPS, _MAX_ITER, False
        solver.setup(np.asfortranarray(self._P), cs, None, None, None, None, None, los, his)
        ok = solver.solve() == self._piqp.PIQP_SOLVED
        d = np.nan_to_num(np.asarray(solver.result.x, np.float64))
        polished = _polish(self._P, cs, los, his, d)
        if polished is not None:
            d = polished
        dx = np.clip(d, los, his) * self.delta
        grad = self._P @ (dx / self.delta) + cs  # mu_lower - mu_upper, scaled
        mult = np.where(lower, grad[self._col], -grad[self._col]) * scale  # mu_j >= 0
        u = np.maximum(sigma * (model.cz + self._v * dx[self._col]), 0.0)
        at = u <= _KINK * self.mu
        r = np.where(at, np.maximum(mult, 0.0), 0.0) / np.abs(self._v)
        return _Piece(dx, u, sigma * (r - model.Y), ok or polished is not None,
                      polished is not None)

    def solve_relaxed(self, q: float) -> None:
        """No convex relaxation on this path (module docstring)."""
        self._set_q(q)
        return None

    def curvature(self, dx: np.ndarray) -> float:
        """1/2 dx^T B dx (0 without a metric)."""
        return 0.0 if self.metric is None else 0.5 * float(dx @ (self.metric @ dx))

    def flip_candidates(self, piece: _Piece, sigma: np.ndarray) -> np.ndarray:
        """Switches at their kink whose flipped reduced cost 2 Y_i - r_i is negative (module
        docstring), most violated first."""
        model = self.model
        r_flip = (model.Y - sigma * piece.y) * self.mu / self.phi
        at_kink = piece.u <= _KINK * self.mu
        bad = np.flatnonzero(at_kink & (r_flip < -_VIOLATION))
        return bad[np.argsort(r_flip[bad])]


def _polish(P: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, d: np.ndarray
            ) -> np.ndarray | None:
    """The exact minimizer on the active set of d (coordinates within 1e-7 of a bound held
    there, the others solved from P_FF d_F = -(c + P_FA d_A)), with up to three primal-dual
    corrections; None unless the result is a verified KKT point (bounds, and multipliers of
    the right sign, to 1e-9)."""
    at_lo = np.isfinite(lo) & (d - lo <= 1e-7 * (1.0 + np.abs(lo)))
    at_hi = np.isfinite(hi) & (hi - d <= 1e-7 * (1.0 + np.abs(hi))) & ~at_lo
    tol = 1e-9 * (1.0 + float(np.max(np.abs(c), initial=0.0)))
    for _ in range(4):
        fixed = at_lo | at_hi
        out = np.where(at_lo, lo, np.where(at_hi, hi, 0.0))
        free = np.flatnonzero(~fixed)
        if free.size:
            rhs = -(c[free] + P[np.ix_(free, np.flatnonzero(fixed))] @ out[fixed])
            try:
                out[free] = np.linalg.solve(P[np.ix_(free, free)], rhs)
            except np.linalg.LinAlgError:
                return None
        if not np.all(np.isfinite(out)):
            return None
        grad = P @ out + c
        if np.max(np.abs(grad[free]), initial=0.0) > tol:
            return None
        slack = 1e-9 * (1.0 + np.abs(out))
        bad_lo = ~fixed & (out < lo - slack)
        bad_hi = ~fixed & (out > hi + slack)
        wrong = (at_lo & (grad < -tol)) | (at_hi & (grad > tol))
        if not (bad_lo.any() or bad_hi.any() or wrong.any()):
            return out
        at_lo = (at_lo & ~wrong) | bad_lo
        at_hi = (at_hi & ~wrong) | bad_hi
    return None
