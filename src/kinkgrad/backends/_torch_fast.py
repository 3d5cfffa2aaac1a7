"""Fast paths for the torch namespace: the hot ``torch._numpy`` functions and operators,
calling torch directly on the common argument kinds.

``torch._numpy`` normalises the arguments of every call (tens of microseconds), which
dominated the engine's time on small torch models. Each fast path here handles the common
case, ``torch._numpy`` arrays, tensors and Python ``int``/``float`` scalars with no ``out=``
or extra keywords, with exactly ``torch._numpy``'s semantics, which are NumPy's: for two
arrays the result dtype is NumPy's promotion table ``R(d1, d2)`` (``torch._numpy``'s own
table; 0-d arrays are not weak), for an array and a Python scalar NEP 50 (the scalar takes
the array's dtype when its kind is not higher). Everything else is handed to the original
``torch._numpy`` function, unchanged.

On CPU tensors of at least :data:`BIG` entries some boolean kernels of torch (comparisons
into ``bool``, ``isfinite``, ``all``/``any`` over ``bool``, ``bool -> float`` casts) run
several times slower than the same work on ``uint8`` or floats; the fast paths take the
cheaper route with identical results: ``isfinite(x) = (x * 0 == 0)`` (``0 * x`` is 0 for
finite x and NaN otherwise), a comparison is computed into a float output then read as
``bool``, a boolean array enters arithmetic and casts through its ``uint8`` view (0 and 1).

:func:`install` returns the namespace with the fast functions; ``_torch_fast_ops.operators``
is the context in which the operators and hot methods of ``torch._numpy.ndarray`` take the
fast paths (the backend enters it while the rules run on torch; outside it the class is
untouched).
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable
from typing import Any

import numpy
import torch
import torch._numpy as _base
from torch._numpy import _binary_ufuncs_impl, _dtypes, _dtypes_impl, _ufuncs, _util
from torch._numpy._casting_dicts import _result_type_dict as _RESULT

__all__ = ["install", "BIG"]

BIG = 4096  # entries from which the CPU boolean routes pay off
_nd = _base.ndarray
_T = torch.Tensor
_NO = object()  # "not a fast case"
_U8, _BOOL = torch.uint8, torch.bool
_DEFAULT = {int: torch.int64, float: torch.float64}  # torch._numpy's default dtypes
_NEP50 = frozenset(_ufuncs.NEP50_FUNCS)
_TENSOR_ONLY = frozenset(_dtypes_impl._NEP50_FUNCS_TENSOR_ONLY)
_COMPARE = {"greater": torch.gt, "greater_equal": torch.ge, "less": torch.lt,
            "less_equal": torch.le, "equal": torch.eq, "not_equal": torch.ne}
_SKIP_BINARY = {"matmul", "divmod", "modf", "ldexp"}


def _tensor(x: Any) -> Any:
    """The tensor of an array operand (a NumPy array as ``torch._numpy`` converts it), the
    scalar itself for a Python int/float, else _NO."""
    tp = type(x)
    if tp is _nd:
        return x.tensor
    if tp is _T or tp is float or tp is int:
        return x
    if tp is numpy.ndarray and x.dtype.kind in "biuf":
        return torch.as_tensor(x)
    return _NO


def _big_cpu(t: Any) -> bool:
    return t.is_cpu and t.numel() >= BIG


def _as_float(t: Any, dtype: Any) -> Any:
    """``t.to(dtype)``; a large CPU bool array goes through its uint8 view (the same 0/1)."""
    if t.dtype is _BOOL and dtype.is_floating_point and _big_cpu(t):
        return t.view(_U8).to(dtype)
    return t.to(dtype)


_DTYPES: dict = {}


def _torch_dtype(dtype: Any) -> Any:
    """``torch._numpy``'s dtype normalisation, cached; _NO when it does not accept ``dtype``."""
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        pass
    try:
        td = _dtypes.dtype(dtype).torch_dtype
    except Exception:  # noqa: BLE001 - the original function raises its own error
        return _NO
    with contextlib.suppress(TypeError):
        _DTYPES[dtype] = td
    return td


