"""The torch forward pass that carries tangents and resolves kinks by their sign.

One pass over the canonical ops of :mod:`._fx` computes, with torch operations on the model's
device, the primal value (recorded by autograd) and, where a later kink needs it, the tangent
of every value along K parameter directions (K = 1 normally). Each nonsmooth op resolves its
kinks lexicographically: an entry whose switching value is exactly 0 takes the sign of its
first nonzero tangent; the resulting slope is fixed for the backward pass through a custom
autograd function, and the tangents go on through the same slopes. Entries whose K tangents
are all 0 stay *unresolved* and take the default choice (relu'(0) = 0, first maximiser, ...).

Tangents are computed by the rules of :mod:`._tangent_rules`, under ``torch.no_grad`` so
they never enter the backward graph, and only on demand (:mod:`._lazy`): where a kink needs
them, and for the samples of the batch that hit one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ._extra_rules import dual_rng_begin, dual_rng_end
from ._fx import NONSMOOTH, Op, Ref, TorchGraph, resolve
from ._lazy import Tangents, needs_tangent, row_flag
from ._tangent_rules import FN, ZPASS, RankOne, dense

__all__ = ["dual_forward", "DualStats", "RankOne", "dense", "needs_tangent"]


class _Selected(torch.autograd.Function):
    """``fn(z)`` whose backward multiplies by a fixed slope (the resolved derivative), or,
    with ``select``, keeps the cotangent where the 0/1 slope is 1 and puts an exact 0 elsewhere
    (as relu's own backward does, even against an infinite cotangent)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, slope: torch.Tensor, fn: Callable,
                select: bool = False) -> torch.Tensor:
        ctx.save_for_backward(slope)
        ctx.select = select
        return fn(z)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        (slope,) = ctx.saved_tensors
        return (_keep(g, slope) if ctx.select else g * slope), None, None, None


