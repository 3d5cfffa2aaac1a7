"""Shape primitives (reshape, transpose, getitem, concatenate, stack, broadcast_to) and the
cumulative sum cumsum.

All are linear. In the cost model a copy of each output entry counts as one operation, so
that every primitive's backward cost is bounded by a multiple of its own cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import (
    Primitive,
    _size,
    lift,
    ndim_of,
    normalize_axis,
    register,
    shape_of,
    summation_roundings,
    unbroadcast,
)
from .._core.tracer import bind, is_traced
from ..errors import UnsupportedOperationError

# NumPy's own, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _zeros, _ADD_AT = np.ndarray, np.zeros, np.add.at


class _Linear(Primitive):
    c_jvp = 1
    c_vjp = 1
    omega = 3.0
    roundings = 0.0  # exact: a copy, view or rearrangement of the input's entries

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(out_shape)


@register
class Reshape(_Linear):
    """``reshape(x, shape)``."""

    name = numpy_name = "reshape"
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def __call__(self, x: Any, shape: Any) -> Any:
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shape = tuple(int(s) for s in shape)
        size = _size(np.shape(x))
        if -1 in shape:
            known = _size([s for s in shape if s != -1]) or 1
            shape = tuple(size // known if s == -1 else s for s in shape)
        if _size(shape) != size:
            from ..errors import ShapeError

            raise ShapeError(f"reshape: cannot reshape an array of shape {np.shape(x)} "
                             f"(size {size}) into {shape}; the sizes must agree.")
        return bind(self, x, shape=shape)

    def impl(self, x, shape):
        return np.reshape(x, shape)

    def jvp(self, sel, tangents, args, out, params):
        t = tangents[0]
        nb = np.ndim(t) - np.ndim(args[0])
        return np.reshape(t, np.shape(t)[:nb] + params["shape"])

    def vjp(self, sel, g, args, out, params, needs):
        nb = np.ndim(g) - np.ndim(out)
        return (np.reshape(g, np.shape(g)[:nb] + np.shape(args[0])),)

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(2, 6)).astype(dtype),), {"shape": (3, 4)})]


@register
class Transpose(_Linear):
    """``transpose(x, axes)`` (reversed axes when None)."""

    name = numpy_name = "transpose"
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def __call__(self, x: Any, axes: Any = None) -> Any:
        nd = np.ndim(x)
        axes = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)
        return bind(self, x, axes=axes)

    def impl(self, x, axes):
        return np.transpose(x, axes)

    def jvp(self, sel, tangents, args, out, params):
        t = tangents[0]
        nb = np.ndim(t) - np.ndim(args[0])
        return np.transpose(t, tuple(range(nb)) + tuple(nb + a for a in params["axes"]))

    def vjp(self, sel, g, args, out, params, needs):
        nb = np.ndim(g) - np.ndim(out)
        inv = tuple(np.argsort(params["axes"]))
        return (np.transpose(g, tuple(range(nb)) + tuple(nb + int(a) for a in inv)),)

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(2, 3, 4)).astype(dtype),), {"axes": (2, 0, 1)})]


def _normalize_index(idx: Any) -> tuple[tuple, bool]:
    """The index as a tuple and whether it uses advanced (array) indexing."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out, advanced = [], False
    for i in idx:
        if is_traced(i):
            raise UnsupportedOperationError(
                "getitem: indexing with a traced array makes the program's shape depend on "
                "values; use knp.where for masks, or a constant (NumPy) index."
            )
        if isinstance(i, (list, np.ndarray)):
            empty_list = isinstance(i, list) and np.size(i) == 0
            # NOTE: NumPy reads an empty list ([], [[]]) as an integer index (np.asarray
            # would make it float64); an empty float array stays refused, as in NumPy
            i = np.asarray(i, dtype=np.intp) if empty_list else np.asarray(i)
            if i.dtype == bool or i.dtype.kind in "iu":
                advanced = True
            else:
                raise UnsupportedOperationError(f"getitem: index of dtype {i.dtype.name} is not "
                                                "supported; use integers or booleans.")
        out.append(i)
    return tuple(out), advanced


