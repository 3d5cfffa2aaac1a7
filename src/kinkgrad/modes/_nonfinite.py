"""Where a gradient stopped being finite: the message ``grad`` raises instead of returning it.

# NOTE: a finite output can hide an overflow (tanh(exp(1000)) = 1) whose derivative is
# inf * 0 = NaN, and a finite chain of values can have a derivative that overflows
# (d(1/x)/dx = -1/x^2 at x = 1e-300). Both are reported with the node that caused them, never
# returned as a silent inf/NaN gradient (issue 2: errors name the operation and the fix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Var, _var_name
from ..errors import NonFiniteInputError
from ..kinks import KinkPolicy
from ._discard import discarded_entries, domain_message, finite_or_discarding
from ._finite import finite
from .sweeps import reverse_sweep

__all__ = ["nonfinite_gradient", "grads_tree", "finite", "input_error_if_nonfinite",
           "check_inputs_finite", "nonfinite_culprit", "require_finite", "finite_results"]


def nonfinite_gradient(tr: Any, out: Var, policy: KinkPolicy) -> str:
    """Message for a finite value whose gradient is not finite, naming the node at fault:
    the first node whose value overflowed, else the node whose cotangent overflowed (entries
    a ``where`` discards are not at fault: modes/_discard.py)."""
    msg = domain_message(tr, "grad")
    if msg is not None:
        return msg
    gone = discarded_entries(tr.eqns, tr.vals, [out.index])
    for eqn in tr.eqns:
        v = tr.vals[eqn.out.index]
        if np.asarray(v).dtype.kind == "f" and not _finite_where_kept(v, gone.get(eqn.out.index)):
            return (f"grad: the value is finite but an intermediate value is not: `{eqn.prim.name}`"
                    f" node {_var_name(eqn.out.index)} overflowed, so the gradient is not "
                    "finite; rescale the input or guard that operation.")
    with np.errstate(all="ignore"):
        ct = reverse_sweep(tr.eqns, tr.vals, {out.index: np.ones(out.shape, out.dtype)}, policy)
    for eqn in reversed(tr.eqns):
        g = ct.get(eqn.out.index)
        if g is None or not np.isfinite(g).all():
            continue
        bad = [np.asarray(ct.get(i.index, 0)) for i in eqn.inputs if type(i) is Var]
        bad = [c for c in bad if not np.isfinite(c).all()]
        if bad and all(np.isnan(c).any() and not np.isinf(c).any() for c in bad):
            return (f"grad: the `{eqn.prim.name}` node {_var_name(eqn.out.index)}'s "  # NOTE:
                    "backward rule gave NaN from a finite cotangent and finite values (a "
                    "rule's 0 * inf, or a user primitive's vjp); check that rule.")  # not
            # an overflow: a NaN no finite input can have caused, said so
        if bad:
            return (f"grad: the derivative is not representable in "
                    f"{np.dtype(out.dtype).name}: the cotangent overflowed at the "
                    f"`{eqn.prim.name}` node {_var_name(eqn.out.index)} (a derivative such as "
                    "1/x^2 at a tiny x); rescale the input or guard that operation.")
    return "grad: the gradient is not finite (overflow in the backward pass)."


def _finite_where_kept(v: Any, gone: Any) -> bool:
    ok = np.isfinite(v)
    return bool(ok.all() or (gone is not None and (ok | gone).all()))


def input_error_if_nonfinite(a: Any, where: str) -> None:
    """Raise the input error when a differentiated input holds NaN or inf."""
    if not finite(a):
        raise NonFiniteInputError(
            f"{where}: a differentiated argument contains NaN or inf; generalized derivatives "
            "are defined at finite points only. Clean the input (np.nan_to_num) first."
        )


def check_inputs_finite(tr: Any, where: str) -> None:
    """Raise the input error when any differentiated input of a trace holds NaN or inf."""
    for v in tr.in_vars:
        input_error_if_nonfinite(tr.vals[v.index], where)


def nonfinite_culprit(tr: Any, where: str) -> str:
    """Message naming the first node whose value is not finite."""
    msg = domain_message(tr, where)
    if msg is not None:
        return msg
    for eqn in tr.eqns:
        v = tr.vals[eqn.out.index]
        if np.asarray(v).dtype.kind == "f" and not np.all(np.isfinite(v)):
            return (f"{where}: the value became non-finite at a `{eqn.prim.name}` node (overflow, "
                    "log of a non-positive number, division by zero); rescale the input or "
                    "guard that operation.")
    return f"{where}: the output is not finite."


def require_finite(tr: Any, arrays: list, where: str, what: str, tan: dict | None = None
                   ) -> None:
    """Raise (naming the node) instead of returning a NaN/inf value or derivative."""
    if all(finite(a) for a in arrays if np.asarray(a).dtype.kind == "f"):
        return
    check_inputs_finite(tr, where)
    if not all(finite(v) for v in tr.out_values() if np.asarray(v).dtype.kind == "f"):
        raise NonFiniteInputError(nonfinite_culprit(tr, where))
    msg = domain_message(tr, where)
    if msg is not None:
        raise NonFiniteInputError(msg)
    for eqn in tr.eqns if tan is not None else ():
        t = tan.get(eqn.out.index)
        if t is not None and not finite(t):
            raise NonFiniteInputError(
                f"{where}: the {what} stops being finite at the `{eqn.prim.name}` node "
                f"{_var_name(eqn.out.index)} (a derivative overflows or is infinite there); "
                "rescale the input or guard that operation.")
    raise NonFiniteInputError(f"{where}: the {what} is not finite (a derivative overflows); "
                              "rescale the input or guard the operation that overflows.")


def grads_tree(tr: Any, ct: dict, single: bool) -> Any:
    """The gradient in the pytree of the differentiated arguments: each leaf's cotangent in the
    leaf's shape and dtype (zeros where none reached it).

    A cotangent computed in a wider dtype than its argument's (a float32 argument multiplied
    by a float64 constant) can be finite there and overflow when cast: that raises, as any
    other gradient that is not representable, instead of returning inf."""
    leaves = []
    for v in tr.in_vars:
        c = ct.get(v.index)
        if c is None:
            c = np.zeros(v.shape, v.dtype)
        else:
            c = wide = np.asarray(c)
            if wide.dtype != v.dtype:
                with np.errstate(over="ignore"):  # tested just below
                    c = np.asarray(wide, dtype=v.dtype)
            if c is not wide and finite(wide) and not finite(c):
                raise NonFiniteInputError(
                    f"grad: the gradient of a {np.dtype(v.dtype).name} argument of shape "
                    f"{tuple(v.shape)} was computed in {np.dtype(wide.dtype).name} and "
                    f"overflows in {np.dtype(v.dtype).name} (a constant of the wider dtype "
                    "scaled it); rescale the function or pass the argument in the wider dtype.")
            if c.shape != v.shape:
                c = np.broadcast_to(c, v.shape).copy()
        leaves.append(c)
    g = pytree.unflatten(tr.in_tree, leaves, constants="zeros")
    return g[0] if single else g


def finite_results(tr: Any, ct: dict, seeds: dict, policy: KinkPolicy, keep: set[int],
                   results: Callable[[dict], list], where: str, what: str) -> list:
    """``results(ct)`` (the arrays an entry point returns, built from an unchecked reverse
    sweep's cotangents) tested for NaN/inf once on the common path; when one is not finite,
    rebuilt from the discarding sweep (a ``where``'s unselected branch may be the cause) and
    otherwise refused naming the node at fault."""
    out = results(ct)
    if all(finite(a) for a in out):
        return out
    out = results(finite_or_discarding(ct, tr, seeds, policy, keep=keep))
    require_finite(tr, out, where, what)
    return out
