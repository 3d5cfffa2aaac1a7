"""A ``where`` whose condition is tied at x, with branches that agree there: Huber written
with ``where``, ReLU written ``where(x > 0, x, 0)``.

``where(a > b, A, B)`` at a point where a = b jumps unless the branches agree on the switching
surface {a = b} near x. kinkgrad accepts such a ``where`` for the first-order questions at x
(``clarke_grad``, ``directional``, ``ld_derivative``, ``certify``, ``subdifferential``,
``in_clarke``, ``stationarity``, ``abs_normal_form``) when, at every tied entry,

1. the branches agree: A(x) = B(x) (to 16 units of roundoff of their size as computed,
   and in a wider-precision replay of f's values to twice 16 of its estimated errors),
2. their gap A - B reads no kink that is on its kink at x (nor another tied ``where``): so
   A - B is differentiable at x, to first order (:func:`_gap_reads_a_kink`), and
3. to first order the gap between them is a multiple of the switching quantity: with
   z = a - b (z = b - a for ``<``, ``<=``), the directional derivatives along three random
   directions satisfy (A - B)'(x; d) = c z'(x; d) with one c per entry (checked with a relative
   tolerance of 1e-9), and z'(x; .) is not identically 0.

Under the assumption that the branches agree on the switching surface near x (which 1. to
3. test to first order; a test of finitely many directions cannot prove it), A - B = z (c +
o(1)) near x, so near x the ``where`` equals
``maximum(A, B)`` when c > 0, ``minimum(A, B)`` when c < 0, and, when c = 0 (the branches
join with equal gradients, as Huber at |x| = 1), either branch to first order: kinkgrad
uses A, and f is strictly differentiable there. The program is rewritten entry by entry into
that abs-smooth form before the abs-smooth layer sees it; a condition tied where the branches
differ, or a tied comparison used other than as a ``where`` condition, is refused as before.
``grad`` is unchanged: plain AD follows the condition, as the program says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import unbroadcast
from .._core.program import Var, value_of
from .._core.tracer import Trace, bind
from ..errors import NotAbsSmoothError
from ..kinks import KinkPolicy
from ..modes.api import Traced
from ..modes.sweeps import forward_sweep, reverse_sweep
from ..primitives.piecewise import Maximum, Minimum
from ..primitives.select import Where
from ._flat import FlatSpec, rebuilt, scalar_output

__all__ = ["plain_ad_vector", "rewrite_tied_wheres"]

_ORIENT = {"greater": 1.0, "greater_equal": 1.0, "less": -1.0, "less_equal": -1.0}
_JUNCTION_TOL = 1e-9


def _value(eqn_input: Any, vals: list) -> Any:
    return value_of(eqn_input, vals)


def rewrite_tied_wheres(tr: Traced, where: str) -> Traced:
    """``tr`` itself when no comparison is tied; else the rewritten trace (module docstring).

    Raises:
        NotAbsSmoothError: a tied comparison whose ``where`` may jump, or that is used other
            than as a ``where`` condition.
    """
    tied = {}
    for k, eqn in enumerate(tr.eqns):
        if eqn.prim.is_switch:
            a, b = (_value(i, tr.vals) for i in eqn.inputs)
            if np.any(np.equal(a, b)):
                tied[eqn.out.index] = k
    if not tied:
        return tr
    uses = _consumers(tr, set(tied))
    cond_of: dict[int, int] = {}  # where equation -> its tied comparison's equation
    for slot, k in tied.items():
        cmp = tr.eqns[k]
        for use_k, pos in uses.get(slot, []):
            use = tr.eqns[use_k] if use_k >= 0 else None
            if use is None or not isinstance(use.prim, Where) or pos != 0 \
                    or cmp.prim.name not in _ORIENT:
                _refuse(cmp, where, "it is used other than as the condition of a `where` "
                                    "written with >, >=, < or <=")
            cond_of[use_k] = k
    directions = _directions(tr)
    tan, _ = forward_sweep(tr.eqns, tr.vals, directions, KinkPolicy(), mode="directional")
    ties = {use_k: _tie(tr, tr.eqns[k], tr.eqns[use_k]) for use_k, k in cond_of.items()}
    kinks = _kinks_at_x(tr) + [(tr.eqns[u].out.index, t) for u, t in ties.items()]
    wide = _Wide(tr)
    kinds = {}
    for use_k, k in cond_of.items():
        cmp, use = tr.eqns[k], tr.eqns[use_k]
        wide.check(use, ties[use_k], lambda why, cmp=cmp: _refuse(cmp, where, why))
        if _gap_reads_a_kink(tr, use, ties[use_k], kinks):
            _refuse(cmp, where, "the gap between the branches of its `where` has a kink there",
                    "its sign need not follow the switching quantity's and kinkgrad cannot "
                    "tell which branch f takes near x")
        kinds[use_k] = _classify(tr, cmp, use, tan, where)
    return _replay(tr, set(tied), kinds)


def _tie(tr: Traced, cmp: Any, use: Any) -> np.ndarray:
    """Mask of the ``where``'s output entries whose condition is tied at x."""
    shape = tuple(np.shape(tr.vals[use.out.index]))
    a, b = (np.broadcast_to(_value(i, tr.vals), shape) for i in cmp.inputs)
    return np.equal(a, b)


