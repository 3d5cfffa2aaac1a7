"""Layers written with ``kinkgrad.numpy``, so ``kinkgrad.value_and_grad`` differentiates a loss
with respect to the parameter pytree.

Every layer is a small object with ``init(rng, in_shape, dtype) -> (params | None, out_shape)``
(shapes without the batch axis) and ``__call__(params, x)``. Layout is PyTorch's: a batch of
images is ``(N, C, H, W)``, a ``Conv2d`` weight is ``(out, in, kh, kw)``; a ``Dense`` weight is
stored ``(in, out)`` so that the layer is ``x @ W + b``.

Kink convention: the nonsmooth layers are single primitives. ``ReLU`` is ``knp.relu`` (its
slope at 0 is the kink policy's ``relu`` entry), ``LeakyReLU`` is ``knp.leaky_relu``
(``leaky_relu`` entry) and ``MaxPool2d`` is ``knp.max_pool2d`` (ties follow the
``max`` entry: ``"first"`` sends the whole derivative to the first maximiser of the window in
row-major order, as PyTorch's CPU kernel does). Whatever the policy, backpropagation through
a :class:`Sequential` returns an element of a conservative gradient of the network (Bolte and
Pauwels); for dense ReLU networks with biases and a deterministic, agnostic choice it is also
a Clarke gradient of the mini-batch loss (Baumgärtner and Bethke, arXiv 2407.09639).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .. import numpy as knp
from .._core.checks import is_int, is_real
from ..errors import KinkgradError, ShapeError
from .params import he_normal, torch_uniform

__all__ = [
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Conv2d",
    "MaxPool2d",
    "Flatten",
    "Sequential",
    "im2col_index",
    "pool_index",
]

_INITS = {"torch": torch_uniform, "he": he_normal}


def _check(where: str, init: str | None = None, **sizes: tuple[int, int]) -> None:
    """Raise KinkgradError for a size below its least value ((value, least) pairs: a Dense
    of 0 units, a pool of stride 0) or an unknown initializer."""
    for name, (v, least) in sizes.items():
        if v < least:
            raise KinkgradError(f"{where}: {name}={v}; pass an integer >= {least}.")
    if init is not None and init not in _INITS:
        raise KinkgradError(f"{where}: init={init!r}; use one of {sorted(_INITS)}.")


def _pair(where: str, name: str, v: Any) -> tuple[int, int]:
    """An int or a pair of ints (as ``torch.nn.Conv2d`` takes them) as a pair ``(h, w)``;
    anything else (a bool, a float, 1 or 3 entries) a KinkgradError naming the argument."""
    if is_int(v):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(a) for a in v):
        return int(v[0]), int(v[1])
    raise KinkgradError(f"{where}: {name}={v!r}; pass an int or a pair of ints (h, w).")


class Layer:
    """Base class: a layer without parameters that maps ``x`` to ``x``."""

    name = "layer"

    def init(
        self, rng: np.random.Generator, in_shape: tuple, dtype: Any
    ) -> tuple[dict | None, tuple]:
        return None, tuple(in_shape)

    def __call__(self, params: Any, x: Any) -> Any:
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Affine layer ``x @ W + b`` with ``W`` of shape ``(in, out)``.

    Args:
        features: number of outputs.
        bias: add a bias vector (paper B's Clarke guarantee for batches uses it).
        init: ``"torch"`` (U(-1/sqrt(in), 1/sqrt(in)) for W and b, PyTorch's default) or
            ``"he"`` (N(0, 2/in) weights, zero bias).
    """

    name = "dense"

    def __init__(self, features: int, bias: bool = True, init: str = "torch") -> None:
        if not is_int(features):  # NOTE: 2.7 became 2 features, 'a' a ValueError
            raise KinkgradError(f"Dense: features={features!r}; pass an integer >= 1.")
        self.features, self.bias, self.init_name = int(features), bool(bias), init
        _check("Dense", init, features=(self.features, 1))

    def init(self, rng, in_shape, dtype):
        if len(in_shape) != 1:
            raise ShapeError(
                f"Dense: expects flat inputs (N, features), got sample shape "
                f"{tuple(in_shape)}; put a Flatten() layer first."
            )
        fan_in = int(in_shape[0])
        params = {"W": _INITS[self.init_name](rng, (fan_in, self.features), fan_in, dtype)}
        if self.bias:
            params["b"] = (
                torch_uniform(rng, (self.features,), fan_in, dtype)
                if self.init_name == "torch"
                else np.zeros(self.features, dtype)
            )
        return params, (self.features,)

    def __call__(self, params, x):
        fan_in = knp.shape(params["W"])[0]
        if knp.ndim(x) < 1 or knp.shape(x)[-1] != fan_in:
            raise ShapeError(
                f"Dense({self.features}): input of shape {tuple(knp.shape(x))} but the layer "
                f"was initialised for {fan_in} features (N, {fan_in}); check the data, or "
                "put a Flatten() layer first for images."
            )
        y = x @ params["W"]
        return y + params["b"] if "b" in params else y

    def __repr__(self) -> str:
        return f"Dense({self.features})"


