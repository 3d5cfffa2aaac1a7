"""How far f's computed values are from f's: a replay of the forward values in a wider
precision, and what it says about the answers of the set-valued tests.

The abs-normal model reads the smooth steps' derivatives at the computed values and decides
the kinks' sides and ties by the computed switching values. Where the values lost their
digits to cancellation ((1e12 + x) - 1e12 keeps 4 of x's 16) both can differ from f's, the
program read in real arithmetic, by far more than the rounding of the gradients' own sums
(:func:`._flat.gradient_unit`): a vector then looked outside a set it lies in, a verdict
came out either way, and a kink active in f (1.1 - 1 - 0.1 is 8e-17 as computed) looked
inactive. :class:`ForwardRounding` measures both against :func:`wide_values`, whose own
rounding :func:`wide_errors` estimates.

Which answers each check guards: a kink of f the model misses or has on another side
(:meth:`ForwardRounding.kinks`) makes "outside" and "far from 0" unproven; a piece the model
holds that f lacks near x (:meth:`ForwardRounding.far`) makes "inside" and "near 0"
unproven; a kink the ball treats otherwise in f (:meth:`ForwardRounding.ball`, and the
expanded program's :func:`.ball_model.wide_ball`) makes both unproven at a radius; the
gradients' move (:meth:`ForwardRounding.move`) widens or declines every answer read from
the vectors or slopes (:meth:`ForwardRounding.moved_reason`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core.program import Var
from ..modes._wide import nonzero_float64, wide_errors, wide_values
from ..modes.api import Traced
from ._flat import (
    FlatSpec,
    full_slope_sweep,
    full_slopes,
    gradient_unit,
    probe_tangents,
    sums_rounding,
    unit_roundoff,
)
from ._mixed_hits import mixed_hits
from ._rounding_move import moved_unit, replayed, rounding_sensitivity
from ._switch_slopes import next_to_x, rounding_moves, slopeless_hits, switch_slope
from .lp import hull_tolerance

__all__ = ["ForwardRounding", "ball_disagreements", "far_hits", "kink_disagreements",
           "moved_unit", "rounding_sensitivity", "switch_sides"]

_ERROR_PROBES = 8  # random roundings of the replay's error estimate (wide_errors)
_TRUSTED = 16.0  # the replay's side of a kink counts beyond this many estimated errors
_ATMOST = 4.0  # 4 probes' norm estimate exceeds 4 times the norm with probability < 1e-12


def _pieces(sel: Any) -> Any:
    """The choice part of a selection: a sort's is (perm, None)."""
    return sel[0] if type(sel) is tuple and sel else sel


def _chosen(sel: np.ndarray) -> np.ndarray:
    """The entries of a selection that choose a piece (a mask's, a sign's, an index), not a
    tie's split weight or a derivative value read at the point (a norm's x / ||x||, which
    a replay moves without any kink moving): compared between the two precisions."""
    if sel.dtype.kind in "biu":
        return np.ones(sel.shape, bool)
    return (sel == 0) | (sel == 1) | (sel == -1)


def switch_sides(tr: Traced, wide: list, errors: dict | None = None) -> list[tuple]:
    """(equation, :func:`_sides`) of every switching equation: what the checks below read,
    computed once (``errors``: :func:`wide_errors`'s, for the replay's own rounding)."""
    with np.errstate(all="ignore"):
        return [(e, *_sides(e, tr.vals, wide, errors)) for e in tr.eqns
                if e.prim.nonsmooth and _switches(e, tr.vals) is not None]


