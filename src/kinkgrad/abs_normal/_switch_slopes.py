"""How far f's switching values move: along random directions of x (:func:`switch_slope`,
a size of their gradients), within the rounding next to x (:func:`next_to_x`,
:func:`rounding_moves`), and the kinks hit as computed that do not move at all in float64
while the wide replay has them off (:func:`slopeless_hits`). Used by
:mod:`._forward_rounding`'s checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core.program import Var
from ..modes.api import Traced
from ._flat import FlatSpec, full_slopes, probe_tangents, unit_roundoff

__all__ = ["directional_slopes", "next_to_x", "rounding_moves", "slopeless_hits",
           "switch_slope"]


def switch_slope(e: Any, vals: list, tangents: dict, k: int) -> np.ndarray:
    """||grad z|| per switching entry of ``e``, estimated from the k probe directions'
    tangents of its arguments (a difference quotient of the switch along each: z is linear,
    or the absolute value of a linear function, next to a kink)."""
    quotients, reach = directional_slopes(e, vals, tangents, k)
    if not reach:
        return np.zeros(quotients.shape[1:])
    total = np.zeros(quotients.shape[1:])
    for q in quotients:
        total += q ** 2
    return np.sqrt(total / k) * reach


def directional_slopes(e: Any, vals: list, tangents: dict, k: int
                       ) -> tuple[np.ndarray, float]:
    """(q, reach): the slopes of e's switching values along the k directions whose tangents
    are ``tangents`` are q[j] * reach ((k,) + z's shape), difference quotients along each
    (exact for a linear switch but for rounding; the size of one otherwise)."""
    args = [np.asarray(a, np.float64) if np.result_type(a).kind == "f" else a
            for a in e.args(vals)]  # NOTE: steps of 1e-7 vanish in float16 and float32
    z0 = np.asarray(e.prim.switch(args, e.prim.impl(*args, **e.params), e.params), np.float64)
    moved = [i for i, a in enumerate(e.inputs) if isinstance(a, Var) and a.index in tangents]
    scale = max([1.0] + [float(np.max(np.abs(args[i]), initial=0.0)) for i in moved])
    reach = max([0.0] + [float(np.max(np.abs(tangents[e.inputs[i].index]), initial=0.0))
                         for i in moved])
    out = np.zeros((k,) + z0.shape)
    if not reach:
        return out, 0.0
    h = 1e-7 * scale  # NOTE: along the tangents over their reach (tiny ones: 1e-320)
    for j in range(k):
        stepped = list(args)
        for i in moved:
            stepped[i] = args[i] + h * (np.asarray(tangents[e.inputs[i].index][j], np.float64)
                                        / reach)
        out_j = e.prim.impl(*stepped, **e.params)
        out[j] = (np.asarray(e.prim.switch(stepped, out_j, e.params), np.float64) - z0) / h
    return out, reach


def next_to_x(tr: Traced, spec: Any) -> np.ndarray:
    """The rounding next to x: the box of half-widths 64 u max(1, |x_i|) (u the program's
    unit roundoff), one per entry of the flat x; a kink within it counts as one at x."""
    return 64.0 * unit_roundoff(None, spec) * np.maximum(1.0, np.abs(spec.point(tr)))


def rounding_moves(tr: Traced, eqns: list, vals: list, spec: Any, k: int
                   ) -> Callable[..., np.ndarray]:
    """``moved(e, slope, full=None)``: how far e's switching values move within
    :func:`next_to_x`'s box, ||grad z * w|| (by k probes scaled by w, and where ``full``
    (a mask) also with the kinks' full slopes, as ``slope`` was; w ||grad z|| where w is
    one number). One width for all, the largest, took a kink 1/2 from x along x1 as one at
    x = (2^60, 1)."""
    w = next_to_x(tr, spec)
    top = float(np.max(w, initial=0.0))
    if np.all(w == top):
        return lambda e, slope, full=None: top * slope
    scaled: dict[Any, dict] = {}
    slots = [v.index for v in tr.in_vars]

    def moved(e: Any, slope: np.ndarray, full: Any = None) -> np.ndarray:
        if None not in scaled:
            scaled[None] = probe_tangents(eqns, vals, slots, spec, k, weights=w)
        out = switch_slope(e, vals, scaled[None], k)
        if full is not None and np.any(full):
            if "full" not in scaled:
                scaled["full"] = probe_tangents(eqns, vals, slots, spec, k, full_slopes(), w)
            out = np.where(full, np.maximum(out, switch_slope(e, vals, scaled["full"], k)),
                           out)
        return out
    return moved


def slopeless_hits(tr: Traced, sides: list[tuple], vals: Callable[[], list], k: int = 4
                   ) -> int:
    """Switching entries on their kink as computed (z == 0), off it in the wide replay, whose
    gradient is 0 in float64 (:func:`switch_slope` at ``vals()``, the replayed values): the
    model holds neither side of such a kink, only its split, and f has one side.
    1e300 relu(x0 1e-200 1e-200) at x0 = 1: z is 0 as computed and 1e-400 in f, dz/dx0
    underflows, and f's gradient 1e-100 was called outside the model's set {5e-101}."""
    cands = [(e, (z == 0) & (z_w != 0)) for e, z, z_w, _, _, _ in sides]
    cands = [(e, c) for e, c in cands if np.any(c)]
    if not cands:
        return 0
    with np.errstate(all="ignore"):
        last = max(tr.eqns.index(e) for e, _ in cands)
        values = vals()
        tangents = probe_tangents(tr.eqns[:last + 1], values, [v.index for v in tr.in_vars],
                                  FlatSpec(tr), k)
        return sum(int(np.count_nonzero(c & (switch_slope(e, values, tangents, k) == 0)))
                   for e, c in cands)