class ReLU(Layer):
    """``knp.relu``: relu'(0) is the kink policy's ``relu`` value (default 0)."""

    name = "relu"

    def __call__(self, params, x):
        return knp.relu(x)


class LeakyReLU(Layer):
    """``knp.leaky_relu`` with slope ``negative_slope`` for negative inputs."""

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not is_real(negative_slope):
            raise KinkgradError(f"LeakyReLU: negative_slope={negative_slope!r}; pass a real "
                                "number (0.01 is PyTorch's default).")
        self.negative_slope = float(negative_slope)

    def __call__(self, params, x):
        return knp.leaky_relu(x, self.negative_slope)

    def __repr__(self) -> str:
        return f"LeakyReLU({self.negative_slope})"


class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``."""

    name = "flatten"

    def init(self, rng, in_shape, dtype):
        return None, (int(np.prod(in_shape, dtype=np.int64)),)

    def __call__(self, params, x):
        shape = tuple(knp.shape(x))  # the size, not -1: that is ambiguous for N = 0
        return knp.reshape(x, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))


def _out_size(n: int, k: int, stride: int, pad: int) -> int:
    out = (n + 2 * pad - k) // stride + 1
    if out < 1:
        raise ShapeError(
            f"window of size {k} (stride {stride}, padding {pad}) does not fit in "
            f"an input of size {n}; use a smaller kernel or more padding."
        )
    return out


@lru_cache(maxsize=64)
def im2col_index(c: int, h: int, w: int, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """Constant gather index for im2col on one flattened ``(c, h, w)`` image.

    Entry ``[p, q]`` is the position in ``x.reshape(c*h*w)`` of the input that output
    position ``p = oh*OW + ow`` multiplies with kernel entry ``q = (ci*kh + i)*kw + j``; a
    position in the zero padding points at index ``c*h*w`` (one appended zero).
    """
    oh, ow = _out_size(h, kh, stride, pad), _out_size(w, kw, stride, pad)
    ci, i, j = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    rows = np.arange(oh)[:, None, None, None, None] * stride + i[None, None] - pad
    cols = np.arange(ow)[None, :, None, None, None] * stride + j[None, None] - pad
    rows, cols = np.broadcast_arrays(rows, cols)
    chan = np.broadcast_to(ci[None, None], rows.shape)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = np.where(inside, (chan * h + rows) * w + cols, c * h * w)
    idx = flat.reshape(oh * ow, c * kh * kw).astype(np.intp)
    idx.setflags(write=False)
    return idx


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch): the ``knp.conv2d`` primitive.

    ``y[n, o, p, q] = sum_{c, i, j} x_pad[n, c, p s + i, q s + j] W[o, c, i, j] + b[o]``.
    Smooth (linear in x and in W).

    ``kernel_size``, ``stride`` and ``padding`` are each an int or a pair ``(h, w)``, as in
    ``torch.nn.Conv2d``; they are stored as pairs (``kernel``, ``stride``, ``padding``).

    Args:
        out_channels: number of output channels.
        kernel_size: int or (kh, kw).
        stride: step between windows, int or (sh, sw).
        padding: zeros added on each side of H and W, int or (ph, pw).
    """

    name = "conv"

    def __init__(
        self,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        init: str = "torch",
    ) -> None:
        self.out_channels = int(out_channels)
        self.kernel = _pair("Conv2d", "kernel_size", kernel_size)
        self.stride = _pair("Conv2d", "stride", stride)
        self.padding = _pair("Conv2d", "padding", padding)
        self.init_name = init
        _check("Conv2d", init, out_channels=(self.out_channels, 1), kernel_size=(
            min(self.kernel), 1), stride=(min(self.stride), 1), padding=(min(self.padding), 0))

    def init(self, rng, in_shape, dtype):
        if len(in_shape) != 3:
            raise ShapeError(
                f"Conv2d: expects images (N, C, H, W), got sample shape {tuple(in_shape)}."
            )
        c, h, w = (int(s) for s in in_shape)
        kh, kw = self.kernel
        fan_in = c * kh * kw
        params = {
            "W": _INITS[self.init_name](rng, (self.out_channels, c, kh, kw), fan_in, dtype),
            "b": (
                torch_uniform(rng, (self.out_channels,), fan_in, dtype)
                if self.init_name == "torch"
                else np.zeros(self.out_channels, dtype)
            ),
        }
        oh = _out_size(h, kh, self.stride[0], self.padding[0])
        ow = _out_size(w, kw, self.stride[1], self.padding[1])
        return params, (self.out_channels, oh, ow)

    def __call__(self, params, x):
        _images(x, repr(self), knp.shape(params["W"])[1])
        return knp.conv2d(x, params["W"], params["b"], stride=self.stride, padding=self.padding)

    def __repr__(self) -> str:
        def short(p: tuple[int, int]) -> Any:
            return p[0] if p[0] == p[1] else p

        return (
            f"Conv2d({self.out_channels}, kernel={self.kernel}, stride={short(self.stride)}, "
            f"padding={short(self.padding)})"
        )


