"""The inner solver of :mod:`.abs_linear`: a local minimizer of the abs-linear model plus a
proximal term, by an active-signature method whose piece problems are QPs
(:mod:`._abs_linear_qp`, solved by PIQP).

The model at x (from :class:`~kinkgrad.abs_normal.form.AbsNormalForm`, scalar f) is

    phi(dx) = cy + J dx + Y |z(dx)|,    z(dx) = cz + Z dx + L |z(dx)|,

and the subproblem is min_dx phi(dx) + 1/2 dx^T (B + q I) dx, B a positive semidefinite
metric (the smooth part's curvature, learnt by :mod:`._metric`; 0 without one). On the
piece of a fixed signature it is a convex QP; switches at their kink are flipped by the
multiplier sign test (see :mod:`._abs_linear_qp` for the QP and the test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..errors import KinkgradError, NonFiniteInputError, NotAbsSmoothError
from ._abs_linear_qp import PieceQP

if TYPE_CHECKING:
    from ..abs_normal.form import AbsNormalForm
    from .oracle import Oracle

__all__ = ["AbsLinearModel", "ModelStep", "PieceQP", "minimize_model", "model_at"]

_SINGLE_TRIES = 3  # single flips tried (most violated first) before the search stops
_COMPOUNDED = 1e4  # |L| bounds this far above the piece Jacobian's: compounded (see switch_scale)


class AbsLinearModel:
    """The abs-linear model of f at x, with Z and L stored sparse (CSR).

    Attributes:
        n, s: dimension and number of switching variables.
        f: f(x).
        J, Y, cz: the form's vectors (J, Y raveled: f is scalar).
        Z, L, LT: CSR matrices (LT = L^T).
        z0: z at dx = 0 (the switching values at x).
        finite: every entry of the form is finite.
    """

    def __init__(self, anf: AbsNormalForm) -> None:
        if not (anf.dense or anf.sparse):
            raise KinkgradError("abs-linear: internal error, the abs-normal form is not "
                                "materialised.")
        self.n, self.s = int(anf.n), int(anf.s)
        self.f = float(np.asarray(anf.y, np.float64).reshape(-1)[0])
        if anf.sparse:
            J, Y = (np.asarray(M.toarray(), np.float64) for M in (anf.J, anf.Y))
            Z = sp.csr_matrix(anf.Z, dtype=np.float64)
            L = sp.tril(anf.L, -1, format="csr").astype(np.float64)
        else:
            J, Y = anf.J, anf.Y
            Z = sp.csr_matrix(np.asarray(anf.Z, np.float64).reshape(self.s, self.n))
            L = sp.csr_matrix(np.tril(np.asarray(anf.L, np.float64).reshape(self.s, self.s), -1))
        self.J = np.asarray(J, np.float64).reshape(-1)
        self.Y = np.asarray(Y, np.float64).reshape(-1)
        self.cz = np.asarray(anf.cz, np.float64).reshape(-1)
        self.z0 = np.asarray(anf.z, np.float64).reshape(-1).copy()
        self.finite = all(bool(np.all(np.isfinite(a))) for a in
                          (Z.data, L.data, self.J, self.Y, self.cz, self.z0))
        if not self.finite:
            return
        self.Z, self.L = Z, L
        self.LT = self.L.T.tocsr()
        self._groups = self._levels()
        self._wnorm: np.ndarray | None = None
        # coordinate kinks: z_i = cz_i + Z_ij dx_j alone (one entry in Z's row, none in L's)
        one = np.flatnonzero((np.diff(Z.indptr) == 1) & (np.diff(L.indptr) == 0))
        self.coordinate_kinks = (one, Z.indices[Z.indptr[one]], Z.data[Z.indptr[one]])

    def _levels(self) -> list[tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]]:
        """Switches grouped by depth (row i of L refers only to switches of smaller depth),
        so that substitution runs one sparse product per depth instead of one per switch."""
        ptr, ind = self.L.indptr, self.L.indices
        depth = np.zeros(self.s, np.int64)
        for i in range(self.s):
            if ptr[i + 1] > ptr[i]:
                depth[i] = depth[ind[ptr[i]:ptr[i + 1]]].max() + 1
        top = int(depth.max()) if self.s else -1
        groups = []
        for k in range(top + 1):
            rows = np.flatnonzero(depth == k)
            groups.append((rows, self.L[rows], self.LT[rows]))
        return groups

    def evaluate(self, dx: np.ndarray) -> tuple[np.ndarray, float]:
        """(z(dx), phi(dx) - phi(0)): the exact piecewise-linear model at dx by forward
        substitution, in difference form (z = z0 + D, D = Z dx + L (|z0 + D| - |z0|)) so that
        small changes are not lost against a large offset cy."""
        D = self.Z @ dx
        a0 = np.abs(self.z0)
        for rows, Lk, _ in self._groups[1:]:
            D[rows] += Lk @ (np.abs(self.z0 + D) - a0)
        z = self.z0 + D
        return z, float(self.J @ dx + self.Y @ (np.abs(z) - a0))

    def piece_gradient(self, sigma: np.ndarray) -> np.ndarray:
        """J + Y Sigma (I - L Sigma)^{-1} Z: the gradient of phi on the piece of sigma
        (backward substitution by depth: w = Sigma (Y + L^T w), gradient J + Z^T w)."""
        w = np.zeros(self.s)
        for rows, _, LTk in reversed(self._groups):
            w[rows] = sigma[rows] * (self.Y[rows] + LTk @ w)
        return self.J + self.Z.T @ w

    def switch_scale(self, delta: float) -> np.ndarray:
        """A magnitude for every |z_i| over steps of length delta: the larger of |z_i(x)|,
        delta ||Z_i|| and sum_j |L_ij| scale_j; but when the largest of those exceeds 1e4
        times the largest of |z_i(x)| and delta ||W_i||, W the switch Jacobian on the piece of
        x, the latter for every switch. Floored at 1e-12 of the largest.

        # NOTE: the bound through |L| compounds like 2^depth through a sorting network
        # (rows of L summing to 2): at 30 levels a 1e9 spread of scales left PIQP at its
        # iteration limit on every piece (a top-k loss stalled at 12.17 where the LP gives
        # 11.43). On a piece the network only routes its inputs and the rows of W stay the
        # size of Z's. Measured: along the runs of MXHILB (n = 50, 200), MaxQ, active
        # faces and chained CB3 I (n = 200) the two largest scales differ by at most 126x,
        # at the start points of all ten published problems at n = 1000 by at most 185x
        # (the others have no L), and on the top-k loss by 2e7; the ten give the same
        # results at n = 50 and 200 with and without the rule. Switch by switch the ratio
        # is no guide: a row of W can vanish on one piece (MXHILB: 17 of 157 rescalings
        # had entries above 1e6) while the switch moves on the next.
        """
        Zn = np.sqrt(np.asarray(self.Z.multiply(self.Z).sum(axis=1)).reshape(-1))
        mu = np.maximum(np.abs(self.z0), delta * Zn)
        for rows, Lk, _ in self._groups[1:]:
            mu[rows] = np.maximum(mu[rows], abs(Lk) @ mu)
        if len(self._groups) > 1:
            piece = np.maximum(np.abs(self.z0), delta * self._piece_row_norms())
            if np.max(mu) > _COMPOUNDED * np.max(piece):
                mu = piece
        top = float(np.max(mu, initial=0.0))
        if not (np.isfinite(top) and top > 0.0):
            return np.ones(self.s)
        return np.maximum(mu, 1e-12 * top)

    def _piece_row_norms(self) -> np.ndarray:
        """||W_i||, W = (I - L Sigma)^{-1} Z on the piece of x (sign(z), +1 at kinks), by
        forward substitution by depth (computed once per model)."""
        if self._wnorm is None:
            W = self.Z.tocsr()  # sparse: a chained form at n = 10^4 is 2e8 entries dense
            sigma = sp.diags(np.where(self.z0 < 0, -1.0, 1.0))
            for rows, Lk, _ in self._groups[1:]:
                scatter = sp.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                                        shape=(self.s, rows.size))
                W = (W + scatter @ (Lk @ (sigma @ W))).tocsr()
            self._wnorm = np.sqrt(np.asarray(W.multiply(W).sum(axis=1)).reshape(-1))
        return self._wnorm

    def land_on_coordinate_kinks(self, dx: np.ndarray, within: float = 0.0) -> np.ndarray:
        """dx with every coordinate kink it reaches to within rounding (|z_i(dx)| <= 1e-9
        max(|z_i(0)|, |Z_ij| ||dx||_inf)) reached exactly: dx_j = -z0_i / Z_ij, so that
        x_j + dx_j is the kink itself where f computes z_i = x_j - c (a lasso's x_j = 0,
        not 1e-37), and a coordinate at its kink stays there. A coordinate with two such
        kinks at different places is left as it is. ``within`` > 0: also every coordinate
        kink that x + dx lies within that distance of.

        # NOTE: the piece QP puts u_i = |z_i| = 0 exactly, but dx_j comes from a scaled
        # solve, so x_j + dx_j was ~1e-17 x_j: over a run a lasso's zero coefficients
        # shrank geometrically to 1e-37 and never became 0 (0 of 250 exact zeros)."""
        rows, cols, vals = self.coordinate_kinks
        if rows.size == 0:
            return dx
        z0 = self.z0[rows]
        move = vals * dx[cols]
        reach = np.abs(vals) * float(np.max(np.abs(dx), initial=0.0))
        landed = np.abs(z0 + move) <= np.maximum(1e-9 * np.maximum(np.abs(z0), reach),
                                                 within * np.abs(vals))
        if not landed.any():
            return dx
        cols, root = cols[landed], -z0[landed] / vals[landed]
        order = np.lexsort((root, cols))  # by coordinate, then by root
        cols, root = cols[order], root[order]
        first = np.r_[True, cols[1:] != cols[:-1]]
        last = np.r_[first[1:], True]
        same = root[first] == root[last]  # the smallest and largest root of the coordinate
        out = dx.copy()
        out[cols[first][same]] = root[first][same]
        return out


