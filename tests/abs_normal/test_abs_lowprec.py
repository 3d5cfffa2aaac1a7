"""certify in low precision: backward mode rounds in the program's dtype, the model in f64."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.nn import Dense, ReLU, Sequential, cross_entropy


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_duplicate_samples_at_kinks_are_certified_in_every_precision(dtype: type) -> None:
    model = Sequential(Dense(6), ReLU(), Dense(3))
    params, _ = model.init(0, (5,), dtype)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 5)).astype(dtype)
    x[1] = x[0]
    W, b = params["0_dense"]["W"], params["0_dense"]["b"]
    # NOTE: from the batch's product, as the layer computes it: a row times W rounds
    # differently from the same row inside x @ W on some BLAS kernels (AMD EPYC: 1.5e-8
    # in float32, 5.6e-17 in float64), which left two of the four kinks off by that
    b[:2] = -(x @ W)[0, :2].astype(dtype)
    assert np.all((x @ W)[:2, :2] + b[:2] == 0)  # exact kinks on both copies
    y = np.array([0, 1, 2, 0])

    def loss(p: dict) -> object:
        return cross_entropy(model(p, x), y)

    rep = kinkgrad.certify(loss, params)
    assert rep.active_kinks >= 4
    assert rep.certified, rep.reason


def test_a_float16_overflow_under_a_minimum_is_a_clear_undecided():
    # x0 1000 is inf in float16 at x0 = 80 (exactly 40000, below 80^2 6.5 = 41600): the abs
    # form (a + b)/2 - |a - b|/2 of the minimum is NaN there; it raised "fix its abs_form"
    h = np.float16
    f = lambda x: knp.minimum(x[0] * h(1000) * h(0.5), x[0] * x[0] * h(6.5)) * h(0.001)  # noqa: E731
    with np.errstate(all="ignore"):
        rep = kinkgrad.stationarity(f, np.array([80], h))
    assert rep.verdict == "undecided" and "not finite" in rep.reason
