"""Pooling: ``max_pool2d`` (NCHW window maxima, as PyTorch's ``F.max_pool2d``).

``y[n, c, p, q] = max_{i, j} x_pad[n, c, p sh + i dh, q sw + j dw]`` over the ``kh * kw``
window entries, with ``x_pad`` the input padded by ``(ph, pw)`` entries of -inf on each side
(PyTorch caps the padding at half the kernel; a dilated window can still cover padding only,
whose maximum is -inf as in PyTorch, and differentiating through it raises).

NumPy: the windows are ``kh * kw`` strided views of the (padded) input, one per kernel offset
in row-major order; the value is a running ``np.maximum`` over them (a short reduction axis,
as ``np.max`` over a stacked window axis would be, runs row by row and is several times
slower). The selection is a weight per window entry, laid out ``(kh kw, N, C, OH, OW)``; the
JVP is the weighted sum of the tangent's windows, the VJP a scatter-add of the weighted
cotangent onto the offsets' strided views (overlapping windows add up).
On torch-backed arrays the value is ``torch.nn.functional.max_pool2d`` and the selection (policy
mode) and the VJP use torch's operations on the tensors; the other rules run on the backend's
NumPy namespace.
Written against the module-level ``np``, which the array backends rebind.
"""

from __future__ import annotations

from typing import Any

import numpy
import numpy as np  # rebound to the backend's namespace by kinkgrad.backends

from .._core.primitive import Primitive, _size, ops, register
from .._core.tracer import bind
from ..errors import ShapeError, UnsupportedOperationError
from ._tensors import tensor_of as _tensor
from .conv import out_hw
from .reduce import Max

__all__ = ["MaxPool2d", "window_stack"]

_LAST = {"axis": (-1,), "keepdims": False}  # the stacked window axis, for Max's rules


