"""Is x (nearly) Clarke stationary? A verdict that is never wrong, with a descent direction.

The set considered. With ``radius = 0`` it is the Clarke subdifferential of f at x. With
``radius = r > 0`` every switching variable that the abs-linear model lets reach zero within
the ball of radius r (2-norm) around x counts as active: switch i is *near-active* when

    |z_i(x)| <= r ||grad z_i(x)||_2,

with grad z_i taken on the piece of x (abs'(0) := 0 at exact kinks; with more than 4096
switches, a 16-direction random forward probe first discards switches whose estimated
||grad z_i|| is ten times too small, which misses a near-active one with probability below
1e-13 per switch, see :mod:`.ball_model`). The set is then the hull of the gradients of
f's first-order (abs-linear) model at x on the pieces that meet the ball: a Goldstein-type
r-subdifferential of the model, each of whose pieces is, to first order, the gradient of f at
points of the ball, so that "stationary" is a statement about the ball. It is described
through the program in which every near-active switch is moved onto its kink (the hull of
the selection gradients of every sign pattern those switches can take), which holds it.
When the near-active switches are exactly at their kinks it contains the Clarke
subdifferential at x. The cells between near-active kinks count, however thin: w . sort(B x
+ c) with B of one column and entries of c 1e-10 apart has orderings on cells 1e-10 wide
that no direction from x enters, and they are pieces of the ball; a "not stationary" is
always confirmed by the exact directional derivative at x below ("undecided" when that
disagrees).
Where near-active switches sit off their kinks (z_i != 0), moving them all onto x is a
fiction when they cannot meet there together, and the ball's own first-order set (the kinks'
offsets kept, :mod:`.ball_pieces`) differs: a candidate of a k-way max near the winner but
dominated by another entry throughout the ball is not met (max(2x, x/2 + 1, 1/2) at x = 0.8,
r = 0.6: slopes 1/2 and 2 only), and near-active kinks on one side of x have pieces between
them that no cone at x holds (x - 2 relu(x - 0.5) + 3 relu(x - 0.8) at 0, r = 0.9: slopes 1,
-1, 2). The moved model's outer set holds every sign pattern of the moved switches, so it
still bounds the ball's set from outside ("not stationary" stands); an element is proven
only by (1) f's first-order pieces at checked points of the ball (Frank-Wolfe column
generation on points against the current minimum-norm point), (2) the moved model itself
where a point y of the ball puts every near-active kink on its kink to first order (its
set is then y's Clarke set), or (3) with at most 20 switches, the ball's pieces enumerated
(an SOCP per node, exact on piecewise-linear programs). Otherwise the verdict is
"undecided". Radii small against the kinks' spacing (``minimize`` takes its verdicts at
about tol) mostly take (1) or (2).
No kink of a floating-point iterate near a minimiser is exactly active: an optimizer needs
the ball. Comparisons (``where`` conditions) are not abs switches: the model keeps them at
their value at x, so when one can flip within the ball a "not stationary" becomes
"undecided" (:mod:`.ball_comparisons`). A Euclidean norm at zero (at a radius: ||w(x)|| <=
r ||w'(x)||_2) is not abs-smooth; where no active switch feeds or reads it, the set is that
of f with the norm frozen plus the ellipsoid |d f / d ||w||| w'(x)^T B (:mod:`.zero_norms`,
which says when that description is exact).

How the answer is decided. :mod:`.localset` describes the set as g0 + sum of small hulls
(one per block of coupled switches; a k-way max over t tied entries is ONE block with t
candidates, a tie of m entries of a sort one block of its m! orderings), with an *outer*
set that provably contains it and an *inner* set of proven pieces. :mod:`.minnorm` then
gives, with no trust in the QP solver,

* an upper bound on the distance from 0: the norm of a point of the inner set (pieces proven
  realised: always limiting gradients, see :mod:`.localset` for when whole block sums are);
* a lower bound: the support function of the outer set along the unit vector u of its
  minimum-norm point; then every element c of the set has <c, u> >= lower.

Verdicts: ``"stationary"`` when the upper bound is <= tol (a proven element that small);
``"not stationary"`` when the lower bound is > tol; ``"undecided"`` otherwise, with the reason.
When not stationary, d = -u is a descent direction: f'(x; d) <= max_c <c, d> <= -lower < 0
(the one-sided derivative is at most the Clarke directional derivative), and that exact
f'(x; d) is computed by a directional sweep and reported as ``slope`` (||d|| = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends import on_numpy
from ..kinks import resolve_policy
from ..modes.sweeps import forward_sweep
from ._ball_set import on_the_ball
from ._flat import (
    ActiveNames,
    FlatSpec,
    ball_arguments,
    underflow_is_not_an_error,
)
from ._forward_rounding import ForwardRounding
from ._rescale import exponent, scale_back, scaled_f, scaled_tol
from .ball_comparisons import flippable_comparisons
from .ball_model import ball_model, moved_switches, nested_reason
from .ball_pieces import meet_in_ball
from .localset import BlockTooLarge, LocalSet, local_set
from .minnorm import hull_by_columns, min_norm
from .signatures import enumerate_signatures
from .sort_oracle_min import by_oracles, realised, with_oracles
from .zero_norms import Balls, ball_bounds

__all__ = ["StationarityReport", "stationarity"]

_ROUNDS = 30  # column-generation rounds for the inner set when blocks do not add up
_ENUM_M = 20  # at most this many active switches: enumerate the realised signatures
_EXACT_M = 6  # at most this many: enumerate them for the exact distance of a decided verdict
_ENUM_LIMIT = 4096
HUGE = 1e150  # entries beyond this overflow when squared (sum of squares of n of them)


@dataclass
class StationarityReport(ActiveNames):
    """Outcome of :func:`stationarity`.

    Attributes:
        verdict: ``"stationary"`` (an element of the set has norm <= tol), ``"not
            stationary"`` (every element has norm > tol) or ``"undecided"``.
        reason: why, in words.
        distance: norm of ``min_norm``.
        min_norm: the minimum-norm element found, shaped like x: of the inner set (a proven
            element) unless the verdict is "not stationary", where it is the outer set's.
            None when the program is not abs-smooth at x.
        bounds: (lower, upper): proven bounds on the distance from 0 to the set (upper is
            inf when no element is proven).
        exact: the inner and outer sets coincide (bounds meet up to the QP's accuracy).
        descent: a unit direction d shaped like x with f'(x; d) < 0, or None.
        slope: the exact one-sided derivative f'(x; d) along ``descent``, or None.
        radius, tol: as passed.
        num_active: switching variables treated as active (exact and near-active kinks
            that can change the gradient).
        blocks: number of blocks of coupled active switches.
    """

    verdict: str
    reason: str
    distance: float
    min_norm: Any
    bounds: tuple[float, float]
    exact: bool
    descent: Any
    slope: float | None
    radius: float
    tol: float
    num_active: int
    blocks: int = 0
    _names: Callable[[], list[str]] | None = field(default=None, repr=False)

    @classmethod
    def undecided(cls, reason: str, radius: float, tol: float, num_active: int = 0
                  ) -> StationarityReport:
        """A verdict of "undecided" before any set was described (bounds [0, inf])."""
        return cls("undecided", reason, float("inf"), None, (0.0, float("inf")), False, None,
                   None, radius, tol, num_active)

    def __bool__(self) -> bool:
        return self.verdict == "stationary"

    def __str__(self) -> str:
        lo, hi = self.bounds
        line = (f"{self.verdict.upper()} (radius {self.radius:g}, tol {self.tol:g}): "
                f"distance {self.distance:.3e} in [{lo:.3e}, {hi:.3e}], {self.num_active} "
                f"active switch(es) in {self.blocks} block(s)")
        if self.slope is not None:
            line += f", descent slope {self.slope:.3e}"
        return line + f"\n  {self.reason}"


# ---------------------------------------------------------------------------- pieces
def _model_z(A: Any, K: Any, coupled: np.ndarray, d: np.ndarray) -> np.ndarray:
    """z' = A d + K|z'| by forward substitution (only the coupled rows need the loop)."""
    z = A @ d
    ptr, idx, val = K.indptr, K.indices, K.data  # CSR
    for i in coupled:
        lo, hi = ptr[i], ptr[i + 1]
        z[i] += val[lo:hi] @ np.abs(z[idx[lo:hi]])
    return z


def _model_piece(ls: LocalSet, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gradient of the model's piece entered along d, ties broken lexicographically by random
    directions: sigma = sign(z'(d)). Realised to first order, so a limiting gradient of the
    (moved) program at x."""
    red = ls.model
    A, K = red.A_sparse, red.K_sparse.tocsr()
    coupled = np.flatnonzero(np.diff(K.indptr))
    sigma = np.sign(_model_z(A, K, coupled, d))
    for _ in range(8):
        if np.all(sigma != 0):
            break
        # NOTE: a tie left by d is broken by d + eps e: on the tied rows the derivative
        # along e (with the signs fixed where d decided) gives the side, as in lex mode.
        Ae = A @ rng.standard_normal(d.size)
        if K.nnz:  # (I - K Sigma) w = A e by sparse forward substitution
            from scipy.sparse.linalg import spsolve_triangular

            Ae = spsolve_triangular(red._unit_lower(sigma), Ae, lower=True,
                                    unit_diagonal=True)
        sigma = np.where(sigma == 0, np.sign(Ae), sigma)
    return red.gradient(sigma)


def _inner_by_pieces(ls: LocalSet, start: list[np.ndarray], tol: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Column generation on the hull of pieces (:func:`~.minnorm.hull_by_columns`): the
    piece entered along -w is added while it lowers the minimum norm; (point, its norm)."""
    return hull_by_columns(np.array([_model_piece(ls, d, rng) for d in start]),
                           lambda u: _model_piece(ls, u, rng), tol, _ROUNDS)


def _slope(tr: Any, spec: FlatSpec, out: Any, d: np.ndarray) -> float:
    """The exact one-sided derivative f'(x; d) (one directional forward sweep)."""
    if out is None:
        return 0.0
    tangents = {slot: leaf for slot, leaf in zip(spec.slots, spec.split(d[None]))}
    tan, _ = forward_sweep(tr.eqns, tr.vals, tangents, resolve_policy(None),
                           mode="directional")
    t = tan.get(out.index)
    return 0.0 if t is None else float(np.asarray(t, np.float64).reshape(-1)[0])


# ---------------------------------------------------------------------------- the verdict
@on_numpy
@underflow_is_not_an_error
def stationarity(f: Callable, x: Any, radius: float = 0.0, tol: float = 1e-8,
                 seed: int = 0) -> StationarityReport:
    """Decide whether x is a (nearly) Clarke-stationary point of a scalar abs-smooth f.

    "stationary" means that the set considered (the Clarke subdifferential at x for
    ``radius=0``; for ``radius > 0`` the hull of the gradients of f's first-order model on
    the pieces that meet the ball, see the module docstring) has an element of norm
    <= ``tol``; "not stationary" that every element has norm > ``tol``. Both are proven
    (the bounds do not rely on the QP solver's accuracy); otherwise the verdict is
    "undecided" and ``reason`` says what is missing. It is never a wrong verdict. Clarke
    stationarity is necessary for a local minimiser, not sufficient: at a concave kink f
    falls beside a "stationary" x (x^2 - |x| at 0; :func:`kinkgrad.minimize` goes on there);
    :func:`kinkgrad.minimality` decides the first-order condition of a minimiser itself.

    The minimum-norm element is found by a QP over a sum of small hulls (PIQP, see
    :mod:`kinkgrad.abs_normal.minnorm`): a k-way max over t tied entries contributes the
    hull of its t gradients (not 2^(t-1) signatures), a tie of m <= 40 entries of a sort the
    hull of its m! orderings' (listed up to m = 7, else searched by linear assignment,
    :mod:`kinkgrad.abs_normal.sort_block`); n = 1000 with a thousand active kinks takes a
    fraction of a second.

    Euclidean norms at zero (group lasso's zero groups, Fermat-Weber at a data point) add one
    ellipsoid each to the set where no active kink feeds or reads them
    (:mod:`kinkgrad.abs_normal.zero_norms`); the QP is then an SOCP (Clarabel). Kink
    convention: none; the answer does not depend on the kink policy.

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point (array or pytree).
        radius: ball radius (2-norm) within which switches count as active (>= 0).
        tol: the stationarity tolerance on the distance from 0 to the set (> 0).
        seed: seed for the random directions that break ties when pieces are searched.

    Returns:
        A :class:`StationarityReport` (truthy iff "stationary").

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> rep = kinkgrad.stationarity(lambda x: knp.max(x ** 2), np.array([1., -1., .5]))
        >>> rep.verdict, round(rep.distance, 6), rep.min_norm.round(12).tolist()
        ('not stationary', 1.414214, [1.0, -1.0, 0.0])
        >>> rep.slope < 0
        True
        >>> kinkgrad.stationarity(lambda x: knp.sum(knp.abs(x)), np.zeros(3)).verdict
        'stationary'
    """
    radius, tol = ball_arguments("stationarity", radius, tol, seed)
    got = ball_model(f, x, radius, "stationarity")
    if isinstance(got[0], str):
        return StationarityReport.undecided(got[0], radius, tol, got[1])
    tr, spec, out, balls, model = got
    try:
        ls = local_set(model, seed)
    except BlockTooLarge as exc:
        return StationarityReport.undecided(str(exc), radius, tol, model.m)
    big = _largest(ls)
    if balls is not None and balls.rows.nnz:
        big = max(big, float(np.max(np.abs(balls.lam))) * float(abs(balls.rows).max()))
    e = exponent(big)
    if e is not None:  # NOTE: squared norms underflow or overflow there: f / 2^e, exactly
        rep = stationarity(scaled_f(f, e), x, radius, scaled_tol(tol, e), seed)
        return scale_back(rep, e, tol, ("distance", "min_norm", "bounds", "slope"))
    if big > HUGE:  # NOTE: ||g||^2 of the set's vectors would overflow in the QP and norms
        return StationarityReport.undecided(
            f"the set's vectors have entries up to {big:.3g}, whose squares overflow float64 "
            "in the minimum-norm computation; rescale f", radius, tol, model.m)
    rep = _decide(ls, tr, spec, out, radius, tol, np.random.default_rng(seed), balls)
    if rep.verdict != "undecided" and radius > 0:
        flips = flippable_comparisons(tr, spec, radius)
        why = flips and (  # NOTE: both ways (x0 as a where: test_where_ties.py's last test)
            f"{flips} comparison entr{'y' if flips == 1 else 'ies'} (a where condition or "
            "mask) can change value within the ball, and the set keeps comparisons at their "
            "value at x, so it may miss the pieces beyond them and hold pieces f lacks there"
        ) or rep.verdict == "not stationary" and nested_reason(model)
        if why:  # NOTE: the set may miss pieces
            rep.verdict, rep.descent, rep.slope = "undecided", None, None
            rep.reason = f"{why}; without them: {rep.reason}"
    return rep


def _decide(ls: LocalSet, tr: Any, spec: FlatSpec, out: Any, radius: float, tol: float,
            rng: np.random.Generator, balls: Balls | None = None) -> StationarityReport:
    if balls is None:
        low, point, upper, exact, via = _bounds(ls, tol, rng, radius)
        why, q, names = via or _why(ls, low, exact), 0, ls.model.names
    else:
        low, point, upper, exact, why = ball_bounds(ls, balls, tol=tol)
        q = balls.q
        if ls.model.m:
            why += "; " + _why(ls, low, exact)
        moved = moved_switches(ls.model, radius)
        if moved and upper < np.inf and meet_in_ball(ls.model, radius) is None:
            # NOTE: beside zero norms the kinks are described on the moved model alone: its
            # elements are the ball's only where the moved kinks meet within it
            point, upper, exact = np.zeros(ls.g0.size), np.inf, False
            why += (f"; {moved} near-active switch(es) off their kinks cannot meet within "
                    "the ball (first order), so no element is proven")

        def names() -> list[str]:
            return [*ls.model.names(), *balls.names]
    lower = min(low.lower, upper) if low is not None else 0.0
    if ls.slack:  # NOTE: a sparse block's values are known to within ls.slack
        lower, upper = max(0.0, lower - ls.slack), upper + ls.slack
    if upper <= tol or lower > tol:  # NOTE: decided on the computed set; f's set can lie
        # apart by the move of its vectors under the forward values' rounding (cancellation:
        # the derivatives are read at computed values); 0 on piecewise-linear programs
        forward = ForwardRounding(tr, out)
        far = forward.widening(spec) + forward.summed(spec, _largest(ls))
        lower, upper = max(0.0, lower - far), upper + far
        if far > 0 and not (upper <= tol or lower > tol):
            why += (f"; the rounding of f's forward values and gradient sums moves the set by "
                    f"up to about {far:.1e} (_forward_rounding, _flat.sums_rounding)")
        elif radius > 0 and forward.ball(spec, radius, ls.model.ball_differs):  # NOTE: f's
            lower, upper = 0.0, np.inf  # may differ
            why += f"; {forward.ball_reason(spec, radius, ls.model.ball_differs)}"
        elif lower > tol and radius == 0 and forward.kinks():
            lower = 0.0  # NOTE: the set may miss pieces: no lower bound
            why += f"; {forward.kinks_reason()}"
        elif upper <= tol and forward.far(spec, radius):
            upper = np.inf  # NOTE: the set may hold pieces f lacks: no proven element
            why += f"; {forward.far_reason(spec, radius)}"
    descent = slope = None
    if upper <= tol:
        verdict = "stationary"
        reason = f"an element of the set has norm {upper:.3e} <= tol = {tol:g} ({why})."
    elif lower > tol:
        d = -low.direction  # type: ignore[union-attr]
        s = _slope(tr, spec, out, d)
        if s < 0:
            verdict, descent, slope = "not stationary", spec.tree(d), s
            point = low.point  # type: ignore[union-attr]
            reason = (f"every element of the set has norm >= {lower:.3e} > tol = {tol:g} "
                      f"({why}); f'(x; d) = {s:.3e} along the unit descent direction d.")
        else:  # NOTE: cannot happen in exact arithmetic (f'(x; d) <= -lower); stay sound
            verdict = "undecided"
            reason = (f"the set's lower bound {lower:.3e} > tol but the directional sweep "
                      f"gives f'(x; d) = {s:.3e} >= 0 along -u: inconsistent rounding.")
    else:
        verdict = "undecided"
        reason = (f"the distance lies in [{lower:.3e}, {upper:.3e}], which contains tol = "
                  f"{tol:g} ({why}).")
    return StationarityReport(verdict, reason, float(np.linalg.norm(point)), spec.tree(point),
                              (float(lower), float(upper)), exact, descent, slope, radius,
                              tol, ls.model.m + q, len(ls.blocks) + q, names)


def _bounds(ls: LocalSet, tol: float, rng: np.random.Generator, radius: float = 0.0
            ) -> tuple:
    """(outer MinNorm or None, a proven point of the set, its norm, exact, the reason when
    the ball's own pieces were used or None) of the local set (module docstring)."""
    moved = moved_switches(ls.model, radius)
    moved_set = _moved_bounds(ls, tol, rng, moved)
    if not moved:
        return (*moved_set, None)
    return on_the_ball(ls, moved_set, moved, radius, tol, rng, _why)


def _moved_bounds(ls: LocalSet, tol: float, rng: np.random.Generator, moved: int
                  ) -> tuple:
    """(outer MinNorm or None, a proven point, its norm, exact) of the moved model's set
    (``moved``: its switches moved onto their kinks, off them at x)."""
    n = ls.g0.size
    zero = np.zeros(n)
    low = min_norm(ls.g0, ls.outer_blocks(), tol) if ls.has_outer else None  # outer: lower
    exact = ls.exact and low is not None
    listed = None  # (gradients, complete) of the realised signatures, once enumerated
    if by_oracles(ls):
        # NOTE: a sort tie too large to list: the outer set through its assignment oracle;
        # described exactly when every block's values are limiting gradients
        low = with_oracles(ls.g0, ls.blocks, tol)
        exact = low is not None and realised(ls) and bool(np.isfinite(low.upper))
    if exact:
        point, upper = low.point, low.upper  # type: ignore[union-attr]
    elif ls.inner_exact and not any(b.oracle is not None and not b.oracle.complete
                                    or b.inner.shape[0] == 0  # NOTE: a block with no
                                    for b in ls.blocks):  # listed piece: min_norm drops it
        inner = min_norm(ls.g0, ls.inner_blocks(), tol)
        point, upper = (inner.point, inner.upper) if inner is not None else (zero, np.inf)
    elif ls.model.m <= _ENUM_M and not moved:  # NOTE: with moved switches the ball's own
        # pieces decide (_bounds): 19 ReLUs' 4,096 patterns (5,000 LPs, 4 s) bought nothing
        _, grads, complete, _ = enumerate_signatures(ls.model, _ENUM_LIMIT)
        listed = grads, complete
        inner = min_norm(zero, [grads])
        point, upper = inner.point, inner.upper  # type: ignore[union-attr]
        if complete and ls.linear and not moved:  # NOTE: first-order realisation is
            low, exact = inner, True  # exact for PL programs (not with offsets: ball_pieces)
    else:
        start = [rng.standard_normal(n)]
        if low is not None and low.upper > 0:
            start.insert(0, -low.point / low.upper)
        point, upper = _inner_by_pieces(ls, start, tol, rng)
    gap = low is None or low.lower <= tol or (ls.model.m <= _EXACT_M and low.lower < upper)
    if not exact and not moved and ls.linear and ls.model.m <= _ENUM_M and upper > tol \
            and gap:
        # NOTE: undecided on a piecewise-linear program: its realised pieces, enumerated,
        # are the set (min(-x, |x|) at 0 is -x; its k-way block's outer set held +1 too);
        # with a few switches also where decided, for the exact distance (-min(-x, -2x)
        # - relu(-2x + min(-x, -2x)) / 2 at 0: [1, 2] for the truth 2)
        grads, complete = listed or enumerate_signatures(ls.model, _ENUM_LIMIT)[1:3]
        if complete:
            low = min_norm(zero, [grads])
            point, upper, exact = low.point, low.upper, True  # type: ignore[union-attr]
    return low, point, upper, exact


def _largest(ls: LocalSet) -> float:
    """The largest entry in size of g0 and of the blocks' candidates."""
    sizes = [float(np.max(np.abs(ls.g0), initial=0.0))]
    for b in ls.blocks:
        for V in (b.outer, b.inner):
            if V is not None and V.shape[0]:
                sizes.append(float(abs(V).max()))
    return max(sizes)


def _why(ls: LocalSet, outer: Any, exact: bool) -> str:
    m, B = ls.model.m, len(ls.blocks)
    if m == 0:
        return "no active switch can change the gradient: the set is {grad f(x)}"
    kinds = sorted({b.kind for b in ls.blocks})
    head = f"{m} active switch(es) in {B} block(s): {', '.join(kinds)}"
    if exact and any(b.oracle is not None for b in ls.blocks):
        return head + ("; the set is described exactly (a sort tie's orderings searched by "
                       "linear assignment)")
    if exact and not ls.exact:
        return head + ("; the program is piecewise linear and its realised pieces were all "
                       "enumerated: the set is described exactly")
    if exact:
        return head + "; the set is described exactly"
    if outer is None:
        return head + "; a block is too large to bound the set from outside"
    if not ls.inner_exact:
        return head + ("; the blocks are neither convex nor independent, so the inner "
                       "bound comes from pieces found along directions")
    return head + "; some block's realised pieces are not proven complete"
