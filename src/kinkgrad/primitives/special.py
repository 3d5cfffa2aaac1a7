"""Smooth special functions: erf (so that the exact GELU x Phi(x) is expressible) and
logaddexp.

Both are smooth everywhere. ``logaddexp`` is a primitive rather than the composite
``log(exp(a) + exp(b))`` because its stable formula max(a, b) + log1p(exp(-|a - b|)) hides a
max and an abs (style.md 8.2, rule 1: JAX's ``logaddexp`` once leaked exactly that kink into
its derivative).
Written against the module-level ``np``, which the array backends rebind.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core.primitive import Primitive, lift, register, unbroadcast
from .smooth import Unary

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x: Any) -> Any:
    """erf on the array's own backend: torch's for torch-backed arrays, CuPy's for CuPy
    arrays, SciPy's for NumPy (neither NumPy nor ``torch._numpy`` has erf)."""
    tensor = getattr(x, "tensor", None)
    if tensor is not None:  # a torch._numpy array (the torch backend)
        import torch

        return np.asarray(torch.special.erf(tensor))
    if type(x).__module__.startswith("cupy"):
        import cupyx.scipy.special  # type: ignore[import-not-found]

        return cupyx.scipy.special.erf(x)
    import scipy.special

    x = np.asarray(x)
    return scipy.special.erf(x).astype(x.dtype)[()]


@register
class Erf(Unary):
    """``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``; smooth, derivative
    2/sqrt(pi) exp(-x^2). With it the exact GELU is ``x * 0.5 * (1 + erf(x / sqrt(2)))``."""

    name = numpy_name = "erf"
    roundings = 12.0  # a rational approximation
    vjp_reads_out = False  # the derivative comes from x
    c_fn = 8  # a rational approximation per entry
    c_vjp = 3
    omega = 2.0

    def impl(self, x):
        return _erf(x)

    def deriv(self, x, out):
        return _TWO_OVER_SQRT_PI * np.exp(-(x * x))

    def samples(self, rng, dtype=np.float64):
        return [((rng.uniform(-2.5, 2.5, s).astype(dtype),), {}) for s in [(), (4,), (2, 3)]]


@register
class LogAddExp(Primitive):
    """``log(exp(a) + exp(b))`` computed as max(a, b) + log1p(exp(-|a - b|)) (no overflow),
    with NumPy broadcasting. Smooth; derivative (sigmoid(a - b), sigmoid(b - a)), the two
    softmax weights, which sum to 1."""

    name = numpy_name = "logaddexp"
    c_fn = 4
    c_vjp = 1
    omega = 4.0

    def impl(self, a, b):
        with np.errstate(under="ignore"):  # exp(-|a - b|) below the smallest float: 0
            return np.logaddexp(a, b)

    def rounding(self, args, out, params):  # max + log1p(exp(-|a - b|))
        a, b = args
        return 2.0 * np.abs(out) + np.abs(a) + np.abs(b) + 4.0

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        a, b = np.asarray(args[0]), np.asarray(args[1])
        d = a - b  # broadcast to the output shape
        with np.errstate(under="ignore"):
            e = np.exp(-np.abs(d))
        wa = np.where(d >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.result_type(out))
        return wa, 0

    def jvp(self, sel, tangents, args, out, params):
        ta, tb = tangents
        nd = np.ndim(out)
        res = None if ta is None else sel * lift(ta, np.shape(args[0]), nd)
        if tb is not None:
            term = (1 - sel) * lift(tb, np.shape(args[1]), nd)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        so = np.shape(out)
        return (unbroadcast(g * sel, np.shape(args[0]), so) if needs[0] else None,
                unbroadcast(g * (1 - sel), np.shape(args[1]), so) if needs[1] else None)

    def samples(self, rng, dtype=np.float64):
        shapes = [((3,), (3,)), ((2, 3), (3,)), ((), (4,)), ((2, 1), (1, 3))]
        out = [((rng.uniform(-3, 3, sa).astype(dtype), rng.uniform(-3, 3, sb).astype(dtype)),
                {}) for sa, sb in shapes]
        big = np.array([700.0, -700.0, 0.0], dtype)  # exp would overflow in float64
        if dtype == np.float64:
            out.append(((big, np.array([699.0, -699.5, 30.0], dtype)), {}))
        return out