# ---------------------------------------------------------------------- binary ufuncs
def _promote(a: Any, b: Any) -> tuple[Any, Any]:
    """Two tensors as ``torch._numpy`` feeds them to torch: both in ``R(a.dtype, b.dtype)``.
    The casts are left to torch where its own promotion gives that dtype (it then converts
    on the fly), except for bools (cast, a large CPU one through its uint8 view)."""
    da, db = a.dtype, b.dtype
    if da is db:
        return a, b
    target = _RESULT[da][db]
    if da is _BOOL or db is _BOOL:  # torch refuses bools in some operations (subtract)
        return _as_float(a, target), _as_float(b, target)
    if torch.result_type(a, b) is target:
        return a, b
    return a.to(target), b.to(target)


def _weak(s: Any, t: Any, name: str) -> Any:
    """A Python scalar beside tensor t as ``torch._numpy``'s NEP 50 step leaves it (a Python
    scalar or a 0-d tensor), or _NO for the cases left to it (integer or bool arrays,
    a scalar of a higher kind)."""
    if name not in _NEP50:  # both operands as arrays: the scalar in its default dtype
        return torch.as_tensor(s, dtype=_DEFAULT[type(s)], device="cpu")
    dt = t.dtype
    if not (dt.is_floating_point or dt.is_complex):
        return _NO
    if _DEFAULT[type(s)] is dt and name not in _TENSOR_ONLY:
        return s
    return torch.as_tensor(s, dtype=dt, device="cpu")


def _compare_fast(fn: Callable, a: Any, b: Any) -> Any:
    """A comparison; on a large CPU float operand computed into a float output (the
    comparison itself runs in the inputs' common dtype) and read as bool."""
    t = a if type(a) is _T and (type(b) is not _T or a.ndim >= b.ndim) else b
    if not t.dtype.is_floating_point or not _big_cpu(t):
        return fn(a, b)
    return fn(a, b, out=torch.empty(0, dtype=t.dtype)).bool()


def _binary(name: str, orig: Callable) -> Callable:
    """The fast path of binary ufunc ``name`` (``orig`` for everything else)."""
    tfn = getattr(_binary_ufuncs_impl, name)
    tname = tfn.__name__
    cmp = _COMPARE.get(name)

    def fast(x1: Any, x2: Any, *args: Any, **kw: Any) -> Any:
        a, b = _tensor(x1), _tensor(x2)
        if args or kw or a is _NO or b is _NO:
            return orig(x1, x2, *args, **kw)
        ta, tb = type(a) is _T, type(b) is _T
        if ta and tb:
            a, b = _promote(a, b)
        elif ta:
            b = _weak(b, a, tname)
        elif tb:
            a = _weak(a, b, tname)
        else:
            return orig(x1, x2)
        if a is _NO or b is _NO:
            return orig(x1, x2)
        return _nd(_compare_fast(cmp, a, b) if cmp is not None else tfn(a, b))

    fast.__name__ = fast.__qualname__ = name
    fast.__doc__ = f"``{name}`` of NumPy: fast path over ``torch._numpy.{name}``."
    return fast


def _swap(fn: Callable) -> Callable:
    def r(self: Any, other: Any) -> Any:
        return fn(other, self)
    return r


# ---------------------------------------------------------------------- unary ufuncs
def _isfinite(t: Any) -> Any:
    """``isfinite`` of a float tensor: ``0 * x == 0`` on large CPU tensors."""
    if _big_cpu(t) and t.dtype in (torch.float32, torch.float64):
        return torch.mul(t, 0).eq_(0).bool()
    return torch.isfinite(t)


def _unary(name: str, orig: Callable) -> Callable:
    """The fast path of unary ufunc ``name`` on float tensors (``orig`` otherwise)."""
    tfn = _isfinite if name == "isfinite" else getattr(torch._numpy._unary_ufuncs_impl, name)

    def fast(x: Any, *args: Any, **kw: Any) -> Any:
        t = _tensor(x)
        if args or kw or type(t) is not _T or not t.dtype.is_floating_point:
            return orig(x, *args, **kw)
        return _nd(tfn(t))

    fast.__name__ = fast.__qualname__ = name
    fast.__doc__ = f"``{name}`` of NumPy: fast path over ``torch._numpy.{name}``."
    return fast