def kink_disagreements(sides: list[tuple]) -> int:
    """Switching entries off their kink as computed (z != 0) that f has on it or on its other
    side (:func:`switch_sides` of the wide replay: z == 0 or the opposite sign, or another
    winner of a k-way max): 1.1 - 1 - 0.1 is 8e-17 as computed and 0 in f. The model then misses a
    kink of f at x, so its set can miss pieces of f's: an answer that a vector is outside
    it, or that it is far from 0, is not proven.

    The converse, a kink the computed values hit (z == 0) that f has within the rounding
    next to x, counts as a kink at x: the answers are then those at a point within the
    rounding of x (where backward AD's choice at the kink is one of f's gradients), as
    the studies of relu'(0) in low precision take them. f's side is unknown where the
    replay's value is within 16 of its estimated errors."""
    return sum(int(np.count_nonzero(flipped)) or winners
               for _, _, _, flipped, winners, _ in sides)


def _switches(e: Any, vals: list) -> Any:
    return e.prim.switch(e.args(vals), vals[e.out.index], e.params)


def _sides(e: Any, vals: list, wide: list, errors: dict | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray | float]:
    """(z as computed, z of the wide replay (float64), mask of the entries off their kink
    as computed that f has on it or on its other side, or may have (the replay's value
    within ``_TRUSTED`` times its estimated error, from ``errors``, :func:`wide_errors`),
    the number of the selection's choices (a k-way max's winner, a sort's order, a clip's
    region, an l1 sign; not a tie's split weights, nor an elementwise kink's on it in
    either) that differ between the two, ``_TRUSTED`` estimated errors of the replay's z
    (0 without ``errors``)) of the switching entries of ``e``."""
    args, args_w = e.args(vals), e.args(wide)
    out, out_w = vals[e.out.index], wide[e.out.index]
    z = np.asarray(e.prim.switch(args, out, e.params), np.float64)
    z_w = nonzero_float64(np.asarray(e.prim.switch(args_w, out_w, e.params)))
    flipped = (z != 0) & (np.sign(z) != np.sign(z_w))
    err: np.ndarray | float = 0.0
    if errors is not None:
        err = _TRUSTED * switch_slope(e, wide, errors, _ERROR_PROBES)
        flipped |= (z != 0) & ~(np.abs(z_w) > err)
    winners = 0
    if e.prim.selects:  # NOTE: entry by entry: a tie elsewhere (split weights) hid a change
        sel = _pieces(e.prim.selection(full_slopes(), args, out, e.params))
        sel_w = _pieces(e.prim.selection(full_slopes(), args_w, out_w, e.params))
        if type(sel) is np.ndarray and type(sel_w) is np.ndarray and sel.shape == sel_w.shape:
            keep = _chosen(sel) & _chosen(sel_w)
            if sel.shape == z.shape:  # NOTE: an elementwise kink's: off it in both only
                keep &= (z != 0) & (z_w != 0)
            winners = int(np.count_nonzero((sel != sel_w.astype(sel.dtype)) & keep))
    return z, z_w, flipped, winners, err


def _unheld(sides: list[tuple], winners: bool = True
            ) -> list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]:
    """(equation, entries, distance of f's kink in |z|, entries 0 in both) of the switching
    entries where the model holds a side of the kink that f lacks at x: on the kink as
    computed (both sides) and not in the wide replay (:func:`switch_sides`), or off it on
    the other side from f's ((0.75 + 1e16) - 1e16 - 0.5 is -0.5 as computed and 0.25 in f),
    or another winner of a k-way max or order of a sort (distance inf: f's kink between its
    own winners says nothing of the model's; left out with ``winners=False``, in a ball,
    where the expanded program's pairwise switches show them, :func:`.ball_model.wide_ball`).
    The distance is widened by the replay's estimated error, and a side it does not resolve
    counts as the other; a kink hit in both is f's only to the replay's error
    ((x0 + 2^70) - 2^70 - x1 at (3/4, 0) is 0 in long double too, and 3/4 in f)."""
    found = []
    for e, z, z_w, flipped, moved, err in sides:
        both = (z == 0) & (z_w == 0) & (np.asarray(err) > 0)
        unheld = (z_w != 0) & ((z == 0) | flipped) | both
        if moved and winners:
            found.append((e, np.ones(z.shape, bool), np.full(z.shape, np.inf), both))
        elif np.any(unheld):
            found.append((e, unheld, np.abs(z_w) + err, both))
    return found


