"""Tangent rules of the smooth canonical ops, for the dual pass of :mod:`._dual`.

The tangent of each op value along one parameter direction: hand-written rules for Linear,
Conv2d, arithmetic and shape ops (computed under ``torch.no_grad`` by the caller), and
``torch.func.jvp`` for any other smooth function. A weight's direction may be a
:class:`RankOne` ``u ⊗ v``: then the weight's share of a Linear or Conv2d tangent costs a
matrix-vector product (or a one-channel convolution) instead of a matrix product.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ._extra_rules import TORCH_FN
from ._fx import Op

__all__ = ["RankOne", "dense", "tangent", "FN", "ZPASS"]

@dataclass(frozen=True)
class RankOne:
    """The direction ``u ⊗ v`` of a weight of shape ``(out, *rest)``: entry ``[o, r]`` is
    ``u[o] * v[r]``, with ``u`` of shape ``(out,)`` and ``v`` of shape ``rest``.

    Along it the tangent of ``F.linear(x, W)`` is ``(x @ v)[..., None] * u`` (a matrix-vector
    product instead of the matrix product ``x @ dW^T``) and that of a convolution is one
    single-output-channel convolution scaled by ``u``. Everywhere else it is made dense.
    """

    u: torch.Tensor
    v: torch.Tensor

    def dense(self) -> torch.Tensor:
        return self.u.reshape(-1, *([1] * self.v.dim())) * self.v


def dense(t: Any) -> Any:
    """``t`` as a plain tensor (a :class:`RankOne` made dense; None stays None)."""
    return t.dense() if isinstance(t, RankOne) else t




def _sum(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    return x.sum() if dim is None else x.sum(dim, keepdim)


def _mean(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    return x.mean() if dim is None else x.mean(dim, keepdim)


def _conv(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
          groups: int = 1) -> Any:
    return F.conv2d(x, w, b, stride, padding, dilation, groups)


def _size(x: Any, dim: Any = None) -> Any:
    return tuple(x.shape) if dim is None else x.shape[dim]


def _squeeze(x: Any, dim: Any = None) -> Any:
    return x.squeeze() if dim is None else x.squeeze(dim)


FN: dict[str, Callable] = {
    "linear": F.linear, "conv2d": _conv, "size": _size,
    "avgpool2d": lambda x, kernel, stride: F.avg_pool2d(x, kernel, stride),
    "cat": lambda *xs, dim: torch.cat(xs, dim),
    "layernorm": lambda x, w, b, shape, eps: F.layer_norm(x, shape, w, b, eps),
    # running statistics are updated by clarke_grad_torch itself, once (dual.DualStats)
    "batchnorm": lambda x, w, b, mean, var, training, eps: F.batch_norm(
        x, mean, var, w, b, training, 0.0, eps),
    "reshape": lambda x, shape: x.reshape(shape),
    "flatten": lambda x, start, end: torch.flatten(x, start, end),
    "getitem": operator.getitem, "gather": lambda x, index, dim: torch.gather(x, dim, index),
    "transpose": lambda x, dim0, dim1: x.transpose(dim0, dim1), "t": lambda x: x.t(),
    "unsqueeze": lambda x, dim: x.unsqueeze(dim), "squeeze": _squeeze, "sum": _sum,
    "mean": _mean, "neg": operator.neg, "identity": lambda x: x,
    "cast": lambda x, dtype: x.to(dtype), "add": operator.add, "sub": operator.sub,
    "mul": operator.mul, "div": operator.truediv, "matmul": operator.matmul,
    "pow": operator.pow, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "exp": torch.exp,
    "log": torch.log, "log_softmax": lambda x, dim: F.log_softmax(x, dim),
    "logsumexp": lambda x, dim, keepdim=False: torch.logsumexp(x, dim, keepdim),
    "cross_entropy": lambda z, t, reduction, ignore_index: F.cross_entropy(
        z, t, reduction=reduction, ignore_index=ignore_index),
}
FN.update(TORCH_FN)  # the layers of _fx_extra
# linear in their first (tensor) argument: the tangent is the same op applied to the tangent
_LINEAR = {"reshape", "flatten", "getitem", "gather", "transpose", "t", "unsqueeze", "squeeze",
           "sum", "mean", "neg", "identity", "cast", "avgpool2d"}


# shape ops that carry the structural-zero mask along
ZPASS = {"reshape", "flatten", "getitem", "transpose", "t", "unsqueeze", "squeeze", "identity"}


def detached(v: Any) -> Any:
    return v.detach() if isinstance(v, torch.Tensor) else v


def _plus(a: Any, b: Any) -> Any:
    return b if a is None else (a if b is None else a + b)


def _conv_rank_one(x: Any, d: RankOne, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                   groups: int = 1) -> Any:
    """``conv2d(x, u ⊗ V)``: output channel o is ``u[o] * conv2d(x_g, V)`` for its group g,
    so one convolution with one output channel per group does the work."""
    kernel = d.v.unsqueeze(0).expand(groups, *d.v.shape)
    s = F.conv2d(x, kernel, None, stride, padding, dilation, groups)  # (N, groups, OH, OW)
    if groups > 1:
        s = s.repeat_interleave(d.u.shape[0] // groups, dim=1)
    return s * d.u.reshape(1, -1, 1, 1)


def tangent(op: Op, args: tuple, ts: list, out: torch.Tensor, k: int) -> Any:
    """Tangent of ``op`` along direction k (None: zero); ``ts`` holds the inputs' tangent
    lists (None where zero) and ``args`` the detached primal arguments."""
    kind, p, fn = op.kind, op.params, FN[op.kind]
    tk = [None if t is None else t[k] for t in ts]
    low = kind in ("linear", "conv2d") and isinstance(tk[1], RankOne)
    if low:
        low_w, tk[1] = tk[1], None
    tk = [dense(t) for t in tk]
    if kind in _LINEAR:
        return None if tk[0] is None else fn(tk[0], *args[1:], **p)
    if kind == "linear":  # dx W^T + x dW^T + db, accumulated in place where possible
        x, w, _ = args
        r = None if tk[0] is None else F.linear(tk[0], w, tk[2])
        if low:  # x dW^T = (x v) u^T (one rank-one update), plus db unless r holds it
            xv, u = x @ low_w.v, low_w.u
            if r is not None and r.dim() == 2:
                r.addr_(xv, u)
            elif r is None and x.dim() == 2:
                r = torch.outer(xv, u) if tk[2] is None else torch.addr(tk[2], xv, u)
            else:
                r = _plus(r, xv[..., None] * u)
                r = r + tk[2] if tk[0] is None and tk[2] is not None else r
        elif tk[1] is not None:
            if r is None:
                r = F.linear(x, tk[1], tk[2])
            elif r.dim() == 2:
                r.addmm_(x, tk[1].t())
            else:
                r += F.linear(x, tk[1])
        elif r is None:
            r = tk[2]
    elif kind == "conv2d":
        x, w, _ = args
        r = None if tk[0] is None else fn(tk[0], w, tk[2], **p)
        if low:
            r = _plus(r, _conv_rank_one(x, low_w, **p))
            r = r + tk[2].reshape(1, -1, 1, 1) if tk[0] is None and tk[2] is not None else r
        elif tk[1] is not None:
            r = fn(x, tk[1], tk[2], **p) if r is None else r.add_(fn(x, tk[1], None, **p))
        elif r is None and tk[2] is not None:
            r = tk[2].reshape(1, -1, 1, 1)
    elif kind == "cat":  # the inputs' tangents side by side, zeros for constant inputs
        if all(t is None for t in tk):
            return None
        r = torch.cat([torch.zeros_like(a) if t is None else t for a, t in zip(args, tk)],
                      p["dim"])
    elif kind in ("add", "sub"):
        r = _plus(tk[0], None if tk[1] is None else (tk[1] if kind == "add" else -tk[1]))
    elif kind in ("mul", "matmul"):
        r = None if tk[0] is None else fn(tk[0], args[1])
        r = _plus(r, None if tk[1] is None else fn(args[0], tk[1]))
    else:  # any other smooth function: forward-mode AD of torch
        pos = [i for i, t in enumerate(tk) if t is not None]
        if not pos:
            return None

        def g(*vals: Any) -> Any:
            a = list(args)
            for i, v in zip(pos, vals):
                a[i] = v
            return fn(*a, **p)

        r = torch.func.jvp(g, tuple(args[i] for i in pos), tuple(tk[i] for i in pos))[1]
    if r is not None and r.shape != out.shape:
        r = r.expand(out.shape)
    return r
