"""The local model of :mod:`.minimality` and its bounds: the slope f'(d), a lower bound on
the least slope from any multipliers, least squares for the multipliers and least-norm
directions, copies of kinks merged, the multipliers LP, every sign pattern's cone, and the
cones of sampled directions (the mathematics is in :mod:`.minimality`'s docstring)."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.optimize import Bounds, LinearConstraint, linprog, milp, nnls
from scipy.sparse.linalg import splu, spsolve_triangular

from ._sparse_rank import sparse_rank
from .lp import quiet_fd
from .stationarity import _model_z
from .zero_norms import Balls

__all__ = ["LeastSquares", "Norms", "SlopeModel", "block_sums", "cone_descents",
           "lp_multipliers", "merge_parallel", "milp_descent", "over_regions", "pieces",
           "regions"]

_DENSE_ENTRIES = 4_000_000  # rows x n up to which dense rows (>= 5% nonzero) use an SVD
_SMALL = 250_000  # rows x n up to which every model's least squares use a dense SVD
_LP_VARIABLES = 30_000  # the multipliers LP (dependent rows) up to this many variables (HiGHS:
#   0.2 s at 5,000 on a chained model, 13 s at 50,000)
_REGION_VARIABLES = 3_000  # the region LPs (2^k of them) up to this many variables
_REGION_SECONDS = 10.0  # ... and for up to this long in all
_MILP_SWITCHES, _MILP_SECONDS = 64, 10.0  # the descent MILP: model size and HiGHS time limit
_RANK_BLOCK = 512  # blocks of rows up to which LIKQ is tested (eigvalsh; 4096: 0.12 s each)
_SPECTRAL = 1000  # norms with excess whose ||J_k||_2 is computed (Frobenius beyond)
_SAMPLES = 16  # random directions whose cones are searched for descent (dependent rows)
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class Norms:
    """Euclidean norms at zero as :class:`SlopeModel` reads them (as :class:`.Balls`)."""

    rows: sp.csr_matrix
    lam: np.ndarray
    dims: np.ndarray


class SlopeModel:
    """f'(d) = g0 . d + bhat . |z'| + sum_k lambda_k ||J_k d||, z' = A d + K|z'|."""

    def __init__(self, A: sp.csr_matrix, K: sp.csr_matrix, balls: Balls | Norms | None,
                 g0: np.ndarray, bhat: np.ndarray) -> None:
        n = A.shape[1]
        self.A, self.K, self.g0, self.bhat = A, K, g0, bhat
        self.J = balls.rows.tocsr() if balls is not None else sp.csr_matrix((0, n))
        self.lam = np.asarray(balls.lam, np.float64) if balls is not None else np.zeros(0)
        self.dims = np.asarray(balls.dims, np.int64) if balls is not None else np.zeros(0, int)
        self.m = A.shape[0]
        self.R = sp.vstack([A, self.J]).tocsr()
        self.coupled = np.flatnonzero(np.diff(K.indptr))
        self.G = self.through_couplings(np.sqrt(np.asarray(A.multiply(A).sum(axis=1))
                                                .reshape(-1)))
        self.starts = np.concatenate([[0], np.cumsum(self.dims)]).astype(np.int64)

    def through_couplings(self, base: np.ndarray) -> np.ndarray:
        """b with b_i = base_i + sum_j |K_ij| b_j (K strictly lower triangular: rows in
        order): a bound on |z'_i| from one on |A_i d| (row norms: per ||d||_2; absolute row
        sums: per ||d||_inf)."""
        b, K = np.array(base, np.float64), self.K
        for i in self.coupled:
            lo, hi = K.indptr[i], K.indptr[i + 1]
            b[i] += np.abs(K.data[lo:hi]) @ b[K.indices[lo:hi]]
        return b

    @property
    def lp_residual_rows(self) -> int:
        """The residual's rows in :attr:`lp_rows`: m where n > 2m and A is dense up to 4e6
        entries (reduced by a QR), else n."""
        m, n = self.m, self.A.shape[1]
        return m if n > 2 * m and m * n <= _DENSE_ENTRIES else n

    @functools.cached_property
    def lp_rows(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """(A_ub, b_ub) of :func:`lp_multipliers` over (mu, s, t), both sides of every
        switch: |h - M mu| <= t and +-mu_i + (K^T mu)_i - s_i <= bhat_i, with (M, h) =
        (A^T, g0), or (R, Q^T g0) from A^T = Q R where n > 2m (dense up to 4e6 entries):
        ||g0 - A^T mu||^2 = ||(I - Q Q^T) g0||^2 + ||Q^T g0 - R mu||^2, the part that mu
        moves in m rows instead of n (n = 10^4, 12 switches: the LP took 6.8 s)."""
        A, m = self.A, self.m
        if self.lp_residual_rows == m:
            Q, R = np.linalg.qr(self.A_dense.T)
            M, h = sp.csr_matrix(R), Q.T @ self.g0
        else:
            M, h = A.T.tocsr(), self.g0
        k = M.shape[0]
        I_m, I_k = sp.identity(m, format="csr"), sp.identity(k, format="csr")
        Z_km, Z_mk, Kt = sp.csr_matrix((k, m)), sp.csr_matrix((m, k)), self.K.T.tocsr()
        A_ub = sp.vstack([sp.hstack([M, Z_km, -I_k]), sp.hstack([-M, Z_km, -I_k]),
                          sp.hstack([I_m + Kt, -I_m, Z_mk]),
                          sp.hstack([-I_m + Kt, -I_m, Z_mk])]).tocsr()
        return A_ub, np.concatenate([h, -h, self.bhat, self.bhat])

    @property
    def convex(self) -> bool:
        """Whether f'(.) is convex by its terms: no coupling, bhat >= 0, lambda >= 0."""
        return not self.K.nnz and bool(np.all(self.bhat >= 0) and np.all(self.lam >= 0))

    @functools.cached_property
    def A_dense(self) -> np.ndarray:
        return self.A.toarray()

    def piece(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W, g) on the piece of signature sigma: z' = W d, f'(d) = g . d (no norms);
        (I - K Sigma) W = A by forward substitution (dense for up to 512 switches: SuperLU's
        triangular solve with n right-hand sides took 28 of 45 s for 4,096 pieces of 12
        switches at n = 10^4)."""
        A = self.A_dense
        if not self.K.nnz:
            return A, self.g0 + A.T @ (sigma * self.bhat)
        T = (sp.identity(self.m, format="csr") - self.K @ sp.diags(sigma)).tocsr()
        if self.m <= 512:
            Td = T.toarray()
            W = solve_triangular(Td, A, lower=True, unit_diagonal=True)
            v = solve_triangular(Td.T, sigma * self.bhat, lower=False, unit_diagonal=True)
        else:
            W = spsolve_triangular(T, A, lower=True, unit_diagonal=True)
            v = spsolve_triangular(T.T.tocsr(), sigma * self.bhat, lower=False,
                                   unit_diagonal=True)
        return W, self.g0 + A.T @ v

    def slope(self, d: np.ndarray) -> float:
        w = _model_z(self.A, self.K, self.coupled, d)
        norms = np.sqrt(block_sums((self.J @ d) ** 2, self.dims))
        return float(self.g0 @ d + self.bhat @ np.abs(w) + self.lam @ norms)

    def lower_bound(self, theta: np.ndarray, signs: np.ndarray | None = None
                    ) -> tuple[float, np.ndarray, np.ndarray]:
        """(the proven lower bound above, the switches' excess (|mu_i| - c_i)_+, the norms'
        (||nu_k|| - lambda_k)_+), rounding of the residuals included. ``signs`` (m,) in
        {-1, 0, 1}: the bound on the region where sigma_i z'_i >= 0 for sigma_i = signs_i
        != 0, where |z'_i| = sigma_i z'_i makes the excess (-(c_i + sigma_i mu_i))_+."""
        mu, nu = theta[:self.m], theta[self.m:]
        R, K = self.R, self.K
        gam = (_column_count(R) + 3) * _EPS * 1.01
        r = self.g0 - R.T @ theta
        r_err = gam * (np.abs(self.g0) + abs(R).T @ np.abs(theta))
        c = self.bhat - K.T @ mu
        c_err = (_column_count(K) + 3) * _EPS * 1.01 * (np.abs(self.bhat) + abs(K).T @ np.abs(mu))
        gap = np.abs(mu) - c if signs is None else np.where(signs == 0, np.abs(mu) - c,
                                                            -(c + signs * mu))
        excess = np.maximum(0.0, gap + c_err)
        nu_norm = np.sqrt(block_sums(nu ** 2, self.dims)) * (1 + 4 * _EPS)
        ball_excess = np.maximum(0.0, nu_norm - self.lam)
        lower = -(float(np.linalg.norm(r)) + float(np.linalg.norm(r_err))
                  + float(excess @ self.G) + self._ball_terms(ball_excess))
        # NOTE: the norms and dot products above round by up to about (terms) u each
        return lower * (1 + (r.size + excess.size + 8) * _EPS), excess, ball_excess

    def _ball_terms(self, excess: np.ndarray) -> float:
        """sum_k excess_k ||J_k||_2: spectral norms (of the d_k x d_k Gram matrices) for
        up to ``_SPECTRAL`` norms with excess, Frobenius norms (larger) beyond."""
        total = 0.0
        for i, k in enumerate(np.flatnonzero(excess > 0)):
            sub = self.J[self.starts[k]:self.starts[k + 1]]
            if i < _SPECTRAL:
                gram = (sub @ sub.T).toarray()
                norm = np.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0) * (1 + 1e-12))
            else:
                norm = float(np.sqrt(sub.multiply(sub).sum()))
            total += float(excess[k]) * norm
        return total


def block_sums(v: np.ndarray, dims: np.ndarray) -> np.ndarray:
    if not dims.size:
        return np.zeros(0)
    return np.add.reduceat(v, np.concatenate([[0], np.cumsum(dims)[:-1]]))


def _column_count(M: sp.csr_matrix) -> int:
    return int(np.bincount(M.indices, minlength=1).max()) if M.nnz else 0


class LeastSquares:
    """min ||g - R^T theta|| and the least-norm solution of R d = b: a dense SVD for small
    or dense R, else a sparse LU of R R^T (slightly damped) with two refinement steps."""

    def __init__(self, R: sp.csr_matrix) -> None:
        self.R = R
        k, n = R.shape
        self.svd = None
        if k == 0:
            self.likq = True
        elif k * n <= _SMALL or (k * n <= _DENSE_ENTRIES and R.nnz >= 0.05 * k * n):
            U, s, Vt = np.linalg.svd(R.toarray(), full_matrices=False)
            keep = s > max(k, n) * _EPS * (s[0] if s.size else 0.0)
            self.likq = bool(keep.sum() == k)
            self.svd = (U[:, keep], s[keep], Vt[keep])
        else:
            rank, exact, _ = sparse_rank(R, _RANK_BLOCK)  # NOTE: a larger block: not LIKQ
            self.likq = bool(exact and rank == k)
            G = (R @ R.T).tocsc()
            damp = 1e-14 * max(float(G.diagonal().max(initial=0.0)), 1e-300)
            self.lu = splu((G + damp * sp.identity(k, format="csc")).tocsc())

    def multipliers(self, g: np.ndarray) -> np.ndarray:
        """theta minimising ||g - R^T theta|| (for each column of a 2-d g)."""
        R = self.R
        if R.shape[0] == 0:
            return np.zeros((0, *g.shape[1:]))
        if self.svd is not None:
            U, s, Vt = self.svd
            return U @ ((Vt @ g) / s.reshape(-1, *[1] * (g.ndim - 1)))
        theta = self.lu.solve(R @ g)
        for _ in range(2):
            theta = theta + self.lu.solve(R @ (g - R.T @ theta))
        return theta

    def least_norm(self, b: np.ndarray) -> np.ndarray:
        if self.svd is not None:
            U, s, Vt = self.svd
            return Vt.T @ ((U.T @ b) / s)
        return self.R.T @ self.lu.solve(b)


def merge_parallel(A: sp.csr_matrix, K: sp.csr_matrix, bhat: np.ndarray
                    ) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """The same model with switches whose rows (A_j, K_j) are alpha times an earlier
    switch's merged into it: z'_j = alpha z'_i on every piece, so |z'_j| = |alpha| |z'_i|
    (bhat_i += |alpha| bhat_j, K[:, i] += |alpha| K[:, j]). Copies of one kink (a value
    passed to abs twice, relu(x) - relu(-x)) make the rows dependent otherwise. Returns
    (A, K, bhat, kept switches' indices); rows count as parallel when their entries divided
    by their first one agree to the last bit."""
    m = A.shape[0]
    keep = np.arange(m)
    while True:
        AK = sp.hstack([A, K]).tocsr()
        first: dict[tuple, int] = {}
        into = np.arange(A.shape[0])
        scale = np.ones(A.shape[0])
        for j in range(A.shape[0]):
            lo, hi = AK.indptr[j], AK.indptr[j + 1]
            if lo == hi:
                continue
            vals = AK.data[lo:hi]
            key = (AK.indices[lo:hi].tobytes(), (vals / vals[0]).tobytes())
            i = first.setdefault(key, j)
            if i != j:
                into[j], scale[j] = i, abs(vals[0] / AK.data[AK.indptr[i]])
        if np.all(into == np.arange(A.shape[0])):
            return A, K, bhat, keep
        kept = np.flatnonzero(into == np.arange(A.shape[0]))
        pos = np.full(A.shape[0], -1)
        pos[kept] = np.arange(kept.size)
        fold = sp.csr_matrix((scale, (np.arange(A.shape[0]), pos[into])),
                             shape=(A.shape[0], kept.size))  # |z'| = fold |z'_kept|
        K = (K[kept] @ fold).tocsr()
        K.eliminate_zeros()
        A, bhat, keep = A[kept], fold.T @ bhat, keep[kept]


def lp_multipliers(mdl: SlopeModel, signs: np.ndarray | None = None,
                   limit: int = _LP_VARIABLES) -> np.ndarray | None:
    """mu minimising ||h - M mu||_1 + sum_i G_i (|mu_i| - c_i(mu))_+ (an LP, HiGHS; h - M mu
    is g0 - A^T mu or its part in A's row space, :attr:`SlopeModel.lp_rows`): the
    bound's terms when the rows are dependent (no norms); with ``signs``, those of the
    region's bound (:meth:`SlopeModel.lower_bound`). None when the LP is not solved."""
    m, k = mdl.m, mdl.lp_residual_rows
    if 2 * m + k > limit:
        return None
    A_ub, b_ub = mdl.lp_rows
    signs = np.zeros(m) if signs is None else signs
    keep = np.concatenate([np.ones(2 * k, bool), signs <= 0, signs >= 0])  # one side each
    cost = np.concatenate([np.zeros(m), mdl.G, np.ones(k)])
    bounds = [(None, None)] * m + [(0, None)] * (m + k)
    res = linprog(cost, A_ub=A_ub[keep], b_ub=b_ub[keep], bounds=bounds, method="highs")
    return res.x[:m] if res.status == 0 else None


def regions(mdl: SlopeModel, excess: np.ndarray, count: int) -> float:
    """A lower bound on the least slope from the 2^k regions of the signs of the k <= count
    switches with the largest excess G_i (each region's LP multipliers; the regions cover
    all d); -inf when an LP is not solved, the model is too large for 2^k LPs or they take
    more than ``_REGION_SECONDS``."""
    if 2 * mdl.m + mdl.lp_residual_rows > _REGION_VARIABLES:
        return -np.inf

    def bound(signs: np.ndarray) -> float | None:
        mu = lp_multipliers(mdl, signs, _REGION_VARIABLES)
        return None if mu is None else mdl.lower_bound(mu, signs)[0]
    return over_regions(excess, mdl.G, count, bound)


def over_regions(excess: np.ndarray, G: np.ndarray, count: int,
                 bound: Callable[[np.ndarray], float | None],
                 seconds: float = _REGION_SECONDS) -> float:
    """min over the 2^k sign patterns of the k <= count switches with the largest excess
    G_i (the regions sigma_i z'_i >= 0 cover every d) of ``bound(signs)``, signs in {-1, 0,
    1} per switch; -inf when a bound is None, no switch has excess, or after ``seconds``."""
    order = np.argsort(-(excess * G))[:count]
    S = order[excess[order] > 0]
    if not S.size:
        return -np.inf
    lower, start = np.inf, time.perf_counter()
    for signs_S in itertools.product((1.0, -1.0), repeat=S.size):
        if time.perf_counter() - start > seconds:
            return -np.inf
        signs = np.zeros(excess.size)
        signs[S] = signs_S
        b = bound(signs)
        if b is None:
            return -np.inf
        lower = min(lower, b)
    return lower


def _cone(mdl: SlopeModel, sigma: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(r, a rounding bound on ||r||) for the cone {d : sigma_i z'_i(d) >= 0}: r = g(sigma)
    - C^T y with y >= 0 the nonnegative least-squares weights of its rows C = Sigma
    W(sigma), so that the model's least slope on the cone is -||r||, attained along -r
    (Moreau); None when the solve fails."""
    W, g = mdl.piece(sigma)
    C = sigma[:, None] * W
    try:
        y, _ = nnls(C.T, g)
    except RuntimeError:
        return None
    err = (mdl.m + 3) * _EPS * 1.01 * (np.abs(g) + np.abs(C).T @ y)
    return g - C.T @ y, float(np.linalg.norm(err))


def pieces(mdl: SlopeModel) -> tuple[float, list[np.ndarray]]:
    """(least slope's lower bound over every sign pattern's cone, their attaining
    directions); -inf when a nonnegative least-squares solve fails."""
    lower, dirs = np.inf, []
    for signs in itertools.product((1.0, -1.0), repeat=mdl.m):
        cone = _cone(mdl, np.array(signs))
        if cone is None:
            return -np.inf, dirs
        r, err = cone
        lower = min(lower, -(float(np.linalg.norm(r)) + err))
        if np.any(r):
            dirs.append(-r)
    return lower * (1 + (mdl.A.shape[1] + 8) * _EPS), dirs


def cone_descents(mdl: SlopeModel, starts: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """From the cone each start direction (and ``_SAMPLES`` random ones) lies in, the
    direction of that cone's least slope: -r of a nonnegative least-squares solve
    (:func:`pieces`' step, on visited cones only). Dense pieces: small models only."""
    if mdl.J.shape[0] or not mdl.m or mdl.m * mdl.A.shape[1] > _DENSE_ENTRIES:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for d in [*starts, *rng.standard_normal((_SAMPLES, mdl.A.shape[1]))]:
        sigma = np.sign(_model_z(mdl.A, mdl.K, mdl.coupled, d))
        sigma[sigma == 0] = 1.0
        cone = _cone(mdl, sigma)
        if cone is not None and np.any(cone[0]):
            out.append(-cone[0])
    return out


def milp_descent(mdl: SlopeModel) -> np.ndarray | None:
    """The d in the box |d_j| <= 1 minimising the model's slope (no norms), as a MILP
    (HiGHS, one binary per switch for the side of |z'_i|, big-M from |z'_i| <= M_i =
    ||A_i||_1 + sum_j |K_ij| M_j), when its value is negative; else None. Only a candidate:
    the caller verifies its slope exactly, so the solver is not trusted."""
    A, K, m, n = mdl.A, mdl.K, mdl.m, mdl.A.shape[1]
    if mdl.J.shape[0] or not m or m > _MILP_SWITCHES:
        return None
    M = mdl.through_couplings(np.asarray(abs(A).sum(axis=1)).reshape(-1))
    I_m, Z_mm, Z_mn = sp.identity(m, format="csr"), sp.csr_matrix((m, m)), sp.csr_matrix((m, n))
    twoM = sp.diags(2.0 * M)
    # variables (d, w, u, beta): A d - w + K u = 0, u >= +-w, u <= w + 2M(1 - beta),
    # u <= -w + 2M beta
    rows = sp.vstack([sp.hstack([A, -I_m, K, Z_mm]), sp.hstack([Z_mn, -I_m, I_m, Z_mm]),
                      sp.hstack([Z_mn, I_m, I_m, Z_mm]), sp.hstack([Z_mn, -I_m, I_m, twoM]),
                      sp.hstack([Z_mn, I_m, I_m, -twoM])]).tocsr()
    lo = np.concatenate([np.zeros(3 * m), np.full(2 * m, -np.inf)])
    hi = np.concatenate([np.zeros(m), np.full(2 * m, np.inf), 2.0 * M, np.zeros(m)])
    cost = np.concatenate([mdl.g0, np.zeros(m), mdl.bhat, np.zeros(m)])
    bounds = Bounds(np.concatenate([-np.ones(n), -M, np.zeros(2 * m)]),
                    np.concatenate([np.ones(n), M, M, np.ones(m)]))
    integrality = np.concatenate([np.zeros(n + 2 * m), np.ones(m)])
    with quiet_fd(1), quiet_fd(2):  # NOTE: HiGHS's MIP solver can print from C++
        res = milp(cost, constraints=LinearConstraint(rows, lo, hi), bounds=bounds,
                   integrality=integrality, options={"time_limit": _MILP_SECONDS})
    if res.x is None or not res.fun < 0:
        return None
    return np.asarray(res.x[:n], np.float64)
