"""The canonical ops of :mod:`._fx_extra` interpreted twice: with ``kinkgrad.numpy`` (the
translated program, :data:`KNP_RULES`) and with torch (the dual pass, :data:`TORCH_FN`; their
tangents come from ``torch.func.jvp``), plus the replay of dropout masks.

Dropout masks: torch draws them from its global generator. The translated function
``f(params, x, y)`` replays the generator state taken when it was made, so every call uses the
masks the model's next forward would draw (``certify_torch`` translates the model before
running PyTorch's forward, so both see the same masks). The dual pass draws like a forward
would; its repeat with a second direction replays the first pass's masks, and a counting pass
without directions leaves the generator as it found it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import numpy as knp
from ..errors import ShapeError, UnsupportedOperationError

__all__ = ["KNP_RULES", "TORCH_FN", "snapshot", "replay", "dual_rng_begin", "dual_rng_end",
           "has_dropout"]


def _np(v: Any) -> Any:
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v


def _channel(a: Any, nd: int) -> tuple:
    """Shape that puts a per-channel vector on axis 1 of an nd-array."""
    return (1, -1) + (1,) * (nd - 2)


def class_rows(where: str, target: np.ndarray, n_classes: int, ignore_index: int,
               reduction: str) -> np.ndarray:
    """The rows whose integer label is not ``ignore_index``, with every such label checked to
    be a class (0 <= y < C; NumPy would read -1 as the last class where torch raises)."""
    rows = np.flatnonzero(target != ignore_index)
    kept = target[rows]
    bad = kept[(kept < 0) | (kept >= n_classes)]
    if bad.size:
        raise ShapeError(f"{where}: label {int(bad[0])} is not a class of the {n_classes} "
                         f"(0 to {n_classes - 1}, or ignore_index={ignore_index} to skip a "
                         "row), as torch refuses it; fix the labels.")
    if reduction == "mean" and not rows.size:
        raise ShapeError(f"{where}: every label equals ignore_index={ignore_index}, so the "
                         "mean over the kept rows is over none (torch gives NaN); skip this "
                         "batch or use reduction='sum'.")
    return rows


def _reduce(per: Any, reduction: str, count: Any = None) -> Any:
    if reduction == "sum":
        return knp.sum(per)
    if reduction == "mean":
        return knp.sum(per) * (1.0 / count) if count is not None else knp.mean(per)
    return per


# ---------------------------------------------------------------------- knp rules
def _gelu(x: Any, approximate: str = "none") -> Any:
    """Exact: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2; "tanh": PyTorch's approximation
    x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""
    if approximate == "tanh":
        return x * 0.5 * (1.0 + knp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    return x * 0.5 * (1.0 + knp.erf(x * (1.0 / math.sqrt(2.0))))


def _chanmul(m: Any, a: Any) -> Any:
    nd = knp.ndim(m)
    return m * (knp.reshape(a, _channel(a, nd)) if nd >= 2 and knp.shape(a)[0] > 1 else a)


def _groupnorm(x: Any, w: Any, b: Any, num_groups: int, eps: float) -> Any:
    """Each sample's channels in ``num_groups`` groups, each normalised by its mean and biased
    variance, then ``* w + b`` per channel. Smooth (var + eps > 0)."""
    shape = tuple(knp.shape(x))
    if len(shape) < 2 or shape[1] % num_groups:
        raise ShapeError(f"group_norm: input of shape {shape} does not split its channels "
                         f"into {num_groups} groups.")
    xr = knp.reshape(x, (shape[0], num_groups, -1))
    mean, var = knp.mean(xr, axis=-1, keepdims=True), knp.var(xr, axis=-1, keepdims=True)
    y = knp.reshape((xr - mean) / knp.sqrt(var + eps), shape)
    y = y if w is None else y * knp.reshape(w, _channel(w, len(shape)))
    return y if b is None else y + knp.reshape(b, _channel(b, len(shape)))


def _embedding(idx: Any, w: Any, padding_idx: Any = None) -> Any:
    """``w[idx]``; the row ``padding_idx`` is a constant (PyTorch leaves its gradient 0)."""
    idx = np.asarray(_np(idx))
    if idx.dtype.kind not in "iu":
        raise UnsupportedOperationError("embedding: the input must be an integer tensor.")
    if padding_idx is not None:
        n = knp.shape(w)[0]
        keep = np.ones((n, 1), np.dtype(w.dtype.name))
        keep[padding_idx % n] = 0.0
        # NOTE: PyTorch's convention, the same at every point: not a read of f's (_value)
        w = w * keep + knp._concrete(knp._value(w)) * (1.0 - keep)  # no derivative there
    return w[idx]


def _dropout_mask(shape: tuple, dtype: Any, p: float, device: Any) -> np.ndarray:
    """``F.dropout(ones, p)`` drawn by torch on the model's device: 0 or 1 / (1 - p)."""
    ones = torch.ones(tuple(shape), dtype=dtype, device=device)
    return F.dropout(ones, p, True).cpu().numpy()


def _amax(x: Any, dim: Any, keepdim: bool, sign: float, tie: str) -> Any:
    return (knp.max if sign > 0 else knp.min)(x, axis=dim, keepdims=keepdim)


def _argmax(x: Any, dim: Any, keepdim: bool, sign: float) -> Any:
    if dim is not None and len(dim) != 1:
        raise UnsupportedOperationError("argmax/argmin: dim must be one int or None.")
    arg = knp.argmax if sign > 0 else knp.argmin  # NOTE: the read their margins check
    return arg(x, axis=None if dim is None else dim[0], keepdims=bool(keepdim))


def _nll(x: Any, target: Any, weight: Any, reduction: str, ignore_index: int) -> Any:
    """``-w[y_i] x[i, y_i]``; the mean divides by the sum of the weights of the kept rows."""
    t = np.asarray(_np(target))
    if t.dtype.kind not in "iu":
        raise UnsupportedOperationError("nll_loss: the target must hold integer class labels.")
    if knp.ndim(x) == 1:
        x, t = knp.reshape(x, (1, -1)), t.reshape(1)
    if knp.ndim(x) != 2:
        raise UnsupportedOperationError("nll_loss: only (N, C) inputs are supported.")
    rows = class_rows("nll_loss", t, knp.shape(x)[1], ignore_index, reduction)
    if reduction == "none" and rows.size != t.size:
        raise UnsupportedOperationError("nll_loss(reduction='none') with ignored labels is not "
                                        "supported.")
    w = np.ones(rows.size) if weight is None else np.asarray(_np(weight))[t[rows]]
    per = -(x[rows, t[rows]] * w.astype(np.dtype(x.dtype.name)))
    return _reduce(per, reduction, float(np.sum(w)))


def _target(y: Any, x: Any) -> np.ndarray:
    y = np.asarray(_np(y))
    if y.dtype.kind != "f":
        raise UnsupportedOperationError("binary_cross_entropy: the target must be a float "
                                        "tensor of probabilities (y.float()).")
    return y.astype(np.dtype(x.dtype.name))


def _bce(p: Any, y: Any, weight: Any, reduction: str) -> Any:
    """``-(y log p + (1 - y) log(1 - p))`` (times the weight); p in (0, 1)."""
    y = _target(y, p)
    per = -(y * knp.log(p) + (1.0 - y) * knp.log1p(-p))
    per = per if weight is None else per * _np(weight)
    return _reduce(per, reduction)


def _bce_logits(z: Any, y: Any, weight: Any, pos_weight: Any, reduction: str) -> Any:
    """``(1 - y) z + (1 + (pw - 1) y) softplus(-z)`` (pw = 1 without ``pos_weight``): the
    stable form of BCE of sigmoid(z), as PyTorch's."""
    y = _target(y, z)
    lw = 1.0 if pos_weight is None else 1.0 + (_np(pos_weight) - 1.0) * y
    per = (1.0 - y) * z + knp.softplus(-z) * lw
    per = per if weight is None else per * _np(weight)
    return _reduce(per, reduction)


KNP_RULES: dict[str, Callable] = {
    "gelu": _gelu, "silu": lambda x: x * knp.sigmoid(x), "chanmul": _chanmul,
    "softmax": lambda x, dim: knp.softmax(x, axis=dim),
    "groupnorm": _groupnorm, "embedding": _embedding, "dropout_mask": _dropout_mask,
    "amax": _amax, "argmax": _argmax, "nll": _nll, "bce": _bce, "bce_logits": _bce_logits,
}


# ---------------------------------------------------------------------- torch functions
def _t_chanmul(m: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return m * (a.reshape(_channel(a, m.dim())) if m.dim() >= 2 and a.numel() > 1 else a)


def _t_embedding(idx: torch.Tensor, w: torch.Tensor, padding_idx: Any = None) -> torch.Tensor:
    if padding_idx is not None:  # the padding row is a constant: no tangent either
        k = padding_idx % w.shape[0]
        w = torch.cat([w[:k], w[k:k + 1].detach(), w[k + 1:]])
    return F.embedding(idx, w, padding_idx)


def _t_argmax(x: torch.Tensor, dim: Any, keepdim: bool, sign: float) -> torch.Tensor:
    v = x.detach() * sign
    return v.argmax() if dim is None else v.argmax(dim[0], keepdim)


TORCH_FN: dict[str, Callable] = {
    "gelu": lambda x, approximate="none": F.gelu(x, approximate=approximate),
    "silu": F.silu, "chanmul": _t_chanmul, "softmax": lambda x, dim: F.softmax(x, dim),
    "groupnorm": lambda x, w, b, num_groups, eps: F.group_norm(x, num_groups, w, b, eps),
    "embedding": _t_embedding, "argmax": _t_argmax,
    "dropout_mask": lambda shape, dtype, p, device: F.dropout(
        torch.ones(tuple(shape), dtype=dtype, device=device), p, True),
    "nll": lambda x, t, w, reduction, ignore_index: F.nll_loss(
        x, t, w, ignore_index=ignore_index, reduction=reduction),
    "bce": lambda p, y, w, reduction: F.binary_cross_entropy(p, y, w, reduction=reduction),
    "bce_logits": lambda z, y, w, pw, reduction: F.binary_cross_entropy_with_logits(
        z, y, w, reduction=reduction, pos_weight=pw),
}


# ---------------------------------------------------------------------- dropout masks
def has_dropout(graph: Any) -> Any:
    """The device of the graph's dropout masks, or None when it has none."""
    return next((op.params["device"] for op in graph.ops if op.kind == "dropout_mask"), None)


def snapshot(device: Any) -> tuple:
    dev = torch.device(device)
    cuda = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    return dev, torch.get_rng_state(), cuda


def _set(snap: tuple) -> None:
    dev, cpu, cuda = snap
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, dev)


@contextlib.contextmanager
def replay(snap: tuple | None) -> Iterator[None]:
    """Draw from the generator state ``snap`` and leave the caller's generator untouched."""
    if snap is None:
        yield
        return
    with torch.random.fork_rng(devices=[snap[0]] if snap[0].type == "cuda" else []):
        _set(snap)
        yield


def dual_rng_begin(graph: Any, directions: list) -> tuple | None:
    """Before a dual pass: a counting pass (no directions) keeps the generator; the first
    pass records it; a repeat (more directions) replays the first pass's masks."""
    dev = has_dropout(graph)
    if dev is None:
        return None
    if not directions:
        return snapshot(dev)
    if len(directions) == 1 or getattr(graph, "dropout_rng", None) is None:
        graph.dropout_rng = snapshot(dev)
    else:
        _set(graph.dropout_rng)
    return None


def dual_rng_end(token: tuple | None) -> None:
    if token is not None:
        _set(token)