_UNARY = ("exp", "log", "log1p", "expm1", "sqrt", "negative", "absolute", "abs", "sign",
          "isfinite", "isnan", "isinf", "tanh", "sin", "cos", "floor", "ceil", "square",
          "reciprocal", "signbit")


# ---------------------------------------------------------------------- reductions
def _axes(axis: Any, ndim: int) -> Any:
    """``axis`` normalised as ``torch._numpy`` does (None, or a tuple of axes in range);
    _NO for what is left to it (an array axis, the empty tuple)."""
    if axis is None:
        return None
    if type(axis) is int or (type(axis) is tuple and axis and
                              all(type(a) is int for a in axis)):
        return _util.normalize_axis_tuple(axis, ndim)
    return _NO


def _reduction(name: str, orig: Callable, body: Callable) -> Callable:
    """Fast ``name(a, axis=None, keepdims=False)``: ``body(tensor, axes)`` then keepdims
    as ``torch._numpy`` applies it."""
    def fast(a: Any, axis: Any = None, *args: Any, keepdims: bool = False, **kw: Any) -> Any:
        t = _tensor(a)
        ax = _axes(axis, t.ndim) if type(t) is _T else _NO
        if args or kw or ax is _NO or keepdims not in (False, True):
            return orig(a, axis, *args, **kw, **({"keepdims": keepdims} if keepdims else {}))
        r = body(t, ax)
        if r is _NO:
            return orig(a, axis, keepdims=keepdims)
        return _nd(_util.apply_keepdims(r, ax, t.ndim) if keepdims else r)

    fast.__name__ = fast.__qualname__ = name
    fast.__doc__ = f"``{name}`` of NumPy: fast path over ``torch._numpy.{name}``."
    return fast


def _sum(t: Any, ax: Any) -> Any:
    """Sum; bool sums in the default integer dtype (int64), as NumPy's."""
    if t.dtype is _BOOL:
        return t.sum(dtype=torch.int64) if ax is None else t.sum(dim=ax, dtype=torch.int64)
    return t.sum() if ax is None else t.sum(dim=ax)


def _extremum(method: str) -> Callable:
    def body(t: Any, ax: Any) -> Any:
        if t.is_complex() or t.dtype is _BOOL or t.numel() == 0:
            return _NO
        return getattr(t, method)(ax)
    return body


def _logical(fn: Callable) -> Callable:
    """all/any over one axis or all (a large CPU bool array through its uint8 view)."""
    def body(t: Any, ax: Any) -> Any:
        if ax is not None and len(ax) != 1:
            return _NO
        kw = {} if ax is None else {"dim": ax[0]}
        if t.dtype is _BOOL and _big_cpu(t):
            return fn(t.view(_U8), **kw).bool()
        return fn(t, **kw)
    return body


def _count_nonzero(t: Any, ax: Any) -> Any:
    return t.count_nonzero(ax)


# ---------------------------------------------------------------------- other functions
def _matmul(orig: Callable) -> Callable:
    def matmul(x1: Any, x2: Any, *args: Any, **kw: Any) -> Any:
        """``matmul`` of NumPy; torch's directly for two float32/float64 arrays of one dtype."""
        a, b = _tensor(x1), _tensor(x2)
        if (args or kw or type(a) is not _T or type(b) is not _T or a.dtype is not b.dtype
                or a.dtype not in (torch.float32, torch.float64) or not (a.ndim and b.ndim)):
            return orig(x1, x2, *args, **kw)
        return _nd(torch.matmul(a, b))
    return matmul