def model_at(oracle: Oracle, x: np.ndarray, dense_limit: float
             ) -> tuple[AbsLinearModel | None, str | None]:
    """(model, None) at x, or (None, reason) when no usable dense model exists there."""
    try:
        anf = oracle.abs_normal(x)
    except NotAbsSmoothError as e:
        return None, f"no abs-normal form at the point ({e})"
    except NonFiniteInputError as e:  # e.g. sqrt at 0: the step is shortened off the point
        return None, f"f is not locally Lipschitz at the point ({e})"
    if not anf.dense:
        size = anf.s * (anf.n + anf.s)
        if size <= dense_limit:
            anf.todense()
        else:  # the rows by compressed reverse sweeps: a chained form is sparse
            anf.tosparse()
            nnz = anf.Z.nnz + anf.L.nnz
            if nnz > dense_limit:
                return None, (f"the abs-normal form has s = {anf.s} switches for n = "
                              f"{anf.n} with {nnz:.3g} nonzeros in Z and L (> dense_limit "
                              f"= {dense_limit:.3g}): too large to materialise; raise "
                              "options['dense_limit'] or use method='bundle'")
    with np.errstate(all="ignore"):
        model = AbsLinearModel(anf)
    if not model.finite:
        return None, "the abs-normal form has non-finite entries at the point"
    return model, None


