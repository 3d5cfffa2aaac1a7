"""Elementwise piecewise-smooth primitives: abs, relu, leaky_relu, maximum, minimum, clip.

Each is a primitive (never a composite) so that its choice at the kink is declared by the
kink policy, not by how it happens to be spelled. Every selection these rules make at a kink
lies in the primitive's Clarke subdifferential, so backward mode returns an element of a
conservative gradient of the program (Bolte and Pauwels), whatever the policy.

# NOTE: defaults relu'(0) = 0 and abs'(0) = 0 are the deterministic and agnostic choices of
# Baumgärtner and Bethke (arXiv 2407.09639); Bertoin et al. (NeurIPS 2021) show the choice
# matters in low precision, which is why it is a declared policy and not an accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import Primitive, lift, ops, register, resolve_signs, unbroadcast
from .._core.tracer import bind, is_traced
from ._tensors import tensor_of as _tensor

_NDARRAY = np.ndarray  # NumPy's, kept when ``np`` is rebound to another backend


def _dz(tangents: Any, idx: int = 0) -> Any:
    return None if tangents is None else tangents[idx]


def _signed_samples(rng: np.random.Generator, dtype: Any, shape: tuple) -> np.ndarray:
    """Entries with |x| in [0.1, 2]: a margin of 0.1 from the kink at 0."""
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)).astype(dtype)


def _kinky(rng: np.random.Generator, dtype: Any, shape: tuple) -> np.ndarray:
    """Every other entry exactly 0, the others on a 1/8 grid (dyadic: exact differences)."""
    x = (rng.choice([-1.0, 1.0], shape) * rng.integers(1, 17, shape) / 8).astype(dtype)
    x.flat[:: 2] = 0
    return x


class _Elementwise(Primitive):
    """Elementwise nonsmooth op on one input whose selection is a slope array."""

    c_vjp = 2  # compare (selection) and multiply
    omega = 4.0
    scales_cotangent = True  # vjp below is g * sel

    def switch(self, args, out, params):
        return np.asarray(args[0])

    def jvp(self, sel, tangents, args, out, params):
        return sel * tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return (g * sel,)

    def samples(self, rng, dtype=np.float64):
        return [((_signed_samples(rng, dtype, s),), {}) for s in [(), (5,), (2, 3)]]

    def kink_samples(self, rng, dtype=np.float64):
        return [((_kinky(rng, dtype, (6,)),), {}), ((np.zeros((), dtype),), {}),
                ((_kinky(rng, dtype, (2, 3)),), {})]


@register
class Abs(_Elementwise):
    """``|x|``; abs'(x) = sign(x), and at x = 0 the policy's ``abs`` value s in [-1, 1]
    (default 0, the agnostic choice). Clarke subdifferential at 0: [-1, 1]."""

    name = "abs"
    switch_lipschitz = 1.0  # z: an input entry
    roundings = 0.0  # exact
    numpy_name = "abs"
    policy_key = "abs"

    def impl(self, x):
        return np.abs(x)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x = args[0]
        s = resolve_signs(x, _dz(tangents), mode)
        kinks = int(np.count_nonzero(np.asarray(out) == 0))
        if kinks and policy.abs != 0:
            s = np.where(s == 0, policy.abs, s)
        return s.astype(np.result_type(x)), kinks


class _TensorRelu:
    """Relu's reverse-sweep selection on torch tensors (policy relu'(0) = 0): the output
    tensor ``x`` = max(input, 0), positive exactly where the input is."""

    __slots__ = ("x",)

    def __init__(self, x: Any) -> None:
        self.x = x


@register
class Relu(_Elementwise):
    """``max(x, 0)``; relu'(x) = [x > 0], and at x = 0 the policy's ``relu`` slope s in
    [0, 1] (default 0, as PyTorch and JAX). Clarke subdifferential at 0: [0, 1]."""

    name = numpy_name = "relu"
    switch_lipschitz = 1.0  # z: an input entry
    roundings = 0.0  # exact
    policy_key = "relu"
    # the default slope [x > 0] is [out > 0] (out is kept for the next layer's VJP anyway,
    # and x can go); a report or another slope at 0 needs x == 0, which out does not show
    vjp_reads_args, vjp_reads_out, kink_reads_args = False, True, True

    def impl(self, x):
        return np.maximum(x, 0)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x = args[0]
        kinks = int(np.count_nonzero(x == 0))
        if mode == "policy":
            if kinks and policy.relu != 0:
                return np.where(x == 0, policy.relu, x > 0).astype(np.result_type(x)), kinks
            return x > 0, kinks
        s = resolve_signs(x, _dz(tangents), mode)
        slope = (s > 0).astype(np.result_type(x))
        if kinks and policy.relu != 0:
            slope = np.where(s == 0, policy.relu, slope)
        return slope, kinks

    def selection(self, policy, args, out, params):
        # NOTE: with relu'(0) = 0 the slope is [x > 0] whatever the kinks: skip counting
        # them (a pass over x), as backward mode without a kink report does on every call
        if policy.relu != 0:
            return self.select(policy, args, out, params)[0]
        if type(out) is _NDARRAY:  # x > 0 exactly where out = max(x, 0) > 0 (NaN: neither)
            return out > 0
        t = _tensor(out)
        if t is not None:  # the VJP below calls torch's own relu backward on out
            return _TensorRelu(t)
        return np.asarray(out) > 0

    def vjp(self, sel, g, args, out, params, needs):
        if type(sel) is _TensorRelu:  # g where out > 0, else 0: relu'(0) = 0, torch's kernel
            tg = _tensor(g)
            if tg is not None and tuple(tg.shape) == tuple(sel.x.shape):
                import torch

                return (np.asarray(torch.ops.aten.threshold_backward(tg, sel.x, 0)),)
            sel = np.asarray(sel.x.sign().clamp_(min=0))  # float 0/1 (booleans are slow)
        return (g * sel,)

    scales_cotangent = True  # vjp is g * sel on NumPy

    def abs_form(self, args, params):
        x = args[0]
        return (x + ops.abs(x)) * 0.5


@register
class LeakyRelu(_Elementwise):
    """``x if x > 0 else alpha x`` (0 <= alpha < 1); slope 1 or alpha, and at 0 the value
    alpha + s (1 - alpha) with s the policy's ``leaky_relu`` in [0, 1] (default 0: slope
    alpha). Clarke subdifferential at 0: [alpha, 1]."""

    name = numpy_name = "leaky_relu"
    switch_lipschitz = 1.0  # z: an input entry
    policy_key = "leaky_relu"

    def __call__(self, x: Any, negative_slope: float = 0.01) -> Any:
        alpha = float(negative_slope)
        if not 0.0 <= alpha < 1.0:
            from ..errors import KinkgradError

            raise KinkgradError(f"leaky_relu: negative_slope={alpha} must lie in [0, 1).")
        return bind(self, x, alpha=alpha)

    def impl(self, x, alpha):
        return np.where(x > 0, x, x * alpha).astype(np.result_type(x))[()]

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, alpha = args[0], params["alpha"]
        kinks = int(np.count_nonzero(x == 0))
        s = resolve_signs(x, _dz(tangents), mode)
        dtype = np.result_type(x)
        slope = (s > 0).astype(dtype) * (1.0 - alpha) + alpha
        if kinks:
            slope = np.where(s == 0, alpha + policy.leaky_relu * (1 - alpha), slope)
        return slope.astype(np.result_type(x)), kinks

    def abs_form(self, args, params):
        x, a = args[0], params["alpha"]
        return x * ((1 + a) * 0.5) + ops.abs(x) * ((1 - a) * 0.5)

    def samples(self, rng, dtype=np.float64):
        return [((_signed_samples(rng, dtype, (5,)),), {"alpha": 0.1})]

    def kink_samples(self, rng, dtype=np.float64):
        return [((_kinky(rng, dtype, (6,)),), {"alpha": 0.25}),
                ((np.zeros((), dtype),), {"alpha": 0.0})]


class _MaxMin(Primitive):
    """Elementwise maximum/minimum of two operands; the selection is the weight w of the
    first operand (1 - w goes to the second). Clarke subdifferential at a tie: the segment
    between (1, 0) and (0, 1). Ties between two traced operands follow the policy's
    ``maximum_rule()`` ("first": w = 1, "split": w = 1/2). A tie with a constant operand (the
    ``const`` parameter: index of the operand that is not traced) gives the traced operand the
    policy's ``constant_tie_slope()``, by default relu'(0): maximum(x, c) = c + relu(x - c)
    and minimum(x, c) = c - relu(c - x), so ``maximum(x, 0)``, ``maximum(0, x)`` and
    ``relu(x)`` have the same derivative at 0."""

    policy_key = "max"
    c_vjp = 2
    omega = 7.0
    roundings = 0.0  # exact: one of the inputs
    sign = 1.0  # +1: maximum, -1: minimum

    def __call__(self, a: Any, b: Any) -> Any:
        ta, tb = is_traced(a), is_traced(b)
        if ta != tb:
            return bind(self, a, b, const=0 if tb else 1)
        return bind(self, a, b)

    def pp_params(self, params):
        # ``const`` only says which operand is the literal, which the printed operands show
        return super().pp_params({k: v for k, v in params.items() if k != "const"})

    def tie_weight(self, policy: Any, params: dict) -> float:
        """The first operand's weight w at a tie, under ``policy``."""
        const = params.get("const")
        if const is None:
            return 1.0 if policy.maximum_rule() == "first" else 0.5
        s = policy.constant_tie_slope()
        return s if const == 1 else 1.0 - s

    def switch(self, args, out, params):
        a, b = args
        return np.asarray(self.sign * (np.asarray(a) - np.asarray(b)))

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        a, b = args
        z = self.switch(args, out, params)
        kinks = int(np.count_nonzero(z == 0))
        dz = None
        if tangents is not None and mode != "policy":
            ta, tb = tangents
            nd = np.ndim(out)
            parts = []
            if ta is not None:
                parts.append(lift(ta, np.shape(a), nd))
            if tb is not None:
                parts.append(-lift(tb, np.shape(b), nd))
            if parts:
                dz = self.sign * (parts[0] + parts[1] if len(parts) == 2 else parts[0])
                dz = np.broadcast_to(dz, dz.shape[:1] + np.shape(out))
        s = resolve_signs(z, dz, mode)
        dtype = np.result_type(out)
        w = (s > 0).astype(dtype)
        if kinks:
            w = np.where(s == 0, self.tie_weight(policy, params), w).astype(dtype)
        return w, kinks

    def jvp(self, sel, tangents, args, out, params):
        (a, b), (ta, tb) = args, tangents
        nd = np.ndim(out)
        res = None if ta is None else sel * lift(ta, np.shape(a), nd)
        if tb is not None:
            term = (1 - sel) * lift(tb, np.shape(b), nd)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        a, b = args
        so = np.shape(out)
        return (unbroadcast(g * sel, np.shape(a), so) if needs[0] else None,
                unbroadcast(g * (1 - sel), np.shape(b), so) if needs[1] else None)

    def abs_form(self, args, params):
        a, b = args
        return (a + b + ops.abs(a - b) * self.sign) * 0.5

    def samples(self, rng, dtype=np.float64):
        a = rng.normal(size=(2, 4)).astype(dtype)
        b = (a + rng.choice([-1.0, 1.0], (2, 4)) * rng.uniform(0.1, 1.0, (2, 4))).astype(dtype)
        return [((a, b), {}), ((a, np.asarray(0.05, dtype)), {})]

    def kink_samples(self, rng, dtype=np.float64):
        # dyadic entries (a 1/8 grid) so that differences inside each piece are exact
        a = (rng.integers(-16, 17, (6,)) / 8).astype(dtype)
        b = (a + rng.choice([-1.0, 1.0], (6,)) * rng.integers(1, 9, (6,)) / 8).astype(dtype)
        b[::2] = a[::2]
        c = np.array([[0.5, -1.0, 0.5], [0.5, 2.0, 0.0]], dtype)
        return [((a, b), {}), ((c, np.asarray(0.5, dtype)), {})]


