"""Leaving Clarke-stationary points on concave kinks (kinkgrad.optimize._concave).

Truths are closed forms: sum(x^2 - |x|) has its minimisers at x_i = +-1/2 (f = -n/4) and a
Clarke-stationary point at 0 that is none (f(t e_i) = t^2 - |t| < 0); (x0 - 1)^2 + x1^2 -
|x1| + |x0 + x1 - 1| / 2 has minimisers (3/4, 1/4) and (5/4, -1/4), f = -1/8, and a
Clarke-stationary point at (1, 0) with f = 0; ||x||_1 - ||x||_2 >= 0 = f(0), so 0 is a
minimiser although its Euclidean norm is concave.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.optimize._concave import concave_escape
from kinkgrad.optimize.oracle import Oracle


def _wells(x):
    return knp.sum(x * x - knp.abs(x))


def _two_kinks(x):
    return (x[0] - 1.0) ** 2 + x[1] ** 2 - knp.abs(x[1]) + 0.5 * knp.abs(x[0] + x[1] - 1.0)


@pytest.mark.parametrize("n", [1, 3])
def test_gradient_sampling_leaves_a_concave_kink_for_a_minimiser(n):
    # from x0 = 0 its sampled gradients certify 0 at once (before: x = 0, f = 0)
    res = kinkgrad.minimize(_wells, np.zeros(n), method="gradient-sampling")
    assert res.stationarity.verdict == "stationary"
    np.testing.assert_allclose(np.abs(res.x), 0.5, atol=1e-7)
    assert res.fun == pytest.approx(-n / 4, abs=1e-12)
    assert "concave kink" in res.message


@pytest.mark.parametrize("method", ["bundle", "abs-linear", "gradient-sampling"])
def test_every_method_ends_at_a_minimiser_beside_a_concave_kink(method):
    res = kinkgrad.minimize(_two_kinks, np.array([1.0, 0.0]), method=method)
    assert res.stationarity.verdict == "stationary"
    assert res.fun == pytest.approx(-0.125, abs=1e-12)
    assert min(np.linalg.norm(res.x - [0.75, 0.25]),
               np.linalg.norm(res.x - [1.25, -0.25])) <= 1e-7


def test_the_escape_proves_a_decrease_and_claims_nothing_at_a_minimiser():
    x = np.zeros(3)
    y, fy = concave_escape(Oracle(_wells, x), x, 0.0, 1e-8)
    assert fy < 0.0 and fy == pytest.approx(float(_wells(y)), abs=0.0)

    def l1_minus_l2(v):  # 0 is its minimiser: the concave norm's row is the l1 rows' sum
        return knp.sum(knp.abs(v)) - knp.linalg.norm(v)

    assert concave_escape(Oracle(l1_minus_l2, x), x, 0.0, 1e-8) is None
    smooth = np.array([0.3, -0.2, 0.6])  # no kink within the radius
    assert concave_escape(Oracle(_wells, smooth), smooth, float(_wells(smooth)), 1e-8) is None


def test_an_explicit_maxiter_caps_the_runs_together():
    res = kinkgrad.minimize(_wells, np.zeros(3), method="gradient-sampling", maxiter=4)
    assert res.nit <= 4


def _tall(v):  # three kinks on two coordinates: rows e0 (concave), e1 and 2 e1
    return knp.sum(v * v) - knp.abs(v[0]) + knp.abs(v[1]) + 0.5 * knp.abs(2.0 * v[1])


@pytest.mark.parametrize("f, n", [(_wells, 4), (_two_kinks, 2), (_tall, 2),
                                  (lambda v: knp.sum(knp.abs(v)) - knp.linalg.norm(v), 3)])
def test_the_sparse_directions_are_the_dense_ones(monkeypatch, f, n):
    # beyond _DENSE_ENTRIES the least-norm directions come from a sparse LU of A A^T (wide
    # rows) or A^T A (tall): the same directions as dense lstsq's pseudo-inverse, and none
    # where lstsq finds none (the l1 rows' sum is the concave norm's first row)
    from kinkgrad.optimize import _concave
    from kinkgrad.optimize._norm_groups import zero_groups

    x = np.zeros(n) if f is not _two_kinks else np.array([1.0, 0.0])
    balls = zero_groups(Oracle(f, x), x, 1e-8)
    dense = _concave._directions(balls, n)
    monkeypatch.setattr(_concave, "_DENSE_ENTRIES", 0)
    sparse_dirs = _concave._directions(balls, n)
    assert len(sparse_dirs) == len(dense) == {_wells: n, _two_kinks: 1, _tall: 1}.get(f, 0)
    if f is _tall:  # the concave kink's coordinate alone
        np.testing.assert_allclose(np.abs(sparse_dirs[0]), [1.0, 0.0], atol=1e-12)
    for a, b in zip(dense, sparse_dirs):
        np.testing.assert_allclose(a, b, atol=1e-12)


def _nested_concave(x):
    # f'(0; d) = sum_{j >= 1} |d_j| - min(|d_0|, |d_0 + d_1|) / 100: f falls along +-e_0
    # (minimisers x_0 = +-0.01, the rest 0, f = -5e-5); the min's kinks read |x_0|'s and
    # |x_0 + x_1|'s outputs, so they are not norms of one entry
    return (knp.sum(knp.abs(x[1:])) + 0.5 * x[0] ** 2
            - 0.01 * knp.minimum(knp.abs(x[0]), knp.abs(x[0] + x[1])))


def test_minimality_escape_leaves_a_nested_concave_kink():
    from kinkgrad.optimize._concave import descent_escape

    x = np.zeros(4)
    assert kinkgrad.stationarity(_nested_concave, x).verdict == "stationary"
    assert concave_escape(Oracle(_nested_concave, x), x, 0.0, 1e-8) is None
    oracle = Oracle(_nested_concave, x)
    (y, fy), rep = descent_escape(oracle, x, 0.0, 1e-8, 1e-8)
    assert rep.verdict == "not minimal"
    assert fy < 0.0 and fy == pytest.approx(float(_nested_concave(y)), abs=0.0)
    assert abs(y[0]) > 0 and oracle.ngev == 1  # one gradient-type call: the check
    at_min = np.array([0.01, 0.0, 0.0, 0.0])
    none, rep = descent_escape(Oracle(_nested_concave, at_min), at_min,
                               float(_nested_concave(at_min)), 1e-8, 1e-8)
    assert none is None and rep.verdict == "minimal"


def test_a_certified_run_reports_minimality_at_its_end_point():
    res = kinkgrad.minimize(_nested_concave, np.zeros(4), method="bundle")
    assert res.stationarity.verdict == "stationary"
    assert res.minimality is not None and res.minimality.verdict == "minimal"
    assert res.fun == pytest.approx(-5e-5, abs=1e-12)
    stopped = kinkgrad.minimize(_wells, np.full(3, 0.3), method="bundle", maxiter=1)
    assert not stopped.success and stopped.minimality is None