@dataclass
class ModelStep:
    """Outcome of :func:`minimize_model`.

    Attributes:
        dx: the step (a local minimizer of phi + 1/2 dx^T (B + q I) dx when ``stationary``).
        dphi: phi(dx) - phi(0), the exact model change (forward substitution).
        curv: 1/2 dx^T B dx, the metric's part of the predicted change dphi + curv of f.
        stationary: the last piece QP was solved and no flip passing the multiplier test
            decreases the model further.
        pieces: piece QPs solved.
        ok: False when the first piece QP failed and its approximate solution does not
            decrease the model either (dx = 0 is then returned). A failed QP whose point
            decreases the exact model value is still used (not ``stationary``).
        value: dphi + curv + q/2 ||dx||^2 (the subproblem's objective relative to dx = 0).
        relaxed: whether the convex relaxation was exact (None: not tried).
        multipliers: y of the last piece QP's equalities -Z dx + (Sigma - L) u = cz (None
            when s = 0): J - Z^T y = -(B + q I) dx there, so J - Z^T y is the gradient of
            the model's Lagrangian in x.
    """

    dx: np.ndarray
    dphi: float
    stationary: bool
    pieces: int
    ok: bool
    value: float = 0.0
    relaxed: bool | None = None
    curv: float = 0.0
    multipliers: np.ndarray | None = None


