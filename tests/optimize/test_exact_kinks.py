"""Steps that land on coordinate kinks land exactly (``AbsLinearModel.
land_on_coordinate_kinks``): a lasso's zero coefficients are 0, not 1e-37, and match the
support of scikit-learn's coordinate descent, whose soft-thresholding gives exact zeros."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.optimize._abs_linear_model import AbsLinearModel


def _model(f, x):
    return AbsLinearModel(kinkgrad.abs_normal_form(f, x, dense=True))


def test_a_step_within_rounding_of_a_kink_lands_on_it():
    c = np.array([0.1, 0.3, -0.7, 1.9])
    x = np.array([0.15, 0.2, -0.5, 1.0])  # within a factor 2 of c: x - c is exact

    def f(v):
        return knp.sum(knp.abs(v - c)) + 0.5 * knp.sum(v * v)

    model = _model(f, x)
    to_c = c - x
    dx = to_c * np.array([1 + 1e-15, 1 - 2e-16, 1.0, 1 + 1e-6])  # the last misses by 1e-6
    out = model.land_on_coordinate_kinks(dx)
    assert np.array_equal((x + out)[:3], c[:3])  # exactly on the kinks
    assert out[3] == dx[3]  # 1e-6 short of its kink: a step, not rounding
    assert not np.array_equal((x + dx)[:3], c[:3])  # (the unlanded step was off)


def test_a_coordinate_at_its_kink_stays_there_and_ambiguous_ones_are_left():
    def f(v):  # v0 at its kink; v1 between two kinks 1e-13 apart; v2 smooth only
        return (knp.abs(v[0]) + knp.abs(v[1] - 0.5) + knp.abs(v[1] - (0.5 + 1e-13))
                + 0.5 * knp.sum(v * v))

    x = np.array([0.0, 0.5, 0.25])
    model = _model(f, x)
    dx = np.array([3e-20, -4e-14, -0.1])  # v0 moved by rounding only, v1 onto both kinks
    out = model.land_on_coordinate_kinks(dx)
    assert out[0] == 0.0 and (x + out)[0] == 0.0
    assert out[1] == dx[1]  # two kinks reached at different places: left as it was
    assert out[2] == dx[2]


@pytest.mark.parametrize("method", ["abs-linear", "bundle"])
def test_lasso_minimizer_has_exact_zeros_on_scikit_learns_support(method):
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(2)
    m, n, lam = 40, 30, 0.05
    X = rng.standard_normal((m, n)) / np.sqrt(m)
    w_true = np.zeros(n)
    w_true[::6] = 2.0 * rng.standard_normal(5)
    y = X @ w_true + 0.01 * rng.standard_normal(m)

    def f(w):
        r = X @ w - y
        return 0.5 * knp.sum(r * r) + lam * knp.sum(knp.abs(w))

    peer = sklearn.Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14, max_iter=10 ** 6)
    w_peer = peer.fit(X, y).coef_
    zero = w_peer == 0.0
    # the peer's zeros are strict: |X_j^T r| < lam with a margin (KKT of the lasso)
    corr = np.abs(X.T @ (X @ w_peer - y))
    assert zero.sum() >= 10 and np.all(corr[zero] < 0.9 * lam)
    res = kinkgrad.minimize(f, np.zeros(n), method=method)
    assert res.stationarity.verdict == "stationary"
    np.testing.assert_array_equal(res.x == 0.0, zero)
    np.testing.assert_allclose(res.x, w_peer, atol=1e-7)


def test_an_end_point_near_its_kinks_is_moved_onto_them_and_reoptimised():
    """land_end_point on a point 5e-9 from a lasso's zero coefficients whose other
    coefficients are 1e-6 off: moved onto the kinks it is not yet stationary (the others
    must move too), and abs-linear finishing steps from there certify it, with scikit-learn's
    zeros exactly."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    from kinkgrad.optimize._landing import land_end_point
    from kinkgrad.optimize.common import CONVERGED, MethodResult
    from kinkgrad.optimize.oracle import Oracle

    rng = np.random.default_rng(2)
    m, n, lam = 40, 30, 0.05
    X = rng.standard_normal((m, n)) / np.sqrt(m)
    y = X @ np.where(np.arange(n) % 6 == 0, 2.0, 0.0) + 0.01 * rng.standard_normal(m)

    def f(w):
        r = X @ w - y
        return 0.5 * knp.sum(r * r) + lam * knp.sum(knp.abs(w))

    w = sklearn.Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14,
                      max_iter=10 ** 6).fit(X, y).coef_
    zero = w == 0.0
    x = w + np.where(zero, 5e-9 * rng.choice([-1.0, 1.0], n), 1e-6 * rng.standard_normal(n))
    oracle = Oracle(f, x, None, 0)
    out = MethodResult(x, oracle.value(x), 100, CONVERGED, "certified.", 1e-8)
    moved, rep = land_end_point(oracle, out, 1e-8, 1e-8)
    assert not kinkgrad.stationarity(f, x + np.where(zero, -x, 0.0), radius=1e-8,
                                     tol=1e-8).verdict == "stationary"  # moving is not enough
    assert rep.verdict == "stationary" and "abs-linear step" in moved.message
    np.testing.assert_array_equal(moved.x == 0.0, zero)
    assert moved.fun <= out.fun
