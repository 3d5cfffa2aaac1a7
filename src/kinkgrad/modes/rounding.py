"""How many digits of a computed f(x) rounding may have taken: a first-order estimate of the
rounding error, by one reverse sweep (Linnainmaa, BIT 16 (1976) 146-160, who first wrote the
reverse mode down for this purpose).

The traced program computes v_k = phi_k(v_j, j < k). In floating point each step commits
fl(v_k) = phi_k(...) + delta_k with |delta_k| <= u_k r_k entrywise, u_k the unit roundoff of
v_k's dtype and r_k the primitive's ``rounding`` rule (|v_k| for one correctly rounded
operation, 0 for an exact one such as abs, max or a copy, the terms' magnitudes for a sum or
a product of matrices). To first order in u the computed value is f(x) + sum_k vbar_k .
delta_k with the adjoints vbar_k = df/dv_k, so

    |fl(f(x)) - f(x)|  <~  sum_k sum_entries |vbar_k| u_k r_k            (the estimate)

with vbar from one reverse sweep (at a kink the kink policy's element: the estimate of the
piece the evaluation took). The inputs and constants count as exact. It is not a rigorous
bound: terms of order u^2 are dropped, and a sum of m terms is charged an estimate of its
error growth (``summation_roundings``: the pairwise bound log2 m plus the typical sqrt(m) of
a sequential order, not the worst case m - 1). It costs one evaluation and one reverse sweep
(plus |A| |B| for each product of matrices).

What it is for: telling a change of f that rounding can produce from one it cannot
(``minimize``'s step acceptance near a minimizer, where f's decrease sinks below its
rounding), and finding where a program loses its digits (``by_primitive``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Var
from ..backends import is_cupy, is_torch, on_numpy
from ..errors import UnsupportedOperationError
from ..kinks import KinkPolicy, resolve_policy
from ._traced import trace_call
from ._wide import as_float64, wide_values
from .api import _scalar_out
from .sweeps import reverse_sweep

__all__ = ["RoundingReport", "rounding_error"]


@dataclass(frozen=True)
class RoundingReport:
    """``value``: f(x) as computed; ``error``: the estimate of |fl(f(x)) - f(x)| (module
    docstring; inf when a magnitude overflows); ``by_primitive``: its terms summed by
    primitive name, largest first; ``measured``: |fl(f(x)) - f(x)| measured against f's
    values replayed in a wider precision (float16/32 in float64, float64 in long double
    where it is wider; ``kinkgrad.modes._wide``; an error below float64's range is given as
    5e-324), None where there is none (long double is float64 on some platforms). It sees
    what a first-order estimate cannot: sum(x * x) at x = 1e-300 underflows to 0 with an
    estimate of 0 (no rounding of a 0), and is 1e-599 off."""

    value: float
    error: float
    by_primitive: dict[str, float] = field(default_factory=dict)
    measured: float | None = None

    @property
    def digits(self) -> float:
        """Correct significant decimal digits the estimate (or the measured error, when it
        is larger) leaves to f(x) (inf when both are 0, 0 when one exceeds |f(x)|)."""
        err = max(self.error, self.measured or 0.0)
        if err == 0.0:
            return float("inf")
        return float(max(np.log10(abs(self.value) / err), 0.0)) if self.value else 0.0


@on_numpy
def rounding_error(f: Callable, x: Any, policy: KinkPolicy | None = None,
                   measure: bool = True) -> RoundingReport:
    """A first-order estimate of the rounding error of the computed value of ``f`` at ``x``.

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point (an array or a pytree of arrays; float16, float32 and float64 nodes
            each use their own unit roundoff).
        policy: kink policy of the reverse sweep (default: the one in force).
        measure: also measure the error against a wider-precision replay (``measured``;
            a second evaluation, in long double for float64 programs).

    Returns:
        A :class:`RoundingReport`.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> x = np.full(10**4, 1e-9)           # sum((1 + x) - 1): each term rounds at 1
        >>> rep = kinkgrad.rounding_error(lambda x: knp.sum((1.0 + x) - 1.0), x)
        >>> bool(abs(rep.value - 1e-5) < rep.error < 1e-11)
        True
    """
    if any(is_torch(leaf) or is_cupy(leaf) for leaf in pytree.flatten(x)[0]):
        raise UnsupportedOperationError(
            "rounding_error: works on NumPy arrays; pass x.detach().cpu().numpy().")
    tr = trace_call(f, (x,), {}, [0], "rounding_error")  # keeps every value
    out, val = _scalar_out(tr, "rounding_error")
    value = float(np.asarray(val, np.float64).reshape(()))
    if type(out) is not Var:  # a constant output: no rounding depends on x
        return RoundingReport(value, 0.0)
    seed = np.ones(out.shape, out.dtype) if out.shape else np.array(1, out.dtype)
    parts: dict[str, float] = {}
    with np.errstate(all="ignore"):  # magnitudes may overflow: the estimate is then inf
        ct = reverse_sweep(tr.eqns, tr.vals, {out.index: seed}, resolve_policy(policy))
        for eqn in tr.eqns:
            g = ct.get(eqn.out.index)
            v = tr.vals[eqn.out.index]
            dtype = np.result_type(v)
            if g is None or dtype.kind != "f":
                continue
            # NOTE: the magnitudes in float64: in the program's dtype a float16 sum of 2,000
            # ones (exact) had the estimate 2000 (ceil(log2 m) + 1 + sqrt m) > 65504 = inf
            r = eqn.prim.rounding([as_float64(a) for a in eqn.args(tr.vals)], as_float64(v),
                                  eqn.params)
            if r is None:
                continue
            term = float(np.finfo(dtype).eps) / 2.0 * float(
                np.sum(np.abs(np.asarray(g, np.float64)) * np.asarray(r, np.float64)))
            parts[eqn.prim.name] = parts.get(eqn.prim.name, 0.0) + term
    total = float(sum(parts.values()))
    if not np.isfinite(total):
        total = float("inf")
    ordered = dict(sorted(parts.items(), key=lambda kv: -kv[1]))
    return RoundingReport(value, total, ordered, _measured(tr, out) if measure else None)


def _measured(tr: Any, out: Var) -> float | None:
    """|computed f - f replayed wider| (None without a wider type for f's dtype)."""
    wide = wide_values(tr)[out.index]
    if np.dtype(np.result_type(wide)).itemsize <= np.dtype(out.dtype).itemsize:
        return None
    with np.errstate(all="ignore"):
        gap = np.abs(np.asarray(wide) - np.asarray(tr.vals[out.index], np.result_type(wide)))
        top = np.max(gap, initial=0.0) if np.size(gap) else 0.0
        d = float(top)
    if top > 0 and d == 0.0:  # NOTE: below float64's range (1e-600): its least positive
        return math.ulp(0.0)
    return d if np.isfinite(d) else float("inf")


