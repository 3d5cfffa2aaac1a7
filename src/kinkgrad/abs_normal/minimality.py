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
sweep, is < -tol too (so x is no local minimiser; at radius > 0, where x sits beside kinks
that the model holds at zero, f may first rise along d, and a fall further on is reported in
the reason of an "undecided"), "undecided" otherwise. ``bounds`` brackets the
least slope min_{||d|| = 1} f'(d); for convex f it is minus the distance from 0 to the
Clarke subdifferential.

At radius > 0 the moved model is the first-order model of f at a point y of the ball only
where the near-active kinks off their kinks can all meet within the ball
(:func:`.ball_pieces.meet_in_ball`); then "minimal" is a statement about y. Where they
cannot (|x0 - 1/2| + |x1 - 1/2| at 0, r = 0.6: the model |d0| + |d1| is minimal, f falls
along (1, 1)), "minimal" becomes "undecided", or "not minimal" where f falls at x itself
along the ball's descent direction (:func:`~.stationarity`) or against x's own gradient.

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

**A MILP for descent (up to 64 switches, no norms).** Where no candidate direction
descends and the bound is not proven, the least slope over the box |d_j| <= 1 is a MILP
(one binary per switch for the side of |z'_i|; HiGHS, 10 s); its d is only a candidate,
checked like the others, so "not minimal" never rests on the solver.

**Convexity.** Where the model's terms are convex (no coupling, bhat >= 0, lambda >= 0),
f'(d) is the support function of the Clarke set, so the least slope is minus the distance
from 0 to it, bounded by the norm of a proven element that :func:`~.stationarity` finds
(its minimum-norm QP or SOCP): total variation's end points, whose norms and l1 kinks share
columns, are decided there.

**Concave terms split (norms with lambda_k < 0, kinks with bhat_i < 0 that no switch
reads, e.g. last-layer ReLUs with negative output weights).** lambda_k ||J_k d|| =
min_{||w|| <= 1} lambda_k w . J_k d and bhat_i |z'_i| = min_{|s| <= 1} bhat_i s z'_i
(z'_i = A_i d + K_i |z'|: a linear term and weights added to the kinks it reads), so
f'(d) = min_u f_u(d) with the concave terms replaced by linear ones, and x is minimal iff
it is for every f_u. The other terms' least-squares multipliers are affine in u, and each
term of the multipliers' bound is bounded over all u at once (an affine function's maximum
over a ball is its value at the centre plus its coefficient's norm): exact where the other
terms are convex with independent rows (||x||_1 - ||x||_2 at 0 is minimal;
:class:`._concave_split.ConcaveSplit`); with dependent rows the affine multipliers
minimising the bound's terms come from an SOCP (Clarabel; only a candidate, the bound is
recomputed from them with its rounding; the same SOCP serves models with norms and no
concave term, where the multipliers LP does not apply). Descent candidates come from f_u
at the worst u.

**Regions (many switches, dependent rows).** Beyond ``limit`` switches, the up to 8 with
the largest excess split R^n into the 2^k regions of their signs; on a region, where
|z'_i| = sigma_i z'_i, switch i's term is (c_i + sigma_i mu_i) |z'_i| and needs only
c_i + sigma_i mu_i >= 0 (one side), so each region gets its own LP multipliers and lower
bound, and the least of them bounds every slope (models with 2m + n <= 3,000). With
norms, the regions are those of the concave split's other switches, each with its own
SOCP multipliers (up to 3,000 variables).

