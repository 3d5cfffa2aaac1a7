"""The tables of :mod:`._fx`: which torch functions, methods and modules the bridge knows.

Each function or method maps to ``(canonical kind, argument names, defaults)``; the canonical
kinds are what :mod:`._to_knp` and :mod:`._dual` interpret.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._fx_extra import EXTRA_FUNCS, EXTRA_METHODS, EXTRA_NONSMOOTH, EXTRA_SUPPORTED

__all__ = ["NONSMOOTH", "SUPPORTED", "FUNCS", "METHODS", "SMOOTH_MODULES"]

NONSMOOTH = frozenset({"relu", "leaky_relu", "abs", "clamp", "maxpool2d"})

SUPPORTED = (
    "layers: Linear, Conv2d (zero padding), ReLU, LeakyReLU, Hardtanh, ReLU6, MaxPool2d (no "
    "ceil_mode), AvgPool2d (no padding, no ceil_mode), AdaptiveAvgPool2d(1), BatchNorm1d/2d, "
    "LayerNorm, Flatten, "
    "Identity, Dropout, Tanh, Sigmoid; losses: CrossEntropyLoss/cross_entropy "
    "(no weight, no label smoothing), MSELoss/mse_loss, L1Loss/l1_loss, hinge written with "
    "relu; functions: relu, leaky_relu, abs, clamp, linear, conv2d, max_pool2d, flatten, "
    "view/reshape/size, getitem, gather, transpose, (un)squeeze, cat, + - * / @ **, sum, "
    "mean, tanh, sigmoid, exp, log, log_softmax, logsumexp"
)


# target -> (kind, argument names, defaults); methods use the same table by name
FUNCS: dict[Any, tuple[str, tuple, dict]] = {
    operator.add: ("add", ("a", "b"), {}), operator.sub: ("sub", ("a", "b"), {}),
    operator.mul: ("mul", ("a", "b"), {}), operator.truediv: ("div", ("a", "b"), {}),
    operator.matmul: ("matmul", ("a", "b"), {}), operator.pow: ("pow", ("a", "b"), {}),
    operator.neg: ("neg", ("input",), {}), operator.getitem: ("getitem", ("a", "idx"), {}),
    torch.add: ("add", ("a", "b"), {}), torch.sub: ("sub", ("a", "b"), {}),
    torch.mul: ("mul", ("a", "b"), {}), torch.div: ("div", ("a", "b"), {}),
    torch.matmul: ("matmul", ("a", "b"), {}), torch.neg: ("neg", ("input",), {}),
    torch.relu: ("relu", ("input",), {}), F.relu: ("relu", ("input", "inplace"), {}),
    F.leaky_relu: ("leaky_relu", ("input", "negative_slope", "inplace"),
                   {"negative_slope": 0.01}),
    torch.abs: ("abs", ("input",), {}),
    torch.clamp: ("clamp", ("input", "min", "max"), {"min": None, "max": None}),
    torch.clip: ("clamp", ("input", "min", "max"), {"min": None, "max": None}),
    F.linear: ("linear", ("input", "weight", "bias"), {"bias": None}),
    F.conv2d: ("conv2d", ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
               {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}),
    F.max_pool2d: ("maxpool2d", ("input", "kernel_size", "stride", "padding", "dilation",
                                 "ceil_mode", "return_indices"),
                   {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                    "return_indices": False}),
    torch.flatten: ("flatten", ("input", "start_dim", "end_dim"), {"start_dim": 0,
                                                                    "end_dim": -1}),
    torch.reshape: ("reshape", ("input", "shape"), {}),
    torch.transpose: ("transpose", ("input", "dim0", "dim1"), {}),
    torch.gather: ("gather", ("input", "dim", "index"), {}),
    torch.sum: ("sum", ("input", "dim", "keepdim"), {"dim": None, "keepdim": False}),
    torch.mean: ("mean", ("input", "dim", "keepdim"), {"dim": None, "keepdim": False}),
    torch.tanh: ("tanh", ("input",), {}), torch.sigmoid: ("sigmoid", ("input",), {}),
    torch.exp: ("exp", ("input",), {}), torch.log: ("log", ("input",), {}),
    F.log_softmax: ("log_softmax", ("input", "dim", "_stacklevel", "dtype"),
                    {"_stacklevel": 3, "dtype": None}),
    torch.logsumexp: ("logsumexp", ("input", "dim", "keepdim"), {"keepdim": False}),
    F.cross_entropy: ("cross_entropy", ("input", "target", "weight", "size_average",
                                        "ignore_index", "reduce", "reduction",
                                        "label_smoothing"),
                      {"weight": None, "size_average": None, "ignore_index": -100,
                       "reduce": None, "reduction": "mean", "label_smoothing": 0.0}),
    F.mse_loss: ("mse", ("input", "target", "size_average", "reduce", "reduction", "weight"),
                 {"size_average": None, "reduce": None, "reduction": "mean", "weight": None}),
    F.l1_loss: ("l1", ("input", "target", "size_average", "reduce", "reduction", "weight"),
                {"size_average": None, "reduce": None, "reduction": "mean", "weight": None}),
    getattr: ("getattr", ("input", "attr"), {}),
    torch.cat: ("cat", ("tensors", "dim"), {"dim": 0}),
    torch.concat: ("cat", ("tensors", "dim"), {"dim": 0}),
}
METHODS: dict[str, tuple[str, tuple, dict]] = {
    "view": ("reshape", ("input", "*shape"), {}), "reshape": ("reshape", ("input", "*shape"), {}),
    "flatten": ("flatten", ("input", "start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1}),
    "size": ("size", ("input", "dim"), {"dim": None}),
    "relu": ("relu", ("input",), {}), "abs": ("abs", ("input",), {}),
    "clamp": FUNCS[torch.clamp], "clip": FUNCS[torch.clamp],
    "sum": FUNCS[torch.sum], "mean": FUNCS[torch.mean], "gather": FUNCS[torch.gather],
    "transpose": FUNCS[torch.transpose], "t": ("t", ("input",), {}),
    "unsqueeze": ("unsqueeze", ("input", "dim"), {}),
    "squeeze": ("squeeze", ("input", "dim"), {"dim": None}),
    "tanh": ("tanh", ("input",), {}), "sigmoid": ("sigmoid", ("input",), {}),
    "exp": ("exp", ("input",), {}), "log": ("log", ("input",), {}),
    "neg": ("neg", ("input",), {}), "pow": ("pow", ("a", "b"), {}),
    "matmul": ("matmul", ("a", "b"), {}), "add": ("add", ("a", "b"), {}),
    "sub": ("sub", ("a", "b"), {}), "mul": ("mul", ("a", "b"), {}),
    "div": ("div", ("a", "b"), {}), "contiguous": ("identity", ("input",), {}),
    "log_softmax": ("log_softmax", ("input", "dim"), {}),
    "logsumexp": FUNCS[torch.logsumexp],
    "float": ("cast", ("input",), {"dtype": torch.float32}),
    "double": ("cast", ("input",), {"dtype": torch.float64}),
}
SMOOTH_MODULES = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "identity"}

# more layers, functions and losses (their own module)
FUNCS.update(EXTRA_FUNCS)
METHODS.update(EXTRA_METHODS)
NONSMOOTH = NONSMOOTH | EXTRA_NONSMOOTH
SUPPORTED += EXTRA_SUPPORTED


