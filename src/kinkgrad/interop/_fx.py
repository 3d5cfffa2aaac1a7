"""Trace ``loss_fn(model(x), y)`` with ``torch.fx`` into a small canonical op list.

The canonical list is what both interpreters read: :mod:`._to_knp` (a kinkgrad function of
the parameters) and :mod:`._dual` (the torch forward pass that carries tangents). Each fx node
becomes one :class:`Op` (losses with an ``abs`` inside, ``l1_loss`` and ``mse_loss``, are
expanded so that their kinks are visible). Anything else raises
:class:`~kinkgrad.errors.UnsupportedOperationError` naming the layer and the supported set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import KinkgradError, UnsupportedOperationError
from ._fx_extra import dropout, extra_canonical, extra_module
from ._fx_ops import FUNCS, METHODS, NONSMOOTH, SMOOTH_MODULES, SUPPORTED

__all__ = ["Op", "Ref", "TorchGraph", "build_graph", "NONSMOOTH", "SUPPORTED"]


@dataclass(frozen=True)
class Ref:
    """Reference to the value of an earlier op (its position in the list)."""

    index: int


@dataclass
class Op:
    """One canonical operation: ``kind`` applied to ``args`` (trees holding :class:`Ref`)."""

    kind: str
    name: str
    args: tuple
    params: dict = field(default_factory=dict)


@dataclass
class TorchGraph:
    """``loss_fn(model(x), y)`` as canonical ops; inputs are ops of kind ``input``
    (``params["slot"]`` 0 for x, 1 for y) and ``param`` (``params["name"]``)."""

    ops: list[Op]
    output: Ref
    param_names: list[str]
    params: dict[str, torch.Tensor]


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model = model
        if isinstance(loss_fn, nn.Module):
            self.loss = loss_fn
        else:
            self._fn = loss_fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fn = self.loss if hasattr(self, "loss") else self._fn
        return fn(self.model(x), y)


class _Method:
    """``Tensor.<name>`` as a function of (self, *args, **kwargs)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(obj, self.name)(*args, **kwargs)


