"""Is x a first-order minimal point? A proven verdict, with multipliers or a descent direction.

Clarke stationarity (:mod:`.stationarity`) is necessary for a local minimiser, not
sufficient: -|x| at 0 is Clarke stationary and f falls both ways. The first-order condition
of a local minimiser is that no direction descends, f'(x; d) >= 0 for every d. This module
decides it up to ``tol`` on the local model that :func:`~.stationarity` uses (the active
switches, those within ``radius`` moved onto their kinks, z' = A d + K|z'|; Euclidean norms
at zero with Jacobians J_k and weights lambda_k, :mod:`.zero_norms`):

    f'(d) = g0 . d + bhat . |z'| + sum_k lambda_k ||J_k d||,

"minimal" when f'(d) >= -tol ||d|| for every d (proven), "not minimal" when a unit d has
f'(d) < -tol and the exact one-sided derivative at x itself, f'(x; d) by a directional
sweep, is < 0 (so x is no local minimiser; at radius > 0, where x sits beside kinks that
the model holds at zero, f may first rise along d: then f(x + t d) < f(x) by more than ten
times the rounding estimates at some t <= 64 radius), "undecided" otherwise. ``bounds`` brackets the
least slope min_{||d|| = 1} f'(d); for convex f it is minus the distance from 0 to the
Clarke subdifferential.

**Multipliers (any number of switches).** For any mu (one per switch) and nu_k (one vector
per norm), with r = g0 - A^T mu - sum_k J_k^T nu_k and c = bhat - K^T mu,

    f'(d) = r . d + mu . z' + c . |z'| + sum_k (nu_k . J_k d + lambda_k ||J_k d||)
          >= -||r|| - sum_i (|mu_i| - c_i)_+ G_i - sum_k (||nu_k|| - lambda_k)_+ ||J_k||

for ||d|| = 1, where |z'_i| <= G_i ||d|| (G = row norms of A + |K| G, by forward
substitution). This lower bound holds whatever mu and nu are (computed residuals carry a
rounding bound): no trust in a solver. mu and nu are least-squares multipliers (an LP's,
minimising the bound's terms, when the rows are dependent). Under LIKQ (the rows of A and
the J_k linearly independent) they are unique and the test is also necessary: where
|mu_i| > c_i, moving z'_i alone against mu_i (the rows are onto) descends at slope
c_i - |mu_i|; where ||nu_k|| > lambda_k, J_k d = -nu_k / ||nu_k|| does; where r != 0,
d = -r does (A r = 0, J r = 0). These are the tangential stationarity and normal growth
conditions of first-order minimality for abs-normal forms (Griewank and Walther).

**Pieces (few switches, no norms).** Without LIKQ (a ReLU beside its copy; |x| + |x| - |x|)
the multipliers' bound can be loose. With at most ``limit`` switches every sign pattern
sigma is tried: on the cone {d : sigma_i z'_i(d) >= 0} the model is linear, f'(d) =
g(sigma) . d, and by Moreau's decomposition its least slope there is minus the distance of
g(sigma) from the cone spanned by the rows sigma_i W_i(sigma): a nonnegative least-squares
residual r, whose norm bounds the slope from below for any nonnegative weights and whose
-r attains it. The cones cover R^n, so the least of these is the least slope itself.

Deciding first-order minimality of a piecewise-linear function is co-NP-hard in general,
so "undecided" remains possible when many switches have dependent rows. Comparisons
(``where`` conditions) that can flip within the ball make every verdict "undecided" (the
model keeps them at their value at x).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog, nnls
from scipy.sparse.linalg import splu, spsolve_triangular

from ..backends import on_numpy
from ..errors import KinkgradError, NotAbsSmoothError
from ._flat import FlatSpec, ball_arguments, scalar_output, trace_at, underflow_is_not_an_error
from ._sparse_rank import sparse_rank
from .active import ActiveModel
from .ball_comparisons import flippable_comparisons
from .expand import expand
from .stationarity import HUGE, _model_z, _slope, near_active
from .zero_norms import Balls, split_zero_norms, switch_origins

__all__ = ["MinimalityReport", "minimality"]

_LIMIT = 12  # default: switches up to which every sign pattern's cone is tried
_DENSE_ENTRIES = 4_000_000  # rows x n up to which dense rows (>= 5% nonzero) use an SVD
_SMALL = 250_000  # rows x n up to which every model's least squares use a dense SVD
_LP_VARIABLES = 30_000  # the multipliers LP (dependent rows) up to this many variables (HiGHS:
#   0.2 s at 5,000 on a chained model, 13 s at 50,000)
_CANDIDATES = 32  # switches (largest excess first) whose moves are tried as descents
_SPECTRAL = 1000  # norms with excess whose ||J_k||_2 is computed (Frobenius beyond)
_SAMPLES = 16  # random directions whose cones are searched for descent (dependent rows)
_CONFIRM = 8  # candidate directions checked by the exact directional derivative at x
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class MinimalityReport:
    """Outcome of :func:`minimality`.

    Attributes:
        verdict: ``"minimal"`` (f'(d) >= -tol ||d|| for every d, proven on the model),
            ``"not minimal"`` (a unit d with model slope < -tol and f'(x; d) < 0 at x)
            or ``"undecided"``.
        reason: why, in words.
        bounds: (lower, upper): proven bounds on the least slope min_{||d|| = 1} f'(d) of
            the model (upper is inf when no direction was tried).
        descent: a unit direction shaped like x along which f falls from x, or None.
        slope: the exact one-sided derivative f'(x; d) < 0 along ``descent``; at radius > 0
            where that is >= 0 (x beside its kinks, f rising first) the secant slope
            (f(x + t d) - f(x)) / t < 0 at the t <= 64 radius named in ``reason``; or None.
        multipliers: (m,) the multipliers test's mu, one per active switch (model order,
            copies merged; ``active`` names them, then the norms), or None;
            ``likq``: whether the switches' and norms' rows are independent.
        method: "multipliers" or "pieces" (which gave the lower bound), "" when none.
        radius, tol: as passed; num_active: switches and norms treated as active.
    """

    verdict: str
    reason: str
    bounds: tuple[float, float]
    descent: Any
    slope: float | None
    multipliers: np.ndarray | None
    likq: bool | None
    method: str
    radius: float
    tol: float
    num_active: int
    _names: Callable[[], list[str]] | None = field(default=None, repr=False)

    @functools.cached_property
    def active(self) -> list[str]:
        """Names of the switches and norms treated as active (formed on first access)."""
        return [] if self._names is None else list(self._names())

    @classmethod
    def undecided(cls, reason: str, radius: float, tol: float, num_active: int = 0
                  ) -> MinimalityReport:
        return cls("undecided", reason, (-np.inf, np.inf), None, None, None, None, "",
                   radius, tol, num_active)

    def __bool__(self) -> bool:
        return self.verdict == "minimal"

    def __str__(self) -> str:
        lo, hi = self.bounds
        line = (f"{self.verdict.upper()} (radius {self.radius:g}, tol {self.tol:g}): least "
                f"slope in [{lo:.3e}, {hi:.3e}], {self.num_active} active switch(es)/norm(s)")
        if self.slope is not None:
            line += f", descent slope {self.slope:.3e}"
        return line + f"\n  {self.reason}"


class _Model:
    """f'(d) = g0 . d + bhat . |z'| + sum_k lambda_k ||J_k d||, z' = A d + K|z'|."""

    def __init__(self, A: sp.csr_matrix, K: sp.csr_matrix, balls: Balls | None,
                 g0: np.ndarray, bhat: np.ndarray) -> None:
        n = A.shape[1]
        self.A, self.K, self.g0, self.bhat = A, K, g0, bhat
        self.J = balls.rows.tocsr() if balls is not None else sp.csr_matrix((0, n))
        self.lam = np.asarray(balls.lam, np.float64) if balls is not None else np.zeros(0)
        self.dims = np.asarray(balls.dims, np.int64) if balls is not None else np.zeros(0, int)
        self.m = A.shape[0]
        self.R = sp.vstack([A, self.J]).tocsr()
        self.coupled = np.flatnonzero(np.diff(K.indptr))
        G = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).reshape(-1))
        for i in self.coupled:  # K is strictly lower triangular: rows in order
            lo, hi = K.indptr[i], K.indptr[i + 1]
            G[i] += np.abs(K.data[lo:hi]) @ G[K.indices[lo:hi]]
        self.G = G
        self.starts = np.concatenate([[0], np.cumsum(self.dims)]).astype(np.int64)

    def piece(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W, g) on the piece of signature sigma: z' = W d, f'(d) = g . d (no norms);
        (I - K Sigma) W = A by forward substitution."""
        A = self.A.toarray()
        if not self.K.nnz:
            return A, self.g0 + A.T @ (sigma * self.bhat)
        T = (sp.identity(self.m, format="csr") - self.K @ sp.diags(sigma)).tocsr()
        W = spsolve_triangular(T, A, lower=True, unit_diagonal=True)
        v = spsolve_triangular(T.T.tocsr(), sigma * self.bhat, lower=False, unit_diagonal=True)
        return W, self.g0 + A.T @ v

    def slope(self, d: np.ndarray) -> float:
        w = _model_z(self.A, self.K, self.coupled, d)
        norms = np.sqrt(_block_sums((self.J @ d) ** 2, self.dims))
        return float(self.g0 @ d + self.bhat @ np.abs(w) + self.lam @ norms)

    def lower_bound(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(the proven lower bound above, the switches' excess (|mu_i| - c_i)_+, the norms'
        (||nu_k|| - lambda_k)_+), rounding of the residuals included."""
        mu, nu = theta[:self.m], theta[self.m:]
        R, K = self.R, self.K
        gam = (_column_count(R) + 3) * _EPS * 1.01
        r = self.g0 - R.T @ theta
        r_err = gam * (np.abs(self.g0) + abs(R).T @ np.abs(theta))
        c = self.bhat - K.T @ mu
        c_err = (_column_count(K) + 3) * _EPS * 1.01 * (np.abs(self.bhat) + abs(K).T @ np.abs(mu))
        excess = np.maximum(0.0, np.abs(mu) - c + c_err)
        nu_norm = np.sqrt(_block_sums(nu ** 2, self.dims)) * (1 + 4 * _EPS)
        ball_excess = np.maximum(0.0, nu_norm - self.lam)
        lower = -(float(np.linalg.norm(r)) + float(np.linalg.norm(r_err))
                  + float(excess @ self.G) + self._ball_terms(ball_excess))
        return lower * (1 + 4 * _EPS), excess, ball_excess


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


def _block_sums(v: np.ndarray, dims: np.ndarray) -> np.ndarray:
    if not dims.size:
        return np.zeros(0)
    return np.add.reduceat(v, np.concatenate([[0], np.cumsum(dims)[:-1]]))


def _column_count(M: sp.csr_matrix) -> int:
    return int(np.bincount(M.indices, minlength=1).max()) if M.nnz else 0


class _LeastSquares:
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
            rank, exact, _ = sparse_rank(R)
            self.likq = bool(exact and rank == k)
            G = (R @ R.T).tocsc()
            damp = 1e-14 * max(float(G.diagonal().max(initial=0.0)), 1e-300)
            self.lu = splu((G + damp * sp.identity(k, format="csc")).tocsc())

    def multipliers(self, g: np.ndarray) -> np.ndarray:
        R = self.R
        if R.shape[0] == 0:
            return np.zeros(0)
        if self.svd is not None:
            U, s, Vt = self.svd
            return U @ ((Vt @ g) / s)
        theta = self.lu.solve(R @ g)
        for _ in range(2):
            theta = theta + self.lu.solve(R @ (g - R.T @ theta))
        return theta

    def least_norm(self, b: np.ndarray) -> np.ndarray:
        if self.svd is not None:
            U, s, Vt = self.svd
            return Vt.T @ ((U.T @ b) / s)
        return self.R.T @ self.lu.solve(b)


def _merge_parallel(A: sp.csr_matrix, K: sp.csr_matrix, bhat: np.ndarray
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


def _lp_multipliers(mdl: _Model) -> np.ndarray | None:
    """mu minimising ||g0 - A^T mu||_1 + sum_i G_i (|mu_i| - c_i(mu))_+ (an LP, HiGHS): the
    bound's terms when the rows are dependent (no norms). None when the LP is not solved."""
    A, K, m, n = mdl.A, mdl.K, mdl.m, mdl.A.shape[1]
    if 2 * m + n > _LP_VARIABLES:
        return None
    I_m, I_n = sp.identity(m, format="csr"), sp.identity(n, format="csr")
    Z_nm, Kt = sp.csr_matrix((n, m)), K.T.tocsr()
    A_ub = sp.vstack([sp.hstack([A.T, Z_nm, -I_n]), sp.hstack([-A.T, Z_nm, -I_n]),
                      sp.hstack([I_m + Kt, -I_m, sp.csr_matrix((m, n))]),
                      sp.hstack([-I_m + Kt, -I_m, sp.csr_matrix((m, n))])]).tocsc()
    b_ub = np.concatenate([mdl.g0, -mdl.g0, mdl.bhat, mdl.bhat])
    cost = np.concatenate([np.zeros(m), mdl.G, np.ones(n)])
    bounds = [(None, None)] * m + [(0, None)] * (m + n)
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    return res.x[:m] if res.status == 0 else None


def _pieces(mdl: _Model) -> tuple[float, list[np.ndarray]]:
    """(least slope's lower bound over every sign pattern's cone, their attaining
    directions); -inf when a nonnegative least-squares solve fails."""
    lower, dirs = np.inf, []
    for signs in itertools.product((1.0, -1.0), repeat=mdl.m):
        sigma = np.array(signs)
        W, g = mdl.piece(sigma)
        C = sigma[:, None] * W
        try:
            y, _ = nnls(C.T, g)
        except RuntimeError:
            return -np.inf, dirs
        r = g - C.T @ y
        err = (mdl.m + 3) * _EPS * 1.01 * (np.abs(g) + np.abs(C).T @ y)
        lower = min(lower, -(float(np.linalg.norm(r)) + float(np.linalg.norm(err))))
        if np.any(r):
            dirs.append(-r)
    return lower * (1 + 4 * _EPS), dirs


def _falls(f: Callable, spec: FlatSpec, x: np.ndarray, d: np.ndarray, radius: float
           ) -> tuple[float, float] | None:
    """(t, (f(x + t d) - f(x)) / t) for the first t in radius * (1, 4, 16, 64) where f is
    lower than f(x) by more than ten times both values' rounding estimates
    (:func:`kinkgrad.rounding_error`) plus 4 u (1 + |f(x)|); None if at none."""
    from ..modes.rounding import rounding_error

    at_x = rounding_error(f, spec.tree(x))
    for t in radius * 4.0 ** np.arange(4):
        there = rounding_error(f, spec.tree(x + t * d))
        margin = 10 * (at_x.error + there.error) + 4 * _EPS * (1 + abs(at_x.value))
        if there.value < at_x.value - margin:
            return float(t), (there.value - at_x.value) / float(t)
    return None


def _cone_descents(mdl: _Model, starts: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """From the cone each start direction (and ``_SAMPLES`` random ones) lies in, the
    direction of that cone's least slope: -r of a nonnegative least-squares solve
    (:func:`_pieces`' step, on visited cones only). Dense pieces: small models only."""
    if mdl.J.shape[0] or not mdl.m or mdl.m * mdl.A.shape[1] > _DENSE_ENTRIES:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for d in [*starts, *rng.standard_normal((_SAMPLES, mdl.A.shape[1]))]:
        sigma = np.sign(_model_z(mdl.A, mdl.K, mdl.coupled, d))
        sigma[sigma == 0] = 1.0
        W, g = mdl.piece(sigma)
        C = sigma[:, None] * W
        try:
            y, _ = nnls(C.T, g)
        except RuntimeError:
            continue
        r = g - C.T @ y
        if np.any(r):
            out.append(-r)
    return out


def _candidates(mdl: _Model, ls: _LeastSquares, theta: np.ndarray, excess: np.ndarray,
                ball_excess: np.ndarray) -> list[np.ndarray]:
    """Directions that descend when the multipliers test fails under LIKQ (docstring)."""
    m, mu = mdl.m, theta[:mdl.m]
    out = [-(mdl.g0 - mdl.R.T @ theta)]
    K = mdl.K.tocsc()
    for i in np.argsort(-excess)[:_CANDIDATES]:
        if excess[i] <= 0:
            break
        for s in ((-np.sign(mu[i]),) if mu[i] else (1.0, -1.0)):
            b = np.zeros(mdl.R.shape[0])
            b[i] = s
            lo, hi = K.indptr[i], K.indptr[i + 1]
            b[K.indices[lo:hi]] -= K.data[lo:hi]  # A d = w - K|w| with w = s e_i
            out.append(ls.least_norm(b))
    starts = mdl.starts
    for k in np.flatnonzero(ball_excess > 0)[:_CANDIDATES]:
        nu = theta[m + starts[k]:m + starts[k + 1]]
        b = np.zeros(mdl.R.shape[0])
        nn = float(np.linalg.norm(nu))
        b[m + starts[k]:m + starts[k + 1]] = -nu / nn if nn else np.eye(mdl.dims[k])[0]
        out.append(ls.least_norm(b))
    return out


@on_numpy
@underflow_is_not_an_error
def minimality(f: Callable, x: Any, radius: float = 0.0, tol: float = 1e-8, seed: int = 0,
               limit: int = _LIMIT) -> MinimalityReport:
    """Decide whether x is first-order minimal for a scalar abs-smooth f: f'(x; d) >= -tol
    ||d|| for every direction d (module docstring for the model at ``radius`` > 0).

    Clarke stationarity (:func:`kinkgrad.stationarity`) only says that 0 lies in the
    subdifferential; at a concave kink (-|x|, x^2 - |x|, a ReLU before a negative weight)
    a point is Clarke stationary while f falls beside it. "minimal" is proven by
    multipliers mu (one per active switch, ``report.multipliers``) whose residual and excess
    bound every slope from below, or, with at most ``limit`` switches, by every sign
    pattern's cone; "not minimal" comes with a unit direction d, ``descent``, along which
    the exact one-sided derivative at x is negative (``slope``). Never a wrong verdict;
    "undecided" with the reason otherwise (first-order minimality is co-NP-hard to decide
    in general).

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point (array or pytree).
        radius: ball radius (2-norm) within which switches count as active (>= 0).
        tol: tolerance on the least slope over unit directions (> 0).
        seed: seed of the random directions whose pieces are searched for descent when
            the rows are dependent and there are more than ``limit`` switches.
        limit: switches (0..20) up to which all 2**limit sign patterns are tried when the
            multipliers do not prove the answer.

    Returns:
        A :class:`MinimalityReport` (truthy iff "minimal").

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> x0 = np.zeros(2)
        >>> kinkgrad.minimality(lambda x: knp.sum(knp.abs(x)), x0).verdict
        'minimal'
        >>> kinkgrad.stationarity(lambda x: knp.sum(x ** 2 - knp.abs(x)), x0).verdict
        'stationary'
        >>> rep = kinkgrad.minimality(lambda x: knp.sum(x ** 2 - knp.abs(x)), x0)
        >>> rep.verdict, rep.slope < 0
        ('not minimal', True)
    """
    radius, tol = ball_arguments("minimality", radius, tol, seed)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) \
            or not 0 <= limit <= 20:
        raise KinkgradError(f"minimality: limit={limit!r}; pass an integer in 0..20 (the "
                            "sign patterns tried are 2**limit).")
    try:
        tr = trace_at(f, x, "minimality")
        out, _ = scalar_output(tr, "minimality")
        spec = FlatSpec(tr)
        tr0, balls = split_zero_norms(tr, spec, out, radius)
        exp = expand(tr0)
    except NotAbsSmoothError as exc:
        return MinimalityReport.undecided(f"not abs-smooth at x: {exc}", radius, tol)
    if out is None:
        return MinimalityReport("minimal", "f does not depend on x.", (0.0, 0.0), None,
                                None, np.zeros(0), True, "multipliers", radius, tol, 0)
    model = ActiveModel(exp, spec, out, active=near_active(exp, spec, radius))
    q = balls.q if balls is not None else 0
    if balls is not None and balls.coupled(switch_origins(exp, model.active)):
        return MinimalityReport.undecided(
            f"{q} Euclidean norm(s) at zero are fed or read by active kinks; the model is "
            "described only for norms isolated from them", radius, tol, model.m + q)
    red = model.reduced()
    parts = [red.g0, red.bhat, red.A_sparse.data, red.K_sparse.data]
    if balls is not None:
        parts += [balls.lam, balls.rows.data]
    if not all(np.all(np.isfinite(v)) and np.max(np.abs(v), initial=0.0) <= HUGE
               for v in parts):
        return MinimalityReport.undecided(
            f"the model's entries are not finite or beyond {HUGE:.0e} (their squares "
            "overflow float64); rescale f", radius, tol, red.m + q)
    rep = _decide(red, balls, f, tr, spec, out, radius, tol, limit, seed)
    flips = flippable_comparisons(tr, spec, radius)
    if flips and rep.verdict != "undecided":
        rep.verdict, rep.descent, rep.slope = "undecided", None, None
        rep.reason = (f"{flips} comparison entr{'y' if flips == 1 else 'ies'} (a where "
                      "condition or mask) can change value within the ball, and the model "
                      f"keeps comparisons at their value at x; without them: {rep.reason}")
    return rep


def _decide(red: ActiveModel, balls: Balls | None, f: Callable, tr: Any, spec: FlatSpec, out: Any,
            radius: float, tol: float, limit: int, seed: int) -> MinimalityReport:
    A, K, bhat, kept = _merge_parallel(red.A_sparse.tocsr(), red.K_sparse.tocsr(),
                                       np.asarray(red.bhat, np.float64))
    mdl = _Model(A, K, balls, np.asarray(red.g0, np.float64), bhat)
    ls = _LeastSquares(mdl.R)
    theta = ls.multipliers(mdl.g0)
    lower, excess, ball_excess = mdl.lower_bound(theta)
    if lower < -tol and not ls.likq and balls is None and mdl.m:
        alt = _lp_multipliers(mdl)
        if alt is not None:
            lo2, ex2, bx2 = mdl.lower_bound(alt)
            if lo2 > lower:
                theta, lower, excess, ball_excess = alt, lo2, ex2, bx2
    method = "multipliers"
    dirs = (_candidates(mdl, ls, theta, excess, ball_excess) if lower < -tol
            else [-(mdl.g0 - mdl.R.T @ theta)])
    if lower < -tol and balls is None and 0 < mdl.m <= limit:
        lo_p, more = _pieces(mdl)
        dirs += more
        if lo_p > lower:
            lower, method = lo_p, "pieces"
    elif lower < -tol and not ls.likq:
        dirs += _cone_descents(mdl, dirs[:_CANDIDATES], seed)
    tried = []
    for d in dirs:
        nd = float(np.linalg.norm(d))
        if nd > 0 and np.isfinite(nd):
            tried.append((mdl.slope(d / nd), d / nd))
    tried.sort(key=lambda t: t[0])
    upper = tried[0][0] if tried else np.inf
    lower = min(lower, upper)
    q = balls.q if balls is not None else 0
    def names() -> list[str]:
        return [*red.names(kept), *(balls.names if balls is not None else [])]
    merged = f" ({red.m - mdl.m} copies merged)" if red.m > mdl.m else ""
    what = (f"{mdl.m} active switch(es){merged}, {q} norm(s) at zero; rows "
            f"{'independent (LIKQ)' if ls.likq else 'dependent'}")
    descent = slope = None
    if lower >= -tol:
        verdict = "minimal"
        reason = (f"every unit direction has f'(d) >= {lower:.3e} >= -tol = {-tol:g} "
                  f"({what}; by {method}).")
    elif upper < -tol:
        verdict = "undecided"
        reason = (f"the model falls at slope {upper:.3e} < -tol but the exact derivative at x "
                  f"is >= 0 along each tried direction ({what}).")
        falling = [(sm, d) for sm, d in tried[:_CONFIRM] if sm < -tol]
        for s_model, d in falling:
            s = _slope(tr, spec, out, d)
            if s < 0:
                verdict, descent, slope = "not minimal", spec.tree(d), s
                reason = (f"along the unit direction d the model's slope is {s_model:.3e} < "
                          f"-tol = {-tol:g} and f'(x; d) = {s:.3e} < 0 ({what}).")
                break
        else:  # NOTE: at radius > 0 x sits beside its kinks: f may rise first, then fall
            for s_model, d in falling if radius > 0 else []:
                fell = _falls(f, spec, spec.point(tr), d, radius)
                if fell is not None:
                    t, s = fell
                    verdict, descent, slope = "not minimal", spec.tree(d), s
                    reason = (f"along the unit direction d the model's slope is "
                              f"{s_model:.3e} < -tol = {-tol:g}, and f(x + t d) < f(x) beyond "
                              f"rounding at t = {t:.3g} (secant slope {s:.3e}; {what}).")
                    break
    else:
        verdict = "undecided"
        reason = (f"the least slope lies in [{lower:.3e}, {upper:.3e}], which contains "
                  f"-tol = {-tol:g} ({what}).")
    mu = theta[:mdl.m].copy()
    return MinimalityReport(verdict, reason, (float(lower), float(upper)), descent, slope, mu,
                            ls.likq, method, radius, tol, mdl.m + q, names)
