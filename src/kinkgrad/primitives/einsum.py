"""Einstein summation: ``einsum(subscripts, *operands)`` with NumPy's semantics.

Multilinear, hence smooth. The subscripts are normalised once, at the call (explicit output,
ellipses replaced by letters, implicit outputs in NumPy's alphabetical order); a call with
more than two operands is contracted left to right as a chain of one- and two-operand nodes,
each keeping only the labels that a later operand or the output needs. Every node then costs
2 x (product of its label sizes) in paper A's model and its VJP at most twice that per
operand, so the cheap-gradient bound ``omega`` holds whatever the number of operands.
Written against the module-level ``np``, which the array backends rebind.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from .._core.primitive import Primitive, _size, register, summation_roundings
from .._core.tracer import bind
from ..errors import ShapeError, UnsupportedOperationError

_LETTERS = string.ascii_letters


def _unique(spec: str) -> str:
    return "".join(dict.fromkeys(spec))


def parse(subscripts: str, shapes: list[tuple]) -> tuple[list[str], str]:
    """Explicit input specs and output spec, ellipses replaced by unused letters (NumPy's
    right-aligned broadcasting of the ``...`` dimensions)."""
    if not isinstance(subscripts, str):
        raise UnsupportedOperationError(
            "einsum: only the subscripts-string form einsum('ij,jk->ik', a, b) is supported; "
            "rewrite the sublist form as a string.")
    s = subscripts.replace(" ", "")
    lhs, arrow, rhs = s.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ShapeError(f"einsum: {subscripts!r} names {len(ins)} operands but {len(shapes)} "
                         "were given; pass one array per comma-separated term.")
    for term in ins + ([rhs] if arrow else []):
        bad = set(term.replace("...", "")) - set(_LETTERS)
        if bad or term.count("...") > 1:
            raise ShapeError(f"einsum: invalid subscripts {subscripts!r}; use letters a-z, A-Z "
                             "and at most one '...' per term.")
    used = set(s) & set(_LETTERS)
    free = [c for c in _LETTERS if c not in used]
    n_ell = 0
    for term, shape in zip(ins, shapes):
        explicit = len(term.replace("...", ""))
        if "..." in term:
            n_ell = max(n_ell, len(shape) - explicit)
        if len(shape) < explicit or ("..." not in term and len(shape) != explicit):
            raise ShapeError(f"einsum: term {term!r} has {explicit} labels but its operand has "
                             f"shape {tuple(shape)}; give one label per axis (or '...').")
    ell = "".join(free[:n_ell])
    specs = []
    for term, shape in zip(ins, shapes):
        k = len(shape) - len(term.replace("...", ""))
        specs.append(term.replace("...", ell[n_ell - k:] if k else ""))
    if arrow:
        out = rhs.replace("...", ell)
    else:  # NumPy: the ellipsis dimensions, then the labels used once, alphabetically
        joined = "".join(t.replace("...", "") for t in ins)
        out = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1))
    missing = set(out) - set("".join(specs))
    if missing or len(set(out)) != len(out):
        raise ShapeError(f"einsum: output labels of {subscripts!r} must be distinct and appear "
                         "in an input term.")
    sizes: dict[str, int] = {}
    for spec, shape in zip(specs, shapes):
        for c, d in zip(spec, shape):
            if d != 1 and sizes.get(c, 1) not in (1, d):
                raise ShapeError(f"einsum: label {c!r} of {subscripts!r} has sizes "
                                 f"{sizes[c]} and {d}; the operands' axes must agree.")
            sizes[c] = max(sizes.get(c, 1), d)
    return specs, out


def _sizes(specs: tuple, shapes: Any) -> dict:
    sizes: dict[str, int] = {}
    for spec, shape in zip(specs, shapes):
        for c, d in zip(spec, shape):
            sizes[c] = max(sizes.get(c, 1), int(d))
    return sizes


@register
class Einsum(Primitive):
    """``einsum(subscripts, *operands)``, multilinear and smooth. The JVP substitutes each
    tangent for its operand; the VJP of an operand contracts the cotangent with the other
    operand onto that operand's labels (labels it sums alone are broadcast back, repeated
    labels are put back on the diagonal, size-1 broadcast axes are summed)."""

    name = numpy_name = "einsum"
    bilinear = True
    omega = 6.0

    def __call__(self, subscripts: str, *operands: Any, optimize: Any = None) -> Any:
        if not operands:
            raise ShapeError("einsum: no operands; pass the arrays after the subscripts.")
        specs, out = parse(subscripts, [tuple(np.shape(o)) for o in operands])
        if len(operands) <= 2:
            return bind(self, *operands, specs=tuple(specs), out=out)
        cur, cur_spec = operands[0], specs[0]
        for j in range(1, len(operands)):
            later = set(out) | set("".join(specs[j + 1:]))
            if j == len(operands) - 1:
                res = out
            else:
                res = "".join(c for c in _unique(cur_spec + specs[j]) if c in later)
            cur = bind(self, cur, operands[j], specs=(cur_spec, specs[j]), out=res)
            cur_spec = res
        return cur

    def pp_params(self, params):
        return f"[{','.join(params['specs'])}->{params['out']}]"

    def impl(self, *operands, specs, out):
        return np.einsum(f"{','.join(specs)}->{out}", *operands)

    def cost(self, in_shapes, out_shape, params):
        return 2 * _size(list(_sizes(params["specs"], in_shapes).values()))

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        n = sum(1 for k in needs if k)
        return n * self.cost(in_shapes, out_shape, params) + max(n - 1, 0) * _size(out_shape)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        c = self.cost(in_shapes, out_shape, params)
        # the contraction onto each needed operand and its accumulation
        return sum(c + _size(s) for s, k in zip(in_shapes, needs) if k)

    def rounding(self, args, out, params):  # each entry a sum over the contracted labels
        sizes: dict[str, int] = {}
        for spec, x in zip(params["specs"], args):
            sizes.update(zip(spec, np.shape(x)))
        m = _size([k for c, k in sizes.items() if c not in params["out"]])
        magnitude = self.impl(*(np.abs(x) for x in args), **params)
        return (summation_roundings(m) + 1.0) * np.abs(magnitude)

    def jvp(self, sel, tangents, args, out, params):
        specs, o = params["specs"], params["out"]
        res = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            terms = [("..." + s) if j == i else s for j, s in enumerate(specs)]
            ops = [t if j == i else a for j, a in enumerate(args)]
            term = np.einsum(f"{','.join(terms)}->...{o}", *ops)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        specs, o = params["specs"], params["out"]
        sizes = _sizes(specs, [np.shape(a) for a in args])
        res = []
        for i, need in enumerate(needs):
            res.append(self._vjp_one(i, g, args, specs, o, sizes) if need else None)
        return tuple(res)

    def _vjp_one(self, i: int, g: Any, args: Any, specs: tuple, o: str, sizes: dict) -> Any:
        spec, shape = specs[i], tuple(np.shape(args[i]))
        others = [(s, a) for j, (s, a) in enumerate(zip(specs, args)) if j != i]
        avail = set(o) | set("".join(s for s, _ in others))
        u = _unique(spec)
        keep = "".join(c for c in u if c in avail)
        terms = ["..." + o] + [s for s, _ in others]
        r = np.einsum(f"{','.join(terms)}->...{keep}", g, *[a for _, a in others])
        nb = np.ndim(r) - len(keep)
        lone = [c for c in u if c not in avail]  # summed in this operand alone: broadcast
        if lone:
            r = np.reshape(r, tuple(np.shape(r)) + (1,) * len(lone))
            order = keep + "".join(lone)
            r = np.transpose(r, tuple(range(nb)) + tuple(nb + order.index(c) for c in u))
            r = np.broadcast_to(r, tuple(np.shape(r)[:nb]) + tuple(sizes[c] for c in u))
        if len(u) != len(spec):  # repeated labels: back onto the diagonal
            fresh = [c for c in _LETTERS if c not in set("".join(specs)) | set(o)]
            full, deltas, seen = "", [], set()
            for c in spec:
                if c in seen:
                    d = fresh.pop(0)
                    full += d
                    deltas.append((c + d, np.eye(sizes[c], dtype=np.result_type(r))))
                else:
                    full += c
                    seen.add(c)
            r = np.einsum(f"...{u},{','.join(t for t, _ in deltas)}->...{full}", r,
                          *[e for _, e in deltas])
        axes = tuple(nb + k for k, d in enumerate(shape) if d == 1 and np.shape(r)[nb + k] != 1)
        if axes:  # size-1 axes broadcast against the other operand
            r = np.sum(r, axis=axes, keepdims=True)
        return r

    def samples(self, rng, dtype=np.float64):
        def r(*s: int) -> np.ndarray:
            return rng.normal(size=s).astype(dtype)

        return [((r(3, 4), r(4, 2)), {"specs": ("ij", "jk"), "out": "ik"}),
                ((r(3, 4),), {"specs": ("ij",), "out": "ji"}),
                ((r(3, 3),), {"specs": ("ii",), "out": ""}),
                ((r(3, 3),), {"specs": ("ii",), "out": "i"}),
                ((r(2, 3), r(4)), {"specs": ("ij", "k"), "out": "ikj"}),
                ((r(2, 3, 4), r(2, 4)), {"specs": ("bij", "bj"), "out": "bi"}),
                ((r(3, 4), r(3, 5)), {"specs": ("ij", "ik"), "out": "i"}),
                ((r(3, 1), r(1, 4)), {"specs": ("ij", "ij"), "out": "ij"})]
