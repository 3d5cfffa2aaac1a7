"""Python operators on traced arrays: ``x + c``, ``c - x``, ``x @ W``, ... record the primitive
of that name with the operands in the order written, compute NumPy's value, and differentiate
like the ``knp`` call they stand for.

Truths: NumPy's operator on plain arrays (value), central differences of that NumPy
expression (gradient)."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.program import Literal, Var
from kinkgrad.numpy import _methods

# operator module function, the primitive it records, NumPy's operator
OPS = [("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div"), ("matmul", "matmul")]
X = np.array([[0.7, -1.3], [2.1, 0.4]])
C = np.array([[1.5, 0.5], [-0.25, 2.0]])


def _program_inputs(fn, x):
    prog = kinkgrad.trace(fn, x)
    (eqn,) = prog.eqns
    return eqn.prim.name, [type(i) for i in eqn.inputs]


@pytest.mark.parametrize("op, prim", OPS)
@pytest.mark.parametrize("other", [C, 1.75], ids=["array", "python float"])
@pytest.mark.parametrize("traced_left", [True, False])
def test_operator_records_its_primitive_in_written_order_with_numpy_values(op, prim, other,
                                                                           traced_left):
    f = getattr(operator, op)
    if op == "matmul" and not isinstance(other, np.ndarray):
        pytest.skip("matmul has no scalar operand")
    fn = (lambda x: f(x, other)) if traced_left else (lambda x: f(other, x))
    name, kinds = _program_inputs(fn, X)
    assert name == prim
    assert kinds == ([Var, Literal] if traced_left else [Literal, Var])
    value = kinkgrad.value_and_grad(lambda x: knp.sum(fn(x) ** 2))(X)[0]
    np.testing.assert_allclose(value, np.sum(fn(X) ** 2), rtol=1e-14)


@pytest.mark.parametrize("op, prim", OPS)
@pytest.mark.parametrize("traced_left", [True, False])
def test_operator_gradients_match_central_differences(op, prim, traced_left):
    f = getattr(operator, op)
    fn = (lambda x: f(x, C)) if traced_left else (lambda x: f(C, x))
    g = kinkgrad.grad(lambda x: knp.sum(np.sin(fn(x))))(X)
    h, fd = 1e-6, np.zeros_like(X)
    for i in np.ndindex(X.shape):
        e = np.zeros_like(X)
        e[i] = h
        fd[i] = (np.sum(np.sin(fn(X + e))) - np.sum(np.sin(fn(X - e)))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)


def test_both_operands_traced_and_the_same_tracer_twice():
    g = kinkgrad.grad(lambda x: knp.sum((x @ x) * x - x / (x + 3.0)))(X)
    h, fd = 1e-6, np.zeros_like(X)
    f = lambda x: np.sum((x @ x) * x - x / (x + 3.0))  # noqa: E731
    for i in np.ndindex(X.shape):
        e = np.zeros_like(X)
        e[i] = h
        fd[i] = (f(X + e) - f(X - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)


def test_a_primitive_with_its_own_call_keeps_the_knp_path(monkeypatch):
    calls = []

    class Wrapped(type(knp.add)):  # a primitive that normalises its arguments first
        def __call__(self, a, b):
            calls.append((a, b))
            return super().__call__(a, b)

    monkeypatch.setattr(knp, "add", object.__new__(Wrapped))
    add, radd = _methods._binary_operator("__add__"), _methods._binary_operator("__radd__")
    direct_sub = _methods._binary_operator("__sub__")
    prog = kinkgrad.trace(lambda x: direct_sub(radd(add(x, 1.0), 2.0), 3.0), X)
    assert [len(c) for c in calls] == [2, 2]  # both additions went through knp.add's call
    assert not isinstance(calls[0][0], float) and calls[1][0] == 2.0  # operands in order
    assert [e.prim.name for e in prog.eqns] == ["add", "add", "sub"]


def test_shape_errors_name_the_primitive():
    with pytest.raises(kinkgrad.errors.ShapeError, match="matmul"):
        kinkgrad.grad(lambda x: knp.sum(x @ np.ones((3, 3))))(X)
