"""The traced array's NumPy-style methods and operators, written with ``knp``.

:class:`~kinkgrad._core.tracer.Tracer` lives in the core, below the ``knp`` table, so it cannot
import ``kinkgrad.numpy``; instead :func:`attach` binds these functions to it when
``kinkgrad.numpy`` is imported, as JAX attaches ``jax.numpy`` functions to its array types
(``_set_array_base_attributes``). ``x + y`` on a traced value is ``knp.add(x, y)``, ``x.sum()``
is ``knp.sum(x)``, NumPy's ufuncs and functions on a traced value dispatch to the ``knp``
function of the same name, and anything else raises naming the fix.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .._core._signature import signature_error
from .._core.tracer import Tracer, bind
from ..errors import KinkgradError, UnsupportedOperationError

__all__ = ["attach"]

knp: Any = None  # the kinkgrad.numpy module, set by attach()
_UFUNCS: dict = {}  # NumPy ufunc -> knp function (knp._ufunc_table(), built once)
_FUNCTIONS: dict = {}  # NumPy function -> knp function (knp._function_table(), built once)


# ---------------------------------------------------------------- methods
def T(self: Tracer) -> Tracer:
    return knp.transpose(self)


def reshape(self: Tracer, *shape: Any) -> Tracer:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return knp.reshape(self, shape)


def transpose(self: Tracer, *axes: Any) -> Tracer:
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return knp.transpose(self, axes or None)


def sum(self: Tracer, axis: Any = None, keepdims: bool = False) -> Tracer:
    return knp.sum(self, axis=axis, keepdims=keepdims)


def mean(self: Tracer, axis: Any = None, keepdims: bool = False) -> Tracer:
    return knp.mean(self, axis=axis, keepdims=keepdims)


def max(self: Tracer, axis: Any = None, keepdims: bool = False) -> Tracer:
    return knp.max(self, axis=axis, keepdims=keepdims)


def min(self: Tracer, axis: Any = None, keepdims: bool = False) -> Tracer:
    return knp.min(self, axis=axis, keepdims=keepdims)


def dot(self: Tracer, other: Any) -> Tracer:
    return knp.dot(self, other)


def std(self: Tracer, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tracer:
    return knp.std(self, axis=axis, ddof=ddof, keepdims=keepdims)


def prod(self: Tracer, axis: Any = None, keepdims: bool = False) -> Tracer:
    return knp.prod(self, axis=axis, keepdims=keepdims)


def cumsum(self: Tracer, axis: Any = None) -> Tracer:
    return knp.cumsum(self, axis=axis)


def argmax(self: Tracer, axis: Any = None) -> Any:
    return knp.argmax(self, axis=axis)


def argmin(self: Tracer, axis: Any = None) -> Any:
    return knp.argmin(self, axis=axis)


def flatten(self: Tracer) -> Tracer:
    return knp.reshape(self, (-1,))


def clip(self: Tracer, a_min: Any = None, a_max: Any = None) -> Tracer:
    return knp.clip(self, a_min, a_max)


def at(self: Tracer) -> _At:
    """JAX-style functional updates: ``x.at[idx].set(v)`` and ``x.at[idx].add(v)``."""
    return _At(self)


# ---------------------------------------------------------------- operators
def __pow__(self: Tracer, o: Any) -> Any: return knp.power(self, o)
def __rpow__(self: Tracer, o: Any) -> Any: return knp.power(o, self)
def __neg__(self: Tracer) -> Any: return knp.negative(self)
def __abs__(self: Tracer) -> Any: return knp.abs(self)
def __gt__(self: Tracer, o: Any) -> Any: return knp.greater(self, o)
def __ge__(self: Tracer, o: Any) -> Any: return knp.greater_equal(self, o)
def __lt__(self: Tracer, o: Any) -> Any: return knp.less(self, o)
def __le__(self: Tracer, o: Any) -> Any: return knp.less_equal(self, o)
def __eq__(self: Tracer, o: Any) -> Any: return knp.equal(self, o)
def __ne__(self: Tracer, o: Any) -> Any: return knp.not_equal(self, o)
def __getitem__(self: Tracer, idx: Any) -> Any: return knp.getitem(self, idx)


# ---------------------------------------------------------------- NumPy protocols
def __array_ufunc__(self: Tracer, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    fn = _UFUNCS.get(ufunc)
    if method != "__call__" or fn is None or kwargs.get("out") is not None:
        what = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        raise UnsupportedOperationError(
            f"np.{what} on a traced value is not supported; kinkgrad.numpy has no primitive "
            "for it. Use a function listed by `kinkgrad info`, or register a primitive with "
            "kinkgrad.extend."
        )
    kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    if kwargs:
        raise UnsupportedOperationError(
            f"np.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported on "
            "traced values; call it without them."
        )
    return fn(*inputs)


def __array_function__(self: Tracer, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    fn = _FUNCTIONS.get(func)
    if fn is None:
        name = getattr(func, "__module__", "numpy") + "." + getattr(func, "__name__", "?")
        raise UnsupportedOperationError(
            f"{name} on a traced value is not supported; kinkgrad.numpy has no primitive "
            "for it. Use a function listed by `kinkgrad info`, or register a primitive with "
            "kinkgrad.extend."
        )
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:  # NumPy options a knp function does not take (dtype=)
        err = None if isinstance(exc, KinkgradError) else signature_error(
            getattr(fn, "__name__", "?"), fn, args, kwargs)
        if err is None:
            raise
        raise err from None


# ---------------------------------------------------------------- x.at[idx]
class _At:
    """``x.at[idx]``: a functional update written as a gather from concatenate([x, v])."""

    def __init__(self, x: Any) -> None:
        self.x = x

    def __getitem__(self, idx: Any) -> _AtIndex:
        return _AtIndex(self.x, idx)


class _AtIndex:
    def __init__(self, x: Any, idx: Any) -> None:
        self.x, self.idx = x, idx

    def _positions(self) -> np.ndarray:
        shape = tuple(self.x.shape)
        pos = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[self.idx]
        return np.asarray(pos).reshape(-1)

    def set(self, v: Any) -> Any:
        """x with the entries at idx replaced by v (broadcast to x[idx]'s shape); the
        derivative flows to v there and to x elsewhere."""
        pos = self._positions()
        if np.unique(pos).size != pos.size:
            raise UnsupportedOperationError("x.at[idx].set(v): idx repeats an entry; pass each "
                                            "entry once.")
        size = int(np.prod(self.x.shape, dtype=np.int64))
        vals = knp.reshape(knp.broadcast_to(v, (pos.size,) if np.ndim(v) == 0 else
                                            np.shape(np.empty(self.x.shape)[self.idx])), (-1,))
        gather = np.arange(size)
        gather[pos] = size + np.arange(pos.size)
        both = knp.concatenate([knp.reshape(self.x, (-1,)), vals])
        return knp.reshape(knp.getitem(both, gather), tuple(self.x.shape))

    def add(self, v: Any) -> Any:
        """x with v added at idx (entries of idx distinct)."""
        return self.set(knp.getitem(self.x, self.idx) + v)


# ---------------------------------------------------------------- binding
_PROPERTIES = ("T", "at")
_METHODS = ("reshape", "transpose", "sum", "mean", "max", "min", "dot", "std", "prod", "cumsum",
            "argmax", "argmin", "flatten", "clip", "__add__", "__radd__", "__sub__", "__rsub__",
            "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__pow__", "__rpow__",
            "__matmul__", "__rmatmul__", "__neg__", "__abs__", "__gt__", "__ge__", "__lt__",
            "__le__", "__eq__", "__ne__", "__getitem__", "__array_ufunc__",
            "__array_function__")


# the binary arithmetic operators: operator -> (knp function, operands swapped)
_OPERATORS = {"__add__": ("add", False), "__radd__": ("add", True),
              "__sub__": ("subtract", False), "__rsub__": ("subtract", True),
              "__mul__": ("multiply", False), "__rmul__": ("multiply", True),
              "__truediv__": ("divide", False), "__rtruediv__": ("divide", True),
              "__matmul__": ("matmul", False), "__rmatmul__": ("matmul", True)}


def _binary_operator(name: str) -> Any:
    """``x + y`` as ``knp.add(x, y)`` (``knp.add(y, x)`` for ``__radd__``); when ``knp.add``
    is a primitive whose call is ``bind`` itself, as ``bind(knp.add, x, y)`` directly.

    # NOTE: the direct call skips looking up ``knp.add`` and the primitive's ``__call__``:
    # an operator runs between array operations that evict the interpreter's data, where
    # those two steps cost about 3 us of the 20 of a traced operation
    """
    fn_name, swapped = _OPERATORS[name]
    prim = getattr(knp, fn_name)
    if type(prim).__call__ is bind:
        def op(self: Tracer, o: Any) -> Any:
            return bind(prim, o, self) if swapped else bind(prim, self, o)
    else:  # a function that normalises its arguments: looked up at each call
        def op(self: Tracer, o: Any) -> Any:
            fn = getattr(knp, fn_name)
            return fn(o, self) if swapped else fn(self, o)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``knp.{fn_name}`` of the operands."
    return op


def attach(namespace: ModuleType) -> None:
    """Bind the traced array's methods and operators to the functions of ``namespace`` (the
    ``kinkgrad.numpy`` module), and build its NumPy dispatch tables once."""
    global knp
    knp = namespace
    _UFUNCS.clear()
    _UFUNCS.update(namespace._ufunc_table())
    _FUNCTIONS.clear()
    _FUNCTIONS.update(namespace._function_table())
    Tracer._namespace = namespace
    here = globals()
    for name in _METHODS:
        setattr(Tracer, name, _binary_operator(name) if name in _OPERATORS else here[name])
    Tracer.ravel = here["flatten"]  # type: ignore[attr-defined]
    for name in _PROPERTIES:
        setattr(Tracer, name, property(here[name], doc=here[name].__doc__))