def far_hits(tr: Traced, sides: Callable[[], list[tuple]], spec: Any, radius: float = 0.0,
             k: int = 4, vals: Callable[[], list] | None = None) -> int:
    """Switching entries where the model holds a side of a kink that f lacks at x
    (:func:`_unheld`: hit as computed, z == 0, or on the other side) whose place in f (|z|
    of the wide replay over ||grad z||, :func:`switch_slope`) lies beyond ``radius`` and
    beyond the rounding next to x (:func:`next_to_x`): |(x + 1e8) - 1e8| at x = 1e-9 is 0
    as computed and its kink lies 1e-9 from x. The model holds a piece of f's set there
    that f does not: an answer that a vector is inside its set, or that it is near 0, is
    not proven. The slopes are read at ``vals()`` (:func:`replayed`), when given."""
    hits = _unheld(sides(), winners=radius == 0)  # NOTE: in a ball: wide_ball's (expanded)
    if not hits:
        return 0
    signed = {id(e): z_w for e, _, z_w, _, _, _ in sides()}
    with np.errstate(all="ignore"):
        last = max(tr.eqns.index(h[0]) for h in hits)  # NOTE: the prefix they read
        slots = [v.index for v in tr.in_vars]
        values = tr.vals if vals is None else vals()
        tangents = probe_tangents(tr.eqns[:last + 1], values, slots, spec, k)
        moved = rounding_moves(tr, tr.eqns[:last + 1], values, spec, k)
        probes = _Probes(tr, spec, last + 1, k)
        full = None
        count = 0
        for e, hit, z_w, both in hits:
            slope = switch_slope(e, values, tangents, k)
            if np.any(both):  # NOTE: abs'(0) = 0 gives 0 beyond kinks hit (a max of |x - c|
                # at c): the full slopes' too, for kinks hit in both precisions; one with
                # no slope at all (a tie of 2x with 2x) counts as f's, as before the replay's
                # error was estimated (a constant lost in both precisions is missed)
                if full is None:
                    full = probe_tangents(tr.eqns[:last + 1], values, slots, spec, k,
                                          full_slopes())
                slope = np.where(both, np.maximum(slope, switch_slope(e, values, full, k)),
                                 slope)
                hit = hit & ~(both & (slope == 0))
            ball = z_w <= radius * slope  # NOTE: first order at a radius, as the model
            box = z_w <= moved(e, slope, both) / np.where(both, _ATMOST, 1.0)
            far = hit & ~ball & ~box
            check = hit & ~both & box & ~ball  # NOTE: f's side known: its kink must be met
            if np.any(check):
                far |= check & ~probes.crossed(e, signed[id(e)])
            count += int(np.count_nonzero(far))
    return count


class _Probes:
    """f's switching values replayed (:func:`wide_values`) at points within the rounding next
    to x (x +- w u / ||u||_inf, u the k probe directions, w :func:`next_to_x`'s widths): a
    kink that the estimates place there counts as one at x only where some point has f's
    switch on its other side or on it (a zero lies between, by continuity). The estimates
    read z's slope on x's piece, which may end short of the kink (relu(((min(1e20 x0, 1)
    - 3) + 2^56) - 2^56) at 0: z is -3 in f and never 0, its slope 1e20), and 4 probes
    overstate a norm by up to about 2 (relu((x48 + 256) - 256) at x48 = 1.8 (64 u))."""

    def __init__(self, tr: Traced, spec: Any, upto: int, k: int) -> None:
        self.tr, self.spec, self.upto, self.k = tr, spec, upto, k
        self._points: list | None = None

    def points(self) -> list:
        if self._points is None:
            x = np.asarray(self.spec.point(self.tr), np.longdouble)
            U = np.random.default_rng(0).standard_normal((self.k, x.size))
            steps = [next_to_x(self.tr, self.spec) * u / np.max(np.abs(u)) for u in U]
            self._points = []
            sp = self.spec
            for d in steps:
                for y in (x + d, x - d):  # NOTE: leaves in the replay's precision
                    at = {v.index: y[a:b].reshape(shape).astype(
                              np.longdouble if dt == np.float64 else np.float64)
                          for v, a, b, shape, dt in zip(self.tr.in_vars, sp.offsets[:-1],
                                                        sp.offsets[1:], sp.shapes, sp.dtypes)}
                    self._points.append(wide_values(self.tr, at=at, upto=self.upto))
        return self._points

    def crossed(self, e: Any, z_w: np.ndarray) -> np.ndarray:
        """Entries of e whose switch is 0 or on the other side from ``z_w`` at a point."""
        out = np.zeros(np.shape(z_w), bool)
        for vals in self.points():
            z = np.asarray(e.prim.switch(e.args(vals), vals[e.out.index], e.params))
            out |= (z == 0) | (np.sign(z) != np.sign(z_w))
        return out


