"""Interpret the canonical ops of :mod:`._fx` with ``kinkgrad.numpy``.

The result is an ordinary Python function ``f(params, x, y)`` written with ``knp``, so every
kinkgrad transformation (``grad``, ``trace``, ``certify``, ``clarke_grad``...) applies to it.
Conv2d is the ``knp.conv2d`` primitive; MaxPool2d the ``knp.max_pool2d`` primitive, whose
``"first"`` tie rule picks the same entry as PyTorch's kernel.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as knp
from .._core.tracer import is_traced
from ..errors import ShapeError, UnsupportedOperationError
from ..primitives._tensors import tensor_of
from ._extra_rules import KNP_RULES, class_rows, has_dropout, replay, snapshot
from ._fx import Op, TorchGraph, refs, resolve

__all__ = ["make_function", "to_numpy"]


def to_numpy(v: Any) -> Any:
    """A torch tensor as a NumPy array (other values unchanged)."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        return v.detach().cpu().numpy()
    return v


# ---------------------------------------------------------------------- layers
def _windows(x: Any, kernel: tuple, stride: tuple, dilation: tuple) -> tuple[list, int, int]:
    """Strided views x[:, :, i*dh::sh, j*dw::sw] of every kernel offset (row-major order)."""
    h, w = knp.shape(x)[-2:]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"conv2d/max_pool2d: a {h}x{w} input is smaller than the kernel.")
    views = []
    for i in range(kh):
        for j in range(kw):
            views.append(x[..., i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw])
    return views, oh, ow


def conv2d(x: Any, w: Any, b: Any, stride: tuple, padding: tuple, dilation: tuple,
           groups: int) -> Any:
    """``F.conv2d`` (cross-correlation, NCHW): the ``knp.conv2d`` primitive."""
    if knp.ndim(x) != 4:
        raise ShapeError(f"conv2d: input of shape {knp.shape(x)}; batch it as (N, C, H, W).")
    return knp.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                      groups=groups)


def max_pool2d(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
    """``F.max_pool2d``: the ``knp.max_pool2d`` primitive (-inf padding, as PyTorch)."""
    if knp.ndim(x) != 4:
        raise ShapeError(f"max_pool2d: input of shape {knp.shape(x)}; batch it as "
                         "(N, C, H, W).")
    return knp.max_pool2d(x, kernel, stride, padding, dilation)


def avg_pool2d(x: Any, kernel: tuple, stride: tuple) -> Any:
    """``F.avg_pool2d`` without padding: the mean of the stacked window entries (smooth)."""
    views, _, _ = _windows(x, kernel, stride, (1, 1))
    return knp.mean(knp.stack(views, axis=-1), axis=-1)


def batch_norm(x: Any, w: Any, b: Any, mean: Any, var: Any, training: bool,
               eps: float) -> Any:
    """``F.batch_norm``: ``(x - mean) / sqrt(var + eps) * w + b`` per channel (axis 1), with
    the batch's mean and biased variance over the other axes in training mode, the running
    statistics (constants) otherwise. Smooth (var + eps > 0)."""
    nd = knp.ndim(x)
    shape = (1, knp.shape(x)[1]) + (1,) * (nd - 2)
    if training:
        axes = (0,) + tuple(range(2, nd))
        mean, var = knp.mean(x, axis=axes, keepdims=True), knp.var(x, axis=axes, keepdims=True)
    else:
        mean, var = knp.reshape(mean, shape), knp.reshape(var, shape)
    y = (x - mean) / knp.sqrt(var + eps)
    y = y if w is None else y * knp.reshape(w, shape)
    return y if b is None else y + knp.reshape(b, shape)


def layer_norm(x: Any, w: Any, b: Any, shape: tuple, eps: float) -> Any:
    """``F.layer_norm``: each sample normalised over its last ``len(shape)`` axes (mean and
    biased variance), then ``* w + b``. Smooth (var + eps > 0)."""
    axes = tuple(range(knp.ndim(x) - len(shape), knp.ndim(x)))
    mean, var = knp.mean(x, axis=axes, keepdims=True), knp.var(x, axis=axes, keepdims=True)
    y = (x - mean) / knp.sqrt(var + eps)
    y = y if w is None else y * w
    return y if b is None else y + b


def cross_entropy(logits: Any, target: Any, reduction: str, ignore_index: int) -> Any:
    """``F.cross_entropy`` for (N, C) logits: ``logsumexp(z_i) - z_i[y_i]`` (hard labels) or
    ``-sum_c y_ic log_softmax(z_i)_c`` (probability targets)."""
    target = np.asarray(to_numpy(target))
    if knp.ndim(logits) == 1:
        logits, target = knp.reshape(logits, (1, -1)), target.reshape((1,) + target.shape)
    if knp.ndim(logits) != 2:
        raise UnsupportedOperationError("cross_entropy: only (N, C) logits are supported.")
    if target.dtype.kind == "f":
        if target.shape != tuple(knp.shape(logits)):
            raise ShapeError(f"cross_entropy: float targets are class probabilities of the "
                             f"logits' shape {tuple(knp.shape(logits))}, got {target.shape}; "
                             "pass integer labels (y.long()) or probabilities.")
        per = -knp.sum(target * knp.log_softmax(logits, axis=1), axis=1)
        count = knp.shape(per)[0]
    else:
        if target.dtype.kind not in "iu":
            raise UnsupportedOperationError("cross_entropy: the target must hold integer class "
                                            "labels or float class probabilities.")
        rows = class_rows("cross_entropy", target, knp.shape(logits)[1], ignore_index,
                          reduction)
        if reduction == "none" and rows.size != target.size:
            raise UnsupportedOperationError("cross_entropy(reduction='none') with ignored "
                                            "labels is not supported.")
        kept = logits if rows.size == target.size else logits[rows]  # no row ignored: all
        per = knp.logsumexp(kept, axis=1) - logits[rows, target[rows]]
        count = rows.size
    if reduction == "sum":
        return knp.sum(per)
    if reduction == "mean":
        return knp.sum(per) * (1.0 / count)
    return per


def _gather(x: Any, index: Any, dim: int) -> Any:
    index = np.asarray(to_numpy(index))
    if index.dtype.kind not in "iu":
        raise UnsupportedOperationError("gather: the index must be a constant integer tensor.")
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim % index.ndim] = index
    return x[tuple(grid)]


