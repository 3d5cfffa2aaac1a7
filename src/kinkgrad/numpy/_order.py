"""Order statistics and gathers of ``knp``: median, quantile, percentile, topk (composites of
``sort`` and constant indexing), take_along_axis (a constant gather), argsort (an integer
constant).

Kink convention: median, quantile, percentile and topk are linear maps of ``sort`` (a fixed
selection of sorted entries with fixed interpolation weights), so their only kinks are sort's
ties and their choice there is the ``sort`` policy's: under ``sort="first"`` the stable
sorting permutation (tied entries keep their index order, so the k-th rank of a tie group
goes to its k-th entry by index), under ``"split"`` the average over the tied permutations
(each tied entry gets an equal share). Either way backward mode returns L P for
a permutation P (or an average of permutations) that sorts x, i.e. the gradient of a
selection function L P x that is active on an open set next to x: an element of the Clarke
subdifferential. ``clarke_grad`` resolves the ties along directions as it does for sort.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from .._core.primitive import normalize_axis as _normalize_axis
from .._core.primitive import registry as _registry
from .._core.tracer import is_traced as _is_traced
from ..errors import KinkgradError as _KinkgradError
from ..errors import ShapeError as _ShapeError
from ..errors import UnsupportedOperationError as _Unsupported

_P = _registry()
_sort, _getitem, _reshape, _transpose = _P["sort"], _P["getitem"], _P["reshape"], _P["transpose"]
_add, _sub, _mul = _P["add"], _P["sub"], _P["mul"]  # NOTE: not operators (a bare tensor's)
_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if _is_traced(x) else _np.shape(x)


def _to_last(x: Any, axis: Any, what: str) -> tuple[Any, tuple, tuple]:
    """x with the reduced axes moved to the end and merged: (x', kept shape, reduced axes)."""
    shape = _shape(x)
    axes = _normalize_axis(axis, len(shape))
    red = [len(shape) + a for a in axes]
    rest = [i for i in range(len(shape)) if i not in red]
    n = int(_np.prod([shape[i] for i in red], dtype=_np.int64))
    if n == 0:
        raise _ShapeError(f"{what}: the reduced axes {axes} of an array of shape {shape} are "
                          "empty, and an order statistic of no numbers is undefined; check the "
                          "shape or reduce over a non-empty axis.")
    if rest + red != list(range(len(shape))):
        x = _transpose(x, tuple(rest + red))
    kept = tuple(shape[i] for i in rest)
    if _shape(x) != kept + (n,):
        x = _reshape(x, kept + (n,))
    return x, kept, axes


def quantile(a: Any, q: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
             method: str = "linear", keepdims: bool = False, *, weights: Any = None) -> Any:
    """The q-th quantile(s) of ``a`` along ``axis`` (None: of the flattened array), as NumPy's.

    With v the sorted entries (n of them) and p = q (n - 1), ``method="linear"`` (NumPy's
    default) returns (1 - f) v[floor p] + f v[ceil p], f = p - floor p; ``"lower"``,
    ``"higher"``, ``"nearest"`` (ties to even, as NumPy) and ``"midpoint"`` as in NumPy. q is a
    constant in [0, 1] (scalar or array; the result then has q's shape in front).

    Kink convention: sort's (module docstring): at tied entries the ``sort`` policy; the
    result is an element of the Clarke subdifferential. q is not differentiated.
    """
    if out is not None or weights is not None:
        raise _Unsupported("quantile/percentile: out= and weights= are not supported on traced "
                           "values; use the result, or repeat entries for integer weights.")
    if method not in _METHODS:
        raise _Unsupported(f"quantile: method={method!r} is not supported; use one of "
                           f"{', '.join(_METHODS)}.")
    if _is_traced(q):
        raise _Unsupported("quantile: a traced q is not supported (its derivative jumps where "
                           "q (n - 1) is an integer); pass q as a constant.")
    qa = _np.asarray(q, dtype=_np.float64)
    if qa.size and not (_np.all(qa >= 0) and _np.all(qa <= 1)):
        raise _KinkgradError(f"quantile: q={q!r} must lie in [0, 1] (percentile: in [0, 100]).")
    shape = _shape(a)
    v, kept, axes = _to_last(a, axis, "quantile")
    n = int(_shape(v)[-1])
    v = _sort(v, axis=-1)
    pos = qa * (n - 1)
    lo = _np.floor(pos).astype(_np.int64)
    hi = _np.minimum(lo + 1, n - 1)
    frac = pos - lo
    if method == "lower":
        res = _getitem(v, (Ellipsis, lo))
    elif method == "higher":
        res = _getitem(v, (Ellipsis, _np.ceil(pos).astype(_np.int64)))
    elif method == "nearest":
        res = _getitem(v, (Ellipsis, _np.around(pos).astype(_np.int64)))
    else:
        w = _np.where(frac > 0, 0.5, 0.0) if method == "midpoint" else frac
        w = w * (hi != lo)  # at the last entry there is no upper neighbour
        a_lo, a_hi = _getitem(v, (Ellipsis, lo)), _getitem(v, (Ellipsis, hi))
        if method == "midpoint":
            res = _add(_mul(a_lo, 1.0 - w), _mul(a_hi, w))
        else:  # NumPy's lerp: a + (b - a) t, from the nearer end
            res = _add(a_lo, _mul(_sub(a_hi, a_lo), w))
    nk, nq = len(kept), qa.ndim
    if nq and nk:  # the q axes (last after the gather) go in front, as NumPy's
        res = _transpose(res, tuple(range(nk, nk + nq)) + tuple(range(nk)))
    if keepdims:
        red = {len(shape) + ax for ax in axes}
        res = _reshape(res, qa.shape + tuple(1 if i in red else d for i, d in enumerate(shape)))
    return res


def percentile(a: Any, q: Any, axis: Any = None, out: Any = None,
               overwrite_input: bool = False, method: str = "linear",
               keepdims: bool = False, *, weights: Any = None) -> Any:
    """``quantile(a, q / 100, ...)``; q in [0, 100]. Kink convention: sort's (see quantile)."""
    if _is_traced(q):
        raise _Unsupported("percentile: a traced q is not supported; pass q as a constant.")
    return quantile(a, _np.asarray(q, dtype=_np.float64) / 100.0, axis=axis, out=out,
                    method=method, keepdims=keepdims, weights=weights)


def median(a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
           keepdims: bool = False) -> Any:
    """The median along ``axis`` (None: of the flattened array): the middle sorted entry, or
    the mean of the two middle ones when n is even, as NumPy's.

    Kink convention: sort's (module docstring). At a tie of the middle entries with others
    the ``sort`` policy decides which entries receive the derivative; the result is an
    element of the Clarke subdifferential (e.g. median([1, 1, 2]): derivative (0, 1, 0)
    under ``sort="first"``, the middle rank of the stable order; (1/2, 1/2, 0) under
    ``sort="split"``)."""
    return quantile(a, 0.5, axis=axis, out=out, keepdims=keepdims)


def topk(x: Any, k: int, axis: int = -1, largest: bool = True) -> Any:
    """The k largest entries of x along ``axis`` in descending order (``largest=False``: the
    k smallest, ascending), like ``torch.topk(x, k, dim=axis).values``; ``axis=None`` uses
    the flattened x. Indices: ``knp.argsort``.

    Kink convention: sort's (module docstring). The largest entries are sorted as
    ``-sort(-x)``, so under ``sort="first"`` the earlier of tied entries counts as larger: at a
    tie across the k-th place the entry with the smaller index is kept and receives the
    derivative; under ``sort="split"`` the tied entries share it. An element of the Clarke
    subdifferential either way."""
    if axis is None:
        x, axis = _reshape(x, (-1,)), -1
    n = _shape(x)[_normalize_axis(axis, len(_shape(x)))[0]]
    if isinstance(k, bool) or not isinstance(k, (int, _np.integer)) or not 0 <= k <= n:
        raise _ShapeError(f"topk: k={k!r} must be an integer in [0, {n}] (the length of axis "
                          f"{axis}).")
    s = -_sort(-x, axis=axis) if largest else _sort(x, axis=axis)
    nd = len(_shape(x))
    ax = _normalize_axis(axis, nd)[0] + nd
    return _getitem(s, tuple(slice(None) for _ in range(ax)) + (slice(0, int(k)),))


def take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Any:
    """``np.take_along_axis``: out[..., j, ...] = arr[..., indices[..., j, ...], ...] along
    ``axis`` (None: of the flattened arr, with 1-D indices). The indices are a constant
    integer array (``knp.argsort`` gives one); linear, so smooth: the VJP scatters the
    cotangent back with accumulation."""
    if _is_traced(indices):
        raise _Unsupported("take_along_axis: traced indices are not supported; compute them "
                           "with knp.argsort/knp.argmax (NumPy constants) first.")
    idx = _np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise _Unsupported(f"take_along_axis: indices of dtype {idx.dtype.name} are not "
                           "supported; pass an integer array.")
    if axis is None:
        arr, axis = _reshape(arr, (-1,)), 0
    shape = _shape(arr)
    if idx.ndim != len(shape):
        raise _ShapeError(f"take_along_axis: indices of shape {idx.shape} must have as many "
                          f"dimensions as arr of shape {shape}.")
    ax = _normalize_axis(axis, len(shape))[0] + len(shape)
    full = []
    for d, size in enumerate(shape):
        if d == ax:
            full.append(idx)
        else:
            grid = [1] * len(shape)
            grid[d] = size
            full.append(_np.arange(size).reshape(grid))
    return _getitem(arr, tuple(full))


def argsort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *,
            stable: Any = None) -> Any:
    """Indices that sort a (``axis=None``: the flattened a), in the stable order (ties keep
    their original order, as ``sort="first"``). Integer valued, so not differentiable: on a
    traced value it is computed on the current value and returned as a NumPy constant, usable
    with ``knp.take_along_axis`` or as an index."""
    if order is not None:
        raise _Unsupported("argsort: order= (structured arrays) is not supported.")
    from . import _bare_torch, _concrete

    if _bare_torch.is_torch(a):  # a torch integer tensor on its device
        return _bare_torch.argsort(a, axis)
    return _np.argsort(_concrete(a, ("argsort", axis)), axis=axis, kind="stable")
