"""No silent wrong values: axis=None like NumPy, and every derivative entry point raises
(naming the node) instead of returning NaN or inf."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp

A = np.array([[3.0, 1.0], [0.0, 2.0]])


@pytest.mark.parametrize("name", ["sort", "max", "min", "sum", "mean", "prod", "cumsum"])
def test_axis_none_flattens_like_numpy(name):
    np.testing.assert_array_equal(getattr(knp, name)(A, axis=None), getattr(np, name)(A, axis=None))


def test_sort_axis_none_gradient_follows_the_flattened_order():
    w = np.arange(4.0)
    g = kinkgrad.grad(lambda a: knp.sum(knp.sort(a, axis=None) * w))(A)
    # sorted order 0, 1, 2, 3 puts A's entries 3, 1, 0, 2 at positions 3, 1, 0, 2
    np.testing.assert_array_equal(g, [[3.0, 1.0], [0.0, 2.0]])


@pytest.mark.parametrize("call", [
    lambda: kinkgrad.clarke_grad(lambda x: knp.sum(x / knp.abs(x)), np.array([0.0, 1.0])),
    lambda: kinkgrad.directional(lambda x: knp.sum(x / knp.abs(x)), np.array([0.0, 1.0]),
                                 np.ones(2)),
    lambda: kinkgrad.ld_derivative(lambda x: knp.sum(x / knp.abs(x)), np.array([0.0, 1.0]),
                                   np.eye(2)),
    lambda: kinkgrad.jacobian(lambda x: 1.0 / x)(np.array([0.0, 1.0])),
    lambda: kinkgrad.jacobian(lambda x: 1.0 / x, mode="fwd")(np.array([0.0, 1.0])),
    lambda: kinkgrad.clarke_grad(lambda x: knp.sum(knp.exp(knp.abs(x))),
                                 np.array([12.0, 0.0], np.float16)),
], ids=["clarke_grad", "directional", "ld_derivative", "jacobian-rev", "jacobian-fwd",
        "clarke_grad-float16"])
def test_no_silent_nan_or_inf(call):
    with np.errstate(all="ignore"), pytest.raises(kinkgrad.KinkgradError, match="node"):
        call()
