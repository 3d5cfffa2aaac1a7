"""Inert switches found structurally, before the batched reverse sweep of :mod:`.active`.

A CNN batch has thousands of active switches that cannot change any gradient: max-pool
windows tied among zeros coming from dead ReLUs. :class:`~.active.ActiveModel` would find
them (zero rows, ``ActiveModel.relevant``) only after a reverse sweep with one cotangent seed
per active switch. This module marks them first, by one cheap forward pass of boolean masks
over the user's program, so that the sweep never seeds them.

The local model. Replace the |z_k| of every active switch by a free variable u_k; with every
inactive switch fixed at its sign, each entry v of the abs-normal program then has a linear
local model v' = P_v d + Q_v u (paper B's abs-normal form: A_j = P_{z_j}, K_{j,:} = Q_{z_j}).
Call v *inert* when P_v = 0 and Q_v is supported on inert active switches only (the inert
models form a linear subspace: linear combinations of inert models are inert), an active
switch inert when its own z_j is, and let D be the set of inert active switches.

Claim: dropping D before the sweep changes nothing. In program order every j in D has
A_j = P_{z_j} = 0 and K_{j,k} = 0 for k outside D, so by induction j is "dead" in the sense
of ``ActiveModel.relevant`` (A_j = 0 and K_j zero on the live columns). A dead row has
W(sigma)_j = 0 for every sigma (forward substitution), so it enters neither a selection
gradient g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A nor a realised-signature test (the
LPs read rows of W; a zero row constrains nothing). ``relevant`` ignores the dead columns of
K when it tests deadness, and a live switch k reaches f through a dead i only if
K_{i,k} != 0, which deadness of i excludes; so setting the rows and columns of D to zero
instead of computing them gives the same dead set, the same relevant set and the same
reduced model (A, K, bhat on the relevant switches); g0 comes from the output's seed, which
is unchanged. The verdict and every reported field but the cost are therefore identical.

The masks (``True``: maybe not inert) propagate through the user's program with rules that
are exact consequences of each primitive's abs form (values are those of the program, which
the expansion keeps; the values inside a form with a tie are exact, see :mod:`._exact`):

* inputs are not inert, literals and comparison outputs (no tie: locally constant) are;
* linear and shape operations, sums, matmul and conv2d: an output entry is not inert only if some
  input entry with a nonzero coefficient is not (counted with 0/1 masks: no cancellation);
  ``a * b``: the terms a' b and a b' vanish when a' is inert or b == 0 (and vice versa);
* relu(t) = (t + |t|)/2 with t < 0 is (t' - t')/2 = 0: inert whatever t is; clip outside
  its bounds likewise; maximum(a, b) follows the operand(s) attaining it;
* max/min over axes (a tournament of (a + b +- |a - b|)/2, every node the max of its leaves):
  a node strictly above its sibling follows its own leaves, a tie adds u of a switch whose
  z = (difference of two disjoint sub-maxima) is inert when every leaf attaining them is. So
  when no not-inert leaf of a window shares its value with another leaf ("clean" window),
  every tie in that window is among inert leaves: all its active switches are inert, and the
  output is inert iff the leaves attaining the max are;
  max_pool2d is that tournament over each window's entries (padding: constants, inert);
* any other primitive: all outputs (and all switches of its abs form) are inert if all its
  inputs are (true for any abs form, by induction over it); marked not inert otherwise.

In exact arithmetic every switch marked here is one the slow path also finds dead; in
floating point the slow path's rows of D are exact zeros whenever its cancellations are of
the form y - y (relu, max: c/2 - c/2), as on networks. ``ActiveModel(prune=False)`` (or
``active._PRUNE = False``) keeps the full sweep as the exact fallback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.program import Var, value_of
from ..modes.api import Traced
from ..primitives.conv import conv_value
from ..primitives.pool import window_stack
from .expand import Expanded

__all__ = ["inert_switches", "live_masks"]

_ELEMENTWISE = {"add", "sub", "neg", "exp", "log", "log1p", "sqrt", "tanh", "sigmoid",
                "softplus", "pow", "abs", "leaky_relu"}
_SHAPE = {"reshape", "transpose", "getitem", "broadcast_to", "concatenate", "stack"}
_REDUCE = {"sum", "logsumexp"}
_LAST = {"axis": (-1,), "keepdims": False}
# abs forms that are tournaments over the kept entries (Max.abs_form: one abs per level)
_TOURNAMENTS = {"max", "min", "max_pool2d"}

Mask = Any  # bool ndarray shaped like the slot's value (True: maybe not inert), or None


# ---------------------------------------------------------------------------- helpers
def _last(x: np.ndarray, axis: tuple) -> np.ndarray:
    """x with the (negative) reduced axes moved to the end and merged into one."""
    nd = x.ndim
    red = [nd + a if a < 0 else a for a in axis]
    perm = [i for i in range(nd) if i not in red] + red
    xt = np.transpose(x, perm)
    return xt.reshape(xt.shape[: nd - len(red)] + (-1,))


def _tied(xl: np.ndarray) -> np.ndarray:
    """Entries whose value occurs more than once in their window (last axis)."""
    order = np.argsort(xl, axis=-1, kind="stable")
    sv = np.take_along_axis(xl, order, axis=-1)
    same = sv[..., 1:] == sv[..., :-1]
    dup = np.zeros(sv.shape, bool)
    dup[..., 1:] |= same
    dup[..., :-1] |= same
    out = np.empty_like(dup)
    np.put_along_axis(out, order, dup, axis=-1)
    return out


def _extremum(x: np.ndarray, nx: np.ndarray, params: dict, sign: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(output mask, inert mask of the tournament's switches over the kept axes)."""
    axis = params["axis"]
    xl, nl = _last(sign * x, axis), _last(nx, axis)
    clean = ~np.any(nl & _tied(xl), axis=-1)
    attain = xl == np.max(xl, axis=-1, keepdims=True)
    out = ~clean | np.any(nl & attain, axis=-1)
    if params.get("keepdims"):
        nd = x.ndim
        red = {nd + a if a < 0 else a for a in axis}
        out = out.reshape(tuple(1 if i in red else s for i, s in enumerate(x.shape)))
    return out, clean