@register
class Maximum(_MaxMin):
    """``maximum(a, b)`` elementwise; see :class:`_MaxMin` for the tie rule."""

    name = numpy_name = "maximum"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    sign = 1.0

    def impl(self, a, b, const=None):
        return np.maximum(a, b)


@register
class Minimum(_MaxMin):
    """``minimum(a, b)`` elementwise; see :class:`_MaxMin` for the tie rule."""

    name = numpy_name = "minimum"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    sign = -1.0

    def impl(self, a, b, const=None):
        return np.minimum(a, b)


@register
class Clip(Primitive):
    """``clip(x, lo, hi)`` with constant bounds (None: no bound); slope 1 strictly inside,
    0 outside, and at a bound the policy's ``clip_slope()`` s in [0, 1] (default relu'(0),
    so that clip(x, 0, None) and relu(x) agree; PyTorch's clamp takes 1: preset "torch").
    Clarke subdifferential at a bound: [0, 1]. Traced bounds are written with
    maximum/minimum.

    Where lo == hi the function is constant: slope 0 off x = lo, and at x = lo = hi, a kink
    of both bounds, the product s * s of the two bounds' slopes, as the abs form
    min(max(x, lo), hi) gives it (an element of its conservative gradient; PyTorch's clamp
    mask lo <= x <= hi passes 1 there, the "torch" preset's s = 1). The Clarke gradient of the
    constant is 0: the default s = 0 gives it, ``kinkgrad.certify`` tells the others apart.
    Directional evaluations (``mode`` other than "policy") give 0 there."""

    name = numpy_name = "clip"
    switch_lipschitz = 2.0  # z: a difference of order statistics
    roundings = 0.0  # exact: the input or a bound
    policy_key = "clip"
    c_fn = 2
    c_vjp = 3
    omega = 3.0

    def __call__(self, x: Any, a_min: Any = None, a_max: Any = None) -> Any:
        from . import piecewise as pw

        if is_traced(a_min) or is_traced(a_max):
            y = x if a_min is None else pw.Maximum.instance(x, a_min)  # type: ignore[attr-defined]
            return y if a_max is None else pw.Minimum.instance(y, a_max)  # type: ignore
        return bind(self, x, lo=a_min, hi=a_max)

    def impl(self, x, lo, hi):
        return np.clip(x, lo, hi)

    def switch(self, args, out, params):
        x, lo, hi = np.asarray(args[0]), params["lo"], params["hi"]
        zl = np.inf if lo is None else x - lo
        zh = np.inf if hi is None else hi - x
        return np.minimum(np.abs(zl), np.abs(zh)) * np.ones_like(x)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, lo, hi = args[0], params["lo"], params["hi"]
        dtype = np.result_type(x)
        dx = _dz(tangents)
        zl = None if lo is None else x - lo
        zh = None if hi is None else hi - x
        inside = np.ones(np.shape(x), bool)
        kink = np.zeros(np.shape(x), bool)
        for z in (zl, zh):
            if z is not None:
                inside &= z > 0
                kink |= z == 0
        kinks = int(np.count_nonzero(kink))
        if mode == "policy" or not kinks:
            slope = inside.astype(dtype)
            if kinks:
                slope = np.where(kink, policy.clip_slope(), slope).astype(dtype)
                if lo is not None and hi is not None and np.any(np.equal(lo, hi)):
                    # x = lo = hi: both bounds' slopes s multiply (0 elsewhere when lo == hi)
                    slope = np.where(np.equal(lo, hi), slope * slope, slope).astype(dtype)
            return slope, kinks
        # resolve each bound by the sign of the directional derivative of its switch
        sl = resolve_signs(zl, dx, mode) if zl is not None else None
        sh = resolve_signs(zh, None if dx is None else -dx, mode) if zh is not None else None
        ok = np.ones(np.shape(sl if sl is not None else sh), bool)
        undecided = np.zeros_like(ok)
        for s in (sl, sh):
            if s is not None:
                ok &= s >= 0
                undecided |= s == 0
        strictly = ok & ~undecided
        s_kink = policy.clip_slope()
        slope = np.where(strictly, 1.0, np.where(ok & undecided, s_kink, 0.0)).astype(dtype)
        return self._constant_where_equal(slope, lo, hi), kinks

    @staticmethod
    def _constant_where_equal(slope: Any, lo: Any, hi: Any) -> Any:
        """Where lo == hi the clip is constant: its only generalized derivative is 0."""
        if lo is None or hi is None or not np.any(np.equal(lo, hi)):
            return slope
        return np.where(np.equal(lo, hi), 0, slope).astype(slope.dtype)

    def jvp(self, sel, tangents, args, out, params):
        return sel * tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return (g * sel,)

    def abs_form(self, args, params):
        y, lo, hi = args[0], params["lo"], params["hi"]
        if lo is not None:
            y = (y + lo + ops.abs(y - lo)) * 0.5
        if hi is not None:
            y = (y + hi - ops.abs(y - hi)) * 0.5
        return y

    def samples(self, rng, dtype=np.float64):
        x = rng.uniform(-2, 2, (8,)).astype(dtype)
        x[np.abs(np.abs(x) - 1) < 0.1] = 0.3
        return [((x,), {"lo": -1.0, "hi": 1.0}), ((x,), {"lo": None, "hi": 0.5 + 0.0})]

    def kink_samples(self, rng, dtype=np.float64):
        x = np.array([-1.0, 1.0, 0.375, -2.0, 2.0, -1.0], dtype)
        return [((x,), {"lo": -1.0, "hi": 1.0}), ((x,), {"lo": None, "hi": 1.0}),
                ((x,), {"lo": -1.0, "hi": None})]
