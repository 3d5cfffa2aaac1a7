"""Comparisons and ``where``: traced, never dropped.

A comparison ``a > b`` is a *switch node*: its output is boolean, its derivative is zero, and
its switching value is z = a - b. Recording it (instead of silently evaluating it, as
autograd's no-grad list does) lets the kink report count ties and lets the abs-normal form
refuse a ``where`` whose condition sits exactly at its switching point (a possible jump).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import Primitive, lift, register, unbroadcast
from .._core.tracer import bind, is_traced
from ..backends import is_torch
from ..errors import NotAbsSmoothError, ShapeError, UnsupportedOperationError

_NOT_GIVEN: Any = object()  # where's x and y: NumPy's one-argument form gives neither


class _Compare(Primitive):
    differentiable = False
    is_switch = True
    c_vjp = 0
    omega = 1.0
    roundings = 0.0  # a boolean

    def impl(self, a, b):  # NOTE: the backend's (``np`` is rebound on tensors), not NumPy's
        return getattr(np, self.numpy_name)(a, b)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 0

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 0

    def switch(self, args, out, params):
        return np.asarray(args[0]) - np.asarray(args[1])

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        return None, int(np.count_nonzero(np.equal(args[0], args[1])))

    def jvp(self, sel, tangents, args, out, params):
        return None

    def vjp(self, sel, g, args, out, params, needs):
        return None, None

    def abs_form(self, args, params):
        a, b = (getattr(x, "value", x) for x in args)
        if np.any(np.equal(a, b)):
            raise NotAbsSmoothError(
                f"{self.name}: the comparison is tied at this point, so a `where` on it may jump "
                "(not abs-smooth); write the branch with knp.relu, knp.maximum, knp.minimum or "
                "knp.abs."
            )
        return None

    def samples(self, rng, dtype=np.float64):
        a = rng.normal(size=(2, 3)).astype(dtype)
        b = (a + rng.choice([-1.0, 1.0], (2, 3)) * rng.uniform(0.1, 1.0, (2, 3))).astype(dtype)
        return [((a, b), {}), ((a, np.asarray(3.0, dtype)), {})]

    def kink_samples(self, rng, dtype=np.float64):
        a = np.array([0.5, -1.0, 2.0, 0.0], dtype)
        return [((a, np.array([0.5, 1.0, 2.0, -0.5], dtype)), {}),
                ((a, np.asarray(0.0, dtype)), {})]


def _make(cls_name: str, name: str) -> type:
    cls = type(cls_name, (_Compare,), {"name": name, "numpy_name": name,
                                       "__doc__": f"``{name}(a, b)``: a switch node, z = a - b, "
                                                  "derivative zero."})
    return register(cls)


Greater = _make("Greater", "greater")
GreaterEqual = _make("GreaterEqual", "greater_equal")
Less = _make("Less", "less")
LessEqual = _make("LessEqual", "less_equal")
Equal = _make("Equal", "equal")
NotEqual = _make("NotEqual", "not_equal")


@register
class Where(Primitive):
    """``where(cond, a, b)``: a where cond else b. Smooth in (a, b) for a fixed condition;
    the condition is data (typically a traced comparison, a switch node).

    ``where(cond)`` alone is NumPy's other form, ``np.nonzero(cond)``: the tuple of integer
    index arrays of the nonzero entries of cond, computed on its current value and returned
    as NumPy constants (integer valued, so not differentiable; ``x[knp.where(x > 0)]`` then
    differentiates through the selected entries)."""

    name = numpy_name = "where"
    roundings = 0.0  # exact: one branch's entries
    c_vjp = 1
    omega = 5.0

    def __call__(self, condition: Any, x: Any = _NOT_GIVEN, y: Any = _NOT_GIVEN) -> Any:
        if x is _NOT_GIVEN and y is _NOT_GIVEN:
            if is_torch(condition):
                import torch  # NOTE: a bare tensor: its indices as tensors, on its device

                return tuple(torch.nonzero(condition.detach(), as_tuple=True))
            if is_traced(condition):  # NOTE: the decision abs_normal._reads checks
                condition.trace.read(condition.var.index, ("nonzero", None))
            cond = np.asarray(condition._value if is_traced(condition) else condition)
            if cond.ndim == 0:
                raise ShapeError(
                    "knp.where: the one-argument form (the indices of the nonzero entries, as "
                    "np.nonzero) needs an array of at least one dimension, got a 0-d condition; "
                    "write knp.where(np.atleast_1d(cond)) or give x and y.")
            return np.nonzero(cond)
        if x is _NOT_GIVEN or y is _NOT_GIVEN:
            raise UnsupportedOperationError(
                "knp.where: one of x and y is given without the other (NumPy raises \"either "
                "both or neither of x and y should be given\"); pass both, knp.where(cond, x, "
                "y) = x where cond else y, or neither, knp.where(cond) = the indices of the "
                "nonzero entries of cond (as np.nonzero).")
        return bind(self, condition, x, y)

    def impl(self, cond, a, b):
        if type(a) is float and type(b) is float:  # NOTE: NumPy gives float64; torch's
            a = np.asarray(a, dtype=np.float64)  # layer its default, float32 (0.1 off 1e-9)
        return np.where(cond, a, b)

    def jvp(self, sel, tangents, args, out, params):
        cond, a, b = args
        _, ta, tb = tangents
        nd = np.ndim(out)
        ta = 0 if ta is None else lift(ta, np.shape(a), nd)
        tb = 0 if tb is None else lift(tb, np.shape(b), nd)
        return np.where(cond, ta, tb)

    def vjp(self, sel, g, args, out, params, needs):
        cond, a, b = args
        so = np.shape(out)
        zero = np.zeros((), dtype=np.result_type(g))
        return (None,
                unbroadcast(np.where(cond, g, zero), np.shape(a), so) if needs[1] else None,
                unbroadcast(np.where(cond, zero, g), np.shape(b), so) if needs[2] else None)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return super().vjp_cost(in_shapes, out_shape, params, [False, *needs[1:]])

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return super().jvp_cost(in_shapes, out_shape, params, [False, *needs[1:]])

    def samples(self, rng, dtype=np.float64):
        c = rng.random((2, 3)) > 0.5
        return [((c, rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=(3,)).astype(dtype)),
                 {})]
