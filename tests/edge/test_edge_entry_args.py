"""Misuse at the entry points and in kinkgrad.nn gives a KinkgradError naming the call and
the fix, where Python, NumPy or a dict lookup raised their own errors (a user sweep)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import nn
from kinkgrad.errors import IndexRangeError, KinkgradError, ShapeError

X = np.ones(3)


@pytest.mark.parametrize("name,call", [
    ("grad", lambda: kinkgrad.grad(3)(X)),
    ("value_and_grad", lambda: kinkgrad.value_and_grad(3)(X)),
    ("trace", lambda: kinkgrad.trace(3, X)),
    ("jacobian", lambda: kinkgrad.jacobian(3)(X)),
    ("vmap", lambda: kinkgrad.vmap(3)(X)),
    ("per_example_grad", lambda: kinkgrad.per_example_grad(3)(X)),
    ("jvp", lambda: kinkgrad.jvp(3, (X,), (X,))),
    ("vjp", lambda: kinkgrad.vjp(3, X)),
])
def test_a_function_that_is_not_callable(name, call):
    # was Python's TypeError "'int' object is not callable" at the first call
    with pytest.raises(KinkgradError, match=rf"^{name}: f must be a function .* got int"):
        call()


def test_bare_calls_refused_by_numpy_raise_shape_errors_as_traced_ones_do():
    with pytest.raises(ShapeError, match=r"^matmul: operands of shapes \(2, 3\), \(2, 3\)"):
        knp.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"^matmul: operands of shapes \(2, 3\), \(2, 3\)"):
        kinkgrad.grad(lambda a: knp.sum(knp.matmul(a, np.ones((2, 3)))))(np.ones((2, 3)))
    # an index out of range is an IndexError too, as NumPy's (iteration protocols rely on it)
    with pytest.raises(IndexRangeError, match="index within the shape"):
        kinkgrad.grad(lambda a: a[5])(X)
    with pytest.raises(IndexError):
        kinkgrad.grad(lambda a: a[7])(X)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Dense("a"), r"Dense: features='a'"),
    (lambda: nn.Dense(2.7), r"Dense: features=2.7"),  # was 2 features, silently
    (lambda: nn.LeakyReLU("a"), r"LeakyReLU: negative_slope='a'"),
])
def test_layer_arguments(make, match):
    with pytest.raises(KinkgradError, match=match):
        make()


def test_sequential_init_and_call_arguments():
    model = nn.Sequential(nn.Dense(3), nn.ReLU(), nn.Dense(2))
    with pytest.raises(KinkgradError, match="dtype=.*NumPy float dtype"):
        model.init(0, (4,), np.int64)  # gave all-zero integer weights
    with pytest.raises(ShapeError, match=r"in_shape=\(-1,\)"):
        model.init(0, (-1,))
    params, _ = model.init(0, (4,))
    del params["2_dense"]
    with pytest.raises(KinkgradError, match="params has no entry '2_dense'"):
        model(params, np.ones((1, 4), np.float32))


@pytest.mark.parametrize("opt,missing", [(nn.SGD(), "v"), (nn.Adam(), "m")])
def test_an_optimizer_state_that_is_not_its_init(opt, missing):
    params = {"w": np.ones(2)}
    state = opt.init(params)
    del state[missing]
    with pytest.raises(KinkgradError, match=r"update: state must be the dict"):
        opt.update(params, {"w": np.ones(2)}, state)
