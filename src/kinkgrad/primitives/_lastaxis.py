"""Reductions over the last axis for max/min and their selections.

``to_last`` moves the reduced axes of an array to the end and merges them; the others
reduce that axis. NumPy reduces a short last axis (a 2x2 pooling window) row by row, 5-10x
slower than a few elementwise operations on its columns, so groups of at most ``COLUMNS``
entries in NumPy arrays with many groups are reduced column by column, with the same
results.
Written against the module-level ``np``, which the array backends rebind.
"""

from __future__ import annotations

import numpy
import numpy as np  # rebound to the backend's namespace by kinkgrad.backends

from .._core.primitive import _size

__all__ = ["to_last", "from_last", "max_last", "count_last", "first_true", "extreme"]

def to_last(x: np.ndarray, axis: tuple) -> tuple[np.ndarray, list, tuple]:
    """Move the (negative) reduction axes of x to the end and flatten them into one."""
    nd = x.ndim
    red = [nd + a for a in axis]
    perm = [i for i in range(nd) if i not in red] + red
    xt = np.transpose(x, perm)
    # an explicit length, not -1: an empty kept axis (shape (0, 3)) makes -1 ambiguous
    return xt.reshape(xt.shape[: nd - len(red)] + (_size(xt.shape[nd - len(red):]),)), perm, \
        xt.shape


def from_last(y: np.ndarray, perm: list, tshape: tuple) -> np.ndarray:
    inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
    return np.transpose(y.reshape(tshape), inverse)


COLUMNS = 16


def _short(xl: np.ndarray) -> bool:
    """A NumPy array of many short groups (torch and CuPy reduce short axes well)."""
    k = xl.shape[-1]
    return isinstance(xl, numpy.ndarray) and 2 <= k <= COLUMNS and _size(xl.shape) >= 64 * k


def max_last(xl: np.ndarray) -> np.ndarray:
    """Maximum over the last axis, kept."""
    if not _short(xl):
        return np.max(xl, axis=-1, keepdims=True)
    m = xl[..., 0]
    for j in range(1, xl.shape[-1]):
        m = np.maximum(m, xl[..., j])
    return m[..., None]


def count_last(mask: np.ndarray) -> np.ndarray:
    """Number of True entries over the last axis, kept."""
    if not _short(mask):
        return mask.sum(axis=-1, keepdims=True)
    c = mask[..., 0].astype(np.int64)
    for j in range(1, mask.shape[-1]):
        c = c + mask[..., j]
    return c[..., None]


def first_true(mask: np.ndarray) -> np.ndarray:
    """One-hot (along the last axis) of the first True entry of each row."""
    if _short(mask):
        taken, cols = mask[..., 0], [mask[..., 0]]
        for j in range(1, mask.shape[-1]):
            cols.append(mask[..., j] & ~taken)
            taken = taken | mask[..., j]
        return np.stack(cols, axis=-1)
    idx = np.argmax(mask, axis=-1)
    out = np.zeros(mask.shape, dtype=bool)
    np.put_along_axis(out, idx[..., None], True, axis=-1)
    return out


def extreme(x: np.ndarray, axis: tuple, keepdims: bool, sign: float) -> np.ndarray:
    """``np.max`` (sign +1) or ``np.min`` (sign -1) over ``axis``, column by column for
    short groups."""
    x = np.asarray(x)
    full = np.max if sign > 0 else np.min
    if not axis:
        return full(x, axis=axis, keepdims=keepdims)
    xl, _, _ = to_last(x, axis)
    if not _short(xl):
        return full(x, axis=axis, keepdims=keepdims)
    pair = np.maximum if sign > 0 else np.minimum
    m = xl[..., 0]
    for j in range(1, xl.shape[-1]):
        m = pair(m, xl[..., j])
    if keepdims:
        red = {x.ndim + a for a in axis}
        m = m.reshape(tuple(1 if i in red else d for i, d in enumerate(x.shape)))
    return m
