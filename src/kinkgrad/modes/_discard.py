"""Values a ``where`` discards do not poison a derivative ("guarded branches").

``where(x > 0, log(x), 0)`` at x = -1 evaluates log(-1) = NaN in the branch that is not
selected, and at x = 0 the branch's derivative 1/x is infinite; the cotangent that reaches
it there is exactly 0, but 0 * inf is NaN. JAX users write a "double where" to avoid it.
Here an entry of a slot is *discarded* when every path from it to an output runs through the
unselected branch of a ``where``: its value cannot change any output, so its cotangent is 0,
whatever the local derivatives say. The reverse sweep is first run as usual (no cost on the
common path); only when its result is not finite is it run again with the cotangents of
discarded entries held at exactly 0 (:func:`sweep_discarding`). Entries a ``where`` does not
discard keep every error: a NaN or inf that reaches the result is reported at the node that
made it, with the primitive's domain message (:func:`domain_message`).

Which entries are discarded is decided entry by entry through elementwise primitives (unary
functions, broadcasting arithmetic, the piecewise-linear elementwise kinks, ``where``); any
other primitive (reductions, products, shape operations) is conservatively taken to let every
entry of its inputs through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.program import Var, _var_name
from ..errors import NonFiniteInputError
from ..kinks import KinkPolicy
from ..primitives.arith import Negative, _Binary
from ..primitives.piecewise import Clip, _Elementwise, _MaxMin
from ..primitives.select import Where
from ..primitives.smooth import Unary
from ._finite import finite
from .sweeps import _vjp_rules, reverse_sweep

__all__ = ["discarded_entries", "sweep_discarding", "domain_message", "finite_or_discarding",
           "recover_or_raise", "guarded_reverse"]

_ELEMENTWISE = (Unary, _Binary, Negative, _Elementwise, _MaxMin, Clip, Where)


def _to_input(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """An output-shaped mask reduced to a broadcast input's shape: an input entry is live
    when any output entry it is broadcast to is live."""
    shape = tuple(shape)
    if mask.shape == shape:
        return mask
    lead = mask.ndim - len(shape)
    if lead > 0:
        mask = mask.any(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and mask.shape[i] != 1)
    return mask.any(axis=axes, keepdims=True) if axes else mask


def discarded_entries(eqns: list, vals: list, outputs: list[int]) -> dict[int, np.ndarray]:
    """Slot index -> boolean mask of its discarded entries (slots with none are left out)."""
    live: dict[int, np.ndarray] = {i: np.ones(np.shape(vals[i]), bool) for i in outputs}
    for eqn in reversed(eqns):
        m = live.get(eqn.out.index)
        if m is None:
            continue
        elementwise = isinstance(eqn.prim, _ELEMENTWISE)
        for j, inp in enumerate(eqn.inputs):
            if type(inp) is not Var:
                continue
            shape = np.shape(vals[inp.index])
            if not elementwise:
                contrib = np.ones(shape, bool)
            elif isinstance(eqn.prim, Where) and j > 0:
                cond = np.broadcast_to(np.asarray(vals[eqn.inputs[0].index]
                                                  if type(eqn.inputs[0]) is Var
                                                  else eqn.inputs[0].value), m.shape)
                contrib = _to_input(m & (cond if j == 1 else ~cond), shape)
            else:
                contrib = _to_input(m, shape)
            prev = live.get(inp.index)
            live[inp.index] = contrib if prev is None else prev | contrib
    return {i: ~m for i, m in live.items() if not m.all()}


def sweep_discarding(eqns: list, vals: list, seeds: dict[int, Any], policy: KinkPolicy,
                     selections: dict[int, Any] | None = None,
                     keep: set[int] | None = None) -> dict[int, Any] | None:
    """The reverse sweep with the cotangents of discarded entries held at exactly 0; None
    when no entry is discarded (the ordinary sweep's result stands)."""
    gone = discarded_entries(eqns, vals, list(seeds))
    if not gone:
        return None
    ct: dict[int, Any] = dict(seeds)
    with np.errstate(all="ignore"):
        for k in range(len(eqns) - 1, -1, -1):
            eqn = eqns[k]
            g = ct.get(eqn.out.index)
            if g is None or not eqn.prim.differentiable:
                continue
            out_gone = gone.get(eqn.out.index)
            if out_gone is not None:
                g = np.where(out_gone, 0, g)
            same = isinstance(eqn.prim, _ELEMENTWISE) and out_gone is not None
            args, out = eqn.args(vals), vals[eqn.out.index]
            given = selections is not None and k in selections
            _, cts = _vjp_rules(eqn, policy, args, out, g, [type(i) is Var for i in eqn.inputs],
                                given, selections[k] if given else None)  # type: ignore[index]
            for inp, c in zip(eqn.inputs, cts):
                if c is None or type(inp) is not Var:
                    continue
                if same and np.shape(vals[inp.index]) == np.shape(out):
                    c = np.where(out_gone, 0, c)  # entry i of the input came from entry i only
                if inp.index in gone:
                    c = np.where(gone[inp.index], 0, c)
                prev = ct.get(inp.index)
                ct[inp.index] = c if prev is None else prev + c
    if keep is not None:
        ct = {i: c for i, c in ct.items() if i in keep}
    return ct


def finite_or_discarding(ct: dict[int, Any], tr: Any, seeds: dict[int, Any],
                         policy: KinkPolicy, selections: dict[int, Any] | None = None,
                         keep: set[int] | None = None) -> dict[int, Any]:
    """``ct`` when finite, else the discarding sweep's result when that is finite, else
    ``ct`` (the caller then reports the node at fault)."""
    if _all_finite(ct):
        return ct
    tr.trace.restore()  # the discarding sweep and the error messages read every value
    again = sweep_discarding(tr.eqns, tr.vals, seeds, policy, selections, keep)
    return again if again is not None and _all_finite(again) else ct


def _all_finite(ct: dict[int, Any]) -> bool:
    return all(finite(c) for c in ct.values())


def guarded_reverse(tr: Any, seeds: dict[int, Any], policy: KinkPolicy, where: str,
                    selections: dict[int, Any] | None = None, keep: set[int] | None = None,
                    report: Any = None, check: bool = True) -> dict[int, Any]:
    """``reverse_sweep``, then (only on a floating-point error or, with ``check``, a result
    that is not finite) the discarding sweep: the cotangents entry points return."""
    try:
        ct = reverse_sweep(tr.eqns, tr.vals, seeds, policy, selections=selections,
                           report=report, keep=keep, frozen=tr.frozen)
    except NonFiniteInputError as exc:  # NumPy's error state "raise"
        return recover_or_raise(exc, tr, seeds, policy, where, selections, keep)
    return finite_or_discarding(ct, tr, seeds, policy, selections, keep) if check else ct


def recover_or_raise(exc: Exception, tr: Any, seeds: dict[int, Any], policy: KinkPolicy,
                     where: str, selections: dict[int, Any] | None = None,
                     keep: set[int] | None = None) -> dict[int, Any]:
    """After a reverse sweep raised on a floating-point error (NumPy's error state "raise"):
    the discarding sweep's cotangents when they are finite, else the domain error of the
    node at fault (or ``exc`` itself)."""
    tr.trace.restore()
    again = sweep_discarding(tr.eqns, tr.vals, seeds, policy, selections, keep)
    if again is not None and _all_finite(again):
        return again
    with np.errstate(all="ignore"):
        msg = domain_message(tr, where)
    if msg is None:
        raise exc
    raise NonFiniteInputError(msg) from exc


def _in_branch(eqns: list, slot: int) -> bool:
    """Does some path from ``slot`` reach a branch operand of a ``where``?"""
    reached = {slot}
    for eqn in eqns:
        hit = [j for j, i in enumerate(eqn.inputs) if type(i) is Var and i.index in reached]
        if not hit:
            continue
        if isinstance(eqn.prim, Where) and any(j > 0 for j in hit):
            return True
        reached.add(eqn.out.index)
    return False


def domain_message(tr: Any, where: str) -> str | None:
    """The domain error of the first node whose non-finite entries are not discarded."""
    outs = [o.index for o in tr.outs if type(o) is Var]
    gone: dict[int, np.ndarray] | None = None
    for eqn in tr.eqns:
        domain = getattr(eqn.prim, "domain", None)
        if domain is None:
            continue
        args = eqn.args(tr.vals)
        with np.errstate(all="ignore"):
            found = domain(args, tr.vals[eqn.out.index], eqn.params)
        if found is None:
            continue
        bad, msg = found
        if gone is None:
            gone = discarded_entries(tr.eqns, tr.vals, outs)
        if eqn.out.index in gone:
            bad = bad & ~gone[eqn.out.index]
        if np.any(bad):
            branch = (" (it sits in a branch of a `where` whose condition selects it there)"
                      if _in_branch(tr.eqns, eqn.out.index) else "")
            return (f"{where}: {msg}; at the `{eqn.prim.name}` node "
                    f"{_var_name(eqn.out.index)}{branch}.")
    return None
