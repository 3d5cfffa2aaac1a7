"""Minimality at a radius > 0: what the moved model (near-active switches held on their
kinks) says about the ball, and where f falls beside x (used by :mod:`.minimality`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._flat import FlatSpec
from .active import ActiveModel
from .ball_model import moved_switches
from .ball_pieces import meet_in_ball, own_gradient
from .stationarity import StationarityReport, _slope, stationarity

__all__ = ["falls", "off_kinks"]

_EPS = float(np.finfo(np.float64).eps)


def falls(f: Callable, spec: FlatSpec, x: np.ndarray, d: np.ndarray, radius: float
          ) -> tuple[float, float] | None:
    """(t, (f(x + t d) - f(x)) / t) for the first t in radius * (1, 4, 16, 64) where f is
    lower than f(x) by more than ten times both values' rounding estimates
    (:func:`kinkgrad.rounding_error`) plus 4 u max(|f(x)|, |f(x + t d)|) (relative: a
    program scaled by s falls where the unscaled one does); None if at none."""
    from ..modes.rounding import rounding_error

    at_x = rounding_error(f, spec.point_tree(x), measure=False)
    for t in radius * 4.0 ** np.arange(4):
        there = rounding_error(f, spec.point_tree(x + t * d), measure=False)
        margin = 10 * (at_x.error + there.error) + 4 * _EPS * max(abs(at_x.value),
                                                                 abs(there.value))
        if there.value < at_x.value - margin:
            return float(t), (there.value - at_x.value) / float(t)
    return None


def off_kinks(rep: Any, red: ActiveModel, f: Callable, tr: Any, spec: FlatSpec, out: Any,
              radius: float, tol: float, known: StationarityReport | None) -> None:
    """A "minimal" ``rep`` (a MinimalityReport) of a model whose near-active switches off
    their kinks cannot meet within the ball (:func:`.ball_pieces.meet_in_ball`) describes no
    point of the ball: it becomes "undecided", or "not minimal" where f falls at x itself
    (exact f'(x; d) < -tol, and f(x + t d) < f(x) beyond rounding at some t <= 64 radius:
    not only within the kinks' offsets) along the ball's descent direction (``known`` or a
    fresh :func:`~.stationarity` at that radius) or against the gradient of x's piece."""
    moved = moved_switches(red, radius)
    if rep.verdict != "minimal" or not moved:
        return
    dist = meet_in_ball(red, radius)
    if dist is not None:  # NOTE: say whose minimality it is (a user read it as x's)
        rep.reason += (f" At radius {radius:g} this is the model of the point y of the ball "
                       f"{dist:.3g} from x where its {moved} near-active kink(s) off their "
                       "kinks meet; f may still fall at x itself.")
        return
    rep.verdict, rep.bounds = "undecided", (-np.inf, np.inf)
    head = (f"{moved} near-active switch(es) off their kinks cannot meet within the ball "
            "(first order), so the model, which holds them on their kinks, is that of no "
            "point of the ball")
    rep.reason = f"{head}; on that model: {rep.reason}"
    st = known or stationarity(f, spec.point_tree(spec.point(tr)), radius=radius, tol=tol)
    g, _ = own_gradient(red)
    tries = [(spec.from_tree(st.descent, "minimality"), "the ball's descent direction")] \
        if st.descent is not None else []
    if np.any(g):  # scaled first: ||g||^2 underflows for entries below ~1e-154
        g = g / np.max(np.abs(g))
        tries.append((-g / np.linalg.norm(g), "minus the gradient of x's piece"))
    for d, what in tries:
        s = _slope(tr, spec, out, d)
        fell = falls(f, spec, spec.point(tr), d, radius) if s < -tol else None
        if fell is not None:  # NOTE: a fall at the ball's scale, not only within the offsets
            rep.verdict, rep.descent, rep.slope, rep.bounds = "not minimal", spec.tree(d), s, (
                -np.inf, s)
            rep.reason = (f"{head}; but f'(x; d) = {s:.3e} < -tol = {-tol:g} along {what} d, "
                          f"and f(x + t d) < f(x) beyond rounding at t = {fell[0]:.3g}.")
            return


def off_rounding(rep: Any, tr: Any, spec: FlatSpec, out: Any, radius: float,
                 model: ActiveModel | None = None) -> None:
    """A decided ``rep`` (a MinimalityReport) whose model is not f's: where a wider replay
    of f's values (:mod:`._forward_rounding`) puts a kink at x, or within the ball, that the
    computed values miss, on its other side, or farther than they do, the model's slopes
    and the exact one-sided derivative of the rounded program (:func:`kinkgrad.directional`)
    are not f's (|x1| + |x0 - 3/4| - 2 relu(((x0 + 1e16) - 1e16) - 1/2) at (3/4, 0) looks
    minimal as computed; f falls at slope -1 along e0): it becomes "undecided". So does a
    "minimal" whose ball model may miss switches a nested reach puts within the ball
    (:func:`.ball_model.nested_reason`)."""
    from ._forward_rounding import ForwardRounding
    from ._rescale import gradient_size
    from .ball_model import nested_reason

    if rep.verdict == "undecided":
        return
    forward = ForwardRounding(tr, out)
    nested = nested_reason(model) if model is not None and rep.verdict == "minimal" else None
    extra = 0 if model is None else model.ball_differs
    if radius > 0 and nested:  # NOTE: the model may miss pieces of the ball ("not minimal"
        why = nested  # rests on f'(x; d) at x itself)
    elif radius > 0 and forward.ball(spec, radius, extra):
        why = forward.ball_reason(spec, radius, extra)
    elif radius == 0 and forward.kinks():  # NOTE: a ball holds them (ball() decides)
        why = forward.kinks_reason()
    elif forward.far(spec, radius):
        why = forward.far_reason(spec, radius)
    else:
        moved = forward.widening(spec)
        size = gradient_size(model.reduced(), None) if model is not None else abs(
            rep.slope or 0.0)  # NOTE: the model's vectors' size, or the probed slope's
        far = moved + forward.summed(spec, size)  # NOTE: and the gradient sums' rounding
        if not far:
            return
        lower, upper = rep.bounds
        rep.bounds = (lower - far, upper + far)
        if rep.verdict == "minimal" and lower - far >= -rep.tol or rep.verdict == \
                "not minimal" and rep.slope is not None and rep.slope + far < -rep.tol:
            rep.reason += moved and (f" The rounding of f's forward values moves its slopes "
                                     f"by up to about {moved:.1e} (_forward_rounding), within "
                                     "the margin.") or ""
            return
        why = forward.moved_reason(spec) or (
            f"The rounding of the sums f's gradients are made of may move its slopes by up to "
            f"about {far:.1e} (terms far larger than the slopes; _flat.sums_rounding), beyond "
            "the margin.")
    rep.verdict, rep.bounds, rep.descent, rep.slope = "undecided", (-np.inf, np.inf), None, None
    rep.reason = f"{why} On the computed values: {rep.reason}"
