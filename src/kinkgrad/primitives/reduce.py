"""Reductions and sorting: sum, prod, max and min over axes, sort along an axis.

``max``/``min`` select a weight vector over the reduced entries (one-hot on the first
maximiser, or equal shares among ties under ``max="split"``); ``sort`` selects a permutation
(stable order, or averaged inside tie groups under ``sort="split"``). Both weights and
averaged permutations are convex combinations of the Jacobians of the smooth selections, so
they lie in the Clarke subdifferential.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import (
    Primitive,
    _size,
    broadcast_view,
    ndim_of,
    normalize_axis,
    ops,
    register,
    shape_of,
    summation_roundings,
    with_unit_axes,
)
from .._core.tracer import bind
from ._lastaxis import count_last, extreme, first_true, from_last, max_last, to_last

# NumPy's own, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _GENERIC, _asarray, _ADD_REDUCE = np.ndarray, np.generic, np.asarray, np.add.reduce


def _expand(g: Any, axis: tuple, keepdims: bool) -> Any:
    return g if keepdims or not axis else np.expand_dims(g, axis)


def _axis_samples(rng: np.random.Generator, dtype: Any) -> list:
    x = rng.normal(size=(3, 4)).astype(dtype)
    return [((x,), {"axis": (-2, -1), "keepdims": False}),
            ((x,), {"axis": (-1,), "keepdims": False}),
            ((x,), {"axis": (-2,), "keepdims": True})]


@register
class Sum(Primitive):
    """``sum(x, axis)``; smooth, derivative all ones."""

    name = numpy_name = "sum"
    omega = 3.0
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def __call__(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return bind(self, x, axis=normalize_axis(axis, ndim_of(x)), keepdims=bool(keepdims))

    def impl(self, x, axis, keepdims):
        if not axis:  # a 0-d input: NumPy and torch disagree on what axis=() means
            return x * 1
        if type(x) is _NDARRAY:  # np.sum is this ufunc.reduce behind a Python layer
            return _ADD_REDUCE(x, axis=axis, keepdims=keepdims)
        return np.sum(x, axis=axis, keepdims=keepdims)

    def rounding(self, args, out, params):
        m = np.size(args[0]) // max(np.size(out), 1)
        return summation_roundings(m) * self.impl(np.abs(args[0]), **params)

    def cost(self, in_shapes, out_shape, params):
        return _size(in_shapes[0])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(in_shapes[0])

    def jvp(self, sel, tangents, args, out, params):
        if not params["axis"]:
            return tangents[0]
        return np.sum(tangents[0], axis=params["axis"], keepdims=params["keepdims"])

    def vjp(self, sel, g, args, out, params, needs):
        shape, axis = shape_of(args[0]), params["axis"]
        if isinstance(g, _GENERIC):  # a scalar cotangent (0-d arithmetic returns scalars)
            g = _asarray(g)
        if type(g) is _NDARRAY:  # the same without NumPy's Python layers (see shape_of)
            if not params["keepdims"]:
                g = g.reshape(with_unit_axes(g.shape, axis))
            return (broadcast_view(g, g.shape[:g.ndim - len(shape)] + tuple(shape)),)
        g = _expand(g, axis, params["keepdims"])
        nb = np.ndim(g) - len(shape)
        return (np.broadcast_to(g, np.shape(g)[:nb] + tuple(shape)),)

    def samples(self, rng, dtype=np.float64):
        return _axis_samples(rng, dtype)


@register
class Prod(Primitive):
    """``prod(x, axis)``; smooth (a polynomial). The derivative with respect to x_i is the
    product of the other entries of its group, prod_{j != i} x_j: with one zero in the group
    it is nonzero only at that zero, with two or more zeros it is 0 everywhere. It is computed
    as the product of the exclusive cumulative products from the left and from the right,
    never by dividing by x."""

    name = numpy_name = "prod"
    omega = 6.0

    def __call__(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return bind(self, x, axis=normalize_axis(axis, ndim_of(x)), keepdims=bool(keepdims))

    def impl(self, x, axis, keepdims):
        if not axis:  # a 0-d input, as in Sum
            return x * 1
        return np.prod(x, axis=axis, keepdims=keepdims)

    def rounding(self, args, out, params):  # m - 1 multiplications, each relative
        return max(np.size(args[0]) // max(np.size(out), 1) - 1, 0) * np.abs(out)

    def cost(self, in_shapes, out_shape, params):
        return _size(in_shapes[0])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 5 * _size(in_shapes[0])  # two scans and their product, then a weighted sum

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 5 * _size(in_shapes[0])  # the same scans, a product with g, the accumulation

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, axis = np.asarray(args[0]), params["axis"]
        if not axis:
            return np.ones_like(x), 0
        xl, perm, tshape = to_last(x, axis)
        one = np.ones_like(xl[..., :1])
        left = np.cumprod(np.concatenate([one, xl[..., :-1]], axis=-1), axis=-1)
        right = np.flip(np.cumprod(np.flip(np.concatenate([xl[..., 1:], one], axis=-1),
                                           axis=-1), axis=-1), axis=-1)
        return from_last(left * right, perm, tshape), 0

    def jvp(self, sel, tangents, args, out, params):
        if not params["axis"]:
            return tangents[0] * sel
        return np.sum(sel * tangents[0], axis=params["axis"], keepdims=params["keepdims"])

    def vjp(self, sel, g, args, out, params, needs):
        return (_expand(g, params["axis"], params["keepdims"]) * sel,)

    def samples(self, rng, dtype=np.float64):
        x = (rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))).astype(dtype)
        z = x.copy()
        z[0, 1] = 0.0  # one zero in row 0 and in column 1
        z[1, 0] = z[1, 2] = 0.0  # two zeros in row 1
        return [
            ((x,), {"axis": (-2, -1), "keepdims": False}),
            ((x,), {"axis": (-1,), "keepdims": False}),
            ((z,), {"axis": (-1,), "keepdims": False}),
            ((z,), {"axis": (-2,), "keepdims": True}),
            ((np.asarray(x[0, 0]),), {"axis": (), "keepdims": False})]


# ------------------------------------------------------------------ max and min over axes
class _Extremum(Primitive):
    """Max (sign +1) or min (sign -1) over axes, with the policy's ``max`` tie rule."""

    policy_key = "max"
    sign = 1.0
    c_vjp = 2
    omega = 4.0
    roundings = 0.0  # exact: one of the entries

    def __call__(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        axes = normalize_axis(axis, ndim_of(x))
        shape = shape_of(x)
        if _size([shape[a] for a in axes]) == 0:
            from ..errors import ShapeError

            raise ShapeError(
                f"{self.name}: the reduced axes {axes} of an array of shape {shape} are empty, "
                f"and the {self.name} of no numbers is undefined (NumPy raises too); check the "
                "shape, reduce over a non-empty axis, or pad with -inf/+inf first."
            )
        return bind(self, x, axis=axes, keepdims=bool(keepdims))

    def cost(self, in_shapes, out_shape, params):
        return _size(in_shapes[0])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 3 * _size(in_shapes[0])

    def switch(self, args, out, params):
        """Gap between the best and the second best entry (0 at a tie)."""
        x, axis = np.asarray(args[0]), params["axis"]
        xl, _, _ = to_last(self.sign * x, axis)
        if xl.shape[-1] < 2:
            return np.full(xl.shape[:-1], np.inf)
        part = -np.partition(-xl, 1, axis=-1)
        return part[..., 0] - part[..., 1]

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, axis = np.asarray(args[0]), params["axis"]
        xl, perm, tshape = to_last(self.sign * x, axis)
        cand = xl == max_last(xl)
        count = count_last(cand)
        kinks = int(np.count_nonzero(count > 1))
        dtype = np.result_type(x)
        t = None if tangents is None else tangents[0]
        batched = None
        if kinks and t is not None and mode != "policy":
            # negative axes address the same dimensions of the batched tangents (K,) + x.shape
            tl, bperm, btshape = to_last(self.sign * np.asarray(t), axis)
            batched = (bperm, btshape)
            if mode == "directional":
                cand = np.broadcast_to(cand, tl.shape)
                m = np.max(np.where(cand, tl, -np.inf), axis=-1, keepdims=True)
                cand = cand & (tl == m)
            else:
                for k in range(tl.shape[0]):
                    m = np.max(np.where(cand, tl[k], -np.inf), axis=-1, keepdims=True)
                    cand = cand & (tl[k] == m)
            count = count_last(cand)
        if not kinks:  # one maximiser per group: cand is already the one-hot weight
            w = cand.astype(dtype)
        elif policy.max == "split":
            w = (cand / count).astype(dtype)
        else:
            w = first_true(cand).astype(dtype)
        if w.ndim > xl.ndim and batched is not None:  # per-direction weights
            return from_last(w, *batched), kinks
        return from_last(w, perm, tshape), kinks

    def jvp(self, sel, tangents, args, out, params):
        return np.sum(sel * tangents[0], axis=params["axis"], keepdims=params["keepdims"])

    def vjp(self, sel, g, args, out, params, needs):
        return (_expand(g, params["axis"], params["keepdims"]) * sel,)

    def abs_form(self, args, params):
        """A tournament of (a + b +- |a - b|)/2, one level at a time: level l pairs items
        (2p, 2p + 1) of level l - 1 in one vectorized step (an odd item out moves up last).

        # NOTE: the reduced axes are moved to the front, so that a level's pairs are its
        # leading axis: its ``abs`` entries in C order are pair-major, the same switches in
        # the same order as one ``abs`` per pair (and log2(n) steps of Python, not n)."""
        x, axis, keep = args[0], params["axis"], params["keepdims"]
        nd = x.ndim
        red = [nd + a for a in axis]
        rest_axes = [i for i in range(nd) if i not in red]
        xt = ops.transpose(x, tuple(red + rest_axes))
        rest = tuple(x.shape[i] for i in rest_axes)
        cur = ops.reshape(xt, (-1,) + rest)
        k = cur.shape[0]
        while k > 1:
            h = k // 2
            a = ops.getitem(cur, (slice(0, 2 * h, 2),))
            b = ops.getitem(cur, (slice(1, 2 * h, 2),))
            nxt = (a + b + ops.abs(a - b) * self.sign) * 0.5
            if k % 2:
                nxt = ops.concatenate([nxt, ops.getitem(cur, (slice(k - 1, k),))], axis=0)
            cur, k = nxt, h + k % 2
        res = ops.reshape(cur, rest)
        if keep:
            res = ops.reshape(res, tuple(1 if i in red else s for i, s in enumerate(x.shape)))
        return res

    def samples(self, rng, dtype=np.float64):
        x = rng.permutation(np.arange(12.0)).reshape(3, 4).astype(dtype)
        return [((x,), {"axis": (-2, -1), "keepdims": False}),
                ((x,), {"axis": (-1,), "keepdims": False}),
                ((x,), {"axis": (-2,), "keepdims": True})]

    def kink_samples(self, rng, dtype=np.float64):
        # ties at the maximum and at the minimum of rows and columns
        x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 0.0, 5.0]], dtype)
        y = np.array([[1.0, 3.0, 2.0, 5.0], [1.0, 3.0, 0.0, 5.0], [0.0, 1.0, 2.0, 5.0]], dtype)
        return [((x,), {"axis": (-1,), "keepdims": False}),
                ((y,), {"axis": (-2,), "keepdims": True}),
                ((x,), {"axis": (-2, -1), "keepdims": False})]


