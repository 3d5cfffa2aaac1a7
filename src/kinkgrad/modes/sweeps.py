"""The two sweeps over a recorded program: forward (tangents) and reverse (cotangents).

Both walk the equation list of a trace or Program with the stored values (the residuals).
The selection of every nonsmooth node is made once, by its ``select`` rule, from the kink
policy (``mode="policy"``) or from tangents (``"directional"``: per direction, exact one-sided
derivatives; ``"lex"``: one lexicographic resolution shared by all tangents). A forward sweep
can keep its selections so that the reverse sweep uses exactly the same choices, which is how
``clarke_grad`` backpropagates the gradient of the piece a direction enters.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .._core.program import Equation, Var, _var_name
from .._core.tracer import retry_without_underflow
from ..errors import NonFiniteInputError
from ..kinks import KinkPolicy, KinkRecord, KinkReport

__all__ = ["forward_sweep", "reverse_sweep"]

# NumPy itself, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _MULTIPLY, _ADD, _RESULT_TYPE = np.ndarray, np.multiply, np.add, np.result_type
# NOTE: the in-place writes below trust sys.getrefcount to count every holder. CPython 3.14
# loads locals without a reference (LOAD_FAST_BORROW) and a free-threaded build defers
# counts, so a shared array could look private there: on those the sweep allocates instead.
_COUNTS_EXACT = sys.version_info < (3, 14) and getattr(sys, "_is_gil_enabled", lambda: True)()


def _scale_in_place(g: Any, sel: Any) -> bool:
    """``g *= sel`` when ``g`` is a NumPy array nobody but the reverse sweep holds (not a view,
    not a seed, not kept) and the product keeps its shape and dtype. Returns whether it did."""
    # NOTE: the sweep's local name, this function's parameter and getrefcount's argument make
    # 3 references; any other (a dict of cotangents, a forward value, a caller's seed) raises
    # the count above 3, so a shared array is never written
    if not _COUNTS_EXACT or type(g) is not _NDARRAY or g.base is not None \
            or sys.getrefcount(g) > 3 \
            or not g.flags.writeable or type(sel) is not _NDARRAY:
        return False
    if sel.shape != g.shape[g.ndim - sel.ndim:] or _RESULT_TYPE(g, sel) != g.dtype:
        return False
    _MULTIPLY(g, sel, out=g)
    return True


def _where(eqn: Equation) -> str:
    """The node an error message names: ``<primitive> node <output variable>``."""
    return f"{eqn.prim.name} node {_var_name(eqn.out.index)}"


def _jvp_rules(eqn: Equation, policy: KinkPolicy, args: list, out: Any, ts: list, mode: str
               ) -> tuple:
    sel, nk = eqn.prim.select(policy, args, out, eqn.params,
                              ts if mode != "policy" else None, mode)
    return sel, nk, eqn.prim.jvp(sel, ts, args, out, eqn.params)


def _vjp_rules(eqn: Equation, policy: KinkPolicy, args: list, out: Any, g: Any, needs: list,
               given: bool, sel: Any) -> tuple:
    nk = 0
    if not given:
        sel, nk = eqn.prim.select(policy, args, out, eqn.params)
    return nk, eqn.prim.vjp(sel, g, args, out, eqn.params, needs)


def _record(report: KinkReport | None, k: int, eqn: Equation, kinks: int, policy: KinkPolicy
            ) -> None:
    if report is None or not eqn.prim.nonsmooth:
        return
    report.nonsmooth_nodes += 1
    if kinks:
        key = eqn.prim.policy_key
        choice = getattr(policy, key) if key else "zero derivative (comparison)"
        size = int(np.prod(eqn.out.shape, dtype=np.int64)) if eqn.out.shape else 1
        if eqn.prim.name in ("sort", "max", "min", "norm"):  # kinks among the input's entries
            size = int(np.prod(eqn.inputs[0].shape if type(eqn.inputs[0]) is Var
                               else np.shape(eqn.inputs[0].value), dtype=np.int64))
        report.records.append(KinkRecord(k, eqn.prim.name, _var_name(eqn.out.index), kinks,
                                         size, choice))


def forward_sweep(eqns: list[Equation], vals: list, tangents: dict[int, Any], policy: KinkPolicy,
                  mode: str = "policy", keep_selections: bool = False,
                  report: KinkReport | None = None, pinned: dict[int, Any] | None = None
                  ) -> tuple[dict[int, Any], dict[int, Any]]:
    """Push tangents (leading batch axis K on every tangent) through the equations.

    Returns the tangent of every slot reached (a dict by slot index) and, if asked, the
    selection of every equation (a dict by equation index). ``pinned`` (slot: mask of its
    entries) holds those entries at their seed in ``tangents`` where the slot's equation
    computes its tangent (a seed on an output that also depends on other seeds).
    """
    tan = dict(tangents)
    sels: dict[int, Any] = {}
    batch = next(iter(tangents.values())).shape[:1] if tangents else (1,)
    for k, eqn in enumerate(eqns):
        ts = [tan.get(i.index) if type(i) is Var else None for i in eqn.inputs]
        if all(t is None for t in ts) or not eqn.prim.differentiable:
            if report is not None and eqn.prim.nonsmooth:
                args = eqn.args(vals)
                _, nk = eqn.prim.select(policy, args, vals[eqn.out.index], eqn.params)
                _record(report, k, eqn, nk, policy)
            continue
        args = eqn.args(vals)
        out = vals[eqn.out.index]
        try:
            sel, nk, t = _jvp_rules(eqn, policy, args, out, ts, mode)
        except FloatingPointError as exc:  # only under np.errstate(... = "raise")
            sel, nk, t = retry_without_underflow(exc, _where(eqn), "tangent", _jvp_rules,
                                                 eqn, policy, args, out, ts, mode)
        _record(report, k, eqn, nk, policy)
        if keep_selections:
            sels[k] = sel
        if t is None:
            continue
        want = batch + tuple(eqn.out.shape)
        if np.shape(t) != want:
            t = np.broadcast_to(t, want)
        if pinned is not None and eqn.out.index in pinned:
            t = np.where(pinned[eqn.out.index], tangents[eqn.out.index], t)
        tan[eqn.out.index] = t
    return tan, sels


def reverse_sweep(eqns: list[Equation], vals: list, seeds: dict[int, Any], policy: KinkPolicy,
                  selections: dict[int, Any] | None = None, report: KinkReport | None = None,
                  keep: set[int] | None = None, frozen: set[int] | None = None
                  ) -> dict[int, Any]:
    """Pull cotangents (optionally with leading batch axes) back through the equations.

    ``seeds`` maps slot index to the cotangent of that output. Returns the cotangents of the
    slots in ``keep`` (all slots that received one when ``keep`` is None). Selections come
    from ``selections`` where given, else from the policy. The slots in ``frozen`` are
    constants (a replayed program's inputs that are not differentiated and what only they
    reach): no rule computes a cotangent for them.

    # NOTE: the entry points test the returned cotangents for NaN/inf after the sweep. Testing
    # each leaf's as its rule returned it (in cache) gained nothing on the MLP (12 alternating
    # process pairs: the same T(v+g)/T(v); about 1% slower in toggles within one process).
    """
    ct: dict[int, Any] = {}
    owned: set[int] = set()
    live: set[int] = set()  # slots read by equations on the path (for the kink report)

    def accumulate(i: int, c: Any) -> None:
        prev = ct.get(i)
        try:
            if prev is None:
                ct[i] = c
            elif i in owned and np.shape(prev) == np.shape(c) and isinstance(prev, np.ndarray):
                np.add(prev, c, out=prev, casting="unsafe")
            elif _COUNTS_EXACT and type(prev) is _NDARRAY and prev.base is None \
                    and sys.getrefcount(prev) == 3 \
                    and prev.flags.writeable and prev.shape == np.shape(c) \
                    and _RESULT_TYPE(prev, c) == prev.dtype:
                # NOTE: a rule's fresh output that only ct holds (3 references: ct, this
                # name, getrefcount's argument; a view, a seed, a value or the other entry
                # of a rule's result holds one more): add into it instead of allocating
                _ADD(prev, c, out=prev)
                owned.add(i)
            else:
                ct[i] = prev + c
                owned.add(i)
        except FloatingPointError as exc:  # only under np.errstate(over="raise")
            raise NonFiniteInputError(
                f"the cotangents reaching {_var_name(i)} are finite but their sum overflows "
                "(the derivative is not representable in this dtype); rescale the input or "
                "compute in float64.") from exc

    for i, c in seeds.items():
        accumulate(i, c)
    # NOTE: this loop runs once per node of every gradient; it is written for speed (one pass
    # over the inputs, no per-node helper calls on the common path): the per-node overhead
    # is what separates the engine from hand-written NumPy on small and medium layers.
    for k in range(len(eqns) - 1, -1, -1):
        eqn = eqns[k]
        oi = eqn.out.index
        g = ct.get(oi)
        prim = eqn.prim
        if g is None or not prim.differentiable:
            if report is not None and prim.is_switch and oi in live:
                # a comparison feeding the differentiated path (a where): ties are kinks too
                _, nk = prim.select(policy, eqn.args(vals), vals[oi], eqn.params)
                _record(report, k, eqn, nk, policy)
            continue
        inputs = eqn.inputs
        if report is not None:
            live.update(i.index for i in inputs if type(i) is Var
                        and (frozen is None or i.index not in frozen))
        if keep is not None and oi not in keep:
            del ct[oi]
        if prim.name == "getitem" and type(inputs[0]) is Var and not eqn.params["advanced"] \
                and inputs[0].index in owned:
            # NOTE: x[i] into a cotangent this sweep owns: add g into its slice in place
            # instead of scattering into a zero array of x's shape and adding that (a
            # tournament over the columns of x reads each column once: n full-size adds)
            prev = ct[inputs[0].index]
            nb = np.ndim(g) - np.ndim(vals[oi])
            if type(prev) is np.ndarray and prev.shape == np.shape(g)[:nb] + np.shape(
                    vals[inputs[0].index]):
                prev[(slice(None),) * nb + eqn.params["idx"]] += g
                continue
        args, needs = [], []
        for i in inputs:
            if type(i) is Var:
                args.append(vals[i.index])
                needs.append(frozen is None or i.index not in frozen)
            else:
                args.append(i.value)
                needs.append(False)
        out = vals[oi]
        given = selections is not None and k in selections
        sel = selections[k] if given else None  # type: ignore[index]
        try:
            nk = 0
            if not given and report is None:  # no kink count needed
                sel = prim.selection(policy, args, out, eqn.params) if prim.selects else None
            elif not given:
                sel, nk = prim.select(policy, args, out, eqn.params)
            if prim.scales_cotangent and _scale_in_place(g, sel):
                cts = (g,)
            else:
                cts = prim.vjp(sel, g, args, out, eqn.params, needs)
        except FloatingPointError as exc:  # only under np.errstate(... = "raise")
            nk, cts = retry_without_underflow(exc, _where(eqn), "cotangent", _vjp_rules,
                                              eqn, policy, args, out, g, needs, given,
                                              selections[k] if given else None)  # type: ignore[index]
        if report is not None and not given:
            _record(report, k, eqn, nk, policy)
        for inp, c in zip(inputs, cts):
            if c is not None and type(inp) is Var:
                j = inp.index
                if j in ct:
                    accumulate(j, c)
                else:
                    ct[j] = c
        c = cts = None  # the sweep holds no cotangent but through ct (see _scale_in_place)
    return ct