def _where(orig: Callable) -> Callable:
    def where(cond: Any, x: Any = None, y: Any = None) -> Any:
        """``where(cond, x, y)`` as ``torch._numpy``'s: ``torch.where`` on the tensors."""
        c, a, b = _tensor(cond), _tensor(x), _tensor(y)
        if type(c) is not _T or a is _NO or b is _NO or x is None or y is None:
            return orig(cond, x, y)
        return _nd(torch.where(c if c.dtype is _BOOL else c.to(_BOOL), a, b))
    return where


def _shape_arg(shape: Any) -> Any:
    if type(shape) is int:
        return (shape,)
    if type(shape) in (tuple, list) and all(type(d) is int for d in shape):
        return tuple(shape)
    return _NO


def _factory(tfn: Callable, orig: Callable) -> Callable:
    def make(shape: Any, dtype: Any = None, *args: Any, **kw: Any) -> Any:
        """``zeros``/``ones`` of NumPy (default float64) on torch's default device."""
        shp = _shape_arg(shape)
        td = torch.float64 if dtype is None else _torch_dtype(dtype)
        if args or kw or shp is _NO or td is _NO:
            return orig(shape, dtype, *args, **kw)
        return _nd(tfn(shp, dtype=td))
    make.__name__ = make.__qualname__ = tfn.__name__
    return make


def _asarray(orig: Callable) -> Callable:
    def asarray(a: Any, dtype: Any = None, *args: Any, **kw: Any) -> Any:
        """``asarray`` of an array or tensor (cast to ``dtype``: the same tensor when it has
        that dtype already)."""
        tp = type(a)
        if args or kw or (tp is not _nd and tp is not _T):
            return orig(a, dtype, *args, **kw)
        if dtype is None:
            return a if tp is _nd else _nd(a)
        td = _torch_dtype(dtype)
        if td is _NO:
            return orig(a, dtype)
        t = a.tensor if tp is _nd else a
        if t.dtype is td:
            return a if tp is _nd else _nd(a)
        return _nd(_as_float(t, td))
    return asarray


def _ints(v: Any) -> bool:
    return type(v) in (tuple, list) and all(type(d) is int for d in v)


def _reshape(orig: Callable) -> Callable:
    def reshape(a: Any, newshape: Any, *args: Any, **kw: Any) -> Any:
        """``reshape`` of NumPy (C order) by the tensor's ``reshape``."""
        t = _tensor(a)
        if args or kw or type(t) is not _T or not (type(newshape) is int or _ints(newshape)):
            return orig(a, newshape, *args, **kw)
        return _nd(t.reshape(newshape))
    return reshape


def _permutation(axes: Any, ndim: int) -> Any:
    if axes is None or axes == ():
        return tuple(range(ndim))[::-1]
    return tuple(axes) if _ints(axes) else _NO


def _transpose(orig: Callable) -> Callable:
    def transpose(a: Any, axes: Any = None) -> Any:
        """``transpose`` of NumPy (axes reversed by default) by ``permute``."""
        t = _tensor(a)
        perm = _permutation(axes, t.ndim) if type(t) is _T else _NO
        return orig(a, axes) if perm is _NO else _nd(t.permute(perm))
    return transpose


def _expand_dims(orig: Callable) -> Callable:
    def expand_dims(a: Any, axis: Any) -> Any:
        """``expand_dims`` of NumPy (a view with length-1 axes at ``axis``)."""
        t = _tensor(a)
        if type(t) is not _T or not (type(axis) is int or _ints(axis)):
            return orig(a, axis)
        return _nd(t.view(_util.expand_shape(t.shape, axis)))
    return expand_dims


def _broadcast_to(orig: Callable) -> Callable:
    def broadcast_to(a: Any, shape: Any, *args: Any, **kw: Any) -> Any:
        """``broadcast_to`` of NumPy (a view)."""
        t, shp = _tensor(a), _shape_arg(shape)
        if args or kw or type(t) is not _T or shp is _NO:
            return orig(a, shape, *args, **kw)
        return _nd(torch.broadcast_to(t, shp))
    return broadcast_to


