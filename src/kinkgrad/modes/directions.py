"""The one convention for many directions at once: the batch axis is the LAST axis.

Every function that takes several directions, tangents or cotangents at once (``jvp``,
``vjp``'s ``vjp_fn``, ``directional``, ``ld_derivative``) reads them the same way, and returns
its batched result the same way:

* an argument shaped exactly like the point (like the output, for a cotangent) is ONE
  direction;
* an argument with one extra **trailing** axis of length k is k directions, the columns of a
  matrix: for x of shape ``(n,)``, ``D`` has shape ``(n, k)`` and ``D[:, j]`` is direction j;
  for a pytree, every leaf carries the same trailing k;
* the batched result carries the same trailing axis: ``jvp`` returns J D (shape ``(m, k)``),
  ``directional`` the k one-sided derivatives f'(x; D[:, j]) as columns, ``ld_derivative``
  f'(x; M) = [f^(0)(m_1), ..., f^(K-1)(m_K)], and ``vjp_fn(W)`` with W of shape
  ``out.shape + (k,)`` returns J^T W (shape ``in.shape + (k,)``).

Why columns: it is the convention the contract fixes (``directional(f, x, D)`` takes ``(n,)``
or ``(n, k)``) and the papers' reading of "many directional derivatives as one matrix product"
(paper A: F'(x) D costs as much as a matrix product; Khan and Barton's lexicographic
derivatives take a direction matrix M = [m_1 ... m_K] by columns), so a batched result is
literally ``J @ D`` and ``J.T @ W``, as ``jacobian`` (shape ``out.shape + in.shape``) gives J.

Rows (JAX's ``vmap`` stacks on a leading axis): pass ``batch_axis=0`` and both the argument
and the batched result carry the batch first, ``(k,) + shape``. Without it, a leading batch
whose shape cannot be read as columns is refused with the fix (transpose, or
``batch_axis=0``). The one case the shapes cannot tell apart is a square matrix for a 1-D x
(k = n): it is read by the rule above, as columns; pass ``batch_axis=0`` when its rows are the
directions.

Inside the engine the sweeps carry the batch on a leading axis (see
``kinkgrad._core.primitive``); the conversion happens here, once per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import KinkgradError, NonFiniteInputError, ShapeError
from ._nonfinite import finite

__all__ = ["check_batch_axis", "to_leading", "from_leading", "tangents_to_leading",
           "refuse_nonfinite", "CONVENTION"]

CONVENTION = "kinkgrad.modes.directions"


def refuse_nonfinite(arrays: list, where: str, what: str) -> None:
    """The one rule for non-finite inputs, at every entry point: a point, tangent, cotangent,
    direction or candidate vector holding NaN or inf is refused up front with
    :class:`~kinkgrad.errors.NonFiniteInputError`, naming the entry point and the argument
    (never an error blaming a node, never a NaN result)."""
    if not all(finite(a) for a in arrays):
        raise NonFiniteInputError(
            f"{where}: {what} contains NaN or inf; generalized derivatives are defined for "
            "finite points and directions only. Clean it (np.nan_to_num) first."
        )


def check_batch_axis(batch_axis: Any, where: str) -> int:
    """``batch_axis`` as -1 (columns, the default) or 0 (rows)."""
    if isinstance(batch_axis, bool) or batch_axis not in (-1, 0):
        raise KinkgradError(
            f"{where}: batch_axis={batch_axis!r}; pass -1 (the default: k directions on a "
            "trailing axis, the columns of a matrix) or 0 (on a leading axis, the rows); see "
            f"{CONVENTION}."
        )
    return int(batch_axis)


def to_leading(t: Any, shape: tuple, batch_axis: int, where: str, what: str, xp: Any = np
               ) -> tuple[Any, bool]:
    """``t`` (one direction shaped like ``shape``, or k of them on ``batch_axis``) as a
    ``(k,) + shape`` array, and whether it was a batch. ``xp``: the array namespace of the
    caller (NumPy, or the torch namespace the backends bind)."""
    shape = tuple(shape)
    if tuple(t.shape) == shape:
        return t[None], False
    if batch_axis == -1 and t.ndim == len(shape) + 1 and tuple(t.shape[:-1]) == shape:
        return xp.moveaxis(t, -1, 0), True
    if batch_axis == 0 and t.ndim == len(shape) + 1 and tuple(t.shape[1:]) == shape:
        return t, True
    hint = ""
    if batch_axis == -1 and t.ndim == len(shape) + 1 and tuple(t.shape[1:]) == shape:
        hint = (f" It looks like {t.shape[0]} {what}s on a leading axis (rows): pass "
                "batch_axis=0, or move the batch last (np.moveaxis(t, 0, -1), D.T for a matrix).")
    elif batch_axis == 0 and t.ndim == len(shape) + 1 and tuple(t.shape[:-1]) == shape:
        hint = (f" It looks like {t.shape[-1]} {what}s on a trailing axis (columns): drop "
                "batch_axis=0.")
    where_k = "(k,) + shape" if batch_axis == 0 else "shape + (k,)"
    raise ShapeError(
        f"{where}: {what} of shape {tuple(t.shape)} does not match {shape} (one {what}) or "
        f"{where_k} for k {what}s (batch_axis={batch_axis}; see {CONVENTION}).{hint}"
    )


def from_leading(t: Any, batched: bool, batch_axis: int, xp: Any = np) -> Any:
    """A ``(k,) + shape`` result in the caller's layout: ``shape`` alone for one direction,
    the batch last (default) or first (``batch_axis=0``)."""
    if not batched:
        return t[0]
    return xp.moveaxis(t, 0, -1) if batch_axis == -1 else t


def tangents_to_leading(primals: list, tangents: list, axis: int, xp: Any = np
                        ) -> tuple[list, bool, int]:
    """``jvp``'s tangent leaves as ``(k,) + shape`` arrays (the sweeps' layout), whether they
    are a batch, and k; non-finite tangents are refused."""
    batched = None
    out = []
    for p, t in zip(primals, tangents):
        p = xp.asarray(p)
        t = xp.asarray(t, dtype=p.dtype)
        refuse_nonfinite([t], "jvp", "a tangent")
        lead, b = to_leading(t, p.shape, axis, "jvp", "tangent", xp)
        if batched is not None and b != batched:
            raise ShapeError("jvp: either every tangent has the batch axis or none.")
        batched = b
        out.append(lead)
    return out, bool(batched), (out[0].shape[0] if out else 1)
