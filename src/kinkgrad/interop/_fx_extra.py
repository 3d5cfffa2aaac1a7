"""More layers, functions and losses for the torch bridge: GELU, SiLU, ELU, PReLU, GroupNorm,
Embedding, Dropout in training mode, maximum/minimum, amax/amin, max/min (with and without
dim), argmax/argmin, Huber/SmoothL1, NLL, BCE and BCE-with-logits.

Nonsmooth ones are written as canonical ops whose kinks the bridge already resolves, with
PyTorch's choice at the kink under the "torch" preset:

- ELU: ``r + alpha (exp(x - r) - 1)`` with r = relu(x) (one switch, used twice): slope
  alpha + s (1 - alpha) at 0 for relu'(0) = s, alpha under the preset, as PyTorch's backward.
- PReLU: ``r + a (x - r)``, slope a at 0 as PyTorch's.
- maximum/minimum (and ``torch.max(a, b)``): ``(a + b +- |a - b|) / 2``; abs'(0) = 0 gives
  PyTorch's equal split at ties.
- Huber/SmoothL1: ``0.5 m^2 + delta (|d| - m)``, m = clamp(|d|, max=delta); differentiable
  everywhere (C^1), so every choice at |d| = 0 or delta gives the same, exact derivative.
- amax/amin and ``max()``: the ``amax`` op (ties shared equally, as PyTorch); ``max(dim)``:
  the same op with the first maximiser (PyTorch's index) and an ``argmax`` op for the indices.

Dropout in training mode multiplies by a mask that torch draws (``F.dropout`` of ones, the
same draws as the layer's own forward): a constant of the translated program (see
:mod:`._extra_rules` for how the translation and the dual pass replay the same masks).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedOperationError

__all__ = ["EXTRA_FUNCS", "EXTRA_METHODS", "EXTRA_NONSMOOTH", "EXTRA_SUPPORTED",
           "extra_module", "extra_canonical", "dropout"]

EXTRA_NONSMOOTH = frozenset({"amax"})

EXTRA_SUPPORTED = (
    "; also layers GELU, SiLU, ELU, PReLU, GroupNorm, Embedding, Dropout in training mode "
    "(torch's mask is a constant), LogSoftmax, Softmax; losses HuberLoss, SmoothL1Loss, "
    "NLLLoss, BCELoss, BCEWithLogitsLoss; functions stack, softmax, gelu, silu, elu, prelu, "
    "group_norm, embedding, dropout, maximum, minimum, amax, amin, max, min, argmax, argmin, "
    "hardtanh, relu6, clamp_min, clamp_max, "
    "huber_loss, smooth_l1_loss, nll_loss, binary_cross_entropy(_with_logits)"
)

_LOSS = ("size_average", "reduce", "reduction")
_LOSS_D = {"size_average": None, "reduce": None, "reduction": "mean"}
_RED = ("input", "dim", "keepdim")

EXTRA_FUNCS: dict[Any, tuple[str, tuple, dict]] = {
    F.gelu: ("gelu", ("input", "approximate"), {"approximate": "none"}),
    F.silu: ("silu", ("input", "inplace"), {"inplace": False}),
    F.softmax: ("softmax", ("input", "dim", "_stacklevel", "dtype"),
                {"_stacklevel": 3, "dtype": None}),
    torch.softmax: ("softmax", ("input", "dim", "dtype"), {"dtype": None}),
    F.elu: ("elu", ("input", "alpha", "inplace"), {"alpha": 1.0, "inplace": False}),
    F.prelu: ("prelu", ("input", "weight"), {}),
    F.group_norm: ("groupnorm", ("input", "num_groups", "weight", "bias", "eps"),
                   {"weight": None, "bias": None, "eps": 1e-5}),
    F.embedding: ("embedding", ("input", "weight", "padding_idx", "max_norm", "norm_type",
                                "scale_grad_by_freq", "sparse"),
                  {"padding_idx": None, "max_norm": None, "norm_type": 2.0,
                   "scale_grad_by_freq": False, "sparse": False}),
    F.dropout: ("dropout", ("input", "p", "training", "inplace"),
                {"p": 0.5, "training": True, "inplace": False}),
    torch.log_softmax: ("log_softmax", ("input", "dim", "dtype"), {"dtype": None}),
    F.hardtanh: ("hardtanh", ("input", "min_val", "max_val", "inplace"),
                 {"min_val": -1.0, "max_val": 1.0, "inplace": False}),
    F.relu6: ("hardtanh", ("input", "inplace"), {"min_val": 0.0, "max_val": 6.0,
                                                 "inplace": False}),
    torch.clamp_min: ("clamp", ("input", "min"), {"max": None}),
    torch.clamp_max: ("clamp", ("input", "max"), {"min": None}),
    torch.stack: ("stack", ("tensors", "dim"), {"dim": 0}),
    torch.maximum: ("maximum", ("input", "other"), {}),
    torch.minimum: ("minimum", ("input", "other"), {}),
    torch.amax: ("amax", _RED, {"dim": (), "keepdim": False}),
    torch.amin: ("amin", _RED, {"dim": (), "keepdim": False}),
    torch.max: ("max", _RED, {"dim": None, "keepdim": False}),
    torch.min: ("min", _RED, {"dim": None, "keepdim": False}),
    torch.argmax: ("argmax", _RED, {"dim": None, "keepdim": False}),
    torch.argmin: ("argmin", _RED, {"dim": None, "keepdim": False}),
    F.huber_loss: ("huber", ("input", "target", "reduction", "delta", "weight"),
                   {"reduction": "mean", "delta": 1.0, "weight": None}),
    F.smooth_l1_loss: ("smooth_l1", ("input", "target") + _LOSS + ("beta",),
                       {**_LOSS_D, "beta": 1.0}),
    F.nll_loss: ("nll", ("input", "target", "weight", "size_average", "ignore_index",
                         "reduce", "reduction"), {**_LOSS_D, "weight": None,
                                                  "ignore_index": -100}),
    F.binary_cross_entropy: ("bce", ("input", "target", "weight") + _LOSS,
                             {**_LOSS_D, "weight": None}),
    F.binary_cross_entropy_with_logits: (
        "bce_logits", ("input", "target", "weight") + _LOSS + ("pos_weight",),
        {**_LOSS_D, "weight": None, "pos_weight": None}),
}
EXTRA_METHODS: dict[str, tuple[str, tuple, dict]] = {
    "amax": EXTRA_FUNCS[torch.amax], "amin": EXTRA_FUNCS[torch.amin],
    "max": EXTRA_FUNCS[torch.max], "min": EXTRA_FUNCS[torch.min],
    "argmax": EXTRA_FUNCS[torch.argmax], "argmin": EXTRA_FUNCS[torch.argmin],
    "maximum": EXTRA_FUNCS[torch.maximum], "minimum": EXTRA_FUNCS[torch.minimum],
    "softmax": ("softmax", ("input", "dim"), {}),
    "clamp_min": EXTRA_FUNCS[torch.clamp_min], "clamp_max": EXTRA_FUNCS[torch.clamp_max],
}


# ---------------------------------------------------------------------- desugaring
def _elu(b: Any, name: str, x: Any, alpha: float) -> Any:
    r = b.emit("relu", name, (x,))
    e = b.emit("exp", name + ".exp", (b.emit("sub", name + ".neg_part", (x, r)),))
    s = b.emit("mul", name + ".scale", (b.emit("sub", name + ".expm1", (e, 1.0)), float(alpha)))
    return b.emit("add", name + ".out", (r, s))


def _prelu(b: Any, name: str, x: Any, a: Any) -> Any:
    r = b.emit("relu", name, (x,))
    m = b.emit("sub", name + ".neg_part", (x, r))
    return b.emit("add", name + ".out", (r, b.emit("chanmul", name + ".slope", (m, a))))


def _extremum2(b: Any, name: str, a: Any, c: Any, sign: float) -> Any:
    s = b.emit("add", name + ".sum", (a, c))
    d = b.emit("abs", name, (b.emit("sub", name + ".diff", (a, c)),))
    both = b.emit("add" if sign > 0 else "sub", name + ".join", (s, d))
    return b.emit("mul", name + ".half", (both, 0.5))


def _reduce(b: Any, name: str, e: Any, reduction: str, what: str) -> Any:
    if reduction == "none":
        return e
    if reduction not in ("mean", "sum"):
        raise UnsupportedOperationError(f"{what}: reduction={reduction!r}; use 'mean', 'sum' "
                                        "or 'none'.")
    return b.emit(reduction, name, (e,), dim=None, keepdim=False)


def _huber(b: Any, name: str, what: str, x: Any, y: Any, delta: float, reduction: str,
           scale: float = 1.0) -> Any:
    """0.5 m^2 + delta (|d| - m), m = min(|d|, delta), times ``scale``; delta = 0 is |d|."""
    d = b.emit("sub", name + ".diff", (x, y))
    a = b.emit("abs", name + ".abs", (d,))
    if delta <= 0:
        return _reduce(b, name, a, reduction, what)
    m = b.emit("clamp", name + ".clamp", (a,), lo=None, hi=float(delta))
    sq = b.emit("mul", name + ".half_sq", (b.emit("mul", name + ".sq", (m, m)), 0.5))
    lin = b.emit("mul", name + ".lin", (b.emit("sub", name + ".excess", (a, m)), float(delta)))
    e = b.emit("add", name + ".each", (sq, lin))
    if scale != 1.0:
        e = b.emit("mul", name + ".scaled", (e, float(scale)))
    return _reduce(b, name, e, reduction, what)


def dropout(b: Any, name: str, x: Any, p: float) -> Any:
    """``x * mask`` with the mask ``F.dropout(ones_like(x), p)`` drawn by torch: a constant
    (its arguments are x's shape, dtype and device, which carry no tangent)."""
    if not 0.0 <= float(p) < 1.0:
        raise UnsupportedOperationError(f"dropout p={p}: use 0 <= p < 1 (p = 1 zeroes the "
                                        "output).")
    if float(p) == 0.0:
        return b.emit("identity", name, (x,))
    shape = b.emit("size", name + ".shape", (x,), dim=None)
    dtype = b.emit("meta", name + ".dtype", (x,), attr="dtype")
    first = next(b.root.model.parameters(), None)  # the masks are drawn on the model's device
    device = torch.device("cpu") if first is None else first.device
    mask = b.emit("dropout_mask", name + ".mask", (shape, dtype), p=float(p), device=device)
    return b.emit("mul", name, (x, mask))


def _embedding(b: Any, name: str, what: str, idx: Any, w: Any, padding_idx: Any,
               max_norm: Any = None, scale_grad_by_freq: bool = False) -> Any:
    if max_norm is not None or scale_grad_by_freq:
        raise UnsupportedOperationError(f"{what}: max_norm and scale_grad_by_freq are not "
                                        "supported (max_norm renormalises the weight in place).")
    return b.emit("embedding", name, (idx, w), padding_idx=padding_idx)


def extra_module(b: Any, mod: nn.Module, name: str, what: str, x: Any, args: tuple) -> Any:
    """The canonical ops of a module the base table does not know, or None."""
    if isinstance(mod, (nn.LogSoftmax, nn.Softmax)):
        kind = "log_softmax" if isinstance(mod, nn.LogSoftmax) else "softmax"
        if mod.dim is None:
            raise UnsupportedOperationError(f"{what}: pass dim= explicitly.")
        return b.emit(kind, name, (x,), dim=int(mod.dim))
    if isinstance(mod, nn.GELU):
        return b.emit("gelu", name, (x,), approximate=mod.approximate)
    if isinstance(mod, nn.SiLU):
        return b.emit("silu", name, (x,))
    if isinstance(mod, nn.ELU):
        return _elu(b, name, x, mod.alpha)
    if isinstance(mod, nn.PReLU):
        return _prelu(b, name, x, b.param(mod.weight, what))
    if isinstance(mod, nn.GroupNorm):
        return b.emit("groupnorm", name, (x, b.param(mod.weight, what), b.param(mod.bias, what)),
                      num_groups=int(mod.num_groups), eps=float(mod.eps))
    if isinstance(mod, nn.Embedding):
        return _embedding(b, name, what, x, b.param(mod.weight, what), mod.padding_idx,
                          mod.max_norm, mod.scale_grad_by_freq)
    if isinstance(mod, (nn.HuberLoss, nn.SmoothL1Loss)):
        if isinstance(mod, nn.HuberLoss):
            return _huber(b, name, what, x, args[1], float(mod.delta), mod.reduction)
        beta = float(mod.beta)
        return _huber(b, name, what, x, args[1], beta, mod.reduction, 1.0 / beta if beta else 1)
    if isinstance(mod, nn.NLLLoss):
        return b.emit("nll", name, (x, args[1], b.param(mod.weight, what)),
                      reduction=mod.reduction, ignore_index=int(mod.ignore_index))
    if isinstance(mod, nn.BCEWithLogitsLoss):
        return b.emit("bce_logits", name, (x, args[1], b.param(mod.weight, what),
                                           b.param(mod.pos_weight, what)),
                      reduction=mod.reduction)
    if isinstance(mod, nn.BCELoss):
        return b.emit("bce", name, (x, args[1], b.param(mod.weight, what)),
                      reduction=mod.reduction)
    return None


def _dims(dim: Any) -> Any:
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return None
    return tuple(int(d) for d in dim) if isinstance(dim, (tuple, list)) else (int(dim),)


def extra_canonical(b: Any, kind: str, name: str, what: str, a: dict) -> Any:
    """The canonical ops of a function or method call the base rules do not know, or None."""
    from ._fx import Ref

    if kind == "getitem" and isinstance(a["a"], tuple) and isinstance(a["idx"], int):
        return a["a"][a["idx"]]  # (values, indices) of max(dim)
    if kind == "getattr" and isinstance(a["input"], tuple) and a["attr"] in ("values",
                                                                          "indices"):
        return a["input"][0 if a["attr"] == "values" else 1]
    if any(a.get(k) is not None for k in ("size_average", "reduce")):
        raise UnsupportedOperationError(f"{what}: use reduction= instead of the deprecated "
                                        "size_average/reduce.")
    x = a.get("input")
    if kind == "hardtanh":  # as the modules: torch's backward masks lo < x < hi
        return b.emit("clamp", name, (x,), lo=float(a["min_val"]), hi=float(a["max_val"]),
                      open=True)
    if kind == "gelu":
        return b.emit("gelu", name, (x,), approximate=a["approximate"])
    if kind == "silu":
        return b.emit("silu", name, (x,))
    if kind == "stack":  # cat of the tensors, each with a new axis
        dim = int(a["dim"])
        parts = tuple(b.emit("unsqueeze", f"{name}.{i}", (t,), dim=dim)
                      for i, t in enumerate(a["tensors"]))
        return b.emit("cat", name, parts, dim=dim)
    if kind == "softmax":
        if a.get("dtype") is not None:
            raise UnsupportedOperationError(f"{what}: dtype= is not supported.")
        return b.emit("softmax", name, (x,), dim=int(a["dim"]))
    if kind == "elu":
        return _elu(b, name, x, float(a["alpha"]))
    if kind == "prelu":
        return _prelu(b, name, x, a["weight"])
    if kind == "groupnorm":
        return b.emit("groupnorm", name, (x, a["weight"], a["bias"]),
                      num_groups=int(a["num_groups"]), eps=float(a["eps"]))
    if kind == "embedding":
        return _embedding(b, name, what, x, a["weight"], a["padding_idx"], a["max_norm"],
                          a["scale_grad_by_freq"])
    if kind == "dropout":
        return dropout(b, name, x, a["p"]) if a["training"] else b.emit("identity", name, (x,))
    if kind in ("maximum", "minimum"):
        return _extremum2(b, name, x, a["other"], 1.0 if kind == "maximum" else -1.0)
    if kind in ("max", "min", "amax", "amin", "argmax", "argmin"):
        sign = 1.0 if kind in ("max", "amax", "argmax") else -1.0
        dim = a["dim"]
        if isinstance(dim, Ref):  # torch.max(a, b): the elementwise maximum
            return _extremum2(b, name, x, dim, sign)
        dims = _dims(dim)
        if kind.startswith("arg"):
            return b.emit("argmax", name, (x,), dim=dims, keepdim=bool(a["keepdim"]), sign=sign)
        if kind in ("amax", "amin") or dims is None:  # torch shares ties equally
            return b.emit("amax", name, (x,), dim=dims, keepdim=bool(a["keepdim"]), sign=sign,
                          tie="split")
        if len(dims) != 1:
            raise UnsupportedOperationError(f"{what}: dim must be one int.")
        vals = b.emit("amax", name, (x,), dim=dims, keepdim=bool(a["keepdim"]), sign=sign,
                      tie="first")  # the value at torch's index: the first maximiser
        idx = b.emit("argmax", name + ".indices", (x,), dim=dims, keepdim=bool(a["keepdim"]),
                     sign=sign)
        return (vals, idx)
    if kind in ("huber", "smooth_l1"):
        if a.get("weight") is not None:
            raise UnsupportedOperationError(f"{what}: weight= is not supported.")
        if kind == "huber":
            return _huber(b, name, what, x, a["target"], float(a["delta"]), a["reduction"])
        beta = float(a["beta"])
        return _huber(b, name, what, x, a["target"], beta, a["reduction"],
                      1.0 / beta if beta else 1.0)
    if kind == "nll":
        return b.emit("nll", name, (x, a["target"], a["weight"]), reduction=a["reduction"],
                      ignore_index=int(a["ignore_index"]))
    if kind == "bce":
        return b.emit("bce", name, (x, a["target"], a["weight"]), reduction=a["reduction"])
    if kind == "bce_logits":
        return b.emit("bce_logits", name, (x, a["target"], a["weight"], a["pos_weight"]),
                      reduction=a["reduction"])
    return None
