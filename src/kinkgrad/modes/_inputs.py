"""The arguments a transformation differentiates: which leaves are traced inputs and which are
constants (integer and boolean leaves inside a container, see ``_core/pytree.py``).

NOTE: ``as_input`` (the conversion of the traced leaves) stays in ``api.py``, whose ``np`` the
backends rebind to the torch namespace; this module only inspects dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core import pytree
from .._core.tracer import Tracer

__all__ = ["argnums_message", "constant_leaves"]


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
