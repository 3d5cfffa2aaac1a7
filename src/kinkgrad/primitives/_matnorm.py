"""Matrix norms of ``knp.linalg.norm`` over two axes: ord 1, -1, inf, -inf (composites of abs,
sum and max/min), 'nuc' and 2 (the ``svd_norm`` primitive, ``spectral.py``). 'fro'/None is
the Euclidean norm of the entries, the ``norm`` primitive itself; ord=-2 raises.

Kink convention for ord +-1 and +-inf: ``max_j sum_i |x_ij|`` (column sums; rows for inf)
takes the ``abs`` policy at zero entries and the ``max`` policy among tied columns (rows).
For ord 1 and inf (convex) that product of choices lies in the subdifferential (convex
weights on the maximisers times sign vectors in [-1, 1]); for -1 and -inf (a min of convex
functions) backward mode returns an element of a conservative gradient and ``clarke_grad`` a
Clarke one, resolving the ties along directions.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from .._core.primitive import normalize_axis as _normalize_axis
from .._core.primitive import ops
from .._core.tracer import is_traced as _is_traced
from ..errors import ShapeError as _ShapeError
from ..errors import UnsupportedOperationError as _Unsupported

_ENTRYWISE = {1: (1, "max"), -1: (1, "min"), _np.inf: (0, "max"), -_np.inf: (0, "min")}
_SVD = ("nuc", 2, -2)


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if _is_traced(x) else _np.shape(x)


def is_matrix_norm(x: Any, ord: Any, axis: Any) -> bool:
    """NumPy reads an explicit ord other than 'fro' over two axes as a matrix norm."""
    if ord is None or isinstance(ord, str) and ord == "fro":
        return False
    if not (isinstance(ord, str) or ord in _ENTRYWISE or ord in _SVD):
        return False
    if isinstance(ord, str) and ord != "nuc":
        return False
    nd = len(_shape(x))
    return (axis is None and nd == 2) or (isinstance(axis, (tuple, list)) and len(axis) == 2)


def matrix_norm(x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    """The matrix norm of x over the axes (row, col) (the last two when axis is None)."""
    shape = _shape(x)
    nd = len(shape)
    axes = (-2, -1) if axis is None else tuple(axis)
    if len(axes) != 2:
        raise _ShapeError(f"linalg.norm: ord={ord!r} is a matrix norm and needs two axes.")
    row, col = (_normalize_axis(a, nd)[0] + nd for a in axes)
    if row == col:
        raise _ShapeError(f"linalg.norm: axis={axis!r} names the same axis twice; pass two "
                          "different axes.")
    if shape[row] == 0 or shape[col] == 0:
        raise _ShapeError(f"linalg.norm: ord={ord!r} of an empty matrix (shape {shape}) is "
                          "undefined (NumPy raises too); check the shape.")
    if ord in _ENTRYWISE:
        which, red = _ENTRYWISE[ord]
        sum_axis, ext_axis = (row, col) if which == 1 else (col, row)
        sums = ops.sum(ops.abs(x), axis=sum_axis)
        ext_axis -= int(ext_axis > sum_axis)
        res = (ops.max if red == "max" else ops.min)(sums, axis=ext_axis)
    elif ord in ("nuc", 2):  # the svd_norm primitive, on the last two axes
        rest = [i for i in range(nd) if i not in (row, col)]
        if rest + [row, col] != list(range(nd)):
            x = ops.transpose(x, tuple(rest + [row, col]))
        res = ops.svd_norm(x, ord)
    else:
        raise _Unsupported(
            f"linalg.norm: ord={ord!r} (the smallest singular value) is not provided; use "
            "ord=2, 'nuc', 1, -1, inf, -inf or 'fro'.")
    if keepdims:
        res = ops.reshape(res, tuple(1 if i in (row, col) else d for i, d in enumerate(shape)))
    return res
