"""Which kinks a lexicographic forward sweep resolved, node by node.

After a forward sweep in ``mode="lex"`` with directions d_1..d_K, an active kink is
*resolved* when some d_k gives its switching variable a nonzero derivative (the first such
k decides the side, the LD-derivative rule). It stays a *tie* when all K derivatives vanish:
relu/abs/leaky_relu/norm-1 at 0 with zero input tangents, maximum/minimum with equal operand
tangents, clip at a bound with a zero tangent, max/min over axes, max_pool2d and sort when
tied entries also have equal tangents in every direction, norm 2 at 0 with a zero tangent,
norm inf when the maximisers of |x| stay tied. :func:`kink_counts` returns (active,
unresolved) for one equation; it reads the tangents the sweep stored for the equation's
inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import lift
from ..primitives._lastaxis import to_last
from ..primitives.pool import window_stack

__all__ = ["kink_counts"]


def _t(t: Any, k: int, shape: tuple) -> np.ndarray:
    return np.zeros((k,) + tuple(shape)) if t is None else np.broadcast_to(t, (k,) + shape)


def _zero_all(t: np.ndarray, axis: Any = 0) -> np.ndarray:
    return np.all(t == 0, axis=axis)


def _to_last(x: np.ndarray, axis: tuple) -> np.ndarray:
    """Move the (negative) reduced axes to the end and merge them."""
    return to_last(x, axis)[0]


def _lex_argmax_ties(x: np.ndarray, ts: np.ndarray) -> tuple[int, int]:
    """(rows with tied maximisers, rows still tied after refining by ts[0], ts[1], ...).
    x: (..., N); ts: (K, ..., N)."""
    cand = x == np.max(x, axis=-1, keepdims=True)
    active = np.sum(cand, axis=-1) > 1
    for k in range(ts.shape[0]):
        m = np.max(np.where(cand, ts[k], -np.inf), axis=-1, keepdims=True)
        cand = cand & (ts[k] == m)
    still = np.sum(cand, axis=-1) > 1
    return int(np.count_nonzero(active)), int(np.count_nonzero(still))


def _elementwise(z: np.ndarray, dz: np.ndarray) -> tuple[int, int]:
    act = z == 0
    return int(np.count_nonzero(act)), int(np.count_nonzero(act & _zero_all(dz)))


def kink_counts(eqn: Any, args: list, out: Any, ts: list, k: int) -> tuple[int, int] | None:
    """(active kink entries, entries still tied after the K lexicographic directions) of one
    nonsmooth equation; None for a primitive this module does not know."""
    name, p = eqn.prim.name, eqn.params
    x = np.asarray(args[0])
    if name in ("relu", "abs", "leaky_relu") or (name == "norm" and p["ord"] == 1):
        return _elementwise(x, _t(ts[0], k, x.shape))
    if name in ("maximum", "minimum"):
        a, b = np.asarray(args[0]), np.asarray(args[1])
        so = np.shape(out)
        z = np.broadcast_to(a - b, so)
        nd = len(so)
        dz = (lift(_t(ts[0], k, a.shape), a.shape, nd)
              - lift(_t(ts[1], k, b.shape), b.shape, nd))
        return _elementwise(z, np.broadcast_to(dz, (k,) + so))
    if name == "clip":
        act = np.zeros(x.shape, bool)
        for bound in (p["lo"], p["hi"]):
            if bound is not None:
                act |= x == bound
        t = _t(ts[0], k, x.shape)
        return int(np.count_nonzero(act)), int(np.count_nonzero(act & _zero_all(t)))
    if name in ("max", "min"):
        sgn = 1.0 if name == "max" else -1.0
        t = _t(ts[0], k, x.shape)
        xl = _to_last(sgn * x, p["axis"])
        tl = np.stack([_to_last(sgn * t[i], p["axis"]) for i in range(k)])
        return _lex_argmax_ties(xl, tl)
    if name == "max_pool2d":  # max over each window's entries, stacked on a last axis
        t = _t(ts[0], k, x.shape)
        return _lex_argmax_ties(window_stack(x, p, -np.inf), window_stack(t, p, 0.0))
    if name == "sort":
        return _sort_ties(x, _t(ts[0], k, x.shape), p["axis"])
    if name == "norm":
        return _norm_ties(x, _t(ts[0], k, x.shape), p)
    return None


def _sort_ties(x: np.ndarray, t: np.ndarray, axis: int) -> tuple[int, int]:
    xs = np.moveaxis(x, axis, -1)
    ts = np.moveaxis(t, axis + 1 if axis >= 0 else axis, -1)
    active = int(np.count_nonzero(np.diff(np.sort(xs, axis=-1), axis=-1) == 0))
    if not active:
        return 0, 0
    keys = tuple(ts[i] for i in range(ts.shape[0] - 1, -1, -1)) + (xs,)
    order = np.lexsort(keys, axis=-1)
    same = np.diff(np.take_along_axis(xs, order, axis=-1), axis=-1) == 0
    for i in range(ts.shape[0]):
        same &= np.diff(np.take_along_axis(ts[i], order, axis=-1), axis=-1) == 0
    return active, int(np.count_nonzero(same))


def _norm_ties(x: np.ndarray, t: np.ndarray, p: dict) -> tuple[int, int]:
    axis = p["axis"]
    if p["ord"] == 2:
        xl = _to_last(x, axis)
        tl = np.stack([_to_last(t[i], axis) for i in range(t.shape[0])])
        zero = np.all(xl == 0, axis=-1)
        return int(np.count_nonzero(zero)), int(np.count_nonzero(
            zero & np.all(tl == 0, axis=(0, -1))))
    # ord inf: max of |x|; sign of x resolved lexicographically where x == 0
    s = np.sign(x)
    for i in range(t.shape[0]):
        s = np.where(s == 0, np.sign(t[i]), s)
    at = s[None] * t
    xl = _to_last(np.abs(x), axis)
    tl = np.stack([_to_last(at[i], axis) for i in range(t.shape[0])])
    act, still = _lex_argmax_ties(xl, tl)
    zero_rows = np.all(xl == 0, axis=-1) & (xl.shape[-1] == 1)
    zrows_still = zero_rows & np.all(tl == 0, axis=(0, -1))
    return act + int(np.count_nonzero(zero_rows)), still + int(np.count_nonzero(zrows_still))
