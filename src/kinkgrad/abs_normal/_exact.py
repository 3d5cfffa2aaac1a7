"""Exact values inside a multi-level abs form (tournaments, sorting networks, clip).

:func:`exactify` recomputes a form's created values exactly when one of its switches is
near 0, so that "z == 0" in the abs-normal program means exactly the tie it stands for. The
forms only move entries, take |.|, add, subtract and scale by powers of two, so exact dyadic
arithmetic suffices; three evaluators give the same (correctly rounded) values, cheapest
first: plain float64 when every step is provably exact, integers times one power of two,
and Fractions for anything else.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .._core.program import Var, value_of
from .._core.tracer import Trace

__all__ = ["exactify"]

_NEAR = 1e-7  # relative size under which a switch inside a multi-level form is recomputed


_to_frac = np.vectorize(lambda v: Fraction(float(v)), otypes=[object])
_to_float = np.vectorize(float, otypes=[np.float64])


def exactify(tr: Trace, start: int) -> None:
    """Recompute a multi-level abs form's values exactly when one of its switches is near 0.

    A form like max(max(a, b), c) evaluates max(a, b) as (a + b + |a - b|)/2, which rounds;
    the next switch max(a, b) - c could then miss (or fake) the tie a == c. The created
    equations only add, subtract, scale, index and take |.|, so rational arithmetic on the
    (exact) float inputs gives exact values; they are stored back rounded to the float type.
    """
    created = tr.eqns[start:]
    abs_in = [e.inputs[0].index for e in created if e.prim.name == "abs"]
    if len(abs_in) < 2:
        return
    first = min(e.out.index for e in created)
    ins = {i.index for e in created for i in e.inputs if type(i) is Var and i.index < first}
    scale = max([float(np.max(np.abs(tr.vals[i]))) for i in ins
                 if np.asarray(tr.vals[i]).size and np.asarray(tr.vals[i]).dtype.kind == "f"]
                + [0.0])
    # NOTE: a float16/float32 form rounds at ~eps of its inputs per level, which could flip
    # the sign of a switch that size (or fake a tie): "near" must cover that rounding too.
    eps = max([float(np.finfo(np.asarray(tr.vals[i]).dtype).eps) for i in abs_in
               if np.asarray(tr.vals[i]).dtype.kind == "f"] + [0.0])
    near = any(np.any(np.abs(tr.vals[i]) <= max(_NEAR, 64 * eps) * scale) for i in abs_in)
    if not near:
        return
    exact = _float64_exact(tr, created)
    if exact is None:
        exact = _dyadic(tr, created)
    if exact is None:
        exact = _rational(tr, created)
    for e in created:
        dt = np.asarray(tr.vals[e.out.index]).dtype
        tr.vals[e.out.index] = np.asarray(exact[e.out.index]).astype(dt)


def _rational(tr: Trace, created: list) -> dict[int, Any]:
    """The created equations' values in exact rational arithmetic (as float64)."""
    exact: dict[int, Any] = {}

    def val(x: Any) -> Any:
        if type(x) is Var:
            return exact[x.index] if x.index in exact else _to_frac(tr.vals[x.index])
        return _to_frac(x.value) if np.asarray(x.value).dtype.kind == "f" else x.value

    for e in created:
        exact[e.out.index] = np.asarray(e.prim.impl(*[val(i) for i in e.inputs], **e.params),
                                        dtype=object)
    return {k: _to_float(v) for k, v in exact.items()}


_shl = np.frompyfunc(lambda a, s: int(a) << int(s), 2, 1)


