"""Comparisons that can change their value inside the ball of ``stationarity(radius > 0)``.

The ball model of :mod:`.stationarity` moves every *abs switch* that can reach its kink within
the ball onto it. A comparison (``a > b``, the condition of a ``where`` or a mask such as
``x * (x > 0)``) is not an abs switch: the model keeps it at its value at x. Where one can flip
inside the ball, the pieces on its other side are missing from the set, which can then be too
small (its distance from 0 too large: "not stationary" unfounded), and the branch kept holds
pieces beyond the flip that f lacks there ("stationary" unfounded too: where(x0 < 1/2,
x0 - 2 relu(x0 - 0.6), x0) is x0 everywhere, and at 0, radius 0.7, the set held relu's slope
-1 beyond the flip). Both verdicts are then undecided.

An entry of a comparison with switching quantity z = a - b can flip within the ball of radius
r when |z| <= r ||grad z|| to first order (grad z on x's piece, as for the abs switches).
Exactly tied entries are rewritten or refused before (see :mod:`.where_ties`); the others are
screened by one forward sweep with 16 Gaussian directions (an entry whose estimated gradient
norm is ten times too small to reach 0 is dropped; a flippable entry is dropped with
probability below 1e-13, the screening of the abs switches in :mod:`.stationarity`), and the
rest get their exact gradient norms from batched reverse sweeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import lift, unbroadcast
from .._core.program import Var, value_of
from ..kinks import KinkPolicy
from ..modes.sweeps import forward_sweep, reverse_sweep
from ._flat import FlatSpec

__all__ = ["flippable_comparisons"]

_ABS0 = KinkPolicy(abs=0.0)
_CHUNK = 1024
_K = 16  # random directions of the screening probe


def _value(i: Any, vals: list) -> np.ndarray:
    return np.asarray(value_of(i, vals), dtype=np.float64)


def flippable_comparisons(tr: Any, spec: FlatSpec, radius: float) -> int:
    """Number of comparison entries (with a traced operand, not tied at x) that can change
    value within the ball of ``radius`` around x, to first order."""
    cmps = [e for e in tr.eqns if e.prim.is_switch and len(e.inputs) >= 2
            and any(type(i) is Var for i in e.inputs[:2])]
    if radius <= 0 or not cmps:
        return 0
    U = np.random.default_rng(0).standard_normal((_K, spec.n))
    tan, _ = forward_sweep(tr.eqns, tr.vals, dict(zip(spec.slots, spec.split(U))), _ABS0)
    count = 0
    for eqn in cmps:
        a, b = eqn.inputs[:2]
        shape = tuple(eqn.out.shape)
        z = np.broadcast_to(_value(a, tr.vals) - _value(b, tr.vals), shape).reshape(-1)
        dz = np.zeros((_K,) + shape)
        for inp, sign in ((a, 1.0), (b, -1.0)):
            t = tan.get(inp.index) if type(inp) is Var else None
            if t is not None:
                t = lift(np.asarray(t, np.float64), tuple(inp.shape), len(shape))
                dz = dz + sign * np.broadcast_to(t, (_K,) + shape)
        est = np.sqrt(np.mean(dz.reshape(_K, -1) ** 2, axis=0))
        cand = np.flatnonzero((z != 0) & (np.abs(z) <= 10 * radius * est))
        for lo in range(0, cand.size, _CHUNK):
            idx = cand[lo:lo + _CHUNK]
            norms = _gradient_norms(tr, spec, eqn, idx)
            count += int(np.count_nonzero(np.abs(z[idx]) <= radius * norms))
    return count


def _gradient_norms(tr: Any, spec: FlatSpec, eqn: Any, idx: np.ndarray) -> np.ndarray:
    """||grad z_e|| for the entries ``idx`` of one comparison, by one batched reverse sweep
    seeded with +e on a's slot and -e on b's (summed over broadcast axes)."""
    shape, r = tuple(eqn.out.shape), idx.size
    onehot = np.zeros((r, int(np.prod(shape, dtype=np.int64))))
    onehot[np.arange(r), idx] = 1.0
    onehot = onehot.reshape((r,) + shape)
    seeds: dict[int, Any] = {}
    for inp, sign in zip(eqn.inputs[:2], (1.0, -1.0)):
        if type(inp) is Var:
            c = sign * unbroadcast(onehot, tuple(inp.shape), shape)
            seeds[inp.index] = seeds[inp.index] + c if inp.index in seeds else c
    ct = reverse_sweep(tr.eqns, tr.vals, seeds, _ABS0, keep=set(spec.slots))
    leaves = [None if ct.get(s) is None else np.broadcast_to(ct[s], (r,) + sh)
              for s, sh in zip(spec.slots, spec.shapes)]
    return np.linalg.norm(spec.join(leaves, (r,)), axis=1)