Deciding first-order minimality of a piecewise-linear function is co-NP-hard in general,
so "undecided" remains possible when many switches have dependent rows. Comparisons
(``where`` conditions) that can flip within the ball make every verdict "undecided" (the
model keeps them at their value at x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends import on_numpy
from ..errors import KinkgradError
from . import _flat
from ._concave_split import ConcaveSplit
from ._flat import ActiveNames, FlatSpec, ball_arguments
from ._minimality_ball import falls, off_kinks, off_rounding
from ._minimality_model import (
    LeastSquares,
    SlopeModel,
    cone_descents,
    lp_multipliers,
    merge_parallel,
    milp_descent,
    pieces,
    regions,
)
from ._rescale import exponent, gradient_size, scale_back, scaled_f, scaled_tol
from .active import ActiveModel
from .ball_comparisons import flippable_comparisons
from .ball_model import ball_model
from .stationarity import HUGE, StationarityReport, _slope, stationarity
from .zero_norms import Balls

__all__ = ["MinimalityReport", "minimality"]

_PROBED = 256  # n up to which +-e_i are tried where no model is described (_probed)

_LIMIT = 12  # default: switches up to which every sign pattern's cone is tried
_CANDIDATES = 32  # switches (largest excess first) whose moves are tried as descents
_REGIONS = 8  # switches (largest excess) whose signs split the space (dependent rows)
_CONFIRM = 8  # candidate directions checked by the exact directional derivative at x
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class MinimalityReport(ActiveNames):
    """Outcome of :func:`minimality`.

    Attributes:
        verdict: ``"minimal"`` (f'(d) >= -tol ||d|| for every d, proven on the model),
            ``"not minimal"`` (a unit d with model slope < -tol and f'(x; d) < -tol at x)
            or ``"undecided"``.
        reason: why, in words.
        bounds: (lower, upper): proven bounds on the least slope min_{||d|| = 1} f'(d) of
            the model (upper is inf when no direction was tried).
        descent: a unit direction shaped like x along which f falls from x (with
            "undecided" at radius > 0: f rises first, then falls beyond rounding within 64
            radius), or None.
        slope: the exact one-sided derivative f'(x; d) < -tol along ``descent``, or None.
        multipliers: (m,) the multipliers test's mu, one per active switch (model order,
            copies merged; ``active`` names them, then the norms), or None;
            ``likq``: whether the switches' and norms' rows are independent.
        method: "multipliers", "pieces", "regions", "concave split" or "convexity" (which
            gave the lower bound), "directions" (no model: exact derivatives along +-e_i and
            random directions found the descent), "" when none.
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


def _candidates(mdl: SlopeModel, ls: LeastSquares, theta: np.ndarray, excess: np.ndarray,
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
@_flat.underflow_is_not_an_error
def minimality(f: Callable, x: Any, radius: float = 0.0, tol: float = 1e-8, seed: int = 0,
               limit: int = _LIMIT, *, _known: StationarityReport | None = None
               ) -> MinimalityReport:
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
        _known: internal (``minimize``): ``stationarity(f, x, radius, tol)``'s report at
            this very f and x, reused for the convexity bound instead of made again.

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
    got = ball_model(f, x, radius, "minimality")
    if isinstance(got[0], str):
        return _probed(f, x, radius, tol, *got)
    tr, spec, out, balls, model = got
    if out is None:
        return MinimalityReport("minimal", "f does not depend on x.", (0.0, 0.0), None,
                                None, np.zeros(0), True, "multipliers", radius, tol, 0)
    q = balls.q if balls is not None else 0
    red = model.reduced()
    parts = [red.g0, red.bhat, red.A_sparse.data, red.K_sparse.data]
    if balls is not None:
        parts += [balls.lam, balls.rows.data]
    finite = all(np.all(np.isfinite(v)) for v in parts)
    e = exponent(gradient_size(red, balls)) if finite else None
    if e is not None:  # NOTE: squared norms underflow or overflow there: f / 2^e, exactly
        rep = minimality(scaled_f(f, e), x, radius, scaled_tol(tol, e), seed, limit)
        return scale_back(rep, e, tol, ("bounds", "slope", "multipliers"))
    if not (finite and all(np.max(np.abs(v), initial=0.0) <= HUGE for v in parts)):
        return MinimalityReport.undecided(
            f"the model's entries are not finite or beyond {HUGE:.0e} (their squares "
            "overflow float64); rescale f", radius, tol, red.m + q)
    known = _known if _known is not None and (_known.radius, _known.tol) == (radius, tol) \
        else None
    rep = _decide(red, balls, f, tr, spec, out, radius, tol, limit, seed, known)
    off_kinks(rep, red, f, tr, spec, out, radius, tol, known)
    off_rounding(rep, tr, spec, out, radius, model)
    flips = flippable_comparisons(tr, spec, radius)
    if flips and rep.verdict != "undecided":
        rep.verdict, rep.descent, rep.slope = "undecided", None, None
        rep.reason = (f"{flips} comparison entr{'y' if flips == 1 else 'ies'} (a where "
                      "condition or mask) can change value within the ball, and the model "
                      f"keeps comparisons at their value at x; without them: {rep.reason}")
    return rep


def _probed(f: Callable, x: Any, radius: float, tol: float, why: str, m: int
            ) -> MinimalityReport:
    """Where no model is described (norms at zero coupled with kinks or with each other,
    -||(||x||)||): "not minimal" along the first of +-e_i (n <= 256) and 16 random unit
    directions whose exact one-sided derivative at x (:func:`kinkgrad.directional`) is
    below -tol, else "undecided" with ``why``."""
    from .directional import directional

    try:
        tr = _flat.trace_at(f, x, "minimality")
        spec = FlatSpec(tr)
        n = spec.n
        eye = np.eye(n) if 0 < n <= _PROBED else np.zeros((n, 0))
        R = np.random.default_rng(0).standard_normal((n, 16 if n else 0))
        D = np.hstack([eye, -eye, R / np.maximum(np.linalg.norm(R, axis=0), 1e-300)])
        slopes = np.asarray(directional(f, x, D), np.float64).reshape(-1)
    except KinkgradError:
        return MinimalityReport.undecided(why, radius, tol, m)
    k = int(np.argmin(slopes)) if slopes.size else 0
    if not slopes.size or not slopes[k] < -tol:
        return MinimalityReport.undecided(why, radius, tol, m)
    rep = MinimalityReport("not minimal", f"along the unit direction d, f'(x; d) = "
                           f"{slopes[k]:.3e} < -tol = {-tol:g} (exact; no model: {why}).",
                           (-np.inf, float(slopes[k])), spec.tree(D[:, k]), float(slopes[k]),
                           None, None, "directions", radius, tol, m)
    off_rounding(rep, tr, spec, _flat.scalar_output(tr, "minimality")[0], 0.0)  # NOTE: at x
    return rep


def _decide(red: ActiveModel, balls: Balls | None, f: Callable, tr: Any, spec: FlatSpec, out: Any,
            radius: float, tol: float, limit: int, seed: int,
            known: StationarityReport | None) -> MinimalityReport:
    A, K, bhat, kept = merge_parallel(red.A_sparse.tocsr(), red.K_sparse.tocsr(),
                                       np.asarray(red.bhat, np.float64))
    mdl = SlopeModel(A, K, balls, np.asarray(red.g0, np.float64), bhat)
    ls = LeastSquares(mdl.R)
    theta = ls.multipliers(mdl.g0)
    lower, excess, ball_excess = mdl.lower_bound(theta)
    if lower < -tol and not ls.likq and balls is None and mdl.m:
        alt = lp_multipliers(mdl)
        if alt is not None:
            lo2, ex2, bx2 = mdl.lower_bound(alt)
            if lo2 > lower:
                theta, lower, excess, ball_excess = alt, lo2, ex2, bx2
    method = "multipliers"
    dirs = (_candidates(mdl, ls, theta, excess, ball_excess) if lower < -tol
            else [-(mdl.g0 - mdl.R.T @ theta)])
    if lower < -tol and balls is None and 0 < mdl.m <= limit:
        lo_p, more = pieces(mdl)
        dirs += more
        if lo_p > lower:
            lower, method = lo_p, "pieces"
    elif lower < -tol and not ls.likq:
        dirs += cone_descents(mdl, dirs[:_CANDIDATES], seed)
    lp_regions = lower < -tol and not ls.likq and balls is None and mdl.m > limit
    split_regions = None
    if lower < -tol and not mdl.convex:  # NOTE: concave terms as the least of linear ones
        split = ConcaveSplit(mdl, ls)
        if split.applies:
            T = split.T
            lo_s, worst, ex_s = split.lower_bound()
            if lo_s < -tol and not split.ls.likq:  # NOTE: least squares is one choice of many
                T_best = split.best_multipliers()
                if T_best is not None:
                    lo_b, worst_b, ex_b = split.lower_bound(T_best)
                    if lo_b > lo_s:
                        T, lo_s, worst, ex_s = T_best, lo_b, worst_b, ex_b
                if lo_s < -tol and (balls is not None or mdl.m > limit):
                    split_regions = (split, ex_s)  # once no candidate descends (below)
            if lo_s > lower:
                lower, method = lo_s, "concave split" if split.dims.size else "multipliers"
            for u in worst:
                rest, theta_u = split.linear(u, T)
                dirs += _candidates(rest, split.ls, theta_u, *rest.lower_bound(theta_u)[1:])
    if lower < -tol and mdl.convex:  # NOTE: f'(d) = max over the Clarke set of g . d
        st = known or stationarity(f, spec.point_tree(spec.point(tr)), radius=radius, tol=tol)
        if st.min_norm is not None and np.isfinite(st.bounds[1]):
            # the least slope is -dist(0, set) >= -(the norm of a proven element)
            lo_c = -st.bounds[1] * (1 + (spec.n + 8) * _EPS)
            if lo_c > lower:
                lower, method = lo_c, "convexity"
        if st.descent is not None:
            dirs.append(spec.from_tree(st.descent, "minimality"))
    tried = []
    for d in dirs:
        nd = float(np.linalg.norm(d))
        if nd > 0 and np.isfinite(nd):
            tried.append((mdl.slope(d / nd), d / nd))
    tried.sort(key=lambda t: t[0])
    descends = bool(tried) and tried[0][0] < -tol
    # NOTE: 2^k LPs or SOCPs (n = 200: 92 s in 256 LPs; n = 20: 80 s in 256 SOCPs): only
    # where no candidate descends, since a descent of the model means no bound can prove it
    if lp_regions and lower < -tol and not descends:
        lo_r = regions(mdl, excess, min(limit, _REGIONS))
        if lo_r > lower:
            lower, method = lo_r, "regions"
    if split_regions is not None and lower < -tol and not descends:
        lo_r = split_regions[0].regions(split_regions[1], min(limit, _REGIONS))
        if lo_r > lower:
            lower, method = lo_r, "concave split"
    if lower < -tol and not descends:  # NOTE: no descent found yet
        d = milp_descent(mdl)
        if d is not None and np.linalg.norm(d) > 0:
            d = d / np.linalg.norm(d)
            tried.insert(0, (mdl.slope(d), d))
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
            if s < -tol:  # NOTE: not a sign that rounding could flip
                verdict, descent, slope = "not minimal", spec.tree(d), s
                reason = (f"along the unit direction d the model's slope is {s_model:.3e} and "
                          f"f'(x; d) = {s:.3e}, both < -tol = {-tol:g} ({what}).")
                break
        else:  # NOTE: at radius > 0 x sits beside its kinks: f may rise first, then fall;
            # a fall further on does not make x no local minimiser (min(|x|, 2x + 0.05) at 0,
            # r = 0.02: f(-0.08) < f(0) at a strict local minimiser): "undecided", said so
            for s_model, d in falling if radius > 0 else []:
                fell = falls(f, spec, spec.point(tr), d, radius)
                if fell is not None and fell[1] < -tol:
                    descent = spec.tree(d)  # NOTE: where to go on from (minimize does)
                    reason = (f"the model falls at slope {s_model:.3e} < -tol along the unit "
                              f"direction d (descent) and f(x + t d) < f(x) beyond rounding at "
                              f"t = {fell[0]:.3g}, but f'(x; d) >= 0: f rises first, x may be "
                              f"a local minimiser ({what}).")
                    break
    else:
        verdict = "undecided"
        reason = (f"the least slope lies in [{lower:.3e}, {upper:.3e}], which contains "
                  f"-tol = {-tol:g} ({what}).")
    mu = theta[:mdl.m].copy()
    return MinimalityReport(verdict, reason, (float(lower), float(upper)), descent, slope, mu,
                            ls.likq, method, radius, tol, mdl.m + q, names)