def _images(x: Any, who: str, channels: int | None = None) -> tuple:
    """The shape ``(N, C, H, W)`` of a batch of images, or a ShapeError naming the layer."""
    shape = tuple(knp.shape(x))
    if len(shape) != 4 or (channels is not None and shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ShapeError(
            f"{who}: expects a batch of images {want}, got shape {shape}; add the batch axis "
            "(x[None]) or the channel axis (x[:, None]) as needed."
        )
    return shape


@lru_cache(maxsize=64)
def pool_index(h: int, w: int, k: int, stride: int) -> np.ndarray:
    """Constant index ``(OH*OW, k*k)`` of every pooling window in a flattened ``(h, w)`` map,
    window entries in row-major order."""
    idx = im2col_index(1, h, w, k, k, stride, 0)
    return idx


def _square(name: str, v: Any) -> int:
    """MaxPool2d's square windows and strides: an int, or a pair of equal ints."""
    h, w = _pair("MaxPool2d", name, v)
    if h != w:
        raise KinkgradError(f"MaxPool2d: {name}={v!r}; the layer pools square windows with "
                            "one stride (an int); call knp.max_pool2d for a rectangular one.")
    return h


class MaxPool2d(Layer):
    """Max-pooling over ``k x k`` windows: the ``knp.max_pool2d`` primitive (the maximum of
    every window, ``stride`` defaulting to ``k``). Ties follow the kink policy's ``max`` rule,
    as ``knp.max`` over the window entries in row-major order.
    """

    name = "maxpool"

    def __init__(self, kernel_size: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] | None = None) -> None:
        self.k = _square("kernel_size", kernel_size)
        self.stride = self.k if stride is None else _square("stride", stride)
        _check("MaxPool2d", kernel_size=(self.k, 1), stride=(self.stride, 1))

    def init(self, rng, in_shape, dtype):
        if len(in_shape) != 3:
            raise ShapeError(
                f"MaxPool2d: expects images (N, C, H, W), got sample shape {tuple(in_shape)}."
            )
        c, h, w = in_shape
        return None, (c, _out_size(h, self.k, self.stride, 0), _out_size(w, self.k, self.stride, 0))

    def __call__(self, params, x):
        _images(x, repr(self))
        return knp.max_pool2d(x, self.k, self.stride)

    def __repr__(self) -> str:
        return f"MaxPool2d({self.k}, stride={self.stride})"


class Sequential(Layer):
    """Layers applied in order; parameters are a dict ``{"<i>_<name>": layer_params}``."""

    name = "sequential"

    def __init__(self, *layers: Layer) -> None:
        self.layers = list(layers)

    def keys(self) -> list[str | None]:
        """Parameter key of each layer (None for layers without parameters)."""
        return [
            f"{i}_{layer.name}" if isinstance(layer, (Dense, Conv2d, Sequential)) else None
            for i, layer in enumerate(self.layers)
        ]

    def init(
        self, rng: np.random.Generator | int, in_shape: tuple, dtype: Any = np.float32
    ) -> tuple[dict, tuple]:
        """Seeded parameters: ``rng`` may be a seed. Returns ``(params, output shape)``."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        try:
            ok = np.dtype(dtype).kind == "f"
        except TypeError:  # NOTE: torch.float32
            ok = False
        if not ok:  # NOTE: int64 gave all-zero integer weights
            raise KinkgradError(f"Sequential.init: dtype={dtype!r}; pass a NumPy float dtype "
                                "(np.float16, np.float32 or np.float64).")
        shape = tuple(in_shape)
        if not all(is_int(d) and d >= 1 for d in shape):
            raise ShapeError(f"Sequential.init: in_shape={in_shape!r}; pass the shape of one "
                             "example, positive integers (features,) or (C, H, W).")
        params: dict = {}
        for key, layer in zip(self.keys(), self.layers):
            p, shape = layer.init(rng, shape, dtype)
            if key is not None:
                params[key] = p
        return params, shape

    def __call__(self, params, x):
        for key, layer in zip(self.keys(), self.layers):
            if key is not None and key not in params:
                raise KinkgradError(f"Sequential: params has no entry {key!r} for {layer!r} "
                                    f"(it has {sorted(params)}); pass the params that "
                                    "this model's init returned.")
            x = layer(params[key] if key is not None else None, x)
        return x

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(la) for la in self.layers) + ")"