def ball_disagreements(tr: Traced, sides: list[tuple], spec: Any, radius: float,
                       k: int = 16, vals: list | None = None) -> int:
    """Switching entries whose kink the ball of ``radius`` may treat otherwise in f
    (:func:`switch_sides` of the wide replay) than in the model (the computed values): the
    ball holds
    both sides of a kink within reach (|z| <= radius ||grad z||) and one side otherwise,
    and f's holding can differ from the model's in either way, where the model's set then
    misses f's pieces or holds pieces f lacks. relu(x1 - ((x0 + 1e16) - 1e16)) at x =
    (0.75, 0.7499) has z = 0.7499 as computed and -1e-4 in f: a ball of radius 1e-3 holds
    f's kink and not the model's.

    An entry counts unless it surely matches: within a tenth of the reach in both; beyond
    ten times the reach (and the rounding next to x, :func:`next_to_x`) on one side in both;
    or z and f's z apart by no more than the rounding next to x moves z (the model is then
    that of a point within it, as :func:`kink_disagreements` takes hits).
    ||grad z|| from k Gaussian probes (:func:`switch_slope`: below a tenth or above ten
    times the truth with probability < 1e-8 at k = 16; read at ``vals``, :func:`replayed`,
    when given). f's z is widened by the replay's estimated error."""
    vals = tr.vals if vals is None else vals
    count = 0
    with np.errstate(all="ignore"):
        rounding = float(np.max(next_to_x(tr, spec), initial=0.0))
        moved = rounding_moves(tr, tr.eqns, vals, spec, k)
        tangents = None
        for e, z, z_w, flipped, _, err in sides:  # NOTE: winners: wide_ball's (expanded)
            a, a_w, gap = np.abs(z), np.abs(z_w), np.abs(z - z_w) + err
            same = ~flipped
            if np.all(same & (gap == 0)):
                continue
            if tangents is None:
                tangents = probe_tangents(tr.eqns, vals, [v.index for v in tr.in_vars],
                                          spec, k)
            slope = switch_slope(e, vals, tangents, k)
            match = ((np.maximum(a, a_w + err) <= 0.1 * radius * slope)
                     | same & (np.minimum(a, a_w - err) > 10.0 * max(radius, rounding) * slope)
                     | (gap <= moved(e, slope))
                     | (a == 0) & (a_w == 0) & (slope == 0))  # NOTE: as in far_hits
            count += int(np.count_nonzero(~match))
    return count