class _Tracer(fx.Tracer):
    """fx's tracer, but a module that is not a submodule of the traced root (a loss module
    created inside ``loss_fn``) is traced through instead of failing."""

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        try:
            self.path_of_module(m)
        except NameError:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _bind(what: str, args: tuple, kwargs: dict, names: tuple, defaults: dict) -> dict:
    if len(args) > len(names):
        raise UnsupportedOperationError(f"{what}: too many positional arguments for kinkgrad.")
    out = dict(defaults)
    out.update(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise UnsupportedOperationError(f"{what}: keyword {k!r} is not supported.")
        out[k] = v
    return out


class _Builder:
    """Turns fx nodes into canonical ops, creating ``param`` ops on first use."""

    def __init__(self, root: _Wrapper) -> None:
        self.root = root
        self.ops: list[Op] = []
        self.env: dict[fx.Node, Any] = {}
        self.by_id = {id(p): n for n, p in root.model.named_parameters()}
        self.param_ref: dict[str, Ref] = {}

    def emit(self, kind: str, label: str, args: tuple, /, **params: Any) -> Ref:
        self.ops.append(Op(kind, label, args, params))
        return Ref(len(self.ops) - 1)

    def param(self, p: Any, where: str) -> Any:
        if p is None:
            return None
        if not isinstance(p, nn.Parameter):
            return self.emit("const", where, (), value=p.detach())
        name = self.by_id.get(id(p))
        if name is None:
            raise KinkgradError(f"{where}: a parameter that is not one of the model's "
                                "parameters (it belongs to the loss?); kinkgrad "
                                "differentiates the model's parameters only.")
        if name not in self.param_ref:
            self.param_ref[name] = self.emit("param", name, (), name=name,
                                             shape=tuple(p.shape))
        return self.param_ref[name]

    def arg(self, a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: self.env[n])

    # ------------------------------------------------------------------ node kinds
    def module(self, node: fx.Node) -> Any:
        mod = self.root.get_submodule(node.target)
        name = str(node.target).removeprefix("model.")
        what = f"layer {name!r} ({type(mod).__name__})"
        args = self.arg(node.args)
        x = args[0]
        if isinstance(mod, nn.Linear):
            return self.emit("linear", name, (x, self.param(mod.weight, what),
                                              self.param(mod.bias, what)))
        if isinstance(mod, nn.Conv2d):
            if mod.padding_mode != "zeros":
                raise UnsupportedOperationError(f"{what}: padding_mode={mod.padding_mode!r}; "
                                                "only zero padding is supported.")
            return self._conv(name, what, x, self.param(mod.weight, what),
                              self.param(mod.bias, what), mod.stride, mod.padding,
                              mod.dilation, mod.groups, mod.kernel_size)
        if isinstance(mod, nn.ReLU):
            return self.emit("relu", name, (x,))
        if isinstance(mod, nn.LeakyReLU):
            return self.emit("leaky_relu", name, (x,), alpha=float(mod.negative_slope))
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            train = mod.training or mod.running_mean is None  # batch statistics
            stats = (None, None) if train else (self.param(mod.running_mean, what),
                                                self.param(mod.running_var, what))
            return self.emit("batchnorm", name, (x, self.param(mod.weight, what),
                                                 self.param(mod.bias, what), *stats),
                             training=train, eps=float(mod.eps))
        if isinstance(mod, nn.LayerNorm):
            return self.emit("layernorm", name, (x, self.param(mod.weight, what),
                                                 self.param(mod.bias, what)),
                             shape=tuple(mod.normalized_shape), eps=float(mod.eps))
        if isinstance(mod, nn.Hardtanh):  # ReLU6 too; torch's backward masks lo < x < hi
            return self.emit("clamp", name, (x,), lo=float(mod.min_val), hi=float(mod.max_val),
                             open=True)
        if isinstance(mod, nn.AdaptiveAvgPool2d) and _pair(mod.output_size) == (1, 1):
            return self.emit("mean", name, (x,), dim=(2, 3), keepdim=True)
        if isinstance(mod, nn.AvgPool2d) and _pair(mod.padding) == (0, 0) \
                and not mod.ceil_mode and mod.divisor_override is None:
            k = _pair(mod.kernel_size)
            return self.emit("avgpool2d", name, (x,), kernel=k,
                             stride=_pair(mod.stride) if mod.stride else k)
        if isinstance(mod, nn.MaxPool2d):
            return self._pool(name, what, x, mod.kernel_size, mod.stride, mod.padding,
                              mod.dilation, mod.ceil_mode, mod.return_indices)
        if isinstance(mod, nn.Flatten):
            return self.emit("flatten", name, (x,), start=mod.start_dim, end=mod.end_dim)
        if isinstance(mod, nn.Dropout):  # training mode: torch's mask, a constant
            return dropout(self, name, x, mod.p) if mod.training else \
                self.emit("identity", name, (x,))
        if type(mod) in SMOOTH_MODULES:
            return self.emit(SMOOTH_MODULES[type(mod)], name, (x,))
        if isinstance(mod, nn.CrossEntropyLoss):
            return self._ce(name, what, x, args[1], mod.weight, mod.ignore_index,
                            mod.reduction, mod.label_smoothing)
        if isinstance(mod, (nn.MSELoss, nn.L1Loss)):
            kind = "mse" if isinstance(mod, nn.MSELoss) else "l1"
            return self._pointwise_loss(kind, name, x, args[1], mod.reduction)
        more = extra_module(self, mod, name, what, x, args)
        if more is not None:
            return more
        raise UnsupportedOperationError(
            f"{what} is not supported by the kinkgrad torch bridge. Supported {SUPPORTED}.")

    def call(self, node: fx.Node, spec: tuple | None, what: str, name: str) -> Any:
        args = self.arg(node.args)
        kwargs = self.arg(dict(node.kwargs))
        if spec is None:  # allowed only on constants (labels, inputs): checked in build_graph
            fn = _Method(node.target) if node.op == "call_method" else node.target
            return self.emit("opaque", name, (args, kwargs), fn=fn, what=what)
        kind, names, defaults = spec
        if names[-1] == "*shape":  # x.view(a, b) or x.view((a, b))
            shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            return self.emit("reshape", name, (args[0], tuple(shape)))
        b = _bind(what, tuple(args), kwargs, names, defaults)
        return self._canonical(kind, name, what, b)

    def _canonical(self, kind: str, name: str, what: str, b: dict) -> Any:
        more = extra_canonical(self, kind, name, what, b)
        if more is not None:
            return more
        if kind == "cat":  # one argument per tensor, so that each carries its tangent
            return self.emit("cat", name, tuple(b["tensors"]), dim=int(b["dim"]))
        if kind in ("add", "sub", "mul", "div", "matmul", "pow", "getitem"):
            second = b["idx"] if kind == "getitem" else b["b"]
            return self.emit(kind, name, (b["a"], second))
        if kind == "getattr":
            if b["attr"] in ("dtype", "device", "ndim"):  # metadata, never a value
                return self.emit("meta", name, (b["input"],), attr=b["attr"])
            if b["attr"] != "shape":  # other attributes: constants only
                return self.emit("opaque", name, ((b["input"], b["attr"]), {}), fn=getattr,
                                 what=f"attribute .{b['attr']}")
            return self.emit("size", name, (b["input"],), dim=None)
        x = b["input"]
        if kind == "linear":
            return self.emit("linear", name, (x, b["weight"], b["bias"]))
        if kind == "conv2d":
            w = b["weight"]
            shape = self.ops[w.index].params.get("shape") if isinstance(w, Ref) else None
            ks = None if shape is None else shape[2:]
            return self._conv(name, what, x, w, b["bias"], b["stride"], b["padding"],
                              b["dilation"], b["groups"], ks)
        if kind == "maxpool2d":
            return self._pool(name, what, x, b["kernel_size"], b["stride"], b["padding"],
                              b["dilation"], b["ceil_mode"], b["return_indices"])
        if kind == "cross_entropy":
            if b["size_average"] is not None or b["reduce"] is not None:
                raise UnsupportedOperationError(f"{what}: use reduction= instead of the "
                                                "deprecated size_average/reduce.")
            return self._ce(name, what, x, b["target"], b["weight"], b["ignore_index"],
                            b["reduction"], b["label_smoothing"])
        if kind in ("mse", "l1"):
            if b["weight"] is not None or b["size_average"] is not None or b["reduce"] is not None:
                raise UnsupportedOperationError(f"{what}: only reduction= is supported.")
            return self._pointwise_loss(kind, name, x, b["target"], b["reduction"])
        static = {k: v for k, v in b.items() if k not in ("input", "inplace", "_stacklevel")}
        if kind == "leaky_relu":
            static = {"alpha": float(b["negative_slope"])}
        elif kind == "clamp":
            static = {"lo": b["min"], "hi": b["max"]}
            for v in static.values():
                if v is not None and not isinstance(v, (int, float)):
                    raise UnsupportedOperationError(f"{what}: clamp bounds must be Python "
                                                    "numbers.")
        elif kind == "flatten":
            static = {"start": b["start_dim"], "end": b["end_dim"]}
        elif kind == "log_softmax" and b.get("dtype") is not None:
            raise UnsupportedOperationError(f"{what}: dtype= is not supported.")
        elif kind == "gather":
            return self.emit("gather", name, (x, b["index"]), dim=b["dim"])
        if kind != "cast":
            static.pop("dtype", None)
        return self.emit(kind, name, (x,), **static)

    def _conv(self, name: str, what: str, x: Any, w: Any, bias: Any, stride: Any,
              padding: Any, dilation: Any, groups: int, kernel: Any) -> Ref:
        dil = _pair(dilation)
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            else:
                ks = _pair(kernel) if kernel is not None else None
                if padding != "same" or ks is None or any(d * (k - 1) % 2 for d, k in
                                                          zip(dil, ks)):
                    raise UnsupportedOperationError(
                        f"{what}: padding={padding!r}; use integer padding (or 'same' with "
                        "odd effective kernels).")
                padding = tuple(d * (k - 1) // 2 for d, k in zip(dil, ks))
        return self.emit("conv2d", name, (x, w, bias), stride=_pair(stride),
                         padding=_pair(padding), dilation=dil, groups=int(groups))

    def _pool(self, name: str, what: str, x: Any, kernel: Any, stride: Any, padding: Any,
              dilation: Any, ceil_mode: bool, return_indices: bool) -> Ref:
        if ceil_mode or return_indices:
            raise UnsupportedOperationError(f"{what}: ceil_mode=True and return_indices=True "
                                            "are not supported.")
        k = _pair(kernel)
        s = k if stride is None or stride == [] or stride == () else _pair(stride)
        return self.emit("maxpool2d", name, (x,), kernel=k, stride=s, padding=_pair(padding),
                         dilation=_pair(dilation))

    def _ce(self, name: str, what: str, x: Any, y: Any, weight: Any, ignore_index: int,
            reduction: str, smoothing: float) -> Ref:
        if weight is not None or smoothing:
            raise UnsupportedOperationError(f"{what}: class weights and label smoothing are "
                                            "not supported.")
        return self.emit("cross_entropy", name, (x, y), reduction=reduction,
                         ignore_index=int(ignore_index))

    def _pointwise_loss(self, kind: str, name: str, a: Any, b: Any, reduction: str) -> Ref:
        d = self.emit("sub", name + ".diff", (a, b))
        e = self.emit("mul", name + ".square", (d, d)) if kind == "mse" else self.emit(
            "abs", name + ".abs", (d,))
        if reduction == "none":
            return e
        return self.emit(reduction, name, (e,), dim=None, keepdim=False)


def refs(tree: Any, acc: list | None = None) -> list[int]:
    """Indices of the ops an argument tree refers to."""
    acc = [] if acc is None else acc
    if isinstance(tree, Ref):
        acc.append(tree.index)
    elif isinstance(tree, (tuple, list)):
        for t in tree:
            refs(t, acc)
    elif isinstance(tree, dict):
        refs(tuple(tree.values()), acc)
    elif isinstance(tree, slice):
        refs((tree.start, tree.stop, tree.step), acc)
    return acc


def resolve(tree: Any, env: list) -> Any:
    """The argument tree with every :class:`Ref` replaced by its value in ``env``."""
    if isinstance(tree, Ref):
        return env[tree.index]
    if isinstance(tree, (tuple, list)):
        return type(tree)(resolve(t, env) for t in tree)
    if isinstance(tree, dict):
        return {k: resolve(v, env) for k, v in tree.items()}
    if isinstance(tree, slice):
        return slice(resolve(tree.start, env), resolve(tree.stop, env), resolve(tree.step, env))
    return tree


def _check_opaque(ops: list[Op]) -> None:
    """Functions without a kinkgrad rule ("opaque") may only touch constants: the batch and
    what is computed from it, never a value that depends on the parameters."""
    dep = [False] * len(ops)
    for i, op in enumerate(ops):
        dep[i] = op.kind == "param" or (op.kind != "meta" and any(dep[r] for r in refs(op.args)))
        if dep[i] and op.kind == "opaque":
            raise UnsupportedOperationError(
                f"{op.params['what']} (node {op.name!r}) is applied to a value that depends on "
                "the parameters; the kinkgrad torch bridge has no rule for it. Supported "
                f"{SUPPORTED}.")


def build_graph(model: nn.Module, loss_fn: Callable) -> TorchGraph:
    """Trace ``loss_fn(model(x), y)`` with ``torch.fx`` into canonical ops.

    Raises:
        UnsupportedOperationError: a layer or function outside :data:`SUPPORTED`, naming it.
        KinkgradError: the model cannot be traced symbolically (data-dependent control flow).
    """
    root = _Wrapper(model, loss_fn)
    try:
        gm = fx.GraphModule(root, _Tracer().trace(root))
    except Exception as exc:  # fx raises many kinds of errors on untraceable code
        raise KinkgradError(
            f"torch.fx could not trace loss_fn(model(x), y): {exc}. The bridge needs a model "
            "without data-dependent Python control flow.") from exc
    bld = _Builder(root)
    out: Any = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            slot = 0 if node.target == "x" else 1
            bld.env[node] = bld.emit("input", node.target, (), slot=slot)
        elif node.op == "get_attr":
            obj = root
            for part in str(node.target).split("."):
                obj = getattr(obj, part)
            bld.env[node] = bld.param(obj, f"attribute {node.target!r}")
        elif node.op == "call_module":
            bld.env[node] = bld.module(node)
        elif node.op == "call_function":
            spec = FUNCS.get(node.target)
            what = f"function {getattr(node.target, '__name__', node.target)}"
            bld.env[node] = bld.call(node, spec, what, node.name)
        elif node.op == "call_method":
            bld.env[node] = bld.call(node, METHODS.get(node.target),
                                     f"method Tensor.{node.target}", node.name)
        elif node.op == "output":
            out = bld.arg(node.args[0])
    if not isinstance(out, Ref):
        raise KinkgradError("loss_fn(model(x), y) must return one tensor (the loss).")
    _check_opaque(bld.ops)
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    return TorchGraph(bld.ops, out, names, params)