@register
class Max(_Extremum):
    """``max(x, axis)``: the largest entry; at ties the first maximiser (or equal shares
    under ``max="split"``). Clarke subdifferential: the simplex over the maximisers."""

    name = numpy_name = "max"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    sign = 1.0

    def impl(self, x, axis, keepdims):
        return extreme(x, axis, keepdims, 1.0)


@register
class Min(_Extremum):
    """``min(x, axis)``: the smallest entry; ties as for ``max``."""

    name = numpy_name = "min"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    sign = -1.0

    def impl(self, x, axis, keepdims):
        return extreme(x, axis, keepdims, -1.0)


# ------------------------------------------------------------------ sort
def _group_mean(v: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Average v over runs with equal group ids along the last axis (gid broadcasts to v)."""
    gid = np.broadcast_to(gid, v.shape)
    n = v.shape[-1]
    rows = np.arange(v.size // n).reshape(v.shape[:-1] + (1,)) * n
    ids = (gid + rows).ravel()
    sums = np.bincount(ids, weights=v.ravel().astype(np.float64), minlength=v.size)
    cnt = np.bincount(ids, minlength=v.size)
    return (sums[ids] / cnt[ids]).reshape(v.shape).astype(v.dtype)


@register
class Sort(Primitive):
    """``sort(x, axis=-1)`` ascending. The selection is the sorting permutation: stable
    order at ties (policy ``sort="first"``) or the average over each tie group
    (``"split"``, the barycentre of the tied permutations). Clarke subdifferential at a
    tie: the convex hull of the permutation matrices that sort x."""

    name = numpy_name = "sort"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    roundings = 0.0  # exact: a permutation
    policy_key = "sort"
    omega = 4.0

    def __call__(self, x: Any, axis: int | None = -1) -> Any:
        if axis is None:  # NOTE: NumPy sorts the flattened array
            x = ops.reshape(x, (-1,))
            axis = -1
        return bind(self, x, axis=normalize_axis(axis, ndim_of(x))[0])

    def impl(self, x, axis):
        return np.sort(x, axis=axis, kind="stable")

    def cost(self, in_shapes, out_shape, params):
        n = in_shapes[0][params["axis"]]
        return _size(in_shapes[0]) * max(1, int(np.ceil(np.log2(max(n, 2)))))

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return self.cost(in_shapes, out_shape, params) + 2 * _size(in_shapes[0])

    def switch(self, args, out, params):
        return np.abs(np.diff(out, axis=params["axis"]))

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, axis = np.asarray(args[0]), params["axis"]
        ties = np.diff(out, axis=axis) == 0
        kinks = int(np.count_nonzero(ties))
        t = None if tangents is None else tangents[0]
        if not kinks or t is None or mode == "policy":
            perm = np.argsort(x, axis=axis, kind="stable")
        elif mode == "directional":
            perm = np.lexsort((t, np.broadcast_to(x, np.shape(t))), axis=axis)
        else:
            perm = np.lexsort(tuple(t[k] for k in range(t.shape[0] - 1, -1, -1)) + (x,),
                              axis=axis)
        gid = None
        if kinks and policy.sort == "split":
            # NOTE: only ties the tangents leave unresolved are averaged: in the directional
            # and lex modes a tie broken by a direction is no tie of the piece it enters.
            if perm.ndim > x.ndim:  # per-direction permutations
                tied = np.diff(np.take_along_axis(np.broadcast_to(x, perm.shape), perm, axis),
                               axis=axis) == 0
                tied &= np.diff(np.take_along_axis(t, perm, axis), axis=axis) == 0
            else:
                tied = ties
                if t is not None and mode == "lex":
                    for k in range(t.shape[0]):
                        tied = tied & (np.diff(np.take_along_axis(t[k], perm, axis),
                                               axis=axis) == 0)
            first = np.ones(tied.shape[:tied.ndim + axis] + (1,)
                            + tied.shape[tied.ndim + axis + 1:], bool)
            gid = np.cumsum(np.concatenate([first, ~tied], axis=axis), axis=axis) - 1
        return (perm, gid), kinks

    def jvp(self, sel, tangents, args, out, params):
        perm, gid = sel
        t, axis = tangents[0], params["axis"]
        res = np.take_along_axis(t, np.broadcast_to(perm, t.shape), axis=axis)
        if gid is not None:
            res = np.moveaxis(_group_mean(np.moveaxis(res, axis, -1),
                                          np.moveaxis(gid, axis, -1)), -1, axis)
        return res

    def vjp(self, sel, g, args, out, params, needs):
        perm, gid = sel
        axis = params["axis"]
        if gid is not None:
            g = np.moveaxis(_group_mean(np.moveaxis(g, axis, -1),
                                        np.moveaxis(gid, axis, -1)), -1, axis)
        shape = np.broadcast_shapes(np.shape(g), np.shape(perm))
        res = np.zeros(shape, dtype=np.result_type(g))
        np.put_along_axis(res, np.broadcast_to(perm, shape), np.broadcast_to(g, shape),
                          axis=axis)
        return (res,)

    def abs_form(self, args, params):
        """The odd-even transposition network: n rounds, round r comparing entries (i, i + 1)
        for i = r mod 2, r mod 2 + 2, ... with lo, hi = (a + b -+ |a - b|)/2.

        # NOTE: a round is one vectorized step over its comparators, the sorted axis moved to
        # the front: its ``abs`` entries in C order are comparator-major, the same switches in
        # the same order as one ``abs`` per comparator (n steps of Python, not n^2 / 2)."""
        x, axis = args[0], params["axis"]
        nd = x.ndim
        ax = axis % nd
        perm = (ax,) + tuple(i for i in range(nd) if i != ax)
        n = x.shape[ax]
        rest = tuple(x.shape[i] for i in perm[1:])
        cur = ops.transpose(x, perm)
        for rnd in range(n):
            p = rnd % 2
            h = (n - p) // 2  # comparators this round
            if h == 0:
                continue
            a = ops.getitem(cur, (slice(p, p + 2 * h, 2),))
            b = ops.getitem(cur, (slice(p + 1, p + 2 * h, 2),))
            d = ops.abs(a - b)
            lo, hi = (a + b - d) * 0.5, (a + b + d) * 0.5
            parts = [ops.reshape(ops.stack([lo, hi], axis=1), (2 * h,) + rest)]
            if p:
                parts.insert(0, ops.getitem(cur, (slice(0, 1),)))
            if p + 2 * h < n:
                parts.append(ops.getitem(cur, (slice(p + 2 * h, n),)))
            cur = ops.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        return ops.transpose(cur, tuple(int(i) for i in np.argsort(perm)))

    def samples(self, rng, dtype=np.float64):
        x = rng.permutation(np.arange(12.0)).reshape(3, 4).astype(dtype)
        return [((x,), {"axis": -1}), ((x,), {"axis": -2})]

    def kink_samples(self, rng, dtype=np.float64):
        x = np.array([[3.0, 1.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [3.0, 2.0, 1.0, 0.5]], dtype)
        return [((x,), {"axis": -1}), ((x,), {"axis": -2})]