# ---------------------------------------------------------------------- windows
def _pair(v: Any, what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or not all(isinstance(a, (int, np.integer)) for a in t):
        raise ShapeError(f"max_pool2d: {what}={v!r} must be an int or a pair of ints.")
    return int(t[0]), int(t[1])


def _geometry(shape: tuple, p: dict) -> tuple[int, int]:
    (kh, kw) = p["kernel"]
    return out_hw(shape[-2], shape[-1], kh, kw, p["stride"], p["padding"], p["dilation"])


def _fill(dtype: Any) -> Any:
    """The padding entry: -inf, or the smallest integer of an integer dtype."""
    d = np.dtype(dtype)
    if d.kind == "f":
        return -np.inf
    return False if d.kind == "b" else np.iinfo(d).min


def _pad(x: Any, p: dict, fill: Any) -> Any:
    """x (..., H, W) with ``fill`` around its last two axes."""
    ph, pw = p["padding"]
    if not (ph or pw):
        return x
    ns = numpy if isinstance(x, numpy.ndarray) else np  # NumPy views of CPU tensors too
    shape = tuple(ns.shape(x))
    h, w = shape[-2:]
    out = ns.full(shape[:-2] + (h + 2 * ph, w + 2 * pw), fill, dtype=ns.result_type(x))
    out[..., ph:ph + h, pw:pw + w] = x
    return out


def _offsets(p: dict, oh: int, ow: int) -> list[tuple]:
    """The index of every kernel offset's strided view of the padded input (row-major)."""
    (kh, kw), (sh, sw), (dh, dw) = p["kernel"], p["stride"], p["dilation"]
    return [(Ellipsis, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
             slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _views(x: Any, p: dict, fill: Any) -> list:
    """The strided views (..., OH, OW) of x (..., H, W) padded by ``fill``, one per offset."""
    oh, ow = _geometry(tuple(np.shape(x)), p)
    xp = _pad(x, p, fill)
    return [xp[s] for s in _offsets(p, oh, ow)]


def window_stack(x: Any, p: dict, fill: Any) -> Any:
    """The windows of x (..., H, W) stacked on a last axis: (..., OH, OW, kh kw), entries in
    row-major window order, padding entries equal to ``fill``."""
    return np.stack(_views(x, p, fill), axis=-1)


def _first_maximisers(views: list, out: Any) -> Any:
    """Booleans (kh kw, ..., OH, OW): entry k of a window is True when it is the window's
    first maximiser in row-major order (``v_k == out`` and no earlier ``v_j == out``), the
    "first" policy's one-hot weights, on NumPy arrays. A window without an entry equal to its
    maximum (a NaN) gets no weight."""
    return _keep_first(_maximisers(views, out))


def _maximisers(views: list, out: Any) -> Any:
    """Booleans (kh kw, ..., OH, OW): ``v_k == out``, written into one array (NumPy)."""
    cand = numpy.empty((len(views),) + tuple(numpy.shape(out)), dtype=bool)
    for k, v in enumerate(views):
        numpy.equal(v, out, out=cand[k])
    return cand


def _keep_first(cand: Any) -> Any:
    """Booleans (K, ...) with, along the first axis, only the first True of every column left
    (in place; the array returned)."""
    ns = numpy if isinstance(cand, numpy.ndarray) else np
    if len(cand) > 1:
        taken = cand[0].copy()
        for k in range(1, len(cand)):
            ns.greater(cand[k], taken, out=cand[k])  # booleans: a > b is a and not b
            if k < len(cand) - 1:
                taken |= cand[k]
    return cand


def _running_max(views: list) -> Any:
    """The elementwise maximum of the offsets' views (a new array)."""
    ns = numpy if isinstance(views[0], numpy.ndarray) else np
    m = views[0]
    for v in views[1:]:
        m = ns.maximum(m, v)
    return m if len(views) > 1 else m.copy()


def _cpu_numpy(a: Any) -> Any:
    """The NumPy view of a torch-backed array's CPU tensor (the same memory), None for
    anything else (a NumPy array, a tensor on another device or of a dtype NumPy lacks)."""
    t = _tensor(a)
    if t is None or t.device.type != "cpu" or str(t.dtype) not in _VIEWABLE:
        return None
    try:
        return t.detach().numpy()
    except (RuntimeError, TypeError):  # a tensor that refuses (a subclass, a wrapper)
        return None


_VIEWABLE = ("torch.float32", "torch.float64", "torch.float16")


def _check(shape: tuple, p: dict) -> None:
    (kh, kw), (ph, pw), (dh, dw) = p["kernel"], p["padding"], p["dilation"]
    if len(shape) != 4:
        raise ShapeError(f"max_pool2d: the input has shape {shape}; it must be 4-D (N, C, H, W) "
                         "(add the batch axis with x[None] for a single image).")
    if min(kh, kw) < 1 or min(p["stride"]) < 1 or min(dh, dw) < 1 or min(ph, pw) < 0:
        raise ShapeError(f"max_pool2d: kernel={p['kernel']}, stride={p['stride']} and "
                         f"dilation={p['dilation']} must be >= 1 and padding={p['padding']} "
                         ">= 0.")
    if ph > kh // 2 or pw > kw // 2:
        raise ShapeError(f"max_pool2d: padding={p['padding']} exceeds half the kernel "
                         f"{p['kernel']} (PyTorch's bound, which keeps an input entry in every "
                         "window); use less padding.")
    oh, ow = _geometry(shape, p)
    if oh < 1 or ow < 1:
        raise ShapeError(f"max_pool2d: a {kh}x{kw} kernel (dilation {p['dilation']}) does not "
                         f"fit in the {shape[-2] + 2 * ph}x{shape[-1] + 2 * pw} padded input; "
                         "use a smaller kernel or dilation, or more padding.")


def _t_pool(x: Any, p: dict) -> Any:
    """The running maximum of the strided views on the tensor, as on NumPy (on the CPU, with
    small windows, about 8x faster than ``F.max_pool2d``, and the same values)."""
    import torch
    import torch.nn.functional as F

    tx = _tensor(x)
    (ph, pw) = p["padding"]
    if ph or pw:
        tx = F.pad(tx, (pw, pw, ph, ph), value=float("-inf"))
    offs = _offsets(p, *_geometry(tuple(_tensor(x).shape), p))
    m = tx[offs[0]]
    for s in offs[1:]:
        m = torch.maximum(m, tx[s])
    return np.asarray(m.clone() if len(offs) == 1 else m)


def _t_select(x: Any, out: Any, p: dict, split: bool) -> tuple[Any, int]:
    """The policy-mode selection of :meth:`MaxPool2d.select` on the tensors of torch-backed
    arrays, with torch's own operations (``torch._numpy`` costs tens of microseconds a call)."""
    import torch
    import torch.nn.functional as F

    tx, to = _tensor(x), _tensor(out)
    (ph, pw) = p["padding"]
    if ph or pw:
        tx = F.pad(tx, (pw, pw, ph, ph), value=float("-inf"))
    # NOTE: weights as floats (0/1), not booleans: this torch's CPU kernels that compare,
    # multiply or sum booleans are several times slower than the float ones. The window
    # maximum minus an entry is >= 0, and 0 exactly when the entry is a maximiser
    # (padding: max - (-inf) = inf, weight 0)
    views = torch.stack([tx[s] for s in _offsets(p, *to.shape[-2:])])
    cand = 1 - torch.sign(to - views)
    count = cand.sum(0)
    if not bool(count.max() > 1):  # one maximiser per window
        return np.asarray(cand), 0
    kinks = int(torch.count_nonzero(count > 1))
    if split:
        return np.asarray(cand / count.clamp_min(1)), kinks
    taken = cand[0].clone()  # "first": the first maximiser in row-major window order
    for k in range(1, cand.shape[0]):
        cand[k] *= 1 - taken
        taken += cand[k]
    return np.asarray(cand), kinks


def _t_vjp(sel: Any, g: Any, xshape: tuple, p: dict) -> Any:
    """:meth:`MaxPool2d.vjp` on the tensors of torch-backed arrays."""
    import torch

    ts, tg = _tensor(sel), _tensor(g)
    shape, disjoint, tiled = _scatter_layout(tuple(tg.shape), tuple(ts.shape), xshape, p)
    res = (torch.empty if tiled else torch.zeros)(
        shape, dtype=torch.result_type(tg, ts), device=tg.device)
    for k, s in enumerate(_offsets(p, *_geometry(xshape, p))):
        if disjoint:
            res[s] = ts[k] * tg
        else:
            res[s] += ts[k] * tg
    return np.asarray(_unpad(res, xshape, p))


def _vjp_arrays(sel: Any, g: Any, xshape: tuple, p: dict) -> Any:
    """:meth:`MaxPool2d.vjp` on arrays: the weighted cotangent scatter-added onto the
    offsets' strided views of the padded input, then the padding cut off."""
    ns = numpy if isinstance(g, numpy.ndarray) else np
    shape, disjoint, tiled = _scatter_layout(ns.shape(g), ns.shape(sel), xshape, p)
    dtype = ns.result_type(g, sel)
    offsets = _offsets(p, *_geometry(xshape, p))
    if ns is numpy and disjoint:  # every input entry gets at most one product, in place
        res = (numpy.empty if tiled else numpy.zeros)(shape, dtype=dtype)
        for k, s in enumerate(offsets):
            numpy.multiply(sel[k], g, out=res[s])
    else:
        res = ns.zeros(shape, dtype=dtype)
        for k, s in enumerate(offsets):
            res[s] += sel[k] * g
    return _unpad(res, xshape, p)


def _scatter_layout(gshape: tuple, selshape: tuple, xshape: tuple, p: dict
                    ) -> tuple[tuple, bool, bool]:
    """The VJP's padded result shape (lead..., N, C, H + 2 ph, W + 2 pw) for a cotangent of
    shape ``gshape`` and weights of shape ``selshape``; whether the windows are disjoint
    (MaxPool2d(k), the usual case: each input entry in one window at most, so the products
    can be written instead of added) and whether they tile the padded input (no entry to
    zero first)."""
    (ph, pw), (h, w) = p["padding"], xshape[-2:]
    (kh, kw), (sh, sw), (dh, dw) = p["kernel"], p["stride"], p["dilation"]
    lead = tuple(numpy.broadcast_shapes(tuple(gshape), tuple(selshape[1:]))[:-4])
    shape = lead + tuple(xshape[:-2]) + (h + 2 * ph, w + 2 * pw)
    oh, ow = _geometry(xshape, p)
    disjoint = sh > dh * (kh - 1) and sw > dw * (kw - 1)
    tiled = disjoint and (dh, dw) == (1, 1) and (oh * sh, ow * sw) == shape[-2:] and \
        (sh, sw) == (kh, kw)
    return shape, disjoint, tiled


def _unpad(res: Any, xshape: tuple, p: dict) -> Any:
    """The padded VJP result without its padding."""
    (ph, pw), (h, w) = p["padding"], xshape[-2:]
    return res[..., ph:ph + h, pw:pw + w] if ph or pw else res


@register
class MaxPool2d(Primitive):
    """``knp.max_pool2d(x, kernel, stride=None, padding=0, dilation=1)``: the maximum of every
    ``kh x kw`` window of a batch of images ``x`` (N, C, H, W), PyTorch's ``F.max_pool2d``
    (stride defaults to the kernel, padding by -inf, no ceil mode).

    ``y[n, c, p, q] = max_{i, j} x_pad[n, c, p sh + i dh, q sw + j dw]``.
    Kink convention: a window with tied maxima is a kink governed by the policy's ``max``
    entry, exactly as ``knp.max`` over the window entries in row-major order: ``"first"``
    gives the window's whole derivative to its first maximiser (PyTorch's choice), ``"split"``
    equal shares; the directional and lex modes resolve ties by the tangents. Returns an
    element of the Clarke subdifferential of each window maximum (the simplex over its
    maximisers); the abs form is the tournament of ``max`` over the stacked windows.
    """

    name = numpy_name = "max_pool2d"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    roundings = 0.0  # exact: one entry of each window
    policy_key = "max"
    omega = 4.0

    def __call__(self, x: Any, kernel: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1) -> Any:
        k = _pair(kernel, "kernel")
        p = {"kernel": k, "stride": k if stride is None else _pair(stride, "stride"),
             "padding": _pair(padding, "padding"), "dilation": _pair(dilation, "dilation")}
        _check(tuple(np.shape(x)), p)
        return bind(self, x, **p)

    def impl(self, x, kernel, stride, padding, dilation):
        p = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
        if _tensor(x) is not None:
            xv = _cpu_numpy(x)
            if xv is None:
                return _t_pool(x, p)
            import torch  # a CPU tensor: on its NumPy view (as in ``selection``)

            return np.asarray(torch.from_numpy(_running_max(_views(xv, p, -numpy.inf))))
        return _running_max(_views(x, p, _fill(np.result_type(x))))

    def cost(self, in_shapes, out_shape, params):
        return _size(out_shape) * _size(params["kernel"])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * self.cost(in_shapes, out_shape, params)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 3 * self.cost(in_shapes, out_shape, params)  # weights, products, scatter-add

    def switch(self, args, out, params):
        """Gap between the best and the second best entry of each window (0 at a tie)."""
        x = np.asarray(args[0])
        return Max.instance.switch((window_stack(x, params, _fill(x.dtype)),),  # type: ignore[attr-defined]
                                   out, _LAST)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        """Weights (kh kw, N, C, OH, OW) over the window entries (offset first, so every
        rule reads contiguous planes; booleans when they are 0/1) and the number of tied
        windows."""
        x = args[0]
        policy_mode = tangents is None or tangents[0] is None or mode == "policy"
        if policy_mode and _tensor(x) is not None and _tensor(out) is not None:
            return _t_select(x, out, params, policy.max == "split")
        dtype = np.result_type(x)
        views = _views(x, params, _fill(dtype))
        if isinstance(x, numpy.ndarray) and isinstance(out, numpy.ndarray):
            cand = _maximisers(views, out)
            count = cand.sum(axis=0, dtype=numpy.uint8 if len(views) < 256 else numpy.int32)
        else:
            cand = np.stack([v == out for v in views])
            count = np.sum(cand, axis=0, dtype=np.int32)
        kinks = int(np.count_nonzero(count > 1))
        if not kinks:  # one maximiser per window: the one-hot weights (0/1 as booleans)
            return cand, 0
        if policy_mode:
            if policy.max == "split":
                return (cand / np.maximum(count, 1)).astype(dtype), kinks
            return _keep_first(cand), kinks  # "first": the first in row-major window order
        # NOTE: ties resolved by the tangents take the rules of ``max`` over the stacked
        # window axis (directional and lex modes), so both spellings agree exactly.
        w, kinks = Max.instance.select(  # type: ignore[attr-defined]
            policy, (np.stack(views, axis=-1),), out, _LAST,
            (window_stack(tangents[0], params, 0),), mode)
        return np.moveaxis(w, -1, 0), kinks

    def selection(self, policy, args, out, params):
        """The policy's weights without counting the tied windows (the reverse sweep's call
        when no kink report is asked). "first" runs on NumPy, and on the NumPy views of CPU
        tensors (this torch's CPU kernels for comparisons and booleans are several times
        slower than NumPy's): the same weights as :meth:`select`, as booleans."""
        if policy.max != "first":
            return self.select(policy, args, out, params)[0]
        x, m = args[0], out
        if _tensor(x) is not None or _tensor(m) is not None:
            x, m = _cpu_numpy(x), _cpu_numpy(m)
        if not (isinstance(x, numpy.ndarray) and isinstance(m, numpy.ndarray)):
            return self.select(policy, args, out, params)[0]
        fill = -numpy.inf if x.dtype.kind == "f" else _fill(x.dtype)
        return _first_maximisers(_views(x, params, fill), m)

    def jvp(self, sel, tangents, args, out, params):
        views = _views(tangents[0], params, 0)
        res = sel[0] * views[0]
        for k in range(1, len(views)):
            res = res + sel[k] * views[k]
        return res

    def vjp(self, sel, g, args, out, params, needs):
        xshape = tuple(np.shape(args[0]))
        if isinstance(sel, numpy.ndarray) and _tensor(g) is not None:
            # a selection made on the NumPy views of CPU tensors (see ``selection``)
            import torch

            gv = _cpu_numpy(g)
            if gv is not None:
                return (np.asarray(torch.from_numpy(_vjp_arrays(sel, gv, xshape, params))),)
            sel = np.asarray(torch.from_numpy(sel).to(_tensor(g).device))
        if _tensor(g) is not None and _tensor(sel) is not None:
            return (_t_vjp(sel, g, xshape, params),)
        return (_vjp_arrays(sel, g, xshape, params),)

    def abs_form(self, args, params):
        """The stacked windows (padding: a constant below every entry of the value, which
        -inf cannot be in (a + b + |a - b|) / 2) and the abs form of ``max`` over them: the
        tournament of (a + b + |a - b|) / 2 in row-major window order."""
        x = args[0]
        (ph, pw) = params["padding"]
        if ph or pw:
            v = np.asarray(getattr(x, "value", x))
            lo = float(np.min(v))
            fill = np.asarray(lo - 1.0 - abs(lo), dtype=v.dtype)
            if not (np.isfinite(fill) and fill < lo):
                raise UnsupportedOperationError(
                    "max_pool2d: the input's values are too close to the dtype's lower limit "
                    "to pad below them in the abs-normal form; pad the input explicitly or "
                    "use padding=0.")
            n, c, h, w = x.shape
            if ph:
                z = np.full((n, c, ph, w), fill, v.dtype)
                x = ops.concatenate([z, x, z], axis=2)
            if pw:
                z = np.full((n, c, h + 2 * ph, pw), fill, v.dtype)
                x = ops.concatenate([z, x, z], axis=3)
        q = dict(params, padding=(0, 0))
        oh, ow = _geometry(tuple(x.shape), q)
        views = [ops.getitem(x, s) for s in _offsets(q, oh, ow)]
        return Max.instance.abs_form([ops.stack(views, axis=-1)], _LAST)  # type: ignore[attr-defined]

    def pp_params(self, params):
        return ("[" + ",".join(f"{k}={params[k]}" for k in ("kernel", "stride", "padding",
                                                              "dilation")) + "]").replace(" ", "")

    def samples(self, rng, dtype=np.float64):
        def r(*s):  # distinct entries: no window has a tie
            return (rng.permutation(_size(s)).reshape(s) / 8.0 - 4.0).astype(dtype)

        def prm(k, s=None, p=0, d=1):
            k2 = _pair(k, "kernel")
            return {"kernel": k2, "stride": k2 if s is None else _pair(s, "stride"),
                    "padding": _pair(p, "padding"), "dilation": _pair(d, "dilation")}

        return [((r(2, 3, 6, 6),), prm(2)),
                ((r(2, 2, 7, 6),), prm(3, 2, 1)),
                ((r(1, 2, 7, 8),), prm((2, 3), (1, 2), (1, 1), (2, 1)))]

    def kink_samples(self, rng, dtype=np.float64):
        # non-overlapping windows with tied maxima (dyadic entries), one padded
        x = (rng.integers(0, 3, (2, 2, 4, 6)) / 8.0).astype(dtype)
        y = (rng.integers(0, 2, (1, 2, 3, 4)) / 4.0).astype(dtype)
        k2 = {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)}
        return [((x,), k2), ((x,), dict(k2, kernel=(1, 3), stride=(1, 3))),
                ((y,), dict(k2, padding=(1, 1)))]
