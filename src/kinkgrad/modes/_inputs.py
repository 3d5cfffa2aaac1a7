"""The arguments a transformation differentiates: ``argnums`` (one validation rule for every
transformation, and repeated positions, as JAX reads them), and which leaves are traced
inputs and which are constants (integer and boolean leaves inside a container, see
``_core/pytree.py``).

NOTE: ``as_input`` (the conversion of the traced leaves) stays in ``api.py``, whose ``np`` the
backends rebind to the torch namespace; this module only inspects dtypes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core import pytree
from .._core.checks import is_int
from .._core.tracer import Tracer
from ..errors import IntegerInputError, KinkgradError

__all__ = ["argnums_message", "constant_leaves", "normalize_argnums", "distinct_argnums",
           "repeat_entries", "not_float"]


def not_float(where: str, dtype: Any) -> IntegerInputError:
    """The error for a differentiated argument of a dtype other than floating point."""
    name = getattr(dtype, "name", dtype)
    return IntegerInputError(
        f"{where}: a differentiated argument has dtype {name}; gradients need real "
        "floating-point inputs. Convert it (NumPy: x.astype(np.float64) or float32; torch: "
        "x.double() or x.float()), or leave it out of argnums.")


def require_callable(f: Any, where: str) -> None:
    """A KinkgradError naming ``where`` unless ``f`` can be called (``grad(3)`` raised
    Python's "'int' object is not callable" at the first call)."""
    if not callable(f):
        raise KinkgradError(f"{where}: f must be a function (written with kinkgrad.numpy) or "
                            f"a kinkgrad Program, got {type(f).__name__}; pass the function "
                            f"first: kinkgrad.{where}(f, ...).")


def normalize_argnums(argnums: Any, where: str) -> tuple[list[int], bool]:
    """``(positions, single)`` of an ``argnums``: an int (``single``) or a tuple or list of
    ints. One rule for every transformation: booleans and non-integers are refused (JAX
    refuses them too), so ``argnums=True`` does not mean 1.

    Raises:
        KinkgradError: ``argnums`` is not an int or a sequence of ints.
    """
    if is_int(argnums):
        return [int(argnums)], True
    if isinstance(argnums, (tuple, list, range)) and all(is_int(a) for a in argnums):
        return [int(a) for a in argnums], False
    raise KinkgradError(
        f"{where}: argnums={argnums!r} is not an int or a tuple of ints (booleans and floats "
        "are refused); pass the positions of the arguments to differentiate, e.g. argnums=0 "
        "or argnums=(0, 1).")


def distinct_argnums(nums: Sequence[int], nargs: int) -> tuple[list[int], list[int] | None]:
    """``(distinct, picks)`` for positions ``nums`` of a call with ``nargs`` positional
    arguments: ``nums`` with repeats (``(0, 0)``, or ``(0, -2)`` of two arguments) collapsed
    to their first occurrence, and ``picks[k]``, the index in ``distinct`` of ``nums[k]``
    (None and ``nums`` unchanged when nothing repeats). As in JAX, an argument named twice
    gets its whole gradient at each entry: differentiating it once and repeating the result
    is exact, whereas tracing it twice would leave the first copy unused (a zero gradient).
    Out-of-range positions are kept for the range check of ``trace_call``."""
    keys = [a % nargs if -nargs <= a < nargs else a for a in nums]
    if len(set(keys)) == len(keys):
        return list(nums), None
    distinct = list(dict.fromkeys(keys))
    return distinct, [distinct.index(k) for k in keys]


def repeat_entries(grads: tuple, picks: list[int]) -> tuple:
    """The gradient of each requested position from those of the distinct ones (``picks``
    of :func:`distinct_argnums`); a repeat gets its own copy of the arrays, so changing one
    entry in place leaves the other alone."""
    seen: set[int] = set()
    out = []
    for k in picks:
        g = grads[k]
        if k in seen:
            leaves, td = pytree.flatten(g)
            g = pytree.unflatten(td, [_copy(x) for x in leaves])
        seen.add(k)
        out.append(g)
    return tuple(out)


def _copy(x: Any) -> Any:
    """A copy of an array leaf: NumPy's and CuPy's ``copy``, torch's ``clone``."""
    for name in ("copy", "clone"):
        method = getattr(x, name, None)
        if callable(method):
            return method()
    return x


def argnums_message(where: str, a: int, nargs: int, kwargs: dict) -> str:
    if kwargs and nargs == 0:
        return (f"{where}: the function was called with keyword arguments only "
                f"({', '.join(sorted(kwargs))}); keyword arguments are not differentiated (as "
                "in JAX). Pass the arguments to differentiate positionally, e.g. "
                "grad(f)(x, y) with argnums=(0, 1).")
    return f"{where}: argnums {a} is out of range for {nargs} positional arguments."


def _is_float_leaf(x: Any) -> bool:
    if type(x) is np.ndarray:
        return x.dtype.kind == "f"
    dt = getattr(x, "dtype", None)
    kind = getattr(dt, "kind", None)
    if kind is not None:
        return kind == "f"
    if dt is not None and hasattr(dt, "is_floating_point"):  # a torch dtype
        return bool(dt.is_floating_point)
    return isinstance(x, (float, Tracer)) or np.asarray(x).dtype.kind == "f"


def constant_leaves(diff: list, leaves: list) -> list[bool]:
    """Per leaf: True for a non-float leaf inside a container argument (a constant of the
    program, e.g. an index array in a params dict). A bare non-float argument, or a container
    without any float leaf, is refused by ``as_input``."""
    flags = [not (type(x) is np.ndarray and x.dtype.kind == "f") and not _is_float_leaf(x)
             for x in leaves]  # (a float array decided without a call)
    if not any(flags):
        return flags
    start = 0
    for arg in diff:
        arg_leaves, arg_tree = pytree.flatten(arg)
        n = len(arg_leaves)
        if arg_tree == pytree.LEAF or all(flags[start:start + n]):
            for i in range(start, start + n):  # the argument's own leaves: refused as before
                flags[i] = False
        start += n
    return flags
