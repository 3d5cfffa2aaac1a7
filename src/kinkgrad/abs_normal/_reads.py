"""Whether the decisions f took on traced values hold next to x, so that the trace is f there.

``knp.argmax(x)`` (``argmin``, ``argsort``, ``knp.where(cond)``, a bare ``Tracer.value``)
is computed on the value at the traced point and enters the program as a constant:
``x[knp.argmax(x)]`` traces as ``x[0]`` at x = (1, 1), a smooth program whose only gradient
is (1, 0), while f is max(x0, x1), whose Clarke subdifferential is the segment from (1, 0)
to (0, 1). The program is f on the set where every decision holds, so a set-valued answer
(``in_clarke``, ``subdifferential``, ``certify``, ``clarke_grad``, ``directional``, the
abs-normal form, ``stationarity``, ``minimality``) speaks of f only where that set holds a
neighbourhood of x (radius 0) or the ball of radius r around x (2-norm of the flat x).

A decision's margin: for argmax and argmin, the least gap between the best entry of a
reduced slice and the next one (0 at a tie); for argsort, the least gap between neighbours
in sorted order; for ``where(cond)`` of a traced comparison of a and b, the least |a - b|.
A decision holds
- on values that are inputs (or constants): margin > 2 r (in the ball an entry moves by at
  most r, a difference of two by at most 2 r); at radius 0, margin > 0;
- on computed values at radius 0: where the replay in a wider precision
  (:meth:`._forward_rounding.ForwardRounding.wide`) takes the same decision with a margin
  beyond ``_TRUSTED`` times its estimated error on either side
  (:meth:`~._forward_rounding.ForwardRounding.errors`), as the sides of a kink there;
- on computed values at a radius > 0: never (how far they move in the ball is not bounded);
- after a bare ``Tracer.value``: never (what f computed from it is not seen).
Otherwise :class:`~kinkgrad.errors.ValueReadError` (a NotAbsSmoothError: the callers that
answer "undecided" at a point they cannot describe answer it here).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.program import Var
from ..errors import ValueReadError
from ..modes.api import Traced

__all__ = ["check_reads"]

_FIX = {"argmax": "knp.max (or knp.maximum)", "argmin": "knp.min (or knp.minimum)",
        "argsort": "knp.sort (or knp.topk, knp.median)",
        "nonzero": "knp.where(cond, a, b) (or knp.relu, knp.maximum)"}
_WHAT = {"argmax": "index", "argmin": "index", "argsort": "order", "nonzero": "entries"}


def _gap(kind: str, axis: Any, v: Any) -> tuple[Any, float]:
    """(the decision, its margin) of ``kind`` along ``axis`` on the values v."""
    v = np.asarray(v)
    if v.dtype.kind not in "fc":
        v = v.astype(np.float64)
    if axis is None:
        v, axis = v.reshape(-1), -1
    n = v.shape[axis] if v.ndim else 1
    if kind == "argsort":
        key = np.argsort(v, axis=axis, kind="stable")
        gaps = np.diff(np.sort(v, axis=axis), axis=axis) if n > 1 else np.zeros(0)
    else:
        s = v if kind == "argmax" else -v
        key = np.argmax(s, axis=axis)
        if n > 1:
            top = np.partition(s, n - 2, axis=axis)
            gaps = np.take(top, n - 1, axis=axis) - np.take(top, n - 2, axis=axis)
        else:
            gaps = np.zeros(0)
    with np.errstate(invalid="ignore"):
        margin = float(np.min(gaps)) if np.size(gaps) else np.inf
    return key, margin if margin == margin else -np.inf  # NOTE: NaN (inf - inf): unproven


def _comparison(tr: Traced, slot: int) -> Any:
    for e in tr.eqns:
        if e.out.index == slot:
            return e if e.prim.is_switch and len(e.inputs) == 2 else None
    return None


def _decision(tr: Traced, slot: int, how: tuple, vals: list) -> tuple[Any, float, list]:
    """(decision, margin, the slots it reads) of one read on the values ``vals``."""
    kind, axis = how
    if kind != "nonzero":
        key, margin = _gap(kind, axis, vals[slot])
        return key, margin, [slot]
    e = _comparison(tr, slot)
    a, b = (np.asarray(x) for x in e.args(vals))
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
        margin = float(np.min(d)) if d.size else np.inf
    # NOTE: compared again (a replay keeps the comparisons as computed)
    return np.asarray(e.prim.impl(a, b)), margin if margin == margin else -np.inf, [
        i.index for i in e.inputs if type(i) is Var]


def _error(forward: Any, slots: list[int]) -> float:
    """The replay's estimated error of the read values (of a and b: their sum), worst entry
    (:meth:`._forward_rounding.ForwardRounding.error`)."""
    return sum(float(np.max(forward.error(s), initial=0.0)) for s in slots)


def _refuse(where: str, kind: str, why: str) -> None:
    raise ValueReadError(
        f"{where}: f read knp.{kind if kind != 'nonzero' else 'where(cond)'} of a traced "
        f"value {why}; its {_WHAT[kind]} is a constant of the trace, so the traced program is "
        "f only where that choice holds and no set-valued answer about f follows. Write the "
        f"choice with {_FIX[kind]}, whose kinks kinkgrad sees, or ask away from the tie.")


def check_reads(tr: Traced, where: str, radius: float = 0.0) -> None:
    """Raise :class:`~kinkgrad.errors.ValueReadError` unless every decision f took on a
    traced value holds within ``radius`` of x (module docstring)."""
    decisions = tr.trace.decisions
    if not decisions:
        return
    if any(how is None for _, how in decisions):
        raise ValueReadError(
            f"{where}: f read a traced value's .value: what it computed from it (a branch, an "
            "index, a constant) is fixed at this point and kinkgrad cannot see where that "
            "changes, so no set-valued answer about f follows. Compute with kinkgrad.numpy "
            "(knp.where(cond, a, b), knp.maximum, knp.relu, knp.argmax); to look at values in f "
            "use kinkgrad.debug_print, which records no read.")
    inputs = {v.index for v in tr.in_vars}
    forward = None
    for slot, how in sorted(decisions, key=repr):
        kind = how[0]
        if kind == "nonzero" and _comparison(tr, slot) is None:
            raise ValueReadError(
                f"{where}: f read knp.where(cond) of a traced condition that is not a "
                "comparison; kinkgrad cannot see where it changes, so no set-valued answer "
                "about f follows. Write the choice with knp.where(cond, a, b) on a comparison.")
        key, margin, reads = _decision(tr, slot, how, tr.vals)
        if not margin > 0:
            _refuse(where, kind, f"at a tie (margin {margin:.3g})")
        if all(s in inputs for s in reads):
            if not margin > 2 * radius:
                _refuse(where, kind, f"within the ball: its margin {margin:.3g} <= 2 radius "
                                     f"= {2 * radius:.3g}")
            continue
        if radius > 0:
            _refuse(where, kind, "of computed values at a radius (how far they move in the "
                                 "ball is not bounded)")
        if forward is None:  # NOTE: the replay and its error estimate the checks of
            from ._forward_rounding import _TRUSTED, ForwardRounding  # f's switches run

            forward = ForwardRounding(tr, None)
        key_w, margin_w, _ = _decision(tr, slot, how, forward.wide())
        err = _error(forward, reads)
        if not (np.array_equal(key, key_w) and margin_w > 2 * _TRUSTED * err):
            _refuse(where, kind, f"whose margin {margin:.3g} is within the rounding of the "
                                 f"computed values (a wider replay: {float(margin_w):.3g}, "
                                 f"estimated error {err:.3g})")
