"""Smooth elementwise primitives and logsumexp: exp, log, log1p, sqrt, tanh, sigmoid, softplus,
sin, cos.

Each unary primitive's ``select`` returns its local derivative (computed once per node and
shared by the JVP and the VJP), so JVP and VJP are the same elementwise product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import (
    Primitive,
    _size,
    normalize_axis,
    register,
    shape_of,
    summation_roundings,
    with_unit_axes,
)
from .._core.tracer import bind
from ..errors import ShapeError
from ._tensors import tensor_of as _tensor

# NumPy's own, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _where, _isfinite, _subtract, _exp, _log = (
    np.ndarray, np.where, np.isfinite, np.subtract, np.exp, np.log)
_MAX_REDUCE, _ADD_REDUCE = np.maximum.reduce, np.add.reduce


class Unary(Primitive):
    """Elementwise f(x) whose derivative f'(x) is the selection (a diagonal Jacobian)."""

    c_vjp = 1
    omega = 3.0
    roundings = 8.0  # NumPy's SIMD libm: within 4 ulps (composites below: more)
    lo, hi = -2.0, 2.0
    domain_check = False  # True where deriv can divide by zero (log, log1p, sqrt)

    def deriv(self, x: Any, out: Any) -> Any:
        raise NotImplementedError

    def domain(self, args: list, out: Any, params: dict) -> tuple[Any, str] | None:
        """Entries (a mask shaped like the output) where f or f' is not finite, and the
        message a user gets when such an entry reaches the result; None: no such entries.
        Such entries are not refused when the derivative is formed: the unselected branch of
        a ``where`` may hold them (see modes/_discard.py)."""
        return None

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        if self.domain_check:
            with np.errstate(divide="ignore", invalid="ignore"):
                return self.deriv(args[0], out), 0
        return self.deriv(args[0], out), 0

    def jvp(self, sel, tangents, args, out, params):
        return sel * tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return (g * sel,)

    def samples(self, rng: np.random.Generator, dtype: Any = np.float64) -> list:
        return [((rng.uniform(self.lo, self.hi, s).astype(dtype),), {}) for s in [(), (4,), (2, 3)]]


@register
class Exp(Unary):
    """``exp(x)``; derivative exp(x)."""

    name = numpy_name = "exp"
    vjp_reads_args = False  # the derivative comes from the output

    def impl(self, x):
        return np.exp(x)

    def deriv(self, x, out):
        return out


@register
class Log(Unary):
    """``log(x)`` for x > 0; derivative 1/x. Entries x <= 0 are an error when they reach the
    result (their value is NaN or -inf), not when a ``where`` discards them."""

    name = numpy_name = "log"
    vjp_reads_out = False  # the derivative comes from x
    lo, hi = 0.2, 3.0
    domain_check = True

    def impl(self, x):
        return np.log(x)

    def deriv(self, x, out):
        return 1.0 / x if np.ndim(x) == 0 else np.reciprocal(x)

    def domain(self, args, out, params):
        bad = np.asarray(args[0]) <= 0
        return (bad, "log: the argument has entries <= 0, where log is not differentiable; add "
                     "a positive offset or clip it") if np.any(bad) else None


@register
class Log1p(Unary):
    """``log(1 + x)`` for x > -1; derivative 1/(1 + x)."""

    name = numpy_name = "log1p"
    vjp_reads_out = False  # the derivative comes from x
    lo, hi = -0.5, 2.0
    domain_check = True

    def impl(self, x):
        return np.log1p(x)

    def deriv(self, x, out):
        return 1.0 / (1.0 + x)

    def domain(self, args, out, params):
        bad = np.asarray(args[0]) <= -1
        return (bad, "log1p: the argument has entries <= -1; shift it above -1") \
            if np.any(bad) else None