def _swapaxes(orig: Callable) -> Callable:
    def swapaxes(a: Any, axis1: Any, axis2: Any) -> Any:
        """``swapaxes`` of NumPy (a view)."""
        t = _tensor(a)
        if type(t) is not _T or type(axis1) is not int or type(axis2) is not int:
            return orig(a, axis1, axis2)
        nd = t.ndim
        return _nd(torch.swapaxes(t, _util.normalize_axis_index(axis1, nd),
                                  _util.normalize_axis_index(axis2, nd)))
    return swapaxes


def _squeeze(orig: Callable) -> Callable:
    def squeeze(a: Any, axis: Any = None) -> Any:
        """``squeeze`` of NumPy by a reshape (the given length-1 axes, or all)."""
        t = _tensor(a)
        if type(t) is not _T or not (axis is None or type(axis) is int or _ints(axis)):
            return orig(a, axis)
        shp = tuple(t.shape)
        if axis is None:
            return _nd(t.reshape(tuple(d for d in shp if d != 1)))
        gone = {_util.normalize_axis_index(ax, len(shp))
                for ax in (axis if type(axis) in (tuple, list) else (axis,))}
        if any(shp[i] != 1 for i in gone):
            return orig(a, axis)
        return _nd(t.reshape(tuple(d for i, d in enumerate(shp) if i not in gone)))
    return squeeze


def _argsort(orig: Callable) -> Callable:
    def argsort(a: Any, *args: Any, **kw: Any) -> Any:
        """``argsort`` of a tuple of distinct Python ints (an axis permutation), in Python:
        the ordering is unique, so every sort kind gives it."""
        if args or kw or not _ints(a) or len(set(a)) != len(a):
            return orig(a, *args, **kw)
        return _nd(torch.tensor(sorted(range(len(a)), key=a.__getitem__), dtype=torch.int64))
    return argsort


def _size(orig: Callable) -> Callable:
    def size(a: Any) -> int:
        """``size`` of NumPy: the product of the shape."""
        s = getattr(a, "shape", None)
        return math.prod(s) if type(s) is tuple else orig(a)
    return size


# ---------------------------------------------------------------------- install
_BUILDERS: dict[str, Callable] = {
    "matmul": _matmul, "where": _where, "asarray": _asarray, "reshape": _reshape,
    "transpose": _transpose, "expand_dims": _expand_dims, "broadcast_to": _broadcast_to,
    "swapaxes": _swapaxes, "squeeze": _squeeze, "argsort": _argsort, "size": _size,
    "zeros": lambda o: _factory(torch.zeros, o), "ones": lambda o: _factory(torch.ones, o),
}


def install(plain: types.ModuleType) -> types.ModuleType:
    """A copy of the namespace ``plain`` (``torch._numpy`` completed by the backend) whose hot
    functions take the fast paths, each falling back on ``plain``'s function; it carries
    :func:`operators` as ``_fast_operators`` for the backend to enter."""
    defaults = _dtypes_impl.default_dtypes()
    _DEFAULT.update({int: defaults.int_dtype, float: defaults.float_dtype})
    fast = types.ModuleType("kinkgrad.backends.torch_numpy_fast")
    fast.__dict__.update(vars(plain))
    for name in _ufuncs._binary:
        if name not in _SKIP_BINARY and hasattr(plain, name):
            setattr(fast, name, _binary(name, getattr(plain, name)))
    for name in _UNARY:
        if hasattr(plain, name):
            setattr(fast, name, _unary(name, getattr(plain, name)))
    for name, body in (("sum", _sum), ("max", _extremum("amax")), ("amax", _extremum("amax")),
                       ("min", _extremum("amin")), ("amin", _extremum("amin")),
                       ("all", _logical(torch.all)), ("any", _logical(torch.any)),
                       ("count_nonzero", _count_nonzero)):
        setattr(fast, name, _reduction(name, getattr(plain, name), body))
    for name, build in _BUILDERS.items():
        setattr(fast, name, build(getattr(plain, name)))
    from ._torch_fast_ops import activate, operators

    activate(fast)
    fast._fast_operators = operators
    return fast