def _size(x: Any, dim: Any) -> Any:
    s = tuple(knp.shape(x))
    return s if dim is None else s[dim]


def _getitem(a: Any, idx: Any) -> Any:
    if isinstance(a, (tuple, list)):
        return a[idx]
    idx = tuple(np.asarray(to_numpy(i)) if hasattr(i, "detach") else i
                for i in (idx if isinstance(idx, tuple) else (idx,)))
    return a[idx]


def _flatten(x: Any, start: int, end: int) -> Any:
    s = list(knp.shape(x))
    if not s:
        return knp.reshape(x, (1,))
    start, end = start % len(s), end % len(s)
    return knp.reshape(x, tuple(s[:start]) + (-1,) + tuple(s[end + 1:]))


def _cast(x: Any, dtype: Any) -> Any:
    """``x.float()`` / ``x.double()``: casts constants (labels); a traced value must already
    have that dtype (kinkgrad keeps dtypes as given)."""
    want = np.dtype(str(dtype).removeprefix("torch."))
    if not is_traced(x):
        return np.asarray(x).astype(want)
    if x.dtype != want:
        raise UnsupportedOperationError(f"cast to {want} of a traced {x.dtype} value; convert "
                                        "the model (model.double()) instead.")
    return x


def _reduce(fn: Callable) -> Callable:
    def rule(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        axis = tuple(dim) if isinstance(dim, list) else dim
        return fn(x, axis=axis, keepdims=keepdim)

    return rule


def _swap(x: Any, dim0: int, dim1: int) -> Any:
    return knp.swapaxes(x, dim0, dim1)


def _squeeze(x: Any, dim: Any = None) -> Any:
    if dim is not None and knp.shape(x)[dim] != 1:
        return x  # torch leaves a non-unit dimension alone
    return knp.squeeze(x, axis=dim)


_RULES: dict[str, Callable] = {
    "linear": lambda x, w, b: (knp.matmul(x, knp.transpose(w)) if b is None  # NOTE: knp's
                               else knp.matmul(x, knp.transpose(w)) + b),  # shape message
    "relu": knp.relu, "abs": knp.abs, "tanh": knp.tanh, "sigmoid": knp.sigmoid,
    "exp": knp.exp, "log": knp.log, "neg": operator.neg, "identity": lambda x: x,
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "matmul": knp.matmul, "pow": operator.pow, "getitem": _getitem,
    "reshape": lambda x, shape: knp.reshape(x, tuple(shape)), "t": knp.transpose,
    "sum": _reduce(knp.sum), "mean": _reduce(knp.mean), "transpose": _swap,
    "unsqueeze": lambda x, dim: knp.expand_dims(x, dim), "squeeze": _squeeze,
    "cast": _cast,
    "log_softmax": lambda x, dim: knp.log_softmax(x, axis=dim),
    "logsumexp": lambda x, dim, keepdim=False: knp.logsumexp(x, axis=dim, keepdims=keepdim),
}


_RULES.update(KNP_RULES)  # the layers of _fx_extra


def _to_torch(v: Any) -> Any:
    import torch

    if isinstance(v, np.ndarray):
        return torch.from_numpy(v)
    t = tensor_of(v)  # a torch-backed array (a constant made on the torch backend)
    if t is not None:
        return t
    if isinstance(v, (tuple, list)):
        return type(v)(_to_torch(t) for t in v)
    if isinstance(v, dict):
        return {k: _to_torch(t) for k, t in v.items()}
    return v


def _opaque(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """A torch function without a kinkgrad rule, on constants only (the batch, labels):
    evaluated by torch itself."""
    out = fn(*_to_torch(args), **_to_torch(kwargs))
    return to_numpy(out)


def _meta(x: Any, attr: str) -> Any:
    """``x.dtype`` / ``x.device`` / ``x.ndim`` as torch would report them (for constants that
    torch builds from them, e.g. ``torch.eye(n, dtype=h.dtype)``)."""
    import torch

    if attr == "ndim":
        return knp.ndim(x)
    if attr == "device":
        return torch.device("cpu")
    if isinstance(x.dtype, torch.dtype):  # the batch on the torch backend
        return x.dtype
    name = getattr(x.dtype, "name", None)  # NumPy's dtype or torch._numpy's (on tensors)
    return getattr(torch, name if isinstance(name, str) else np.dtype(x.dtype).name)


def _apply(op: Op, args: tuple, params: dict, x: Any, y: Any) -> Any:
    k, p = op.kind, op.params
    if k == "input":
        return x if p["slot"] == 0 else y
    if k == "param":
        return params[p["name"]]
    if k == "const":
        return to_numpy(p["value"])
    if k == "opaque":
        return _opaque(p["fn"], *args)
    if k == "meta":
        return _meta(args[0], p["attr"])
    if k == "conv2d":
        return conv2d(*args, p["stride"], p["padding"], p["dilation"], p["groups"])
    if k == "maxpool2d":
        return max_pool2d(args[0], p["kernel"], p["stride"], p["padding"], p["dilation"])
    if k == "layernorm":
        return layer_norm(*args, p["shape"], p["eps"])
    if k == "batchnorm":
        return batch_norm(*args, p["training"], p["eps"])
    if k == "avgpool2d":
        return avg_pool2d(args[0], p["kernel"], p["stride"])
    if k == "cat":
        return knp.concatenate(list(args), axis=p["dim"])
    if k == "leaky_relu":
        return knp.leaky_relu(args[0], p["alpha"])
    if k == "clamp":
        return _hardtanh(args[0], p["lo"], p["hi"]) if p.get("open") else \
            knp.clip(args[0], p["lo"], p["hi"])
    if k == "flatten":
        return _flatten(args[0], p["start"], p["end"])
    if k == "size":
        return _size(args[0], p["dim"])
    if k == "gather":
        return _gather(args[0], args[1], p["dim"])
    if k == "cross_entropy":
        return cross_entropy(args[0], args[1], p["reduction"], p["ignore_index"])
    return _RULES[k](*args, **p)


def _batch(x: Any) -> Any:
    """The batch as the rules take it: on the torch backend (a call on torch tensors in
    progress) a torch tensor stays where it is (no copy to the host and back on a GPU; the
    rules take it as a constant operand); otherwise a NumPy array."""
    from ..backends import is_torch, torch_active

    if is_torch(x) and torch_active():
        return x.detach()
    return to_numpy(x)


def torch_policy(graph: TorchGraph | None = None) -> Any:
    """PyTorch's choices at the kinks of a translated model: the "torch" preset, with ties of
    a max-pool window (a ``max`` reduction here) given to the first maximiser as PyTorch's
    max_pool2d does (its ``max()``/``amax`` split instead). A ``graph`` whose only ``max``
    reductions are amax/amin/max() (no pooling, no ``max(dim)``) gets the preset's split."""
    from ..kinks import kink_policy

    if graph is not None and any(op.kind == "amax" for op in graph.ops) and not any(
            op.kind == "maxpool2d" or op.params.get("tie") == "first" for op in graph.ops):
        return kink_policy("torch")
    return kink_policy("torch", max="first")


def _hardtanh(x: Any, lo: float, hi: float) -> Any:
    """Hardtanh as ``hi - relu((hi - lo) - relu(x - lo))``: the same values as clip, and with
    relu'(0) = 0 (the "torch" preset) slope 0 at both bounds, as PyTorch's Hardtanh backward
    (mask lo < x < hi), where ``torch.clamp`` takes 1 (mask lo <= x <= hi)."""
    return hi - knp.relu((hi - lo) - knp.relu(x - lo))


def _live(graph: TorchGraph) -> set[int]:
    """The ops the output reads. An index no op reads (``v, _ = x.max(1)``) is not computed:
    it is a read of a traced value (``knp.argmax``) whose tie would make the set-valued
    answers refuse (:mod:`kinkgrad.abs_normal._reads`)."""
    live, stack = set(), [graph.output.index]
    while stack:
        k = stack.pop()
        if k not in live:
            live.add(k)
            stack.extend(refs(graph.ops[k].args))
    return live


def make_function(graph: TorchGraph) -> Callable:
    """``f(params, x, y)``: the loss of the traced model written with ``kinkgrad.numpy``.

    ``params`` is a dict of arrays keyed by the model's parameter names; ``x`` and ``y`` are
    the batch (NumPy arrays or torch tensors, converted to NumPy).
    """

    dev = has_dropout(graph)  # dropout masks: those of the generator state now, every call
    rng = None if dev is None else snapshot(dev)
    live = _live(graph)

    def f(params: dict, x: Any, y: Any = None) -> Any:
        x, y = _batch(x), to_numpy(y)
        env: list = []
        with replay(rng):
            for k, op in enumerate(graph.ops):
                env.append(_apply(op, resolve(op.args, env), params, x, y)
                           if op.kind != "argmax" or k in live else None)
        return env[graph.output.index]

    f.graph = graph  # type: ignore[attr-defined]
    return f
