"""Exact one-sided directional derivatives f'(x; d), many directions in one forward sweep.

For an abs-smooth program (and, more generally, a composition of directionally
differentiable Lipschitz primitives) the chain rule holds for one-sided directional
derivatives: (g o h)'(x; d) = g'(h(x); h'(x; d)). The forward sweep in
``mode="directional"`` applies it node by node: away from a kink a node is linear in its
tangent; at a kink it takes the exact one-sided derivative (|.|: sign(z) dz for z != 0 and
|dz| for z = 0; max/min: the best tangent among the tied entries; sort: the tangent order
inside each tie group; clip: the tangent on the feasible side; norm 2 at 0: ||dz||).
Inside the sweep every tangent carries one leading batch axis, so k directions pass through
every linear node as one matrix product (paper A's "directional derivatives ~ matrix
multiplication"); users pass them as columns (:mod:`kinkgrad.modes.directions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Var
from ..backends import on_numpy
from ..errors import ShapeError
from ..kinks import KinkPolicy, resolve_policy
from ..modes._nonfinite import require_finite
from ..modes.directions import (
    CONVENTION,
    check_batch_axis,
    from_leading,
    refuse_nonfinite,
    to_leading,
)
from ..modes.sweeps import forward_sweep
from ._flat import FlatSpec, other_arguments, trace_at, underflow_is_not_an_error

__all__ = ["directional", "parse_directions", "tangent_outputs"]


def parse_directions(spec: FlatSpec, D: Any, where: str, batch_axis: int = -1
                     ) -> tuple[np.ndarray, bool]:
    """Directions as a ``(k, n)`` float array and whether the user passed a batch.

    Accepted forms (:mod:`kinkgrad.modes.directions`): the structure of x with leaves of shape
    ``leaf.shape`` (one direction) or ``leaf.shape + (k,)`` (k directions; ``(k,) +
    leaf.shape`` with ``batch_axis=0``); or a flat ``(n,)`` / ``(n, k)`` array (``(k, n)``
    with ``batch_axis=0``), n the total size of x, also for an x of several dimensions or
    none. Where an array fits both (x of shape ``(n, 1)``), the shaped reading wins.
    Non-finite entries are refused.
    """
    axis = check_batch_axis(batch_axis, where)
    leaves = pytree.match(spec.in_tree, (D,))
    if leaves is not None and len(leaves) == len(spec.shapes) and leaves:
        arrs = [np.asarray(a, dtype=np.float64) for a in leaves]
        refuse_nonfinite(arrs, where, "the direction")
        if all(a.shape == s for a, s in zip(arrs, spec.shapes)):
            return spec.join(arrs)[None], False
        if len(arrs) > 1 or _shaped_batch(arrs[0].shape, spec.shapes[0], axis):
            lead = [to_leading(a, s, axis, where, "direction") for a, s in zip(arrs, spec.shapes)]
            ks = {t.shape[0] for t, _ in lead}
            if len(ks) != 1:
                raise ShapeError(f"{where}: every leaf of the directions must carry the same "
                                 f"number k of directions; got {sorted(ks)}.")
            return spec.join([t for t, _ in lead], (ks.pop(),)), True
        # NOTE: one array leaf that is not shaped like x: a flat (n,) or (n, k) below
    arr = None
    if not isinstance(D, (dict, tuple)):
        try:
            arr = np.asarray(D, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
    if arr is not None and arr.ndim in (1, 2):
        refuse_nonfinite([arr], where, "the direction")
        if arr.ndim == 1 and arr.shape[0] == spec.n:
            return arr[None], False
        if arr.ndim == 2 and _shaped_batch(arr.shape, (spec.n,), axis):
            lead, _ = to_leading(arr, (spec.n,), axis, where, "direction")
            return np.ascontiguousarray(lead), True
        if arr.ndim == 2 and (spec.shapes == [(spec.n,)]
                              or _shaped_batch(arr.shape, (spec.n,), -1 - axis)):
            to_leading(arr, (spec.n,), axis, where, "direction")  # raises, with its hint
    raise ShapeError(
        f"{where}: directions must have the structure of x with leaf shapes {spec.shapes} "
        f"(or those shapes + (k,) for k directions), or be a flat array of shape ({spec.n},) "
        f"or ({spec.n}, k) (see {CONVENTION}); got "
        f"{np.shape(D) if arr is not None else 'a pytree'}."
    )


def _shaped_batch(shape: tuple, leaf: tuple, axis: int) -> bool:
    """Is ``shape`` that of k directions for a leaf of shape ``leaf`` (on ``axis``)?"""
    if len(shape) != len(leaf) + 1:
        return False
    return tuple(shape[:-1] if axis == -1 else shape[1:]) == tuple(leaf)


def tangent_outputs(tr: Any, tan: dict, k: int, batched: bool, batch_axis: int = -1) -> Any:
    """Output tangents in the output's structure, with the batch axis k when ``batched``
    (trailing, or leading for ``batch_axis=0``)."""
    outs = []
    for o, val in zip(tr.outs, tr.out_values()):
        val = np.asarray(val)
        t = tan.get(o.index) if type(o) is Var else None
        dt = val.dtype if val.dtype.kind == "f" else np.float64
        t = np.zeros((k,) + val.shape, dt) if t is None else np.broadcast_to(t, (k,) + val.shape)
        outs.append(from_leading(np.asarray(t, dt), batched, batch_axis))
    res = pytree.unflatten(tr.out_tree, outs)
    return res


@on_numpy
@underflow_is_not_an_error
def directional(f: Callable, x: Any, D: Any, policy: KinkPolicy | None = None,
                batch_axis: int = -1) -> Any:
    """Exact one-sided directional derivatives f'(x; d) = lim_{t->0+} (f(x + t d) - f(x)) / t.

    All k directions go through ONE forward sweep (``mode="directional"``): each direction is
    an independent tangent on a leading batch axis, kinks are resolved per direction by the
    sign of the switching variable's own directional derivative, and every linear node is a
    matrix product over the k directions.

    Kink convention: none is needed. At a kink the sweep takes the exact one-sided derivative
    (for |z| at z = 0 it is |dz|), so the result is the directional derivative itself, not a
    conservative-gradient product; ``policy`` only matters for ties that a direction leaves
    unresolved, where every choice gives the same value.

    Returns the directional derivative of an abs-smooth (more generally, directionally
    differentiable Lipschitz) program: the value, not an element of a set. It is that of
    the program as computed: the kinks' sides and the smooth steps' derivatives are read
    at the computed values, and where cancellation put a switching value on the other side
    of its kink (relu(((x0 + 1e16) - 1e16) - 1/2) at x0 = 3/4: 0 along e0, 1 in real
    arithmetic) f'(x; d) is not the real-arithmetic program's. The verdicts that read it
    (:func:`~kinkgrad.stationarity`, :func:`~kinkgrad.minimality`) check that against a
    wider-precision replay (:mod:`._forward_rounding`).

    Args:
        f: function of x written with ``kinkgrad.numpy``; any output structure.
        x: the point, an array or a pytree of arrays.
        D: directions: shaped like x (one direction), like x with a trailing axis k
            (k directions, the columns of D), or flat ``(n,)`` / ``(n, k)`` with n the total
            size of x; the convention of :mod:`kinkgrad.modes.directions`.
        policy: kink policy for unresolved ties (no effect on the value).
        batch_axis: -1 (default) for directions on a trailing axis; 0 when they are on a
            leading axis (the rows of a ``(k, n)`` matrix; the result then has k first).

    Returns:
        f'(x; d) shaped like f's output, with a trailing axis k for k directions.

    Raises:
        NotAbsSmoothError: a traced comparison is tied at x (``where`` may jump there).

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> D = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])
        >>> kinkgrad.directional(knp.max, np.ones(3), D).tolist()   # max(d) per column
        [2.0, 3.0]
    """
    if policy is not None and not isinstance(policy, KinkPolicy):
        raise other_arguments("directional", "policy", policy, "a KinkPolicy")
    pol = resolve_policy(policy)
    tr = trace_at(f, x, "directional")
    spec = FlatSpec(tr)
    dirs, batched = parse_directions(spec, D, "directional", batch_axis)
    k = dirs.shape[0]
    tangents = {slot: leaf for slot, leaf in zip(spec.slots, spec.split(dirs))}
    tan, _ = forward_sweep(tr.eqns, tr.vals, tangents, pol, mode="directional")
    res = tangent_outputs(tr, tan, k, batched, batch_axis)
    require_finite(tr, pytree.flatten(res)[0], "directional", "directional derivative", tan)
    return res