def _kinks_at_x(tr: Traced) -> list[tuple[int, np.ndarray | None]]:
    """(output slot, mask of its entries on their kink, or None: any entry may read one) of
    every switching equation with a switching entry on its kink at x."""
    found = []
    with np.errstate(all="ignore"):
        for e in tr.eqns:
            if not e.prim.nonsmooth:
                continue
            z = e.prim.switch(e.args(tr.vals), tr.vals[e.out.index], e.params)
            if z is None or not np.any(np.asarray(z) == 0):
                continue
            on = np.asarray(z) == 0
            found.append((e.out.index, on if on.shape == np.shape(tr.vals[e.out.index])
                          else None))
    return found


def _gap_reads_a_kink(tr: Traced, use: Any, tie: np.ndarray, kinks: list) -> bool:
    """Whether the gap A - B of the ``where``'s tied entries reads a kink on its kink at x
    (``kinks``, :func:`_kinks_at_x`, and the other tied wheres): its cotangent at that
    output, from one reverse sweep seeded with random weights on the tied entries, is not 0.
    Then A - B need not be differentiable at x, and the sign of c z' that the rewrite reads
    from three directions is not the gap's: where(2 x0 > 0, -relu(-2 x0), 0) - x0 is -x0
    everywhere (the branches agree on x0 >= 0), and its three directions all had x0 > 0:
    the rewrite said f'(0; -e0) = -1 (truth: 1) and called 0 a Clarke gradient. Where no
    such cotangent is nonzero, A - B is differentiable at x (first order), and its slope is
    c z' exactly when three random directions say so (almost surely)."""
    if not kinks or not np.any(tie):
        return False
    shape = tie.shape
    w = np.where(tie, np.random.default_rng(1).standard_normal(shape), 0.0)
    seeds: dict[int, Any] = {}
    for inp, sign in ((use.inputs[1], 1.0), (use.inputs[2], -1.0)):
        if type(inp) is Var:
            g = unbroadcast(sign * w, tuple(inp.shape), shape)
            seeds[inp.index] = seeds.get(inp.index, 0.0) + g
    if not seeds:
        return False
    with np.errstate(all="ignore"):
        ct = reverse_sweep(tr.eqns, tr.vals, seeds, KinkPolicy(),
                           keep={slot for slot, _ in kinks})
    for slot, on in kinks:
        c = ct.get(slot)
        if c is not None:
            read = ~(np.asarray(c) == 0)  # NOTE: NaN counts as read
            if np.any(read if on is None or read.shape != on.shape else read & on):
                return True
    return False


class _Wide:
    """f's values replayed in a wider precision (:class:`._forward_rounding.ForwardRounding`,
    on first use): the branches of a tied ``where`` agree in f only where they agree there,
    beyond twice ``_TRUSTED`` estimated errors. As computed they may differ by rounding, and
    16 units of roundoff were allowed: where(x0 > 0, x0 + (1 + 2^-52), 1 - x0) jumps by
    2^-52 at 0 (f is 1 there and above 1 on both sides: a strict local minimiser), and
    "not stationary" with the descent direction -e0 (f'(0; -e0) = 1) was wrong."""

    def __init__(self, tr: Traced) -> None:
        self.tr, self.forward = tr, None

    def check(self, use: Any, tie: np.ndarray, refuse: Any) -> None:
        from ._forward_rounding import _TRUSTED, ForwardRounding

        if not np.any(tie):
            return
        if self.forward is None:
            self.forward = ForwardRounding(self.tr, None)
        wide, shape = self.forward.wide(), tie.shape
        A, B = (np.broadcast_to(np.asarray(_value(i, wide), np.float64), shape)
                for i in use.inputs[1:])
        err = sum(np.broadcast_to(self.forward.error(i.index), shape)
                  for i in use.inputs[1:] if type(i) is Var)
        with np.errstate(invalid="ignore"):
            differ = ~(np.abs(A - B) <= 2 * _TRUSTED * err)
        if np.any(tie & differ):
            refuse("the two branches of its `where` differ there in a wider-precision replay "
                   "of f's values (by more than its rounding)")


def _consumers(tr: Traced, slots: set[int]) -> dict[int, list]:
    uses: dict[int, list] = {}
    for k, eqn in enumerate(tr.eqns):
        for pos, i in enumerate(eqn.inputs):
            if type(i) is Var and i.index in slots:
                uses.setdefault(i.index, []).append((k, pos))
    for o in tr.outs:
        if type(o) is Var and o.index in slots:
            uses.setdefault(o.index, []).append((-1, -1))
    return uses


