"""The pieces of the ball's first-order model with the near-active kinks' offsets kept.

At a radius r > 0, :mod:`.ball_model` moves every near-active switch onto its kink and
:mod:`.localset` describes the Clarke set of that moved model: the hull of the pieces whose
cones at x are open. With the offsets c_i = z_i(x) != 0 the ball sees other pieces: the
first-order (abs-linear) model of the switches at x is

    z(d) = c~ + A d + K |z(d)|,    c~ = c - K |c|,

(A, K the moved model's rows: the derivatives at x with the near-active |z_q| held; the
other switches keep their signs), and a sign pattern sigma is met by the ball when the
polyhedron {d : sigma_i z_i(d) >= 0} (on it z(d) = e + W d, e = (I - K Sigma)^{-1} c~,
W = (I - K Sigma)^{-1} A) meets {||d||_2 <= r}. Two ways the moved model differs:

* a piece whose cone is open at x can lie outside the ball: max(2x, x/2 + 1, 1/2) at
  x = 0.8, r = 0.6, whose entry 1/2 is dominated by x/2 + 1 throughout [0.2, 1.4];
* a piece between two near-active kinks on one side of x has no cone at x at all:
  x - 2 relu(x - 0.5) + 3 relu(x - 0.8) at 0, r = 0.9, slope -1 on (0.5, 0.8).

For at most a few switches the patterns met by the ball are enumerated depth first in
program order (topological: row i is known once sigma_0..sigma_{i-1} are), one SOCP per
node (Clarabel): max t s.t. sigma_j (e_j + W_j d) >= t ||W_j|| (j <= i), ||d||_2 <= r. A node
with t* < -``_PRUNE`` r is met nowhere in the ball (pruned with its subtree); leaves with
t* >= that go to the **outer** list (a superset of the pieces the ball meets), and a leaf
whose solution d is checked in floating point (||d|| <= r, every sigma_j z_j(d) > 0 by
forward substitution) to the **inner** list: pieces with a point of the ball in their
interior, hence (to first order; exactly for a piecewise-linear program) gradients of f at
points of the ball. Rows that vanish on a piece are constant there (sigma_j = sign(e_j)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .active import ActiveModel
from .lp import nonzero_rows, row_norms, row_terms

__all__ = ["BallPieces", "ball_inner", "ball_pieces", "meet_in_ball", "offsets_of",
           "own_gradient"]

_PRUNE = 1e-7  # a node is pruned when its margin t* < -_PRUNE * radius
_TOL = 1e-10  # Clarabel's feasibility and gap tolerances
_ROUNDS, _RANDOM = 30, 512  # ball_inner's column-generation rounds, most random points
_LSQR_STEPS, _DENSE = 200, 4_000_000  # LSQR's steps; a dense SVD up to this m n
_ROUNDING = 2.0 ** -40  # a piecewise-linear one to this part of its terms' size
_WIDE_ROUNDING = 2.0 ** -8  # a curved one also to this part of its computed offset's error


@dataclass
class BallPieces:
    """Gradients of the pieces of the ball's model (module docstring).

    Attributes:
        outer: (k, n) every piece not proven to miss the ball (a superset of those met).
        inner: (k', n) pieces with a checked point of the ball in their interior.
        complete: every outer piece is proven (outer and inner describe one set).
        socps: number of SOCPs solved.
    """

    outer: np.ndarray
    inner: np.ndarray
    complete: bool
    socps: int


def offsets_of(model: ActiveModel, wide: bool = False) -> np.ndarray:
    """c~ = c - K|c| of the module docstring for the model's switches (c = z at x; with
    ``wide``, z replayed in a wider precision, :meth:`.expand.Expanded.z_wide`)."""
    c = np.asarray(model.exp.z_wide() if wide else model.exp.z(), np.float64)[model.active]
    return c - model.K_sparse @ np.abs(c)


def own_gradient(model: ActiveModel) -> tuple[np.ndarray, bool]:
    """(the model's gradient on x's own piece, sign(z) at x, and whether every switch is off
    its kink there: then it is the first-order gradient of f at x, a point of the ball)."""
    c = np.asarray(model.exp.z(), np.float64)[model.active]
    return model.gradient(np.sign(c)), bool(np.all(c != 0))


def meet_in_ball(model: ActiveModel, radius: float, dense: bool = True) -> float | None:
    """||d|| of a d with ||d|| <= radius where every switch of the model sits on its kink
    to first order (A d = -c~ for f's offsets c~, from a wider replay; each residual
    within ``_ROUNDING`` times the size of its terms |c~_i| + ||A_i|| ||d||_1, plus for
    curved switches ``_WIDE_ROUNDING`` times the computed offset's error), or None when the
    least-norm solution
    (LSQR, then with ``dense`` a truncated SVD) is not one.

    There the moved model is the first-order model of f at y = x + d, a point of the ball:
    its Clarke set is part of the ball's set and its first-order minimality is y's. Where
    no such point exists (near-active kinks that cannot meet within the ball, as both
    examples of the module docstring) the moved model describes no point of the ball."""
    from scipy.sparse.linalg import lsqr

    A = model.A_sparse
    ct = offsets_of(model, wide=True)  # NOTE: f's offsets, not their computed rounding
    s = float(np.max(np.abs(ct), initial=0.0))
    if s == 0.0:
        return 0.0
    # NOTE: solved for d / s (offsets of 1e-300 underflow LSQR's norms) and compared in
    # units of the radius (a radius of 1e300 overflows ||d||^2)
    rows = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).reshape(-1))

    from .localset import piecewise_linear

    # NOTE: piecewise-linear switches meet to rounding: three sort near ties 1e-10 apart on
    # a line (radius 1e-6) "met" within 1e-3 of the ball's reach where no point has all
    # three, and the moved model's ordering that none realises became a proven element.
    # Curved ones too, with the offsets' own rounding allowed (a wider replay's offsets,
    # within 2^-8 of the computed ones' error): within 1e-3 of the ball's reach, the same
    # ties through sin(x) gave a wrong "stationary" (bound 1.2706, truth 1.2982), and within
    # 1e-3 of the move's reach a max whose fourth entry misses the other three's meeting
    # point by 2e-4 of it (its gradient 1e-4 shorter). Chained CB3 I's end point (offsets of
    # 3e-14 computed from terms of size 1, off by 1e-16) keeps its meet
    linear = piecewise_linear(model.exp, model.active)
    off = None if linear else np.abs(offsets_of(model) - ct)  # the computed ones' rounding

    def meets(e: np.ndarray) -> bool:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            within = _ROUNDING * (np.abs(ct / s) + rows * np.abs(e).sum())
            if off is not None:
                within = within + _WIDE_ROUNDING * off / s
            return bool(np.linalg.norm(e * (s / radius)) <= 1.0 and np.all(
                np.abs(A @ e + ct / s) <= within))

    e, stop = lsqr(A, -ct / s, atol=1e-15, btol=1e-15, iter_lim=_LSQR_STEPS)[:2]
    if not meets(e) and dense and stop == 7 and A.shape[0] * A.shape[1] <= _DENSE:
        # NOTE: LSQR stalls on ill-conditioned rows (MXHILB's Hilbert rows; stop 7: its
        # step limit, not a least-squares solution of an inconsistent system). A truncated
        # SVD solution d_t has ||d_t|| <= ||d*|| and residual <= rcond s_max ||d*|| for any
        # solution d*, so it meets whenever some solution of norm <= r does
        e = np.linalg.lstsq(A.toarray(), -ct / s, rcond=1e-10)[0]
    return float(np.linalg.norm(e) * s) if meets(e) else None


def ball_pieces(model: ActiveModel, radius: float, budget: int = 128) -> BallPieces | None:
    """The pieces of ``model`` that the ball of ``radius`` meets with the offsets kept
    (module docstring); None when more than ``budget`` SOCPs would be needed. A node's
    witness (a point of the ball inside its constraints) carries over to the child on its
    side, so only the other child costs an SOCP."""
    m, n = model.m, model.spec.n
    A_full, K = model.A, model.K
    cols = np.flatnonzero(np.any(A_full != 0, axis=0))
    A = A_full[:, cols]
    ct = offsets_of(model)
    g0, bhat = np.asarray(model.g0, np.float64).reshape(-1), model.bhat
    norms_A, norms_W = row_norms(A), np.zeros(m)  # NOTE: each row against its own terms
    sigma, W, e = np.zeros(m), np.zeros((m, cols.size)), np.zeros(m)
    outer: list[np.ndarray] = []
    inner: list[np.ndarray] = []
    socps = 0
    complete = True
    # frames: [i, options: list of (sign, witness (t, d) or None: needs an SOCP) or None,
    # the node's witness]
    stack: list[list] = [[0, None, (radius, np.zeros(cols.size))]]
    while stack:
        frame = stack[-1]
        i, options, (t0, d0) = frame
        if options is None:
            W[i] = A[i] + (K[i, :i] * sigma[:i]) @ W[:i]
            e[i] = ct[i] + (K[i, :i] * sigma[:i]) @ e[:i]
            terms = norms_A[i] + np.abs(K[i, :i] * sigma[:i]) @ norms_W[:i]
            norms_W[i] = row_norms(W[i:i + 1])[0]
            if not nonzero_rows(W[i:i + 1], terms)[0]:
                W[i] = 0.0
                options = [(float(np.sign(e[i])), (t0, d0))]  # constant on the piece
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    v = (e[i] + W[i] @ d0) / np.linalg.norm(W[i]) if d0 is not None else 0.0
                side = 1.0 if v >= 0 else -1.0
                free = (min(t0, abs(v)), d0) if (d0 is not None and t0 > 0 and v != 0
                                                 and np.isfinite(v)) else None
                options = [(side, free), (-side, None)]
            frame[1] = options
        if not options:
            sigma[i] = 0.0
            stack.pop()
            continue
        sigma[i], witness = options.pop(0)
        if witness is None:
            if socps >= budget:
                return None
            socps += 1
            rows = np.flatnonzero(np.any(W[:i + 1] != 0, axis=1) & (sigma[:i + 1] != 0))
            best, t, d = _margin(sigma[rows, None] * W[rows], sigma[rows] * e[rows], radius)
            if best < -_PRUNE * radius:  # NOTE: nan (a solver failure) keeps the node
                continue
            witness = (t, d)
        if i + 1 < m:
            stack.append([i + 1, None, witness])
            continue
        g = g0.copy()
        g[cols] += (sigma * bhat) @ W
        outer.append(g)
        t, d = witness
        met = None
        if t > 0 and d is not None:  # NOTE: into the ball's interior by a part of the margin
            nd = float(np.linalg.norm(d / radius))  # NOTE: in radii: radius 1e300 overflows
            d = d * min(1.0, (1.0 - 0.25 * min(t / radius, 1.0)) / nd) if nd else d
            met = _checked(model, A, K, ct, d, radius)
        if met is None:
            complete = False
        else:
            inner.append(model.gradient(met))
    if not outer:
        return BallPieces(np.zeros((0, n)), np.zeros((0, n)), False, socps)
    return BallPieces(np.unique(np.array(outer), axis=0),
                      np.unique(np.array(inner).reshape(-1, n), axis=0), complete, socps)


def ball_inner(model: ActiveModel, radius: float, tol: float, hint: np.ndarray | None,
               rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    """(a point of the hull of the pieces met at checked points of the ball, its norm, how
    many points): the model's pieces at x (d = 0), at up to ``_RANDOM`` points uniform in
    the ball (fewer where A is dense: about 2e8 / nnz(A)) and, Frank-Wolfe's column
    generation, at the points -s w / ||w|| (s = 0.9 r, 0.5 r, 0.1 r) against the current
    minimum-norm point w (a start ``hint``, e.g. the moved model's), while it shrinks. Each
    is a gradient of the first-order model at a point of the ball (forward substitution,
    all points at once), so the hull is part of the ball's set."""
    from .minnorm import hull_by_columns

    n = model.spec.n
    ct = offsets_of(model)
    A, K = model.A_sparse, model.K_sparse.tocsr()
    coupled = np.flatnonzero(np.diff(K.indptr))
    absA, absK = abs(A), abs(K)
    KT = K.T.tocsr()
    bhat = model.bhat

    def pieces(D: np.ndarray) -> np.ndarray:
        """Gradients (k, n) at the points D (k, n) decided beyond rounding (z within 1e-9 of
        its size from 0 at a point: that point is dropped)."""
        with np.errstate(over="ignore", invalid="ignore"):  # NOTE: checked just below
            Z = ct[:, None] + A @ D.T  # (m, k)
            for i in coupled:
                lo, hi = K.indptr[i], K.indptr[i + 1]
                Z[i] += K.data[lo:hi] @ np.abs(Z[K.indices[lo:hi]])
            size = np.abs(ct)[:, None] + absA @ np.abs(D.T) + absK @ np.abs(Z)
        ok = ~np.any((np.abs(Z) <= 1e-9 * size) & (size > 0), axis=0) & np.all(
            np.isfinite(size), axis=0)
        S = np.sign(Z[:, ok])
        W = S * bhat[:, None]  # w_j = s_j (bhat_j + sum_{k > j} K_kj w_k), later rows first
        for j in np.flatnonzero(np.diff(KT.indptr))[::-1]:
            lo, hi = KT.indptr[j], KT.indptr[j + 1]
            W[j] = S[j] * (bhat[j] + KT.data[lo:hi] @ W[KT.indices[lo:hi]])
        return model.g0[None, :] + (A.T @ W).T

    def unit(v: np.ndarray) -> np.ndarray:
        v = v / float(np.max(np.abs(v)))  # NOTE: first, or ||v||^2 underflows below 1e-154
        return v / float(np.linalg.norm(v))

    k = int(min(_RANDOM, max(16, 2e8 // max(A.nnz + KT.nnz, 1))))
    U = rng.standard_normal((k, n))
    U *= (radius * 0.999 * rng.random(k) ** (1.0 / n) / np.linalg.norm(U, axis=1))[:, None]
    D = np.vstack([np.zeros((1, n)), U])
    if hint is not None and np.any(hint):
        D = np.vstack([D, [-s * radius * unit(hint) for s in (0.9, 0.5, 0.1)]])
    tries = [D.shape[0]]

    def enter(u: np.ndarray) -> np.ndarray:
        tries[0] += 3
        return pieces(np.array([s * radius * u for s in (0.9, 0.5, 0.1)]))

    point, norm = hull_by_columns(pieces(D), enter, tol, _ROUNDS)
    return point, norm, tries[0]


def _checked(model: ActiveModel, A: np.ndarray, K: np.ndarray, ct: np.ndarray, d: np.ndarray,
             radius: float) -> np.ndarray | None:
    """sign(z(d)) when d lies in the ball and no z_j(d) is within rounding of 0, else None
    (z(d) = c~ + A d + K|z(d)| by forward substitution; A on the model's nonzero columns)."""
    if not np.linalg.norm(d / radius) <= 1.0:
        return None
    z = np.zeros(A.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(A.shape[0]):
            z[i] = ct[i] + A[i] @ d + K[i, :i] @ np.abs(z[:i])
        size = np.abs(ct) + np.abs(A) @ np.abs(d) + np.abs(K) @ np.abs(z)
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(size))):
        return None  # NOTE: beyond float64 at that point (a radius near 1e300)
    sigma = np.sign(z)
    # NOTE: a switch within rounding of its kink at d leaves the piece undecided, unless its
    # row vanishes on the piece (it is constant there, and its sign enters no row of W)
    unclear = (np.abs(z) <= 1e-9 * size) & (size > 0)
    if unclear.any():
        W = model.W(sigma)
        if nonzero_rows(W[unclear], row_terms(model.A, model.K, sigma, W)[unclear]).any():
            return None
    return sigma


def _margin(R: np.ndarray, b: np.ndarray, radius: float
            ) -> tuple[float, float, np.ndarray | None]:
    """max t s.t. R_j d + b_j >= t ||R_j||, ||d||_2 <= radius (Clarabel, solved scaled: unit
    rows and d = radius u, ||u|| <= 1): (the solver's t*, the margin its point d* has
    itself, d*), or (nan, nan, None) when the solver fails (the node is then kept,
    unproven). A node is pruned on t* (its gap tolerance is 1e-10 r, far below ``_PRUNE``),
    and a point is trusted with its own margin."""
    import clarabel

    k, p = R.shape
    nr = np.linalg.norm(R, axis=1)
    U, c = R / nr[:, None], b / (nr * radius)
    # variables [u (p), tau]; s = rhs - M v in the cones: U u - tau >= -c, tau <= 1, (1, u)
    M = sp.vstack([sp.hstack([sp.csc_matrix(-U), sp.csc_matrix(np.ones((k, 1)))]),
                   sp.csc_matrix(([1.0], ([0], [p])), shape=(1, p + 1)),
                   sp.csc_matrix((1, p + 1)),
                   sp.hstack([-sp.identity(p), sp.csc_matrix((p, 1))])], format="csc")
    rhs = np.concatenate([c, [1.0, 1.0], np.zeros(p)])
    cones = [clarabel.NonnegativeConeT(k + 1), clarabel.SecondOrderConeT(1 + p)]
    q = np.zeros(p + 1)
    q[p] = -1.0
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = _TOL
    sol = clarabel.DefaultSolver(sp.csc_matrix((p + 1, p + 1)), q, M, rhs, cones,
                                 settings).solve()
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        return float("nan"), float("nan"), None
    v = np.asarray(sol.x, np.float64)
    u = v[:p] / max(1.0, float(np.linalg.norm(v[:p])))
    return float(v[p]) * radius, float(min(v[p], np.min(U @ u + c))) * radius, radius * u