# ---------------------------------------------------------------------------- the pass
def live_masks(tr: Traced) -> tuple[dict[int, Mask], dict[int, Mask]]:
    """Forward pass of "maybe not inert" masks over the user's program.

    Returns:
        (masks by slot index, inert masks of the abs-form switches by equation index). A
        switch mask is shaped like the switches of the primitive's abs form (its input for
        relu/abs/leaky_relu/clip, the output for maximum/minimum, the kept axes for max/min)
        or is a 0-d bool meaning "all of this equation's switches".
    """
    vals = tr.vals
    live: dict[int, Mask] = {v.index: np.ones(np.shape(vals[v.index]), bool)
                             for v in tr.in_vars}
    produced = {e.out.index for e in tr.eqns}
    sw: dict[int, Mask] = {}

    def mask(i: Any) -> Mask:
        if type(i) is not Var:
            return None
        if i.index in live:
            return live[i.index]
        # NOTE: a Var that no equation produced and that is not an input: treat it as not
        # inert (conservative; the slow path decides).
        return None if i.index in produced else np.ones(np.shape(vals[i.index]), bool)

    def full(i: Any) -> np.ndarray:
        m = mask(i)
        shape = np.shape(value_of(i, vals))
        return np.zeros(shape, bool) if m is None else m

    def value(i: Any) -> np.ndarray:
        return np.asarray(value_of(i, vals))

    for k, eqn in enumerate(tr.eqns):
        name, p, ins = eqn.prim.name, eqn.params, eqn.inputs
        shape = np.shape(vals[eqn.out.index])
        ms = [mask(i) for i in ins]
        if all(m is None or not m.any() for m in ms):
            live[eqn.out.index] = None
            sw[k] = np.bool_(True)
            continue
        if eqn.prim.is_switch:
            out = None  # boolean, locally constant (ties were refused by trace_at)
        elif name in _ELEMENTWISE:
            out = np.zeros(shape, bool)
            for m in ms:
                if m is not None:
                    out = out | np.broadcast_to(m, shape)
            if name in ("abs", "leaky_relu"):
                sw[k] = ~out
        elif name == "mul":
            a, b = value(ins[0]), value(ins[1])
            out = (np.broadcast_to(full(ins[0]), shape) & np.broadcast_to(b != 0, shape)) | (
                np.broadcast_to(full(ins[1]), shape) & np.broadcast_to(a != 0, shape))
        elif name == "div":
            a = value(ins[0])
            out = np.broadcast_to(full(ins[0]), shape) | (
                np.broadcast_to(full(ins[1]), shape) & np.broadcast_to(a != 0, shape))
        elif name == "relu":
            nx = full(ins[0])
            out, sw[k] = nx & (value(ins[0]) >= 0), ~nx
        elif name == "clip":
            x, nx = value(ins[0]), full(ins[0])
            out = nx.copy()
            if p["lo"] is not None:
                out &= np.broadcast_to(x >= p["lo"], shape)
            if p["hi"] is not None:
                out &= np.broadcast_to(x <= p["hi"], shape)
            sw[k] = ~nx
        elif name in ("maximum", "minimum"):
            a, b = np.broadcast_to(value(ins[0]), shape), np.broadcast_to(value(ins[1]), shape)
            na, nb = np.broadcast_to(full(ins[0]), shape), np.broadcast_to(full(ins[1]), shape)
            wa, wb = (a >= b, b >= a) if name == "maximum" else (a <= b, b <= a)
            out, sw[k] = (na & wa) | (nb & wb), ~(na | nb)
        elif name in ("max", "min"):
            out, sw[k] = _extremum(value(ins[0]), full(ins[0]), p,
                                   1.0 if name == "max" else -1.0)
        elif name == "max_pool2d":  # max over each window's entries stacked on a last axis
            out, sw[k] = _extremum(window_stack(value(ins[0]), p, -np.inf),
                                   window_stack(full(ins[0]), p, False), _LAST, 1.0)
        elif name in _SHAPE:
            out = np.asarray(eqn.prim.impl(*[full(i) for i in ins], **p), dtype=bool)
        elif name in _REDUCE:
            out = np.any(full(ins[0]), axis=p["axis"], keepdims=p["keepdims"])
        elif name == "matmul":
            a, b = value(ins[0]), value(ins[1])
            cnt = np.zeros(shape)
            if ms[0] is not None:
                cnt = cnt + np.matmul(ms[0].astype(np.float64), (b != 0).astype(np.float64))
            if ms[1] is not None:
                cnt = cnt + np.matmul((a != 0).astype(np.float64), ms[1].astype(np.float64))
            out = cnt > 0
        elif name == "conv2d":  # bilinear like matmul: 0/1 masks through the same convolution
            a, b = value(ins[0]), value(ins[1])
            cnt = np.zeros(shape)
            if ms[0] is not None:
                cnt = cnt + conv_value(ms[0].astype(np.float64), (b != 0).astype(np.float64), p)
            if ms[1] is not None:
                cnt = cnt + conv_value((a != 0).astype(np.float64), ms[1].astype(np.float64), p)
            out = cnt > 0
        elif name == "where":
            cond = value(ins[0])
            out = np.where(cond, np.broadcast_to(full(ins[1]), shape),
                           np.broadcast_to(full(ins[2]), shape))
        else:  # any other primitive: nothing inert unless all inputs are (handled above)
            out = np.ones(shape, bool)
            sw[k] = np.bool_(False)
        if out is not None and np.shape(out) != shape:  # a rule that does not fit: give up
            out = np.ones(shape, bool)
            sw[k] = np.bool_(False)
        live[eqn.out.index] = out if out is None or out.any() else None
        sw.setdefault(k, np.bool_(False))
    return live, sw


def inert_switches(exp: Expanded) -> np.ndarray:
    """Boolean mask over all switches z_1..z_s of the abs-normal program: True where the
    switch is inert (see the module docstring: its row of the active model is zero on every
    piece, and it can be dropped before the sweep without changing anything)."""
    _, sw = live_masks(exp.original)
    out = np.zeros(exp.s, bool)
    for j, k in enumerate(exp.abs_eqns):
        origin = exp.meta[k].origin
        m = sw.get(origin, np.bool_(False))
        size = int(exp.offsets[j + 1] - exp.offsets[j])
        shape = tuple(exp.eqns[k].out.shape)
        if np.ndim(m) == 0:
            out[exp.offsets[j]: exp.offsets[j + 1]] = bool(m)
        elif exp.meta[k].producer in _TOURNAMENTS and shape[1:] == tuple(np.shape(m)):
            # one level of the tournament: its pairs (leading axis) share the kept entry's mask
            out[exp.offsets[j]: exp.offsets[j + 1]] = np.broadcast_to(m, shape).reshape(-1)
        elif tuple(np.shape(m)) == shape and np.size(m) == size:
            out[exp.offsets[j]: exp.offsets[j + 1]] = np.asarray(m).reshape(-1)
    return out