def _dyadic(tr: Trace, created: list) -> dict[int, Any] | None:
    """The rational values as integers times one power of two 2^E (None: an operation other
    than moves, |.|, +, - and products by powers of two; :func:`_rational` handles it).

    Floats are dyadic rationals; E is the least exponent of the inputs minus the number of
    halvings of the form, so every value is an integer multiple of 2^E and integer arithmetic
    is exact (and far cheaper than Fraction). Back to float64 by correctly rounded
    int -> float conversion and an exact power-of-two scaling (per element, as Python's
    correctly rounded division, where the result is subnormal)."""
    halvings = 0
    for e in created:
        name = e.prim.name
        if name == "mul":
            lits = [np.asarray(i.value, np.float64) for i in e.inputs if type(i) is not Var]
            if len(lits) != 1 or lits[0].size != 1 or abs(np.frexp(lits[0])[0].item()) != 0.5:
                return None
            halvings += max(0, 1 - int(np.frexp(lits[0])[1].item()))
        elif name not in _MOVES and name not in ("add", "sub"):
            return None
    first = min(e.out.index for e in created)
    floats: dict[int, np.ndarray] = {}
    for e in created:
        for i in e.inputs:
            v = np.asarray(value_of(i, tr.vals))
            # NOTE: integer constants too (clip(x, -1, 1)'s bounds): left unscaled they were
            # mixed with values scaled by 2^-E (clip's z at its upper bound 1 came out 1, not 0)
            if (type(i) is not Var or i.index < first) and v.dtype.kind in "fiu":
                if v.dtype.kind != "f" and np.any(np.abs(v.astype(np.float64)) > 2.0 ** 53):
                    return None  # not exact in float64: the rational path
                floats[id(i)] = v.astype(np.float64)
    if any(not np.all(np.isfinite(v)) for v in floats.values()):
        return None
    exps = [np.frexp(v[v != 0])[1] for v in floats.values()]
    exps = [x for x in exps if x.size]
    E = (min(int(x.min()) for x in exps) if exps else 0) - 53 - halvings
    ints: dict[int, Any] = {}
    for key, v in floats.items():
        m, ex = np.frexp(v)
        # NOTE: an object array even for a 0-d value: ufuncs given two bare Python ints convert
        # them to C longs (2^35 - 2^-18 scaled to 2^88 overflowed: an OverflowError)
        ints[key] = np.asarray(_shl(np.ldexp(m, 53).astype(np.int64),
                                    np.where(v != 0, ex - 53 - E, 0)), dtype=object)
    vals: dict[int, Any] = {}

    def val(x: Any) -> Any:
        if type(x) is Var and x.index in vals:
            return vals[x.index]
        if id(x) in ints:
            return ints[id(x)]
        return np.asarray(value_of(x, tr.vals))

    for e in created:
        args = [val(i) for i in e.inputs]
        if e.prim.name == "mul":
            k = next(j for j, i in enumerate(e.inputs) if type(i) is not Var)
            p2 = int(np.frexp(np.asarray(e.inputs[k].value, np.float64))[1].item()) - 1
            a = args[1 - k] * (-1 if np.asarray(e.inputs[k].value).item() < 0 else 1)
            if p2 >= 0:
                out = a * (1 << p2)
            else:
                out = a // (1 << -p2)
                if np.any(a % (1 << -p2) != 0):
                    return None
        else:
            out = e.prim.impl(*args, **e.params)
        vals[e.out.index] = np.asarray(out, dtype=object)
    return {k: _from_dyadic(v, E) for k, v in vals.items()}


def _from_dyadic(v: np.ndarray, E: int) -> np.ndarray:
    """float64 of the integers v times 2^E, correctly rounded."""
    div = np.frompyfunc(lambda a: a / (1 << -E) if E < 0 else float(a << E), 1, 1)
    try:
        f = np.ldexp(v.astype(np.float64), E)  # int -> float rounds once; scaling is exact
    except OverflowError:  # NOTE: a wide range of magnitudes makes the integers too big for
        return np.asarray(div(v), np.float64) + 0.0  # a float; Python's int / is exact
    small = (f != 0) & (np.abs(f) < np.finfo(np.float64).tiny)  # ...unless subnormal
    if np.any(small):
        f[small] = div(v[small]).astype(np.float64)
    return f + 0.0


_MOVES = {"transpose", "reshape", "getitem", "stack", "concatenate", "broadcast_to", "abs",
          "neg"}


def _float64_exact(tr: Trace, created: list) -> dict[int, Any] | None:
    """The same values in float64 when every operation is provably exact there, else None.

    Moves, |.| and negation are exact; a sum or difference is exact iff its TwoSum error
    term vanishes (Knuth; valid under round-to-nearest without overflow); a product by a
    power-of-two constant is exact iff dividing back recovers the operand (no underflow).
    Then the float64 values ARE the rational values (a fast path of :func:`_rational`,
    which handles anything else)."""
    vals: dict[int, Any] = {}

    def val(x: Any) -> Any:
        v = vals[x.index] if type(x) is Var and x.index in vals else value_of(x, tr.vals)
        v = np.asarray(v)
        return v.astype(np.float64) if v.dtype.kind == "f" else v

    with np.errstate(all="ignore"):
        for e in created:
            name, args = e.prim.name, [val(i) for i in e.inputs]
            if name in _MOVES:
                out = np.asarray(e.prim.impl(*args, **e.params))
            elif name in ("add", "sub") and all(a.dtype.kind == "f" for a in args):
                a, b = args[0], args[1] if name == "add" else -args[1]
                out = a + b
                bb = out - a
                err = (a - (out - bb)) + (b - bb)
                if not np.all(np.isfinite(out)) or np.any(err != 0):
                    return None
            elif name == "mul" and all(a.dtype.kind == "f" for a in args):
                lit = [k for k, i in enumerate(e.inputs) if type(i) is not Var
                       and args[k].size == 1 and abs(np.frexp(args[k])[0].item()) == 0.5]
                if not lit:
                    return None
                c, a = args[lit[0]], args[1 - lit[0]]
                out = a * c
                if not np.all(np.isfinite(out)) or np.any(out / c != a):
                    return None
            else:
                return None
            vals[e.out.index] = out
    # NOTE: + 0.0 turns -0.0 into +0.0, as the rational path (Fraction(-0.0) == 0) does.
    return {k: v + 0.0 if v.dtype.kind == "f" else v for k, v in vals.items()}
