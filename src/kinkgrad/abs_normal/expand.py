"""Re-trace a program so that ``abs`` is its only nonsmooth primitive.

Every nonsmooth primitive has an ``abs_form``: the op written with smooth primitives and
``knp.abs`` of its switches (relu(t) = (t + |t|)/2, max(a, b) = (a + b + |a - b|)/2, a
tournament of those for max over axes, one vectorized level at a time, an odd-even
transposition network for sort, two nested max/min for clip, sum |x| and max |x| for the 1
and inf norms). Replaying the traced program through those forms gives the *abs-normal
program*: its ``abs`` nodes are the switching variables z_1..z_s of paper B (arXiv
2407.09639), numbered in program order, which is what makes L strictly lower triangular.

Two details keep the expansion faithful to the user's program:

* values are snapped to the original program's values, node by node, so that rounding in a
  form such as (a + b + |a - b|)/2 cannot move a downstream switch off (or onto) a kink;
* inside a multi-level form (tournament, sorting network, clip) the intermediate values are
  re-evaluated in exact rational arithmetic when some switch there is at or near zero, so
  that "z == 0" means exactly the tie it stands for (:mod:`._exact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.program import Var, _var_name
from .._core.tracer import Trace, Tracer, bind
from ..errors import KinkgradError, NotAbsSmoothError
from ..kinks import KinkPolicy
from ..modes._wide import wide_values
from ..modes.api import Traced
from ._exact import exactify

__all__ = ["EqnMeta", "Expanded", "expand"]

_MAX_PASSES = 4


@dataclass(frozen=True)
class EqnMeta:
    """Where an equation of the abs-normal program comes from.

    Attributes:
        origin: index of the equation of the user's program it belongs to.
        producer: name of the primitive whose abs form created it (its own name if the
            equation was copied unchanged).
        params: that primitive's parameters.
        ordinal: rank among the ``abs`` equations created by that abs form (-1 otherwise).
    """

    origin: int
    producer: str
    params: Any
    ordinal: int


class Expanded:
    """The abs-normal program of a trace: equations, values and switch bookkeeping.

    Switch i is entry ``i - offsets[j]`` (C order) of the input of the j-th ``abs``
    equation (``abs_eqns[j]``); its value is z_i, the output of that equation is |z_i|.
    """

    def __init__(self, traced: Traced, original: Traced, meta: list[EqnMeta]) -> None:
        self.traced = traced
        self.original = original
        self.meta = meta
        self.abs_eqns = [k for k, e in enumerate(traced.eqns) if e.prim.name == "abs"]
        sizes = [int(np.prod(traced.eqns[k].out.shape, dtype=np.int64)) for k in self.abs_eqns]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(int)
        self.s = int(self.offsets[-1])
        self._orig_names = {k: _var_name(e.out.index) for k, e in enumerate(original.eqns)}
        self._per_origin: dict[int, int] = {}
        self._z_wide: np.ndarray | None = None
        for k in self.abs_eqns:
            o = meta[k].origin
            self._per_origin[o] = self._per_origin.get(o, 0) + 1

    @property
    def eqns(self) -> list:
        return self.traced.eqns

    @property
    def vals(self) -> list:
        return self.traced.vals

    def z_slot(self, j: int) -> int:
        return self.eqns[self.abs_eqns[j]].inputs[0].index

    def u_slot(self, j: int) -> int:
        return self.eqns[self.abs_eqns[j]].out.index

    def z_values(self, j: int) -> np.ndarray:
        return np.asarray(self.vals[self.z_slot(j)]).reshape(-1)

    def z(self) -> np.ndarray:
        """All switching values z_1..z_s (float64)."""
        return self._switches(self.vals)

    def _switches(self, vals: list) -> np.ndarray:
        """z_1..z_s read from the program's values ``vals`` (float64)."""
        if not self.abs_eqns:
            return np.zeros(0)
        return np.concatenate([np.asarray(vals[self.z_slot(j)]).reshape(-1)
                               for j in range(len(self.abs_eqns))]).astype(np.float64)

    def z_wide(self) -> np.ndarray:
        """z_1..z_s of f's values replayed in a wider precision (:func:`wide_values`: the
        same branches), rounded to float64 (computed once): where cancellation leaves
        switching values of 1e-14 from terms of size 1, the computed ones carry their terms'
        rounding, 1e-16, and these about 1e-19."""
        if self._z_wide is None:
            self._z_wide = self._switches(wide_values(self.traced) if self.abs_eqns else [])
        return self._z_wide

    def locate(self, i: int) -> tuple[int, int]:
        """(abs equation number j, entry) of switch i."""
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return j, int(i - self.offsets[j])

    def locate_many(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`locate` of many switches at once: (abs equation numbers, entries)."""
        ids = np.asarray(ids, dtype=np.int64)
        j = np.searchsorted(self.offsets, ids, side="right") - 1
        return j, ids - self.offsets[j]

    def z_seeds(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reverse-sweep seeds of switches ``ids``: (their z slots, flat entries)."""
        j, entries = self.locate_many(ids)
        z_slots = np.array([self.z_slot(k) for k in range(len(self.abs_eqns))], np.int64)
        return z_slots[j], entries.astype(np.int64)

    def switch_meta(self, j: int) -> EqnMeta:
        return self.meta[self.abs_eqns[j]]

    def name(self, i: int) -> str:
        """A readable name: the user's node, its primitive, and the entry, e.g.
        ``c[0,3] (relu #2)``; ``/k`` marks the k-th abs of a multi-abs form (for max/min
        over axes the tournament level k, whose first index is the pair: ``m/0[3]`` compares
        items 6 and 7)."""
        j, e = self.locate(i)
        m = self.switch_meta(j)
        shape = self.eqns[self.abs_eqns[j]].out.shape
        idx = ",".join(str(v) for v in np.unravel_index(e, shape)) if shape else ""
        orig = self.original.eqns[m.origin]
        part = f"/{m.ordinal}" if self._per_origin[m.origin] > 1 else ""
        return (f"{self._orig_names[m.origin]}{part}[{idx}] "
                f"({orig.prim.name} #{m.origin})")


# ---------------------------------------------------------------------------- expansion
def expand(original: Traced, keep_euclidean: bool = False) -> Expanded:
    """The abs-normal program of a trace (abs the only nonsmooth primitive left; with
    ``keep_euclidean``, Euclidean norms are kept as they are, also at zero).

    Raises:
        NotAbsSmoothError: a Euclidean norm at 0, a tied comparison, or a nonsmooth primitive
            without an abs form sitting at a kink.
    """
    meta = [EqnMeta(k, e.prim.name, e.params, 0 if e.prim.name == "abs" else -1)
            for k, e in enumerate(original.eqns)]
    cur = original
    for _ in range(_MAX_PASSES):
        cur, meta, changed = _expand_pass(cur, meta, keep_euclidean)
        if not changed:
            return Expanded(cur, original, meta)
    raise KinkgradError("abs_normal_form: the abs forms did not reduce to abs after "
                        f"{_MAX_PASSES} passes; a primitive's abs_form calls itself.")


def _needs_form(prim: Any) -> bool:
    return prim.nonsmooth and not prim.is_switch and prim.name != "abs"


def _expand_pass(src: Traced, meta: list[EqnMeta], keep_euclidean: bool = False
                 ) -> tuple[Traced, list[EqnMeta], bool]:
    tr = Trace()
    env: dict[int, Any] = {v.index: tr.new_input(src.vals[v.index]) for v in src.in_vars}
    new_meta: list[EqnMeta] = []
    changed = False
    try:
        for k, eqn in enumerate(src.eqns):
            prim = eqn.prim
            args = eqn.args(env)
            start, slot_start = len(tr.eqns), len(tr.vals)
            res = None
            if prim.is_switch:
                prim.abs_form([_value(a) for a in args], eqn.params)  # raises at a tie
            elif _needs_form(prim) and not (keep_euclidean and prim.name == "norm"
                                            and eqn.params["ord"] == 2):
                res = prim.abs_form(args, eqn.params)
                if res is None:
                    _refuse_kinks(prim, [_value(a) for a in args], src.vals[eqn.out.index],
                                  eqn.params)
            if res is None:
                res = bind(prim, *args, **eqn.params)
                new_meta.extend([meta[k]] * (len(tr.eqns) - start))
            else:
                changed = True
                ordinal = 0
                for e in tr.eqns[start:]:
                    is_abs = e.prim.name == "abs"
                    new_meta.append(EqnMeta(meta[k].origin, prim.name, eqn.params,
                                            ordinal if is_abs else -1))
                    ordinal += is_abs
                exactify(tr, start)
                _check_same(prim, res, src.vals[eqn.out.index], [_value(a) for a in args])
            if type(res) is Tracer and res.var.index >= slot_start:
                tr.vals[res.var.index] = src.vals[eqn.out.index]
                res.value = src.vals[eqn.out.index]
            env[eqn.out.index] = res
    finally:
        tr.active = False
    in_vars = [env[v.index].var for v in src.in_vars]
    outs = []
    for o in src.outs:
        if type(o) is Var and type(env[o.index]) is Tracer:
            outs.append(env[o.index].var)
        elif type(o) is Var:
            from .._core.program import Literal

            outs.append(Literal(np.asarray(env[o.index])))
        else:
            outs.append(o)
    return Traced(tr, in_vars, src.in_tree, outs, src.out_tree), new_meta, changed


def _value(a: Any) -> Any:
    return a._value if type(a) is Tracer else a  # NOTE: the engine's read, not f's


def _refuse_kinks(prim: Any, args: list, out: Any, params: dict) -> None:
    """A nonsmooth primitive without an abs form is acceptable only away from its kinks."""
    _, kinks = prim.select(KinkPolicy(), args, out, params)
    if kinks:
        raise NotAbsSmoothError(
            f"abs_normal_form: `{prim.name}` sits at a kink here and has no abs form (it is not "
            "written with |.|); evaluate at another point or write it with knp.abs, knp.relu, "
            "knp.maximum or knp.minimum.")


def _check_same(prim: Any, res: Any, want: Any, args: list) -> None:
    got = np.asarray(_value(res))
    want = np.asarray(want)
    if got.shape != want.shape:
        raise KinkgradError(f"abs_normal_form: the abs form of `{prim.name}` has shape "
                            f"{got.shape}, the primitive {want.shape}; fix its abs_form.")
    # NOTE: the form rounds relative to its inputs (clip of 3e12 to [-1, 1] forms 3e12 + 1),
    # and a float16 form at ~1e-3 of them: the tolerance scales with both.
    mags = [float(np.max(np.abs(a))) for a in [want, *args]
            if np.asarray(a).size and np.asarray(a).dtype.kind == "f"]
    scale = 1.0 + max(mags, default=0.0)
    eps = float(np.finfo(want.dtype).eps) if want.dtype.kind == "f" else 0.0
    with np.errstate(all="ignore"):
        err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    if not err <= max(1e-6, 16 * eps) * scale:  # NaN fails too
        if not all(np.all(np.isfinite(a)) for a in args
                   if np.asarray(a).dtype.kind == "f"):  # NOTE: inf - inf in its |.| form
            raise NotAbsSmoothError(
                f"abs_normal_form: an argument of `{prim.name}` is not finite here (an "
                "overflow: float16 stops at 65504), so its form with |.| is NaN; compute in "
                "a wider dtype (x.astype(np.float32)) or keep the values in range.")
        raise KinkgradError(f"abs_normal_form: the abs form of `{prim.name}` does not "
                            "reproduce its value; fix its abs_form.")
