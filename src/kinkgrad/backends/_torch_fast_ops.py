"""The operators and hot methods of ``torch._numpy.ndarray`` on the fast paths of
:mod:`kinkgrad.backends._torch_fast`, active inside :func:`operators` only.

``a + b``, ``a > 0``, ``a[i]``, ``a.sum(axis)``, ``a.astype(d)``, ... of ``torch._numpy``
arrays call the namespace's functions through the same argument normalisation as those
functions; here they call the fast functions of the namespace (which fall back on
``torch._numpy``'s) and index with torch directly when torch reads the index exactly as
NumPy does (basic indices; slices with int64 index arrays).
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy
import torch

from ._torch_fast import _NO, _T, _as_float, _nd, _swap, _tensor, _torch_dtype

__all__ = ["activate", "operators"]


# ---------------------------------------------------------------------- ndarray methods
_ARRAYS = {_nd: torch.int64, _T: torch.int64, numpy.ndarray: numpy.dtype(numpy.int64)}


def _slice_ok(i: slice) -> bool:
    return all(v is None or type(v) is int for v in (i.start, i.stop, i.step)) and (
        i.step is None or i.step > 0)


def _index(index: Any) -> Any:
    """The torch index for a NumPy index that torch reads as NumPy does, else _NO: a basic
    index (ints, None, ..., slices of int bounds and a positive step), or slices and int64
    index arrays of at least one axis (``torch._numpy``, torch or NumPy arrays; no ints,
    None or ... beside arrays: there ``torch._numpy`` adjusts the index)."""
    items = index if type(index) is tuple else (index,)
    arrays = False
    for i in items:
        tp = type(i)
        if tp in _ARRAYS:
            t = i.tensor if tp is _nd else i
            if t.dtype != _ARRAYS[tp] or t.ndim == 0:
                return _NO
            arrays = True
        elif tp is slice:
            if not _slice_ok(i):
                return _NO
        elif not (tp is int or i is None or i is Ellipsis):
            return _NO
    if not arrays:
        return index
    if any(type(i) is not slice and type(i) not in _ARRAYS for i in items):
        return _NO
    out = tuple(_index_tensor(i) for i in items)
    return out if type(index) is tuple else out[0]


def _index_tensor(i: Any) -> Any:
    tp = type(i)
    if tp is _nd:
        return i.tensor
    if tp is numpy.ndarray:  # a NumPy constant: as torch reads it (a copy when read-only)
        return torch.from_numpy(i) if i.flags.writeable and i.flags.c_contiguous else \
            torch.tensor(i)
    return i


def _methods(ns: types.ModuleType) -> dict[str, Any]:
    """The fast operators and methods of ``torch._numpy.ndarray`` over namespace ``ns``."""
    orig = {k: _nd.__dict__[k] for k in ("__getitem__", "__setitem__", "__iter__", "astype",
                                          "__eq__", "__ne__", "reshape", "transpose")}

    def getitem(self: Any, index: Any) -> Any:
        idx = _index(index)
        if idx is _NO:
            return orig["__getitem__"](self, index)
        return _nd(self.tensor[idx])

    def setitem(self: Any, index: Any, value: Any) -> None:
        idx, v = _index(index), _tensor(value)
        if idx is _NO or v is _NO:
            return orig["__setitem__"](self, index, value)
        t = self.tensor
        t[idx] = v if type(v) is not _T or v.dtype is t.dtype else _as_float(v, t.dtype)
        return None

    def iterate(self: Any) -> Iterator:
        t = self.tensor
        return iter([_nd(x) for x in t.unbind(0)]) if t.ndim else orig["__iter__"](self)

    def astype(self: Any, dtype: Any, *args: Any, **kw: Any) -> Any:
        td = _torch_dtype(dtype)
        if args or kw or td is _NO:
            return orig["astype"](self, dtype, *args, **kw)
        return _nd(_as_float(self.tensor, td))

    def compare(name: str) -> Callable:
        fn, fallback = getattr(ns, name), orig["__eq__" if name == "equal" else "__ne__"]

        def op(self: Any, other: Any) -> Any:
            if _tensor(other) is _NO:
                return fallback(self, other)
            try:
                return fn(self, other)
            except (RuntimeError, TypeError):  # as NumPy's: not comparable, not equal
                return fallback(self, other)
        return op

    def reshape(self: Any, *shape: Any, **kw: Any) -> Any:
        if kw or not shape:
            return orig["reshape"](self, *shape, **kw)
        return ns.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self: Any, *axes: Any) -> Any:
        return ns.transpose(self, axes[0] if len(axes) == 1 and type(axes[0]) in (
            tuple, list) else axes)

    out = {"__getitem__": getitem, "__setitem__": setitem, "__iter__": iterate,
           "astype": astype, "__eq__": compare("equal"), "__ne__": compare("not_equal"),
           "reshape": reshape, "transpose": transpose,
           "T": property(lambda self: _nd(self.tensor.permute(tuple(range(self.ndim))[::-1]))),
           "__neg__": ns.negative, "__abs__": ns.absolute, "__matmul__": ns.matmul,
           "__rmatmul__": _swap(ns.matmul)}
    for op, name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                     ("truediv", "divide"), ("pow", "power")):
        out[f"__{op}__"], out[f"__r{op}__"] = getattr(ns, name), _swap(getattr(ns, name))
    for op, name in (("gt", "greater"), ("lt", "less"), ("ge", "greater_equal"),
                     ("le", "less_equal"), ("and", "bitwise_and"), ("or", "bitwise_or")):
        out[f"__{op}__"] = getattr(ns, name)
    out.update({k: getattr(ns, k) for k in ("sum", "max", "min", "all", "any")})
    return out


_ACTIVE: dict[str, Any] = {}


def activate(ns: types.ModuleType) -> None:
    """Make ``ns``'s fast functions the ones :func:`operators` installs."""
    _ACTIVE.clear()
    _ACTIVE.update(_methods(ns))
_DEPTH = [0]
_SAVED: dict[str, Any] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def operators() -> Iterator[None]:
    """While active, ``torch._numpy.ndarray``'s operators and hot methods take the fast
    paths (re-entrant and shared between threads: the class is restored when the last block
    open in any thread exits)."""
    with _LOCK:
        if _DEPTH[0] == 0:
            _SAVED.clear()
            _SAVED.update({k: _nd.__dict__[k] for k in _ACTIVE})
            for k, v in _ACTIVE.items():
                setattr(_nd, k, v)
        _DEPTH[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                for k, v in _SAVED.items():
                    setattr(_nd, k, v)
