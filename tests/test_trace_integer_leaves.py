"""kinkgrad.trace of an argument holding float and integer leaves: the float leaves are the
program's inputs, the integer leaves its constants (checked when the program is called).
Truth: the same function evaluated and differentiated by hand."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError


def f(p):  # noqa: ANN001, ANN201
    return knp.sum(p["w"][p["idx"]] ** 2)


def test_float_leaves_are_inputs_and_integer_leaves_constants() -> None:
    p = {"w": np.arange(4.0), "idx": np.array([0, 2])}
    prog = kinkgrad.trace(f, p)
    assert len(prog.invars) == 1  # w, not a constant program
    w = np.array([3.0, -1.0, 0.5, 2.0])
    assert prog({"w": w, "idx": np.array([0, 2])}) == pytest.approx(9.0 + 0.25)
    g = kinkgrad.grad(prog)({"w": w, "idx": np.array([0, 2])})
    np.testing.assert_array_equal(g["w"], [6.0, 0.0, 1.0, 0.0])  # d/dw_i w_i^2 at i in idx
    with pytest.raises(KinkgradError, match="trace again for other indices"):
        prog({"w": w, "idx": np.array([1, 2])})