class ForwardRounding:
    """The replay of f's trace ``tr`` in a wider precision, computed on first use, and what
    it says: :meth:`move` (the gradients' move, :func:`rounding_sensitivity`), :meth:`kinks`
    (:func:`kink_disagreements`), :meth:`far` (:func:`far_hits`) and :meth:`ball`
    (:func:`ball_disagreements`), each computed once."""

    def __init__(self, tr: Traced, out: Var | None, sweep: dict | None = None) -> None:
        """``sweep``: :func:`._flat.full_slope_sweep`'s, when the caller has it."""
        self.tr, self.out = tr, out
        self._wide: list | None = None
        self._units: dict[int, float] = {}
        self._errors: dict | None = None
        self._sides: list[tuple] | None = None
        self._replayed: list | None = None
        self._move: np.ndarray | None = None
        self._kinks: int | None = None
        self._mixed: int | None = None
        self._far: dict[float, int] = {}
        self._ball: dict[float, int] = {}
        self._sweep = sweep

    def wide(self) -> list:
        if self._wide is None:
            self._wide = wide_values(self.tr, self._units)
        return self._wide

    def replayed(self) -> list:
        """:func:`replayed` of :meth:`wide` (once)."""
        if self._replayed is None:
            self._replayed = replayed(self.tr, self.wide())
        return self._replayed

    def errors(self) -> dict:
        """:func:`wide_errors` of :meth:`wide` (once)."""
        if self._errors is None:
            self.wide()
            self._errors = wide_errors(self.tr, self._units, full_slopes(), _ERROR_PROBES)
        return self._errors

    def error(self, slot: int) -> Any:
        """The replay's estimated error of slot's value, entry by entry (its random
        roundings' rms, :meth:`errors`; 0 where it has none)."""
        e = self.errors().get(slot)
        return 0.0 if e is None else np.sqrt(np.mean(np.asarray(e, np.float64) ** 2, axis=0))

    def sides(self) -> list[tuple]:
        """:func:`switch_sides` of :meth:`wide` with :meth:`errors` (once)."""
        if self._sides is None:
            self._sides = switch_sides(self.tr, self.wide(), self.errors())
        return self._sides

    def sweep(self) -> dict:
        """:func:`._flat.full_slope_sweep` at the computed values (once)."""
        if self._sweep is None:
            self._sweep = full_slope_sweep(self.tr, self.out)
        return self._sweep

    def gradient_unit(self) -> float:
        """:func:`._flat.gradient_unit` from the shared sweep."""
        return 0.0 if self.out is None else gradient_unit(self.tr, self.out, self.sweep())

    def move(self) -> np.ndarray:
        if self._move is None:
            self._move = rounding_sensitivity(self.tr, self.out, self.wide(),
                                              self.sweep() if self.out is not None else None)
        return self._move

    def kinks(self) -> int:
        """:func:`kink_disagreements`, and :func:`slopeless_hits` (once)."""
        if self._kinks is None:
            sides = self.sides()
            self._kinks = kink_disagreements(sides) + slopeless_hits(
                self.tr, sides, self.replayed) + self.mixed()
        return self._kinks

    def mixed(self) -> int:
        """:func:`._mixed_hits.mixed_hits` (once): kinks hit as computed that f has at no
        one point of the rounding next to x; the model is then f's nowhere (both ways)."""
        if self._mixed is None:
            self._mixed = mixed_hits(self.tr, self.sides(), FlatSpec(self.tr), self.wide())
        return self._mixed

    def amplified(self, spec: Any) -> np.ndarray:
        """:meth:`move` where it exceeds the vectors' own rounding (64 u times the largest
        adjoint, :func:`._flat.gradient_unit`, as "inside" allows), else zeros: a float32
        program's values are each 1 ulp off, which moves its gradients by about u G anyway,
        and its verdicts stay as they were; cancellation moves them by far more."""
        move = self.move()
        own = 64.0 * unit_roundoff(self.out, spec) * self.gradient_unit()
        return move if float(np.max(move, initial=0.0)) > own else np.zeros_like(move)

    def beyond(self, g: np.ndarray, unit: float) -> str | None:
        """Why the computed vector g is not known to the tolerance of the membership tests
        (:func:`.lp.hull_tolerance` with ``unit``): its move in l1 exceeds that; else None."""
        moved = float(np.sum(self.move()))
        if moved <= hull_tolerance([float(np.max(np.abs(g), initial=0.0))], g.size, unit=unit):
            return None
        return (f"but the rounding of f's forward values moves the gradient by {moved:.1e} "
                "(l1; cancellation: derivatives read at values that lost their digits; "
                "_forward_rounding), beyond the tolerance of the membership test, so the "
                "computed vector is not certified.")

    def far(self, spec: Any, radius: float = 0.0) -> int:
        """:func:`far_hits` (kinks the computed values hit that f has elsewhere)."""
        key = float(radius)
        if key not in self._far:
            self._far[key] = far_hits(self.tr, self.sides, spec, radius, vals=self.replayed
                                      ) + (self.mixed() if not radius else 0)  # NOTE: x's
            # own model (a ball beyond the box is judged by ball() and wide_ball)
        return self._far[key]

    def ball(self, spec: Any, radius: float, extra: int = 0) -> int:
        """:func:`ball_disagreements` (kinks the ball may treat otherwise in f), plus
        ``extra``: the expanded program's (``ActiveModel.ball_differs``,
        :func:`.ball_model.wide_ball`)."""
        key = float(radius)
        if key not in self._ball:
            self._ball[key] = ball_disagreements(self.tr, self.sides(), spec, radius,
                                                 vals=self.replayed())
        return extra + self._ball[key]

    def ball_reason(self, spec: Any, radius: float, extra: int = 0) -> str:
        n = self.ball(spec, radius, extra)
        return (f"{n} switching entr{'y' if n == 1 else 'ies'} may be within the ball's "
                f"reach in a wider-precision replay of f's values (cancellation) and not as "
                "computed, or the other way, or on another side: the model may miss pieces of "
                "f's set in the ball or hold pieces f lacks, so no answer is proven.")

    def widening(self, spec: Any) -> float:
        """Twice the norm of :meth:`amplified`: how far the forward values' rounding may put
        the model's set, or its slopes, from f's (the margin a decided answer needs)."""
        return 2.0 * float(np.linalg.norm(self.amplified(spec)))

    def summed(self, spec: Any, size: float) -> float:
        """:func:`._flat.sums_rounding` from the shared sweep (the margin a decided answer
        needs for the rounding of the sums f's gradients are made of; ``size``: the size of
        the model's vectors)."""
        return sums_rounding(self.tr, self.out, spec, size,
                             self.sweep() if self.out is not None else None)

    def moved_reason(self, spec: Any) -> str | None:
        """Why the model's vectors are not known to be f's: the forward values' rounding
        moves them beyond their own rounding (:meth:`amplified`); None where it does not."""
        moved = self.widening(spec) / 2.0
        if not moved:
            return None
        return (f"the rounding of f's forward values moves its gradients by about {moved:.1e} "
                "(cancellation: derivatives read at values that lost their digits; "
                "_forward_rounding), so the model's vectors and slopes are not f's.")

    def far_reason(self, spec: Any, radius: float = 0.0) -> str:
        n = self.far(spec, radius)
        return (f"{n} switching entr{'y' if n == 1 else 'ies'} on their kink as computed, or "
                f"on its other side, {'has' if n == 1 else 'have'} it farther from x, on one "
                "side, in a wider-precision replay of f's values (cancellation) than the "
                "rounding next to x"
                + (" and the radius" if radius else "") + ": the model holds pieces of f's "
                "set there that f may not, so no answer that rests on them is proven."
                + self._mixed_reason())

    def kinks_reason(self) -> str:
        n = self.kinks()
        return (f"{n} switching entr{'y' if n == 1 else 'ies'} off their kink as computed "
                f"{'is' if n == 1 else 'are'} on it or on its other side in a wider-precision "
                "replay of f's values (cancellation), or on it as computed with no slope in "
                "float64 and off it in the replay (underflow): the model may miss pieces of "
                "f's set at x, so no answer that rests on their absence is proven."
                + self._mixed_reason())

    def _mixed_reason(self) -> str:
        n = self._mixed or 0
        return "" if not n else (
            f" Of them, {n} sit in a configuration no point of the rounding next to x has "
            "(kinks hit as computed that f has apart, or beside a kink f has on the other "
            "side: _mixed_hits).")
