"""The arguments a transformation differentiates: which leaves are traced inputs, which are
constants (integer and boolean leaves inside a container, see ``_core/pytree.py``), and the
errors for arguments that cannot be differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core import pytree
from .._core.tracer import Tracer
from ..errors import IntegerInputError, NestedTransformError
from ._nonfinite import input_error_if_nonfinite

__all__ = ["as_input", "argnums_message", "constant_leaves"]


def as_input(x: Any, where: str, check_finite: bool) -> np.ndarray:
    if isinstance(x, Tracer):
        raise NestedTransformError(
            f"{where}: an argument is already a traced value (a transformation inside another "
            "one); kinkgrad computes first-order generalized derivatives. Differentiate the "
            "outer function only."
        )
    a = np.asarray(x)
    if a.dtype.kind not in "f":
        raise IntegerInputError(
            f"{where}: a differentiated argument has dtype {a.dtype}; gradients need real "
            "floating-point inputs. Convert it (NumPy: x.astype(np.float64) or float32; torch: "
            "x.double() or x.float()), or leave it out of argnums."
        )
    if check_finite:
        input_error_if_nonfinite(a, where)
    return a


def argnums_message(where: str, a: int, nargs: int, kwargs: dict) -> str:
    if kwargs and nargs == 0:
        return (f"{where}: the function was called with keyword arguments only "
                f"({', '.join(sorted(kwargs))}); keyword arguments are not differentiated (as "
                "in JAX). Pass the arguments to differentiate positionally, e.g. "
                "grad(f)(x, y) with argnums=(0, 1).")
    return f"{where}: argnums {a} is out of range for {nargs} positional arguments."


def _is_float_leaf(x: Any) -> bool:
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
    flags = [not _is_float_leaf(x) for x in leaves]
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