@register
class GetItem(Primitive):
    """``x[idx]`` for basic (int, slice, None, Ellipsis) and integer/boolean array indices
    (constant ones). The VJP scatters with accumulation, so repeated indices add up."""

    name = "getitem"
    roundings = 0.0  # exact: a copy, view or rearrangement of the input's entries
    numpy_name = "getitem"
    vjp_reads_args = vjp_reads_out = False  # shapes only
    c_jvp = 1
    omega = 3.0

    def __call__(self, x: Any, idx: Any) -> Any:
        idx, advanced = _normalize_index(idx)
        return bind(self, x, idx=idx, advanced=advanced)

    def pp_params(self, params):
        def one(i: Any) -> str:
            if isinstance(i, slice):  # start:stop[:step], as written in Python
                text = ":".join("" if v is None else str(v) for v in (i.start, i.stop))
                return text if i.step is None else f"{text}:{i.step}"
            if i is None:
                return "None"
            if i is Ellipsis:
                return "..."
            if isinstance(i, np.ndarray):
                return f"{i.dtype.name}{list(i.shape)}"
            return str(i)

        return "[" + ",".join(one(i) for i in params["idx"]) + "]"

    def impl(self, x, idx, advanced):
        return np.asarray(x)[idx]

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(out_shape)

    def _flat(self, shape: tuple, idx: tuple) -> np.ndarray:
        return np.arange(_size(shape)).reshape(shape)[idx]

    def jvp(self, sel, tangents, args, out, params):
        t, idx = tangents[0], params["idx"]
        nb = np.ndim(t) - np.ndim(args[0])
        if not params["advanced"]:
            return t[(slice(None),) * nb + idx]
        flat = self._flat(np.shape(args[0]), idx)
        tb = np.reshape(t, np.shape(t)[:nb] + (-1,))
        return tb[..., flat]

    def vjp(self, sel, g, args, out, params, needs):
        shape, idx = tuple(shape_of(args[0])), params["idx"]
        gshape = tuple(shape_of(g))
        nb = len(gshape) - len(shape_of(out))
        batch = gshape[:nb]
        dtype = g.dtype if type(g) is _NDARRAY else np.result_type(g)
        if not params["advanced"]:
            res = np.zeros(batch + shape, dtype=dtype)
            res[(slice(None),) * nb + idx] = g
            return (res,)
        if nb == 0 and type(g) is _NDARRAY and all(
                type(i) is _NDARRAY and i.dtype.kind in "iu" for i in idx):
            # integer arrays only (x[rows, labels]): one unbuffered scatter-add, C-level
            res = _zeros(shape, dtype)
            _ADD_AT(res, idx, g)
            return (res,)
        flat = self._flat(shape, idx).ravel()
        if nb == 0:
            res = np.bincount(flat, weights=np.ravel(g), minlength=_size(shape))
            return (res.astype(dtype).reshape(shape),)
        # one bincount over (batch row, flat index) pairs: np.add.at is ~20x slower
        rows, size = _size(batch), _size(shape)
        ids = (np.arange(rows)[:, None] * size + flat[None, :]).ravel()
        res = np.bincount(ids, weights=np.ravel(np.reshape(g, (rows, -1))),
                          minlength=rows * size).astype(dtype).reshape(batch + (size,))
        return (res.reshape(batch + shape),)

    def samples(self, rng, dtype=np.float64):
        x = rng.normal(size=(4, 5)).astype(dtype)
        return [((x,), {"idx": (1,), "advanced": False}),
                ((x,), {"idx": (slice(1, 3), slice(None, None, 2)), "advanced": False}),
                ((x,), {"idx": (np.array([0, 2, 2]), np.array([1, 1, 4])), "advanced": True}),
                ((x,), {"idx": (Ellipsis, None, 3), "advanced": False})]


class _Join(Primitive):
    vjp_reads_args = vjp_reads_out = False  # shapes only
    c_jvp = 1
    omega = 3.0
    roundings = 0.0  # exact: a copy, view or rearrangement of the input's entries

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(out_shape)

    def _pieces(self, g: Any, args: Any, axis: int, out: Any) -> list:
        raise NotImplementedError

    def jvp(self, sel, tangents, args, out, params):
        nb = next(np.ndim(t) - np.ndim(a) for t, a in zip(tangents, args) if t is not None)
        batch = next(np.shape(t)[:nb] for t in tangents if t is not None)
        ts = [np.zeros(batch + np.shape(a), np.result_type(out)) if t is None else t
              for t, a in zip(tangents, args)]
        return self._join(ts, params["axis"])

    def vjp(self, sel, g, args, out, params, needs):
        pieces = self._pieces(g, args, params["axis"], out)
        return tuple(p if n else None for p, n in zip(pieces, needs))