@register
class Sqrt(Unary):
    """``sqrt(x)`` for x > 0; derivative 1/(2 sqrt x). At x = 0 the derivative is infinite
    (sqrt is not Lipschitz there): differentiating through a zero raises, unless a ``where``
    discards that entry."""

    name = numpy_name = "sqrt"
    roundings = 1.0  # correctly rounded (IEEE 754)
    vjp_reads_args = False  # the derivative comes from the output
    c_vjp = 2
    omega = 4.0
    lo, hi = 0.2, 3.0
    domain_check = True

    def impl(self, x):
        return np.sqrt(x)

    def deriv(self, x, out):
        return 0.5 / out

    def domain(self, args, out, params):
        bad = ~(np.asarray(out) > 0)
        if not np.any(bad):
            return None
        if np.any(np.isnan(np.asarray(out))):  # NOTE: sqrt of x < 0 was "derivative at 0"
            return (bad, "sqrt: the argument is negative (sqrt is NaN there); keep it >= 0, "
                         "e.g. knp.sqrt(knp.relu(x)) or a start point inside the domain")
        return (bad, "sqrt: derivative at 0 is infinite (sqrt is not Lipschitz at 0); for a "
                     "Euclidean norm use knp.linalg.norm, whose derivative at 0 is declared by "
                     "the kink policy")


@register
class Tanh(Unary):
    """``tanh(x)``; derivative 1 - tanh(x)^2."""

    name = numpy_name = "tanh"
    vjp_reads_args = False  # the derivative comes from the output
    c_vjp = 3
    omega = 5.0

    def impl(self, x):
        return np.tanh(x)

    def deriv(self, x, out):
        return 1.0 - out * out


@register
class Sin(Unary):
    """``sin(x)``; derivative cos(x)."""

    name = numpy_name = "sin"
    vjp_reads_out = False  # the derivative comes from x
    c_vjp = 3
    omega = 5.0

    def impl(self, x):
        return np.sin(x)

    def deriv(self, x, out):
        return np.cos(x)


@register
class Cos(Unary):
    """``cos(x)``; derivative -sin(x)."""

    name = numpy_name = "cos"
    vjp_reads_out = False  # the derivative comes from x
    c_vjp = 3
    omega = 5.0

    def impl(self, x):
        return np.cos(x)

    def deriv(self, x, out):
        return -np.sin(x)


@register
class Sigmoid(Unary):
    """``1 / (1 + exp(-x))`` (computed without overflow); derivative s(1 - s)."""

    name = numpy_name = "sigmoid"
    roundings = 12.0  # exp (4 ulps), an addition and a division
    vjp_reads_args = False  # the derivative comes from the output
    c_vjp = 3
    omega = 5.0

    def impl(self, x):
        x = np.asarray(x)
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)[()]

    def deriv(self, x, out):
        return out * (1.0 - out)


@register
class Softplus(Unary):
    """``log(1 + exp(x))`` computed stably; derivative sigmoid(x). Smooth, a primitive because
    its stable formula hides a max."""

    name = numpy_name = "softplus"
    roundings = 12.0  # NumPy's logaddexp: log1p, exp (4 ulps each) and an addition
    vjp_reads_out = False  # the derivative comes from x
    c_vjp = 3
    omega = 5.0

    def impl(self, x):
        return np.logaddexp(0, x)

    def deriv(self, x, out):
        return Sigmoid.instance.impl(x)  # type: ignore[attr-defined]