def minimize_model(model: AbsLinearModel, qp: PieceQP | None, q: float, max_pieces: int,
                   relax: bool = True, metric: np.ndarray | None = None) -> ModelStep:
    """A local minimizer of phi(dx) + 1/2 dx^T (B + q I) dx by the active-signature method
    (B = ``metric``, the PieceQP's own when s > 0; None for B = 0).

    Start piece: with ``relax``, the signature of z at the solution of the convex relaxation
    (:meth:`PieceQP.solve_relaxed`) when the relaxation is exact there (the model value at
    its dx matches the relaxation's value to 1e-6 of the model's scale q delta^2, plus the
    QP's feasibility accuracy and the rounding of the model's evaluation: then that dx is a
    global minimizer of the model to that accuracy); otherwise sign(z(x)) (+1 at
    exact kinks), i.e. the piece of dx = 0. On each piece the QP gives the minimizer there;
    switches at their kink failing the multiplier sign test are flipped: first all of them
    at once (when there are several), then one at a time, most violated first (at most
    three tries). A flip is kept only if the exact model value (the objective) strictly
    decreases, so no piece is visited twice and the search ends after finitely many pieces
    (at most ``max_pieces``). A walk from the relaxation's piece that ends no lower than
    dx = 0 is redone from the piece of dx = 0. With s = 0 (f smooth) the model is linear
    and the step is -(B + q I)^{-1} J.
    """
    with np.errstate(all="ignore"):
        if model.s == 0 or qp is None:
            if metric is None:
                dx, curv = -model.J / q, 0.0
            else:
                dx = -np.linalg.solve(metric + q * np.eye(model.n), model.J)
                curv = 0.5 * float(dx @ (metric @ dx))
            dphi = float(model.J @ dx)
            return ModelStep(dx, dphi, True, 0, True, dphi + curv + 0.5 * q * float(dx @ dx),
                             curv=curv)
        exact = None
        start = qp.sigma0
        if relax:
            out = qp.solve_relaxed(q)
            exact = False
            if out is not None:
                z, dphi = model.evaluate(out[0])
                value = dphi + qp.curvature(out[0]) + 0.5 * q * float(out[0] @ out[0])
                slack = (1e-8 * float(np.abs(model.Y) @ qp.mu)  # the QP's feasibility
                         + 1e-13 * float(np.abs(model.Y) @ np.abs(model.z0)  # rounding
                                         + np.abs(model.J) @ np.abs(out[0])))
                exact = bool(value - out[1] <= 1e-6 * qp.phi + slack)
                if exact:
                    start = np.where(z < 0, -1.0, 1.0)
        step = _walk(model, qp, q, max_pieces, start)
        if start is not qp.sigma0 and not (step.ok and step.value < 0.0):
            step = _walk(model, qp, q, max_pieces, qp.sigma0)
        step.relaxed = exact
        if step.ok:
            _land(model, qp, q, step)
        return step


def _land(model: AbsLinearModel, qp: PieceQP, q: float, step: ModelStep) -> None:
    """The step onto the coordinate kinks it reaches (:meth:`AbsLinearModel.
    land_on_coordinate_kinks`), its model values recomputed, when that does not raise the
    subproblem's objective beyond rounding."""
    dx = model.land_on_coordinate_kinks(step.dx)
    if dx is step.dx:
        return
    dphi = model.evaluate(dx)[1]
    curv = qp.curvature(dx)
    value = dphi + curv + 0.5 * q * float(dx @ dx)
    if np.isfinite(value) and value <= step.value + 1e-12 * qp.phi + 1e-15 * abs(model.f):
        step.dx, step.dphi, step.curv, step.value = dx, dphi, curv, value


def _walk(model: AbsLinearModel, qp: PieceQP, q: float, max_pieces: int,
          sigma: np.ndarray) -> ModelStep:
    """The active-signature walk from the piece of ``sigma`` (see :func:`minimize_model`)."""
    n = model.n
    sigma = sigma.copy()
    piece = qp.solve(sigma, q)
    pieces = 1
    dphi = model.evaluate(piece.dx)[1]
    curv = qp.curvature(piece.dx)
    val = dphi + curv + 0.5 * q * float(piece.dx @ piece.dx)
    if not (np.isfinite(val) and (piece.ok or val < 0.0)):
        return ModelStep(np.zeros(n), 0.0, False, pieces, False)
    gap = 1e-11 * qp.phi  # smallest decrease that counts, in the QP's scale
    stationary, failures = False, 0
    while pieces < max_pieces and piece.ok:
        cands = qp.flip_candidates(piece, sigma)
        if cands.size == 0:
            stationary = True
            break
        trials = ([cands] if cands.size > 1 else []) + [cands[k:k + 1] for k in
                                                        range(min(_SINGLE_TRIES, cands.size))]
        improved = exhausted = False
        for flip in trials:
            if pieces >= max_pieces:
                exhausted = True
                break
            sig2 = sigma.copy()
            sig2[flip] *= -1.0
            p2 = qp.solve(sig2, q)
            pieces += 1
            failures += not p2.ok
            if failures > 2:  # the QPs are too ill-conditioned to walk on
                exhausted = True
                break
            dphi2 = model.evaluate(p2.dx)[1]
            curv2 = qp.curvature(p2.dx)
            val2 = dphi2 + curv2 + 0.5 * q * float(p2.dx @ p2.dx)
            if np.isfinite(val2) and val2 < val - gap:
                sigma, piece, dphi, curv, val, improved = sig2, p2, dphi2, curv2, val2, True
                break
        if not improved:
            stationary = not exhausted
            break
    return ModelStep(piece.dx, dphi, stationary and piece.ok, pieces, True, val, curv=curv,
                     multipliers=piece.y)