def _refuse(cmp: Any, where: str, why: str,
            so: str = "the function may jump there (not abs-smooth)") -> None:
    raise NotAbsSmoothError(
        f"{where}: {cmp.prim.name}: the comparison is tied at this point and {why}, so {so}; "
        "write the branch with knp.relu, knp.maximum, knp.minimum or knp.abs."
    )


def _directions(tr: Traced) -> dict[int, Any]:
    rng = np.random.default_rng(0)
    return {v.index: rng.standard_normal((3,) + tuple(v.shape)).astype(np.float64)
            for v in tr.in_vars}


def _tangent(i: Any, tan: dict, shape: tuple) -> np.ndarray:
    t = tan.get(i.index) if type(i) is Var else None
    return np.zeros((3,) + shape) if t is None else np.broadcast_to(t, (3,) + shape)


def _classify(tr: Traced, cmp: Any, use: Any, tan: dict, where: str) -> np.ndarray:
    """Per output entry of the ``where``: 0 untied, 1 maximum, -1 minimum, 2 branch A."""
    shape = tuple(np.shape(tr.vals[use.out.index]))
    a, b = (np.broadcast_to(_value(i, tr.vals), shape) for i in cmp.inputs)
    A, B = (np.broadcast_to(_value(i, tr.vals), shape) for i in use.inputs[1:])
    tie = np.equal(a, b)
    scale = np.maximum(np.maximum(np.abs(A), np.abs(B)), 1.0)
    eps = np.finfo(np.result_type(A, B, np.float32)).eps
    with np.errstate(invalid="ignore"):
        differ = ~(np.abs(A - B) <= 16 * eps * scale) | ~np.isfinite(scale)
    if np.any(tie & differ):
        _refuse(cmp, where, "the two branches of its `where` differ there")
    s = _ORIENT[cmp.prim.name]
    dz = s * (_tangent(cmp.inputs[0], tan, shape) - _tangent(cmp.inputs[1], tan, shape))
    dgap = _tangent(use.inputs[1], tan, shape) - _tangent(use.inputs[2], tan, shape)
    vv = np.sum(dz * dz, axis=0)
    if np.any(tie & (vv == 0)):
        _refuse(cmp, where, "its switching quantity is stationary there (no half-space)")
    c = np.sum(dgap * dz, axis=0) / np.where(vv == 0, 1.0, vv)
    resid = np.sqrt(np.sum((dgap - c * dz) ** 2, axis=0))
    size = np.sqrt(np.sum(dgap * dgap, axis=0)) + np.sqrt(vv) * np.maximum(np.abs(c), 1.0)
    if np.any(tie & (resid > _JUNCTION_TOL * size)):
        _refuse(cmp, where, "the gap between the branches of its `where` is not a multiple of "
                            "the switching quantity to first order (the branches part along "
                            "the switching surface)")
    rel = np.abs(c) * np.sqrt(vv) / np.maximum(size, np.finfo(np.float64).tiny)
    kind = np.where(rel <= _JUNCTION_TOL, 2, np.where(c > 0, 1, -1))
    return np.where(tie, kind, 0)


def _replay(tr: Traced, tied: set[int], kinds: dict[int, np.ndarray]) -> Traced:
    """Re-trace with tied comparisons as constants and the classified wheres rewritten."""
    new = Trace()
    env: dict[int, Any] = {v.index: new.new_input(tr.vals[v.index]) for v in tr.in_vars}
    try:
        for k, eqn in enumerate(tr.eqns):
            args = eqn.args(env)
            if eqn.out.index in tied:  # locally constant where it is not tied
                env[eqn.out.index] = np.asarray(tr.vals[eqn.out.index])
                continue
            res = bind(eqn.prim, *args, **eqn.params)
            if k in kinds:
                res = _rewrite(kinds[k], args, res)
            env[eqn.out.index] = res
    finally:
        new.active = False
    out = rebuilt(new, env, tr)
    out.unrewritten = tr
    return out


def _rewrite(kind: np.ndarray, args: list, res: Any) -> Any:
    _, A, B = args
    for code, alt in ((1, lambda: Maximum.instance(A, B)),  # type: ignore[attr-defined]
                      (-1, lambda: Minimum.instance(A, B)),  # type: ignore[attr-defined]
                      (2, lambda: A)):
        mask = kind == code
        if np.any(mask):
            res = Where.instance(mask, alt(), res)  # type: ignore[attr-defined]
    return res


def plain_ad_vector(tr: Traced, policy: KinkPolicy) -> np.ndarray:
    """Plain backward mode's vector (flat) under ``policy``, of the program as written: a
    trace rewritten here is differentiated before the rewrite, where a tied ``where``
    follows its condition (its maximum/minimum form's choice may be another vector)."""
    src = tr.unrewritten or tr
    out, _ = scalar_output(src, "certify")
    spec = FlatSpec(src)
    if out is None:
        return np.zeros(spec.n)
    ct = reverse_sweep(src.eqns, src.vals, {out.index: np.ones(out.shape, out.dtype)}, policy,
                       keep=set(spec.slots))
    return spec.join([ct.get(s) for s in spec.slots])
