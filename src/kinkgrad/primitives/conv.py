"""Convolution: ``conv2d`` (NCHW cross-correlation, as PyTorch's ``F.conv2d``).

``y[n, o, p, q] = sum_{c, i, j} x_pad[n, g(o) Cg + c, p sh + i dh, q sw + j dw] w[o, c, i, j]``
with ``x_pad`` the input zero-padded by ``(ph, pw)`` on each side, ``Cg = C / groups`` input
channels per group and ``g(o)`` the group of output channel ``o``. Bilinear in ``(x, w)`` and
smooth, so it has no kinks, no switch and no abs form of its own (like ``matmul``).

NumPy: the window matrix (im2col, ``kh * kw`` strided slice copies into one buffer) and one
stack of BLAS products; the VJP for ``x`` is the transposed convolution (a product with ``w``
and a col2im scatter-add of ``kh * kw`` strided slices), the VJP for ``w`` the correlation of
the windows with the cotangent (one more stack of products).
On torch-backed arrays (the torch backend) the rules call ``torch.nn.functional.conv2d`` and
torch's ``convolution_backward`` (both cotangents in one call) and ``conv2d_input`` directly,
with the operands first promoted to the dtype NumPy's kernels compute in (torch's need one
dtype: a float32 kernel with a float64 NumPy image, or with the float64 cotangent a float64
bias gives, computes in float64 on both backends).
Written against the module-level ``np``, which the array backends rebind.
"""

from __future__ import annotations

from typing import Any

import numpy
import numpy as np  # rebound to the backend's namespace by kinkgrad.backends

from .._core.primitive import Primitive, _size, register, summation_roundings
from .._core.tracer import bind
from ..errors import ShapeError
from ._tensors import tensor_of as _tensor

__all__ = ["Conv2d"]


