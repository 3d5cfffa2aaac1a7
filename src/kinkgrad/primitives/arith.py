"""Arithmetic primitives: add, subtract, multiply, divide, negative, power.

All are smooth where defined; their rules broadcast like NumPy. Each jvp/vjp accepts leading
batch axes on tangents and cotangents (see ``_core/primitive.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import Primitive, lift, register, shape_of, unbroadcast


def _t(t: Any, x: Any, out: Any) -> Any:
    """A tangent of input ``x`` lifted to broadcast against ``out``."""
    return lift(t, np.shape(x), np.ndim(out))


def _pair_samples(rng: np.random.Generator, dtype: Any, lo: float = -2.0, hi: float = 2.0,
                  pos_second: bool = False) -> list:
    shapes = [((3,), (3,)), ((2, 3), (3,)), ((), (4,)), ((2, 1), (1, 3))]
    out = []
    for sa, sb in shapes:
        a = rng.uniform(lo, hi, sa).astype(dtype)
        b = rng.uniform(0.5 if pos_second else lo, hi, sb).astype(dtype)
        out.append(((a, b), {}))
    return out


class _Binary(Primitive):
    """Elementwise binary op with NumPy broadcasting."""

    def samples(self, rng: np.random.Generator, dtype: Any = np.float64) -> list:
        return _pair_samples(rng, dtype)


@register
class Add(_Binary):
    """``a + b``. Smooth; derivative (1, 1)."""

    name = numpy_name = "add"
    c_jvp = 0
    c_vjp = 0
    omega = 3.0
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def impl(self, a: Any, b: Any) -> Any:
        return np.add(a, b)

    def jvp(self, sel, tangents, args, out, params):
        ta, tb = tangents
        if ta is None:
            return _t(tb, args[1], out)
        if tb is None:
            return _t(ta, args[0], out)
        return _t(ta, args[0], out) + _t(tb, args[1], out)

    def vjp(self, sel, g, args, out, params, needs):
        so = shape_of(out)
        return (unbroadcast(g, shape_of(args[0]), so) if needs[0] else None,
                unbroadcast(g, shape_of(args[1]), so) if needs[1] else None)


@register
class Subtract(_Binary):
    """``a - b``. Smooth; derivative (1, -1)."""

    name = "sub"
    numpy_name = "subtract"
    c_jvp = 1
    omega = 5.0
    vjp_reads_args = vjp_reads_out = False  # shapes only

    def impl(self, a: Any, b: Any) -> Any:
        return np.subtract(a, b)

    def jvp(self, sel, tangents, args, out, params):
        ta, tb = tangents
        if tb is None:
            return _t(ta, args[0], out)
        if ta is None:
            return -_t(tb, args[1], out)
        return _t(ta, args[0], out) - _t(tb, args[1], out)

    def vjp(self, sel, g, args, out, params, needs):
        so = shape_of(out)
        return (unbroadcast(g, shape_of(args[0]), so) if needs[0] else None,
                unbroadcast(-g, shape_of(args[1]), so) if needs[1] else None)


@register
class Multiply(_Binary):
    """``a * b``. Smooth; derivative (b, a)."""

    name = "mul"
    numpy_name = "multiply"
    vjp_reads_out = False  # its shape only
    omega = 5.0

    def impl(self, a: Any, b: Any) -> Any:
        return np.multiply(a, b)

    def jvp(self, sel, tangents, args, out, params):
        (a, b), (ta, tb) = args, tangents
        res = None if ta is None else _t(ta, a, out) * b
        if tb is not None:
            term = a * _t(tb, b, out)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        a, b = args
        so = shape_of(out)
        return (unbroadcast(g * b, shape_of(a), so) if needs[0] else None,
                unbroadcast(g * a, shape_of(b), so) if needs[1] else None)


@register
class Divide(_Binary):
    """``a / b``. Smooth where b != 0; derivative (1/b, -a/b^2)."""

    name = "div"
    numpy_name = "divide"
    c_vjp = 2
    omega = 7.0

    def impl(self, a: Any, b: Any) -> Any:
        return np.divide(a, b)

    def jvp(self, sel, tangents, args, out, params):
        (a, b), (ta, tb) = args, tangents
        res = None if ta is None else _t(ta, a, out) / b
        if tb is not None:
            term = -(out / b) * _t(tb, b, out)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        a, b = args
        so = np.shape(out)
        ga = g / b
        return (unbroadcast(ga, np.shape(a), so) if needs[0] else None,
                unbroadcast(-ga * out, np.shape(b), so) if needs[1] else None)

    def samples(self, rng, dtype=np.float64):
        return _pair_samples(rng, dtype, pos_second=True)


@register
class Negative(Primitive):
    """``-x``. Smooth; derivative -1."""

    name = "neg"
    roundings = 0.0  # exact: a sign change
    numpy_name = "negative"
    vjp_reads_args = vjp_reads_out = False  # shapes only
    c_jvp = 1
    omega = 3.0

    def impl(self, x: Any) -> Any:
        return np.negative(x)

    def jvp(self, sel, tangents, args, out, params):
        return -tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return (-g,)

    def samples(self, rng, dtype=np.float64):
        return [((rng.normal(size=(3, 2)).astype(dtype),), {})]


@register
class Power(_Binary):
    """``a ** b``. Smooth where a > 0 (or b a constant integer); derivative
    (b a^(b-1), a^b log a). A traced exponent needs a > 0, or a = 0 with b > 0 (where the
    partial in b is 0: 0**b vanishes for every b > 0)."""

    name = "pow"
    roundings = 8.0  # NumPy's pow: within 4 ulps
    numpy_name = "power"
    c_jvp = 3
    c_vjp = 3
    omega = 9.0

    def impl(self, a: Any, b: Any) -> Any:
        return np.power(a, b)

    def domain(self, args: list, out: Any, params: dict) -> tuple[Any, str] | None:
        """Entries where a derivative is infinite or undefined (see ``Unary.domain``)."""
        a, b = np.asarray(args[0]), args[1]
        if isinstance(b, (int, float)) and not isinstance(b, bool) and 0 < b < 1:
            bad = np.broadcast_to(a == 0, np.shape(out))
            if np.any(bad):
                return bad, (f"power: the derivative of x**{b} at x = 0 is infinite (not "
                             "Lipschitz); shift the argument away from 0 or use "
                             "knp.linalg.norm / knp.abs")
        bad = np.broadcast_to((a < 0) | ((a == 0) & (np.asarray(b) <= 0)), np.shape(out))
        if not isinstance(b, (int, float, np.integer)) and np.any(bad):
            return bad, ("power: the derivative with respect to a traced exponent needs a "
                         "positive base (it is a**b log a), or a zero base with a positive "
                         "exponent; use knp.exp(b * knp.log(a)) with a > 0")
        return None

    def _da(self, a: Any, b: Any) -> Any:
        if isinstance(b, (int, np.integer)) or (isinstance(b, float) and b.is_integer()):
            if b == 0:
                return np.zeros_like(a)
            return b * np.power(a, b - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return b * np.power(a, b - 1)

    def _db(self, a: Any, b: Any, out: Any) -> Any:
        a = np.asarray(a)
        zero = a == 0
        # NOTE: at a = 0 with b > 0, b -> 0**b is identically 0 near b: the partial in b is
        # exactly 0 (the limit of a**b log a as a -> 0+). A negative base, or 0**b with
        # b <= 0, has no derivative in b: NaN there, reported by ``domain`` if it reaches
        # the result (a ``where`` may discard it).
        bad = (a < 0) | (zero & (np.asarray(b) <= 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            if not np.any(zero) and not np.any(bad):
                return out * np.log(a)
            d = np.where(zero, 0.0, out * np.log(np.where(zero | bad, 1.0, a)))
            return np.where(bad, np.nan, d)

    def jvp(self, sel, tangents, args, out, params):
        (a, b), (ta, tb) = args, tangents
        res = None if ta is None else self._da(a, b) * _t(ta, a, out)
        if tb is not None:
            term = self._db(a, b, out) * _t(tb, b, out)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        a, b = args
        so = np.shape(out)
        return (unbroadcast(g * self._da(a, b), np.shape(a), so) if needs[0] else None,
                unbroadcast(g * self._db(a, b, out), np.shape(b), so) if needs[1] else None)

    def samples(self, rng, dtype=np.float64):
        a = rng.uniform(0.5, 2.0, (3,)).astype(dtype)
        b = rng.uniform(-1.5, 2.5, (3,)).astype(dtype)
        return [((a, b), {}), ((a, 3), {}), ((a, 0.5), {})]