def _exp_minus(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``exp(x - shift)`` in one new array (``shift`` >= x along the reduced axes)."""
    with np.errstate(over="ignore", under="ignore"):
        # NOTE: x - shift can overflow to -inf when x spans the whole range (-3e38 - 3e38 in
        # float32); exp(-inf) = 0 is then the exact IEEE answer, not an error.
        e = _subtract(x, shift)
        return _exp(e, out=e)


def _shifted_exp_sum(x: np.ndarray, axis: tuple) -> tuple:
    """``m``, the max over ``axis`` (kept dims) taken as 0 where it is not finite, and the
    sum of ``exp(x - m)`` over ``axis``: for a NumPy float array, in C-level calls only."""
    m = _MAX_REDUCE(x, axis=axis, keepdims=True)
    m = _where(_isfinite(m), m, 0)
    return m, _ADD_REDUCE(_exp_minus(x, m), axis=axis, keepdims=True)


@register
class LogSumExp(Primitive):
    """``log(sum(exp(x), axis))``, computed stably; derivative softmax(x) along ``axis``.

    Smooth, a primitive because the stable formula subtracts a max. On torch tensors the
    value is ``Tensor.logsumexp`` and the selection (the softmax, one reduced axis)
    ``Tensor.softmax``: the same formula in one kernel each."""

    name = numpy_name = "logsumexp"
    omega = 3.0

    def __call__(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        shape = shape_of(x)
        axes = normalize_axis(axis, len(shape))
        for a in axes:
            if shape[a] == 0:
                raise ShapeError(
                    f"logsumexp: the reduced axes {axes} of an array of shape {tuple(shape)} "
                    "are empty, so the value is log(0) = -inf (not finite, no derivative); "
                    "check the shape or reduce over a non-empty axis."
                )
        return bind(self, x, axis=axes, keepdims=bool(keepdims))

    def impl(self, x, axis, keepdims):
        if type(x) is _NDARRAY and x.dtype.kind == "f" and x.ndim:  # NOTE: a 0-d x's
            m, s = _shifted_exp_sum(x, axis)  # sums are NumPy scalars: no out= (TypeError)
            s = _log(s, out=s)
            s += m
            return s if keepdims else s.squeeze(axis)
        t = _tensor(x)
        if t is not None and t.dtype.is_floating_point and t.numel():
            # torch's own kernel (the same stable formula: the max subtracted, a -inf or
            # +inf max taken as 0) instead of ten ``torch._numpy`` calls
            return np.asarray(t.logsumexp(dim=axis, keepdim=keepdims))
        x = np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        with np.errstate(over="ignore", under="ignore"):
            # NOTE: x - max can overflow to -inf when x spans the whole range (-3e38 - 3e38 in
            # float32); exp(-inf) = 0 is then the exact IEEE answer, not an error.
            e = np.exp(x - m)
        s = np.log(np.sum(e, axis=axis, keepdims=True)) + m
        return s if keepdims else np.squeeze(s, axis=axis)

    def rounding(self, args, out, params):
        """max + log(sum(exp(x - max))): the shift, the exponentials and the sum err
        relative to the sum's terms (at most 1 each), the log and the final addition."""
        x, axis = args[0], params["axis"]
        big = np.max(np.abs(x), axis=axis, keepdims=params["keepdims"])
        m = np.size(x) // max(np.size(out), 1)
        return 3.0 * (np.abs(out) + big) + summation_roundings(m) + 2.0

    def cost(self, in_shapes, out_shape, params):
        return 4 * _size(in_shapes[0])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 4 * _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 4 * _size(in_shapes[0])

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        # NOTE: the softmax is normalised by its own sum, never taken as exp(x - out) alone:
        # at large |x| the rounded value loses log(n) (1e300 + log 2 == 1e300) and exp(x - out)
        # would not sum to 1.
        x, axis = args[0], params["axis"]
        if type(x) is _NDARRAY and x.dtype.kind == "f" and type(out) is _NDARRAY:
            # exp(x - out) normalised, without a second max: out >= max(x) (it is max +
            # log(s), s >= 1), so exp(x - out) <= 1 cannot overflow and sums to at least 1/n;
            # the rounding of out is one factor common to all entries, which the
            # normalisation cancels. inf and NaN give NaN.
            e = _exp_minus(x, out if params["keepdims"] else out.reshape(
                with_unit_axes(out.shape, axis)))
            e /= _ADD_REDUCE(e, axis=axis, keepdims=True)
            return e, 0
        t = _tensor(x)
        if t is not None and len(axis) == 1 and t.dtype.is_floating_point and t.numel():
            return np.asarray(t.softmax(dim=axis[0])), 0  # exp(x - max) / sum, torch's kernel
        m = np.max(x, axis=axis, keepdims=True)
        with np.errstate(over="ignore", under="ignore"):  # as in impl: exp(-inf) = 0
            e = np.exp(x - np.where(np.isfinite(m), m, 0))
        return e / np.sum(e, axis=axis, keepdims=True), 0

    def jvp(self, sel, tangents, args, out, params):
        return np.sum(sel * tangents[0], axis=params["axis"], keepdims=params["keepdims"])

    def vjp(self, sel, g, args, out, params, needs):
        if not params["keepdims"]:
            if type(g) is _NDARRAY:  # np.expand_dims as a reshape, C-level
                g = g.reshape(with_unit_axes(g.shape, params["axis"]))
            else:
                g = np.expand_dims(g, params["axis"])
        return (g * sel,)

    def samples(self, rng, dtype=np.float64):
        x = rng.normal(size=(3, 4)).astype(dtype)
        return [((x,), {"axis": (-1,), "keepdims": False}),
                ((x,), {"axis": (-2, -1), "keepdims": False}),
                ((x,), {"axis": (-2,), "keepdims": True})]
