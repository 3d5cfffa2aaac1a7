"""A batching interpreter of a traced program: values with a leading batch axis B (one entry
per example) and one reverse sweep with per-example cotangents.

The program is traced once at one example (shapes without the batch axis). Every slot is
then either *batched* (its value is ``(B,) + shape``, one entry per example) or not (the same
for every example: parameters and what is computed from them alone). The reverse sweep keeps
the batch axis on every cotangent, including those of unbatched slots, so the cotangent of a
parameter comes out as ``(B,) + shape``: row b is the gradient of example b's output alone.

Rules by primitive (each is the primitive's own rule applied to batched operands, so kinks get
the same choice as a plain ``grad`` of one example under the same policy):

* broadcasting and axis primitives (elementwise, comparisons, ``where``, reductions over
  negative axes, ``sort``, ``cumsum``, ``concatenate``, ``stack``): every operand gets the
  batch axis in front (unbatched ones as a stride-0 broadcast view, so their cotangents stay
  per example) and the rule runs once on the batch;
* shape primitives (``reshape``, ``transpose``, ``getitem``, ``broadcast_to``): linear, so the
  batched value is the rule's JVP and the per-example cotangent its VJP with the batch as the
  rules' leading tangent/cotangent axis;
* ``matmul`` with operands of at most 2 dimensions per example: one stacked product (B, m, k)
  @ (k, n); the per-example cotangent of an unbatched matrix is a stack of products (outer
  products for vectors);
* ``conv2d`` with an unbatched kernel: the examples' images are one larger batch; the
  per-example kernel cotangent is one stacked product of window matrices;
* ``max_pool2d``: the examples' images are one larger batch (windows never mix images);
* anything else: a loop over the examples for that one equation (documented fallback).

Parameters that are batched and other cases outside these rules take the loop as well, so
the interpreter is always exact; only its speed depends on the rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.program import Equation, Var
from ..kinks import KinkPolicy
from ..primitives.conv import conv_value, conv_w_per_example, conv_x_transpose

__all__ = ["batched_forward", "batched_gradient", "batched_reverse"]

_BROADCASTING = {"add", "sub", "mul", "div", "neg", "pow", "abs", "relu", "leaky_relu",
                 "maximum", "minimum", "clip", "exp", "log", "log1p", "sqrt", "tanh", "sin",
                 "cos", "sigmoid", "softplus", "erf", "logaddexp", "where", "greater",
                 "greater_equal", "less", "less_equal", "equal", "not_equal"}
_AXIS = {"sum", "prod", "max", "min", "logsumexp", "sort", "cumsum", "norm", "concatenate",
         "stack"}
_SHAPE = {"reshape", "transpose", "getitem", "broadcast_to"}


def _axes_negative(params: dict) -> bool:
    ax = params.get("axis")
    if ax is None:
        return "axis" not in params
    ax = ax if isinstance(ax, tuple) else (ax,)
    return all(int(a) < 0 for a in ax)


def _adjacent_advanced(idx: tuple) -> bool:
    """True when prepending a full slice keeps NumPy's placement of the indexed axes: the
    array entries (and integer ones, which count as arrays when arrays are present) form one
    run, so their axes stay in place; separated runs go to the front, before the batch."""
    pos = [k for k, i in enumerate(idx) if isinstance(i, (np.ndarray, list))]
    if not pos:
        return True
    pos += [k for k, i in enumerate(idx) if isinstance(i, (int, np.integer))]
    pos = sorted(set(pos))
    return pos == list(range(pos[0], pos[-1] + 1))


def _kind(eqn: Equation, flags: list[bool], ex_shapes: list[tuple]) -> str:
    name = eqn.prim.name
    if name in _BROADCASTING:
        return "broadcast"
    if name in _AXIS and _axes_negative(eqn.params):
        return "broadcast"
    if name in _SHAPE and sum(flags) == 1 and len(flags) == 1:
        if name == "getitem" and eqn.params.get("advanced") and \
                not _adjacent_advanced(eqn.params["idx"]):
            return "loop"
        return "linear"
    if name == "matmul" and all(len(s) in (1, 2) for s in ex_shapes):
        return "matmul"
    if name == "conv2d" and flags[0] and not flags[1]:
        return "conv"
    if name == "max_pool2d":
        return "pool"
    return "loop"


# ---------------------------------------------------------------------- operand layout
def _lifted(a: Any, batched: bool, shape: tuple, rank: int, n: int) -> Any:
    """``a`` as ``(B,) + (1,) * (rank - len(shape)) + shape``: a reshape of a batched value,
    a stride-0 broadcast view of an unbatched one."""
    full = (n,) + (1,) * (rank - len(shape)) + tuple(shape)
    if batched:
        return np.reshape(a, full)
    return np.broadcast_to(a, full)


def _operands(eqn: Equation, args: list, flags: list, n: int) -> list:
    """Every array operand of a broadcasting/axis rule with the batch axis in front."""
    rank = len(eqn.out.shape) if eqn.prim.name in _BROADCASTING else None
    out = []
    for inp, a, b in zip(eqn.inputs, args, flags):
        if type(inp) is not Var and np.ndim(a) == 0:
            out.append(a)  # a scalar constant broadcasts as it is
            continue
        shape = tuple(inp.shape) if type(inp) is Var else np.shape(a)
        out.append(_lifted(a, b, shape, len(shape) if rank is None else rank, n))
    return out


def _ex_shapes(eqn: Equation, args: list, flags: list) -> list[tuple]:
    return [tuple(i.shape) if type(i) is Var else
            tuple(np.shape(a)[1:] if b else np.shape(a)) for i, a, b in zip(eqn.inputs, args,
                                                                              flags)]


def _mat3(a: Any, batched: bool, shape: tuple, left: bool) -> Any:
    """A matmul operand of at most 2 dimensions per example as a 2-D (unbatched) or 3-D
    (batched) matrix: a vector is a row on the left and a column on the right."""
    if len(shape) == 1:
        core = (1, shape[0]) if left else (shape[0], 1)
    else:
        core = tuple(shape)
    return np.reshape(a, ((np.shape(a)[0],) if batched else ()) + core)


# ---------------------------------------------------------------------- forward
def _forward_one(eqn: Equation, args: list, flags: list, policy: KinkPolicy, ex_vals: list,
                 n: int) -> Any:
    prim, p = eqn.prim, eqn.params
    kind = _kind(eqn, flags, _ex_shapes(eqn, args, flags))
    if kind == "broadcast":
        return prim.impl(*_operands(eqn, args, flags, n), **p)
    if kind == "linear":
        t = prim.jvp(None, [args[0]], [ex_vals[0]], None, p)
        return np.reshape(t, (n,) + tuple(eqn.out.shape))
    if kind == "matmul":
        sa, sb = _ex_shapes(eqn, args, flags)
        a3, b3 = _mat3(args[0], flags[0], sa, True), _mat3(args[1], flags[1], sb, False)
        return np.reshape(np.matmul(a3, b3), (n,) + tuple(eqn.out.shape))
    if kind == "pool":  # the examples' images are one larger batch
        y = prim.impl(np.reshape(args[0], (-1,) + np.shape(args[0])[2:]), **p)
        return np.reshape(y, (n,) + tuple(eqn.out.shape))
    if kind == "conv":
        x, w = args
        y = conv_value(np.reshape(x, (-1,) + np.shape(x)[2:]), w, p)
        return np.reshape(y, (n,) + tuple(eqn.out.shape))
    outs = [prim.impl(*[a[b] if f else a for a, f in zip(args, flags)], **p) for b in range(n)]
    return np.stack([np.asarray(o) for o in outs])


def _rows(a: Any, flag: bool, rows: np.ndarray) -> Any:
    return a[rows] if flag else a


def batched_forward(eqns: list[Equation], vals: dict[int, Any], batched: dict[int, bool],
                    ex_vals: list, policy: KinkPolicy, n: int,
                    variants: dict[int, list] | None = None) -> None:
    """Evaluate the equations in place on ``vals`` (slot -> value), marking in ``batched``
    which slots carry the leading batch axis of size n. ``ex_vals`` are the values of the
    traced example (their shapes are the per-example shapes). ``variants`` maps an equation's
    position to ``[(rows, equation), ...]``: the same equation with other constants or
    parameters for those rows (traces of examples with other integer arguments)."""
    variants = variants or {}
    for k, eqn in enumerate(eqns):
        args = eqn.args(vals)
        flags = [type(i) is Var and batched[i.index] for i in eqn.inputs]
        ex = eqn.args(ex_vals)
        if k in variants:
            out = np.empty((n,) + tuple(eqn.out.shape), eqn.out.dtype)
            for rows, var in variants[k]:
                a = [_rows(v, f, rows) if type(i) is Var else i.value
                     for v, f, i in zip(args, flags, var.inputs)]
                out[rows] = _forward_one(var, a, flags, policy, ex, len(rows)) if any(flags) \
                    else var.prim.impl(*a, **var.params)
            bat = True
        elif not any(flags):
            out, bat = eqn.prim.impl(*args, **eqn.params), False
        else:
            out, bat = _forward_one(eqn, args, flags, policy, ex, n), True
        vals[eqn.out.index] = out if isinstance(out, np.ndarray) else np.asarray(out)
        batched[eqn.out.index] = bat


# ---------------------------------------------------------------------- reverse
def _vjp_one(eqn: Equation, args: list, flags: list, out: Any, g: Any, needs: list,
             policy: KinkPolicy, ex_vals: list, n: int) -> list:
    """Per-example cotangents ``(B,) + shape`` of the inputs in ``needs``."""
    prim, p = eqn.prim, eqn.params
    if not any(flags):  # the rules take g's leading axis as a batch of cotangents
        sel, _ = prim.select(policy, args, out, p)
        return list(prim.vjp(sel, g, args, out, p, needs))
    shapes = _ex_shapes(eqn, args, flags)
    kind = _kind(eqn, flags, shapes)
    if kind == "broadcast":
        ops = _operands(eqn, args, flags, n)
        sel, _ = prim.select(policy, ops, out, p)
        cts = prim.vjp(sel, g, ops, out, p, needs)
        return [None if c is None else np.reshape(c, (n,) + s) for c, s in zip(cts, shapes)]
    if kind == "linear":
        return list(prim.vjp(None, g, [ex_vals[0]], ex_vals[-1], p, needs))
    if kind == "matmul":
        (sa, sb), (fa, fb) = shapes, flags
        a3, b3 = _mat3(args[0], fa, sa, True), _mat3(args[1], fb, sb, False)
        g3 = np.reshape(g, (n, np.shape(a3)[-2], np.shape(b3)[-1]))
        ga = gb = None
        if needs[0]:
            ga = np.reshape(np.matmul(g3, np.swapaxes(b3, -1, -2)), (n,) + sa)
        if needs[1]:
            if len(sa) == 1:  # outer products a_b g_b^T, one per example
                a2 = np.reshape(args[0], (-1, sa[0])) if fa else np.reshape(args[0], (1, -1))
                gb = a2[:, :, None] * g3[:, 0, None, :] if len(sb) == 2 else \
                    np.broadcast_to(a2, (n, sa[0])) * g3[:, 0, :]
                gb = np.reshape(gb, (n,) + sb)
            else:
                gb = np.reshape(np.matmul(np.swapaxes(a3, -1, -2), g3), (n,) + sb)
        return [ga, gb]
    if kind == "pool":
        xm = np.reshape(args[0], (-1,) + np.shape(args[0])[2:])
        om = np.reshape(out, (-1,) + np.shape(out)[2:])
        sel, _ = prim.select(policy, [xm], om, p)
        gm = np.reshape(g, (-1,) + np.shape(g)[2:])
        return [np.reshape(prim.vjp(sel, gm, [xm], om, p, needs)[0], np.shape(args[0]))]
    if kind == "conv":
        x, w = args
        gx = gw = None
        if needs[0]:
            gm = np.reshape(g, (-1,) + np.shape(g)[2:])
            xs = (np.shape(gm)[0],) + np.shape(x)[2:]
            gx = np.reshape(conv_x_transpose(gm, w, xs, p), np.shape(x))
        if needs[1]:
            gw = conv_w_per_example(g, x, np.shape(w), p)
        return [gx, gw]
    return _vjp_loop(eqn, args, flags, out, g, needs, policy, n)


def _vjp_loop(eqn: Equation, args: list, flags: list, out: Any, g: Any, needs: list,
              policy: KinkPolicy, n: int) -> list:
    prim, p = eqn.prim, eqn.params
    rows: list[list] = [[] for _ in args]
    for b in range(n):
        ab = [a[b] if f else a for a, f in zip(args, flags)]
        sel, _ = prim.select(policy, ab, out[b], p)
        cts = prim.vjp(sel, g[b], ab, out[b], p, needs)
        for k, c in enumerate(cts):
            if needs[k]:
                shape = np.shape(ab[k])
                rows[k].append(np.broadcast_to(c, shape) if np.shape(c) != shape else c)
    return [np.stack(r) if needs[k] else None for k, r in enumerate(rows)]


def _vjp_variants(eqn: Equation, variants: list, args: list, flags: list, out: Any, g: Any,
                  needs: list, policy: KinkPolicy, ex: list, n: int) -> list:
    """Per-example cotangents of an equation whose constants differ between row groups."""
    res = [np.zeros((n,) + tuple(i.shape), g.dtype) if need else None
           for i, need in zip(eqn.inputs, needs)]
    for rows, var in variants:
        a = [_rows(v, f, rows) if type(i) is Var else i.value
             for v, f, i in zip(args, flags, var.inputs)]
        o = out[rows] if any(flags) else out[rows[0]]
        cts = _vjp_one(var, a, flags, o, g[rows], needs, policy, ex, len(rows))
        for r, c in zip(res, cts):
            if r is not None and c is not None:
                r[rows] = c
    return res


def batched_reverse(eqns: list[Equation], vals: dict[int, Any], batched: dict[int, bool],
                    ex_vals: list, seeds: dict[int, Any], active: set[int], policy: KinkPolicy,
                    n: int, variants: dict[int, list] | None = None) -> dict[int, Any]:
    """Pull per-example cotangents (leading axis n on every one) back through the equations,
    along the slots in ``active`` (those that depend on a differentiated input). Returns the
    cotangent of every active slot reached. ``variants`` as for :func:`batched_forward`."""
    ct: dict[int, Any] = dict(seeds)
    variants = variants or {}
    for k in range(len(eqns) - 1, -1, -1):
        eqn = eqns[k]
        g = ct.get(eqn.out.index)
        if g is None or not eqn.prim.differentiable:
            continue
        needs = [type(i) is Var and i.index in active for i in eqn.inputs]
        if not any(needs):
            continue
        args = eqn.args(vals)
        flags = [type(i) is Var and batched[i.index] for i in eqn.inputs]
        ex = eqn.args(ex_vals)
        ex.append(ex_vals[eqn.out.index])
        if k in variants:
            cts = _vjp_variants(eqn, variants[k], args, flags, vals[eqn.out.index], g, needs,
                                policy, ex, n)
        else:
            cts = _vjp_one(eqn, args, flags, vals[eqn.out.index], g, needs, policy, ex, n)
        for inp, c, need in zip(eqn.inputs, cts, needs):
            if not need or c is None:
                continue
            want = (n,) + tuple(inp.shape)
            if np.shape(c) != want:
                c = np.broadcast_to(c, want)
            prev = ct.get(inp.index)
            ct[inp.index] = c if prev is None else prev + c
    return ct


def batched_gradient(eqns: list[Equation], vals: dict[int, Any], batched: dict[int, bool],
                     ex_vals: list, diff: set[int], out: Var, dtype: Any, policy: KinkPolicy,
                     n: int, variants: dict[int, list] | None = None) -> dict[int, Any]:
    """:func:`batched_forward`, then :func:`batched_reverse` from seeds of ones (``dtype``)
    at ``out`` along every slot that depends on the slots ``diff``: the per-example
    cotangents (per-example gradients of the scalar ``out``)."""
    batched_forward(eqns, vals, batched, ex_vals, policy, n, variants)
    active = set(diff)
    for e in eqns:
        if any(type(i) is Var and i.index in active for i in e.inputs):
            active.add(e.out.index)
    return batched_reverse(eqns, vals, batched, ex_vals, {out.index: np.ones((n,), dtype)},
                           active, policy, n, variants)