@register
class Concatenate(_Join):
    """``concatenate(arrays, axis)``."""

    name = numpy_name = "concatenate"

    def __call__(self, arrays: Any, axis: int | None = 0) -> Any:
        arrays = list(arrays)
        if axis is None:  # NOTE: NumPy flattens first (this joined along axis 0 instead)
            arrays, axis = [Reshape.instance(a, (-1,)) for a in arrays], 0  # type: ignore
        return bind(self, *arrays, axis=normalize_axis(axis, ndim_of(arrays[0]))[0])

    def impl(self, *arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def _join(self, ts: list, axis: int) -> Any:
        return np.concatenate(ts, axis=axis)

    def _pieces(self, g, args, axis, out):
        sizes = [np.shape(a)[axis] for a in args]
        cuts = [int(sum(sizes[: i + 1])) for i in range(len(sizes) - 1)]
        return np.split(g, cuts, axis=axis)

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=(2, 1)).astype(dtype)),
                 {"axis": -1})]


@register
class Stack(_Join):
    """``stack(arrays, axis)``."""

    name = numpy_name = "stack"

    def __call__(self, arrays: Any, axis: int = 0) -> Any:
        arrays = list(arrays)
        return bind(self, *arrays, axis=normalize_axis(axis, ndim_of(arrays[0]) + 1)[0])

    def impl(self, *arrays, axis):
        return np.stack(arrays, axis=axis)

    def _join(self, ts: list, axis: int) -> Any:
        return np.stack(ts, axis=axis)

    def _pieces(self, g, args, axis, out):
        return [np.take(g, i, axis=axis) for i in range(len(args))]

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=(2, 3)).astype(dtype)),
                 {"axis": -2})]


@register
class BroadcastTo(Primitive):
    """``broadcast_to(x, shape)``; the VJP sums over the broadcast axes."""

    name = numpy_name = "broadcast_to"
    roundings = 0.0  # exact: a copy, view or rearrangement of the input's entries
    vjp_reads_args = vjp_reads_out = False  # shapes only
    c_vjp = 1
    omega = 3.0

    def __call__(self, x: Any, shape: Any) -> Any:
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
        return bind(self, x, shape=shape)

    def impl(self, x, shape):
        return np.broadcast_to(x, shape)

    def jvp(self, sel, tangents, args, out, params):
        t = tangents[0]
        nb = np.ndim(t) - np.ndim(args[0])
        t = lift(t, np.shape(args[0]), len(params["shape"]))
        return np.broadcast_to(t, np.shape(t)[:nb] + params["shape"])

    def vjp(self, sel, g, args, out, params, needs):
        return (unbroadcast(g, np.shape(args[0]), params["shape"]),)

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(3, 1)).astype(dtype),), {"shape": (2, 3, 4)})]


@register
class Cumsum(_Linear):
    """``cumsum(x, axis)``: y_i = x_0 + ... + x_i along ``axis`` (None: of the flattened x, as
    NumPy). Linear: the JVP is the cumsum of the tangent, the VJP the reversed cumsum of the
    cotangent, (J^T g)_i = g_i + ... + g_{n-1}."""

    name = numpy_name = "cumsum"
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def __call__(self, x: Any, axis: Any = None) -> Any:
        if axis is None:
            x, axis = Reshape.instance(x, (-1,)), -1  # type: ignore[attr-defined]
        return bind(self, x, axis=normalize_axis(int(axis), ndim_of(x))[0])

    def impl(self, x, axis):
        return np.cumsum(x, axis=axis)

    def rounding(self, args, out, params):
        x, axis = args[0], params["axis"]
        return summation_roundings(np.shape(x)[axis]) * np.cumsum(np.abs(x), axis=axis)

    def jvp(self, sel, tangents, args, out, params):
        return np.cumsum(tangents[0], axis=params["axis"])

    def vjp(self, sel, g, args, out, params, needs):
        axis = params["axis"]
        return (np.flip(np.cumsum(np.flip(g, axis=axis), axis=axis), axis=axis),)

    def samples(self, rng, dtype=np.float64):
        x = rng.normal(size=(3, 4)).astype(dtype)
        return [((x,), {"axis": -1}), ((x,), {"axis": -2}),
                ((rng.normal(size=5).astype(dtype),), {"axis": -1})]