# ---------------------------------------------------------------------- parameters
def _pair(v: Any, what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or not all(isinstance(a, (int, np.integer)) for a in t):
        raise ShapeError(f"conv2d: {what}={v!r} must be an int or a pair of ints.")
    return int(t[0]), int(t[1])


def out_hw(h: int, w: int, kh: int, kw: int, stride: tuple, padding: tuple,
           dilation: tuple) -> tuple[int, int]:
    """Output height and width: ``(H + 2 ph - dh (kh - 1) - 1) // sh + 1`` (and for W)."""
    return ((h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
            (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1)


def check_conv(xs: tuple, ws: tuple, stride: tuple, padding: tuple, dilation: tuple,
               groups: int) -> tuple[int, int]:
    """Validate shapes and parameters; returns the output (OH, OW) or raises ShapeError."""
    if len(xs) != 4:
        raise ShapeError(f"conv2d: the input has shape {xs}; it must be 4-D (N, C, H, W) "
                         "(add the batch axis with x[None] for a single image).")
    if len(ws) != 4:
        raise ShapeError(f"conv2d: the weight has shape {ws}; it must be 4-D "
                         "(out_channels, in_channels / groups, kh, kw).")
    if groups < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ShapeError(f"conv2d: stride={stride}, dilation={dilation} and groups={groups} "
                         f"must be >= 1 and padding={padding} >= 0.")
    n, c, h, w = xs
    o, cg, kh, kw = ws
    if o < 1:
        raise ShapeError(f"conv2d: the weight {ws} has {o} output channels; it needs at least "
                         "one (out_channels, in_channels / groups, kh, kw).")
    if c % groups or o % groups:
        raise ShapeError(f"conv2d: {c} input channels and {o} output channels must both be "
                         f"divisible by groups={groups}; change groups or the channel counts.")
    if cg != c // groups:
        raise ShapeError(f"conv2d: the weight {ws} has {cg} input channels per group but the "
                         f"input (N, {c}, H, W) with groups={groups} has {c // groups}; the "
                         "weight must be (out_channels, in_channels / groups, kh, kw).")
    oh, ow = out_hw(h, w, kh, kw, stride, padding, dilation)
    if oh < 1 or ow < 1 or min(kh, kw) < 1:
        raise ShapeError(
            f"conv2d: a {kh}x{kw} kernel (dilation {dilation}) does not fit in the "
            f"{h + 2 * padding[0]}x{w + 2 * padding[1]} padded input; use a smaller kernel or "
            "dilation, or more padding.")
    return oh, ow


# ---------------------------------------------------------------------- NumPy kernels
# NOTE: the window matrix ("im2col") is built by kh * kw strided slice copies into one buffer
# laid out (N, groups, Cg * kh * kw, OH * OW), so that every product is a stack of BLAS
# matrix products whose result is already NCHW (no transposed copy of inputs or outputs).
def _slices(i: int, j: int, oh: int, ow: int, p: dict) -> tuple:
    (sh, sw), (dh, dw) = p["stride"], p["dilation"]
    return (slice(None), slice(None), slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def _cols(x: Any, kh: int, kw: int, p: dict) -> tuple[Any, int, int]:
    """The window matrix of a batch x (N, C, H, W): (N, groups, Cg kh kw, OH OW), OH, OW."""
    ph, pw = p["padding"]
    if ph or pw:  # NOTE: a zero array and one copy: np.pad's Python overhead is ~0.1 ms
        n, c, h, w = np.shape(x)
        xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.result_type(x))
        xp[:, :, ph:ph + h, pw:pw + w] = x
        x = xp
    n, c, h, w = np.shape(x)
    (sh, sw), (dh, dw) = p["stride"], p["dilation"]
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.result_type(x))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[_slices(i, j, oh, ow, p)]
    g = p["groups"]
    return np.reshape(cols, (n, g, (c // g) * kh * kw, oh * ow)), oh, ow


def _wmat(w: Any, g: int) -> Any:
    o = np.shape(w)[0]
    return np.reshape(w, (g, o // g, -1))  # (groups, O / groups, Cg kh kw)


def _conv(x: Any, w: Any, p: dict) -> Any:
    """The convolution of a batch x (N, C, H, W) with w (O, Cg, kh, kw): (N, O, OH, OW)."""
    o, _, kh, kw = np.shape(w)
    cols, oh, ow = _cols(x, kh, kw, p)
    y = np.matmul(_wmat(w, p["groups"]), cols)  # (N, groups, O / groups, OH OW)
    return np.reshape(y, (np.shape(x)[0], o, oh, ow))


def _flipped(w: Any, groups: int) -> Any:
    """The kernel of the transposed stride-1 convolution: in and out channels swapped within
    each group, both spatial axes reversed: (C, O / groups, kh, kw)."""
    o, cg, kh, kw = np.shape(w)
    wg = np.reshape(w[:, :, ::-1, ::-1], (groups, o // groups, cg, kh, kw))
    return np.reshape(np.swapaxes(wg, 1, 2), (groups * cg, o // groups, kh, kw))


def _conv_x_transpose(g: Any, w: Any, xshape: tuple, p: dict) -> Any:
    """Cotangent of x from g (N, O, OH, OW): the transposed convolution (col2im)."""
    (ph, pw), groups = p["padding"], p["groups"]
    o, cg, kh, kw = np.shape(w)
    n, c, h, wd = xshape
    (dh, dw) = p["dilation"]
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if p["stride"] == (1, 1) and qh >= 0 and qw >= 0 and o <= c:
        # NOTE: at stride 1 the transpose is itself a convolution: g padded by d (k - 1) - p
        # against the flipped kernel, with no strided scatter-add. Its window matrix has
        # O kh kw rows per pixel against C kh kw for col2im, so it moves less memory only
        # when O <= C
        q = {"stride": (1, 1), "padding": (qh, qw), "dilation": (dh, dw), "groups": groups}
        return _conv(g, _flipped(w, groups), q)
    _, _, oh, ow = np.shape(g)
    gm = np.reshape(g, (n, groups, o // groups, oh * ow))
    cols = np.matmul(np.swapaxes(_wmat(w, groups), -1, -2), gm)  # (N, groups, Cg kh kw, P)
    cols = np.reshape(cols, (n, c, kh, kw, oh, ow))
    out = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.result_type(g, w))
    for i in range(kh):
        for j in range(kw):
            out[_slices(i, j, oh, ow, p)] += cols[:, :, i, j]
    return out[:, :, ph:ph + h, pw:pw + wd]


def _gw(g: Any, cols: Any, wshape: tuple, groups: int, lead: tuple) -> Any:
    """sum over N of g (L, N, O, P) against cols (N, groups, K, P): (L..., O, Cg, kh, kw)."""
    n = np.shape(cols)[0]
    o = wshape[0]
    # the leading axes merged by their size, not -1: that is ambiguous for N = 0
    gm = np.reshape(g, (_size(lead), n, groups, o // groups, np.shape(cols)[-1]))
    r = np.sum(np.matmul(gm, np.swapaxes(cols, -1, -2)), axis=1)  # (L, groups, O/g, K)
    return np.reshape(r, lead + tuple(wshape))


def _conv_w_transpose(g: Any, x: Any, wshape: tuple, p: dict) -> Any:
    """Cotangent of w from g (K..., N, O, OH, OW): window-cotangent correlation (K..., O, ...)."""
    cols, _, _ = _cols(x, wshape[2], wshape[3], p)
    return _gw(g, cols, wshape, p["groups"], tuple(np.shape(g)[:-4]))


def conv_w_per_example(g: Any, x: Any, wshape: tuple, p: dict) -> Any:
    """Per-example kernel cotangents: ``x`` (B, N, C, H, W) and ``g`` (B, N, O, OH, OW) give
    (B, O, Cg, kh, kw), row b the cotangent of example b's images alone (one stack of
    products of window matrices, NumPy only)."""
    b, n = np.shape(x)[:2]
    cols, _, _ = _cols(np.reshape(x, (b * n,) + tuple(np.shape(x)[2:])), wshape[2], wshape[3], p)
    cols = np.reshape(cols, (b, n) + tuple(np.shape(cols)[1:]))
    o, groups = wshape[0], p["groups"]
    gm = np.reshape(g, (b, n, groups, o // groups, np.shape(cols)[-1]))
    r = np.sum(np.matmul(gm, np.swapaxes(cols, -1, -2)), axis=1)
    return np.reshape(r, (b,) + tuple(wshape))


# ---------------------------------------------------------------------- torch kernels
def _on_torch(*arrays: Any) -> bool:
    return any(_tensor(a) is not None for a in arrays)


def _torch_dtype(*ts: Any) -> Any:
    """The torch dtype NumPy's kernels compute in for operands of these torch dtypes: NumPy's
    promotion (float32 with float64 gives float64, float16 with int64 float64)."""
    import torch

    dt = numpy.result_type(*(numpy.dtype(str(t.dtype).removeprefix("torch.")) for t in ts))
    return getattr(torch, dt.name)


def _raw_tensors(*arrays: Any) -> list:
    """Torch tensors of ``arrays``, NumPy constants moved to the first tensor's device."""
    import torch

    ts = [a if isinstance(a, torch.Tensor) else _tensor(a) for a in arrays]
    like = next(t for t in ts if t is not None)
    return [t if t is not None else torch.as_tensor(a, device=like.device)
            for a, t in zip(arrays, ts)]


def _tensors(*arrays: Any) -> list:
    """Torch tensors of ``arrays`` all in the dtype the NumPy kernels would compute in
    (torch's convolutions need one dtype; NumPy's promote)."""
    ts = _raw_tensors(*arrays)
    dt = _torch_dtype(*ts)
    return [t if t.dtype == dt else t.to(dt) for t in ts]


def _torch_args(p: dict) -> dict:
    return {"stride": p["stride"], "padding": p["padding"], "dilation": p["dilation"],
            "groups": p["groups"]}


def _t_conv(x: Any, w: Any, p: dict) -> Any:
    import torch.nn.functional as F

    tx, tw = _tensors(x, w)
    return np.asarray(F.conv2d(tx, tw, None, **_torch_args(p)))


def _t_conv_x_transpose(g: Any, w: Any, xshape: tuple, p: dict) -> Any:
    import torch

    tw, tg = _tensors(w, g)
    return np.asarray(torch.nn.grad.conv2d_input(xshape, tw, tg, **_torch_args(p)))


def _t_conv_w_transpose(g: Any, x: Any, wshape: tuple, p: dict) -> Any:
    import torch

    tx, tg = _tensors(x, g)
    lead = tuple(tg.shape[:-4])
    outs = [_t_conv_backward(gk, tx, None, wshape, p, (False, True))[1]
            for gk in tg.reshape((_size(lead),) + tuple(tg.shape[-4:]))]
    if not outs:  # no cotangent at all (0 rows of a Jacobian)
        return np.asarray(tg.new_zeros(lead + tuple(wshape)))
    return np.asarray(outs[0].reshape(lead + tuple(wshape)) if len(outs) == 1
                      else torch.stack(outs).reshape(lead + tuple(wshape)))


def _t_conv_backward(tg: Any, tx: Any, tw: Any, wshape: tuple, p: dict, needs: tuple
                     ) -> tuple:
    """The cotangents of (x, w) that ``needs`` asks for from one cotangent tensor (N, O, OH,
    OW), as tensors (None where not asked), in one ``convolution_backward`` call (the
    products they share are done once, as in torch's own backward; the kernel's values are
    read only for the image's cotangent, so ``tw`` may be None without it)."""
    import torch

    if tw is None:
        tw = tx.new_empty(1).expand(wshape)
    args = _torch_args(p)
    gx, gw, _ = torch.ops.aten.convolution_backward(
        tg, tx, tw, None, list(args["stride"]), list(args["padding"]), list(args["dilation"]),
        False, [0, 0], args["groups"], [bool(needs[0]), bool(needs[1]), False])
    return gx, gw


# ---------------------------------------------------------------------- dispatch
def conv_value(x: Any, w: Any, p: dict) -> Any:
    return _t_conv(x, w, p) if _on_torch(x, w) else _conv(x, w, p)


def conv_x_transpose(g: Any, w: Any, xshape: tuple, p: dict) -> Any:
    """The transpose of ``x -> conv(x, w)`` applied to g (N, O, OH, OW)."""
    if _on_torch(g, w):
        return _t_conv_x_transpose(g, w, xshape, p)
    return _conv_x_transpose(g, w, xshape, p)


def conv_w_transpose(g: Any, x: Any, wshape: tuple, p: dict) -> Any:
    """The transpose of ``w -> conv(x, w)`` applied to g (K..., N, O, OH, OW)."""
    if _on_torch(g, x):
        return _t_conv_w_transpose(g, x, wshape, p)
    return _conv_w_transpose(g, x, wshape, p)


def _merge_lead(t: Any, core: int) -> tuple[Any, tuple]:
    """``t`` with its leading batch axes (beyond ``core`` trailing ones) merged into axis 0."""
    shape = tuple(np.shape(t))
    if len(shape) <= core:
        return t, ()
    return np.reshape(t, (-1,) + shape[len(shape) - core + 1:]), shape[:len(shape) - core + 1]


@register
class Conv2d(Primitive):
    """``knp.conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1)``: 2-D
    cross-correlation of a batch of images ``x`` (N, C, H, W) with a kernel ``w``
    (O, C / groups, kh, kw), PyTorch's ``F.conv2d`` (NCHW, zero padding), plus an optional
    bias ``b`` (O,) added per output channel.

    ``y[n, o, p, q] = sum_{c, i, j} x_pad[n, g(o) Cg + c, p sh + i dh, q sw + j dw]
    w[o, c, i, j]``. Bilinear and smooth: its derivative is the ordinary one (an element of
    every conservative field). Cost: ``2 N O OH OW Cg kh kw`` operations, like the matrix
    product it is.
    """

    name = numpy_name = "conv2d"
    bilinear = True
    vjp_reads_out = False  # its rules read x and w
    omega = 5.0

    def __call__(self, x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1) -> Any:
        p = {"stride": _pair(stride, "stride"), "padding": _pair(padding, "padding"),
             "dilation": _pair(dilation, "dilation"), "groups": int(groups)}
        xs, ws = tuple(np.shape(x)), tuple(np.shape(w))
        check_conv(xs, ws, **p)
        y = bind(self, x, w, **p)
        if b is None:
            return y
        if tuple(np.shape(b)) != (ws[0],):
            raise ShapeError(f"conv2d: the bias has shape {tuple(np.shape(b))}; it must be "
                             f"({ws[0]},), one entry per output channel.")
        from .arith import Add
        from .shape import Reshape

        b4 = Reshape.instance(b, (1, ws[0], 1, 1))  # type: ignore[attr-defined]
        return Add.instance(y, b4)  # type: ignore[attr-defined]

    def impl(self, x, w, stride, padding, dilation, groups):
        p = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        check_conv(tuple(np.shape(x)), tuple(np.shape(w)), **p)
        return conv_value(x, w, p)

    def rounding(self, args, out, params):  # each entry a sum of C/groups kh kw products
        x, w = args
        m = _size(np.shape(w)[1:])
        return (summation_roundings(m) + 1.0) * self.impl(np.abs(x), np.abs(w), **params)

    def cost(self, in_shapes, out_shape, params):
        o, cg, kh, kw = in_shapes[1]
        return 2 * _size(out_shape) * cg * kh * kw

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        n_need = sum(1 for k in needs if k)
        return n_need * self.cost(in_shapes, out_shape, params) + max(n_need - 1, 0) * _size(
            out_shape)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        # each product costs what the function does; the x cotangent is a scatter-add of
        # N C OH OW kh kw window entries (col2im), the w cotangent accumulates once
        n, c = in_shapes[0][:2]
        o, cg, kh, kw = in_shapes[1]
        oh, ow = out_shape[-2:]
        c_fn = self.cost(in_shapes, out_shape, params)
        total = 0
        if needs[0]:
            total += c_fn + n * c * oh * ow * kh * kw
        if needs[1]:
            total += c_fn + _size(in_shapes[1])
        return total

    def jvp(self, sel, tangents, args, out, params):
        (x, w), (tx, tw) = args, tangents
        res = None
        if tx is not None:  # (K, N, C, H, W): the K tangents are more images
            flat, lead = _merge_lead(tx, 4)
            y = conv_value(flat, w, params)
            res = np.reshape(y, lead + tuple(np.shape(y)[1:])) if lead else y
        if tw is not None:
            term = self._jvp_w(x, tw, params)
            res = term if res is None else res + term
        return res

    def _jvp_w(self, x: Any, tw: Any, p: dict) -> Any:
        """conv(x, tw[k]) for every leading k at once: the K kernels as more output channels."""
        shape = tuple(np.shape(tw))
        lead, (o, cg, kh, kw) = shape[:-4], shape[-4:]
        k = _size(lead)
        g = p["groups"]
        wk = np.reshape(tw, (k, g, o // g, cg, kh, kw))
        wk = np.reshape(np.moveaxis(wk, 0, 1), (g * k * (o // g), cg, kh, kw))
        y = conv_value(x, wk, p)  # (N, g*K*og, OH, OW)
        n, _, oh, ow = np.shape(y)
        y = np.moveaxis(np.reshape(y, (n, g, k, o // g, oh, ow)), 2, 0)
        return np.reshape(y, lead + (n, o, oh, ow))

    def vjp(self, sel, g, args, out, params, needs):
        x, w = args
        gx = gw = None
        if np.ndim(g) == 4 and _on_torch(g, x, w):  # one torch call for what is needed
            raw = _raw_tensors(g, x, w)
            tg, tx, tw = _tensors(*raw)
            gx, gw = _t_conv_backward(tg, tx, tw if needs[0] else None, tuple(np.shape(w)),
                                      params, needs)
            # each cotangent in the dtype NumPy's kernel gives it: (g, w) and (g, x) promoted
            return (None if gx is None else np.asarray(gx.to(_torch_dtype(raw[0], raw[2]))),
                    None if gw is None else np.asarray(gw.to(_torch_dtype(raw[0], raw[1]))))
        if needs[0]:
            flat, lead = _merge_lead(g, 4)
            xshape = (np.shape(flat)[0],) + tuple(np.shape(x))[1:]
            r = conv_x_transpose(flat, w, xshape, params)
            gx = np.reshape(r, lead + tuple(np.shape(x))[1:]) if lead else r
        if needs[1]:
            gw = conv_w_transpose(g, x, tuple(np.shape(w)), params)
        return gx, gw

    def pp_params(self, params):
        p = params
        return (f"[stride={p['stride']},padding={p['padding']},dilation={p['dilation']},"
                f"groups={p['groups']}]").replace(" ", "")

    def samples(self, rng, dtype=np.float64):
        def r(*s):
            return rng.normal(size=s).astype(dtype)

        def prm(s=1, p=0, d=1, g=1):
            return {"stride": (s, s) if isinstance(s, int) else s,
                    "padding": (p, p) if isinstance(p, int) else p,
                    "dilation": (d, d) if isinstance(d, int) else d, "groups": g}

        return [((r(2, 3, 7, 6), r(4, 3, 3, 2)), prm()),
                ((r(2, 3, 7, 6), r(4, 3, 3, 2)), prm(s=2, p=1)),
                ((r(1, 4, 9, 8), r(6, 2, 2, 3)), prm(s=(1, 2), p=(2, 1), d=2, g=2)),
                ((r(2, 4, 6, 6), r(4, 1, 3, 3)), prm(p=1, g=4))]