def _keep(t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """t where the 0/1 tensor ``keep`` is 1, exact 0 elsewhere (one fast elementwise pass:
    relu's backward kernel with threshold 1/2)."""
    return torch.ops.aten.threshold_backward(t, keep, 0.5)


@dataclass
class DualStats:
    """Kink counts of one dual pass (tensors until :meth:`finish`, then ints)."""

    kinks: dict[str, Any] = field(default_factory=dict)
    unresolved: dict[str, Any] = field(default_factory=dict)
    batchnorm_inputs: list = field(default_factory=list)  # (layer name, input) in training

    def update_running_stats(self, model: torch.nn.Module) -> None:
        """What the model's own forward does to its batch-norm layers in training mode, once:
        count the batch and update the running mean and variance with torch's formula."""
        with torch.no_grad():
            for name, x in self.batchnorm_inputs:
                bn = model.get_submodule(name)
                if not bn.track_running_stats or bn.running_mean is None:
                    continue
                bn.num_batches_tracked.add_(1)
                f = bn.momentum if bn.momentum is not None else \
                    1.0 / float(bn.num_batches_tracked)
                F.batch_norm(x, bn.running_mean, bn.running_var, None, None, True, f, bn.eps)

    def add(self, name: str, kinks: Any, unresolved: Any) -> None:
        self.kinks[name] = kinks
        self.unresolved[name] = unresolved

    def finish(self) -> DualStats:
        """Counts as ints, read from the device in one transfer (counts already ints stay)."""
        names = list(self.kinks)
        vals = [self.kinks[n] for n in names] + [self.unresolved[n] for n in names]
        tens = [v.reshape(()).to(torch.int64) for v in vals if isinstance(v, torch.Tensor)]
        got = iter(torch.stack(tens).tolist() if tens else ())
        ints = [int(next(got)) if isinstance(v, torch.Tensor) else int(v) for v in vals]
        self.kinks = dict(zip(names, ints[:len(names)]))
        self.unresolved = dict(zip(names, ints[len(names):]))
        return self
        both = torch.stack([torch.stack([torch.as_tensor(self.kinks[n]).reshape(()),
                                         torch.as_tensor(self.unresolved[n]).reshape(())])
                            .to("cpu", torch.int64) for n in names]).tolist()
        self.kinks = {n: int(v[0]) for n, v in zip(names, both)}
        self.unresolved = {n: int(v[1]) for n, v in zip(names, both)}
        return self


# ---------------------------------------------------------------------- kink resolution
# Tangents are formed on demand: a nonsmooth op first counts its kinks (one synchronisation
# with the device) and asks for its input's tangents only if there is one. An op without
# kinks runs torch's own function and autograd rule and hands on a *map* that turns input
# tangents into output tangents, applied only if a later kink asks for them. So a batch that
# hits no kink costs plain value+gradient plus one comparison per nonsmooth op.
#
# Besides its tangents, a value may carry a boolean mask ``zero`` of entries whose tangent is
# *structurally* zero (a relu output where the relu is off, and what is reshaped or pooled from
# it). A kink whose tangents all vanish there needs no tie-break: every candidate's gradient
# on the selected piece is 0, so every choice gives the same result. Masks are formed on
# demand too: ``zero`` arguments are functions returning the mask or None.
#
# A nonsmooth op asks for tangents with ``ts_fn(rows)``, ``rows`` the batch rows holding its
# kinks (None: all); the answer ``(ts, rows)`` covers those rows or more (None: the whole
# batch), and a tangent *map* takes ``(ts, rows)`` alike (:mod:`._lazy`).
TangentsFn = Callable[[Any], tuple]
ZeroFn = Callable[[], Any]


def _sel(a: Any, rows: Any) -> Any:
    """``a`` restricted to the batch rows (all of it when rows is None)."""
    return a if rows is None or a is None else a[rows]


def _kink_rows(kink: torch.Tensor) -> Any:
    """The batch rows (first axis) holding a kink, or None for a 0-d value."""
    if kink.dim() == 0:
        return None
    return torch.nonzero(kink.reshape(kink.shape[0], -1).any(1)).reshape(-1)


def _none() -> None:
    return None


def _or(a: Any, b: Any) -> Any:
    return a if b is None else (b if a is None else a | b)


def lex_resolve(z: torch.Tensor, ts: list | None, zero: Any = None, kink: Any = None
                ) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
    """The lexicographic sign of z along the directions: sign(z) where z != 0, else the sign
    of the first nonzero tangent.

    Returns boolean masks ``pos`` (that sign is +) and ``undecided`` (still 0: z and every
    tangent vanish; the sign is - elsewhere), the number of kinks (z == 0) and the number left
    undecided that could matter (not structurally zero). ``ts`` is None when z does not depend
    on the parameters: its kinks then need no resolution (z is constant in them). ``kink``:
    the mask z == 0 when already at hand.
    """
    pos = z > 0
    kink = z == 0 if kink is None else kink
    n_kinks = torch.count_nonzero(kink)
    if ts is None:
        return pos, kink, n_kinks, torch.zeros_like(n_kinks)
    undecided = kink
    for t in ts:
        pos = pos | (undecided & (t > 0))
        undecided = undecided & (t == 0)
    live = undecided if zero is None else undecided & ~zero
    return pos, undecided, n_kinks, torch.count_nonzero(live)


def _kink_free(z: torch.Tensor) -> tuple[bool, Any, torch.Tensor]:
    """Whether no entry of z is exactly 0 (one synchronisation), the count and the mask."""
    kink = z == 0
    nk = torch.count_nonzero(kink)
    return not bool(nk), nk, kink


def _resolved(z: torch.Tensor, ts_fn: TangentsFn, zero_fn: ZeroFn, kink: Any) -> tuple:
    """:func:`lex_resolve` with the tangents (and structural zeros) asked for only now, for
    the rows holding kinks where the tangents cover only those."""
    ts, rows = ts_fn(_kink_rows(kink))
    zero = None if ts is None else zero_fn()
    if rows is None:
        return lex_resolve(z, ts, zero, kink)
    pos_r, und_r, _, nu = lex_resolve(z[rows], ts, _sel(zero, rows), kink[rows])
    pos, undecided = z > 0, torch.zeros_like(kink)
    pos[rows], undecided[rows] = pos_r, und_r
    return pos, undecided, torch.count_nonzero(kink), nu


def _scale(ts: list, slope: Any, rows: Any) -> list:
    s = _sel(slope, rows)
    return [t * s for t in ts]


def _kept(ts: list, keep: Any, rows: Any) -> list:
    k = _sel(keep, rows)
    return [_keep(t, k) for t in ts]


def _relu(z: Any, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Op, st: DualStats) -> tuple:
    free, nk, kink = _kink_free(z)
    if free:  # torch's relu and its autograd rule; tangents through relu'(z) when asked
        st.add(op.name, nk, torch.zeros_like(nk))
        return (torch.relu(z),
                lambda ts, rows: [torch.ops.aten.threshold_backward(t, _sel(z, rows), 0.0)
                                  for t in ts],
                lambda: _or(z <= 0, zero_fn()))
    mask, _, nk, nu = _resolved(z, ts_fn, zero_fn, kink)
    st.add(op.name, nk, nu)
    keep = mask.to(z.dtype)
    return (_Selected.apply(z, keep, torch.relu, True), lambda ts, rows: _kept(ts, keep, rows),
            lambda: _or(~mask, zero_fn()))


def _leaky(z: Any, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Op, st: DualStats) -> tuple:
    a = op.params["alpha"]
    free, nk, kink = _kink_free(z)
    if free:
        st.add(op.name, nk, torch.zeros_like(nk))
        pos = z > 0
        out = F.leaky_relu(z, a)
    else:
        pos, _, nk, nu = _resolved(z, ts_fn, zero_fn, kink)
        st.add(op.name, nk, nu)
    slope = torch.full_like(z, a).masked_fill_(pos, 1.0)  # alpha in z's dtype, no host copy
    if not free:
        out = _Selected.apply(z, slope, lambda u: F.leaky_relu(u, a))
    return (out, lambda ts, rows: _scale(ts, slope, rows),
            (lambda: _or(~pos, zero_fn())) if a == 0 else zero_fn)


def _abs(z: Any, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Op, st: DualStats) -> tuple:
    free, nk, kink = _kink_free(z)
    if free:
        st.add(op.name, nk, torch.zeros_like(nk))
        return torch.abs(z), lambda ts, rows: _scale(ts, torch.sign(z), rows), zero_fn
    pos, undecided, nk, nu = _resolved(z, ts_fn, zero_fn, kink)
    st.add(op.name, nk, nu)
    s = pos.to(z.dtype) - (~(pos | undecided)).to(z.dtype)  # abs'(0) = 0 where undecided
    return (_Selected.apply(z, s, torch.abs), lambda ts, rows: _scale(ts, s, rows),
            lambda: _or(undecided, zero_fn()))


def _clamp(z: Any, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Op, st: DualStats) -> tuple:
    lo, hi = op.params["lo"], op.params["hi"]
    slope = torch.ones_like(z, dtype=torch.bool)
    nk = nu = 0
    for bound, sign in ((lo, 1.0), (hi, -1.0)):
        if bound is not None:
            d = (z - bound) * sign
            free, k, kink = _kink_free(d)
            if free:
                pos, und, u = d > 0, None, torch.zeros_like(k)
            else:
                def signed(rows: Any, sign: float = sign) -> tuple:
                    ts, rows = ts_fn(rows)
                    return (None if ts is None else [t * sign for t in ts]), rows

                pos, und, k, u = _resolved(d, signed, zero_fn, kink)
            slope = slope & (pos if und is None else pos | und)  # undecided: default slope 1
            nk, nu = nk + k, nu + u
    if lo is not None and hi is not None and lo == hi:
        slope = torch.zeros_like(slope)
    st.add(op.name, nk, nu)
    keep = slope.to(z.dtype)
    out = _Selected.apply(z, keep, lambda u: torch.clamp(u, lo, hi), True)
    return out, lambda ts, rows: _kept(ts, keep, rows), lambda: _or(~slope, zero_fn())


def _maxpool(x: Any, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Op, st: DualStats) -> tuple:
    """Max pooling by an explicit selection: the maximiser with the lexicographically largest
    tangents, first in window order when still tied (PyTorch's CPU kernel picks the first).
    Without ties, or with ties only among structurally zero candidates (every choice gives a
    zero gradient there), torch's own max_pool2d (its autograd rule and its indices)."""
    (kh, kw), (sh, sw) = op.params["kernel"], op.params["stride"]
    (ph, pw), (dh, dw) = op.params["padding"], op.params["dilation"]
    n, c, h, w = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def windows(v: torch.Tensor, fill: Any) -> torch.Tensor:
        """(N, C, OH, OW, kh*kw): the windows, row-major window order (a contiguous copy:
        reductions over a contiguous last axis are the fast ones)."""
        v = F.pad(v, (pw, pw, ph, ph), value=fill) if ph or pw else v
        v = v.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
        if dh > 1 or dw > 1:
            v = v[..., ::dh, ::dw]
        return v.reshape(v.shape[0], c, oh, ow, kh * kw)

    def pick(v: torch.Tensor, rows: Any = None) -> torch.Tensor:
        m = v.shape[0]
        return v.reshape(m, c, h * w).gather(2, _sel(flat, rows)).reshape(m, c, oh, ow)

    # tiling windows (MaxPool2d(k), the usual case): the windows as a view, no copy
    tiles = (sh, sw) == (kh, kw) and (ph, pw) == (0, 0) and (dh, dw) == (1, 1)

    def tiled(v: torch.Tensor) -> torch.Tensor:  # (N, C, OH, kh, OW, kw)
        return v[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)

    out, idx = F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), return_indices=True)
    with torch.no_grad():
        if tiles:
            cand = tiled(x.detach()) == out.detach()[:, :, :, None, :, None]
            tied = torch.count_nonzero(cand, dim=(3, 5)) > 1
        else:
            xw = windows(x.detach(), float("-inf"))
            cand = xw == xw.amax(-1, keepdim=True)
            tied = torch.count_nonzero(cand, dim=-1) > 1
        nk = torch.count_nonzero(tied)
    zero = None
    if bool(nk):  # ties among structurally zero candidates only (dead relus) are inert
        zero = zero_fn()
        if zero is not None:
            with torch.no_grad():
                if tiles:
                    live = (cand & (tiled(zero) == 0)).any(5).any(3)
                else:
                    live = (cand & (windows(zero.to(torch.uint8), 1) == 0)).any(-1)
                live_ties = torch.count_nonzero(tied & live)
    if not bool(nk) or (zero is not None and not bool(live_ties)):
        st.add(op.name, nk, torch.zeros_like(nk))
        flat = idx.reshape(n, c, oh * ow)  # torch's own choice: no tie that matters
        return (out, lambda ts, rows: [pick(t, rows) for t in ts],
                lambda: None if (zm := zero_fn()) is None else pick(zm))
    ts, rows = ts_fn(_kink_rows(tied if zero is None else tied & live))
    with torch.no_grad():
        if tiles:  # the general layout for the tie-break below
            xw = windows(x.detach(), float("-inf"))
            cand = xw == xw.amax(-1, keepdim=True)
        sub = _sel(cand, rows)  # the tie-break runs on the rows the tangents cover
        for t in ts or ():
            tw = windows(t, 0.0)
            best = torch.where(sub, tw, float("-inf")).amax(-1, keepdim=True)
            sub = sub & (tw == best)
        if ts is None:
            nu = torch.zeros_like(nk)
        else:
            zr = _sel(zero, rows)
            live = sub if zr is None else sub & (windows(zr.to(torch.uint8), 1) == 0)
            nu = torch.count_nonzero((torch.count_nonzero(sub, dim=-1) > 1) & live.any(-1))
        if rows is None:
            cand = sub
        else:
            cand[rows] = sub
        j = cand.to(torch.uint8).argmax(-1)  # first remaining maximiser, (N, C, OH, OW)
        rows = torch.arange(oh, device=x.device)[:, None] * sh + (j // kw) * dh - ph
        cols = torch.arange(ow, device=x.device) * sw + (j % kw) * dw - pw
        flat = (rows * w + cols).reshape(n, c, oh * ow)
    st.add(op.name, nk, nu)
    return (pick(x), lambda ts, rows: [pick(t, rows) for t in ts],
            lambda: None if (zm := zero_fn()) is None else pick(zm))


_SELECT: dict[str, Callable] = {"relu": _relu, "leaky_relu": _leaky, "abs": _abs,
                                "clamp": _clamp, "maxpool2d": _maxpool}  # + amax, below


# ---------------------------------------------------------------------- the pass
def dual_forward(graph: TorchGraph, x: Any, y: Any, directions: list[dict[str, Any]],
                 need: list[bool] | None = None) -> tuple[torch.Tensor, DualStats]:
    """Run ``loss_fn(model(x), y)`` recording autograd on the primal, resolving every kink
    by the tangents along ``directions`` (dicts of tensors or :class:`RankOne` by parameter
    name), which are formed only where a kink needs them.

    Returns the loss (a scalar tensor whose backward uses the resolved slopes) and the kink
    statistics. With no directions every kink takes the default choice (plain AD).
    """
    need = needs_tangent(graph) if need is None else need
    rng = dual_rng_begin(graph, directions)  # dropout masks: drawn once per gradient
    st = DualStats()
    vals: list = []
    flags: list = []  # row-wise in the batch? (see _lazy.row_flag)
    batch = x.shape[0] if x.dim() >= 1 else 1
    tangents = Tangents(graph, vals, flags, directions, need, batch)
    zeros: list[ZeroFn] = []
    for i, op in enumerate(graph.ops):
        z_out: ZeroFn = _none
        flag: bool | None = False
        if op.kind == "input":
            v = x if op.params["slot"] == 0 else y
            flag = op.params["slot"] == 0 and x.dim() >= 1
        elif op.kind == "param":
            v = graph.params[op.name]
        elif op.kind == "const":
            v = op.params["value"].to(x.device)
        elif op.kind == "meta":
            v = getattr(vals[op.args[0].index], op.params["attr"])
        elif op.kind == "opaque":  # constants only (checked when the graph was built)
            a, kw = resolve(op.args, vals)
            v = op.params["fn"](*a, **kw)
        else:
            args = resolve(op.args, vals)
            r0 = op.args[0] if op.args else None
            z_in = zeros[r0.index] if isinstance(r0, Ref) else _none
            if op.kind in NONSMOOTH:
                j = r0.index if isinstance(r0, Ref) else None

                def ts_fn(rows: Any, j: int | None = j) -> tuple:
                    return (None, None) if j is None else tangents.upto(j, rows)

                v, tangents.maps[i], z_out = _SELECT[op.kind](args[0], ts_fn, z_in, op, st)
            else:
                v = FN[op.kind](*args, **op.params)
                if op.kind == "batchnorm" and op.params["training"]:
                    st.batchnorm_inputs.append((op.name, args[0].detach()))
                if op.kind in ZPASS and z_in is not _none:
                    def z_out(z_in: ZeroFn = z_in, op: Op = op, rest: tuple = args[1:]) -> Any:
                        zm = z_in()
                        return None if zm is None else FN[op.kind](zm, *rest, **op.params)
            flag = row_flag(op, [flags[r.index] if isinstance(r, Ref) else False
                                 for r in op.args], args, v, batch)
        vals.append(v)
        flags.append(flag)
        zeros.append(z_out)
    dual_rng_end(rng)
    return vals[graph.output.index], st


from ._extra_dual import EXTRA_SELECT  # noqa: E402  (it builds on this module)

_SELECT.update(EXTRA_SELECT)
