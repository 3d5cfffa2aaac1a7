"""stationarity and minimality of s f agree with f's for every s > 0 (tol scaled with s).

The truth is hand-derived: the sets below are known exactly, and s f's are s times them.
Below about 1e-163 squared norms underflowed (s (|x0| + 3 x0 + x1) at 0 with s = 1e-200 was
"stationary" and "minimal" at tol = s 1e-8: its set's norm computed as 0), and from about
1e150 the tests refused ("squares overflow; rescale f").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp

SCALES = [1e-300, 1e-200, 1e-163, 1e-30, 1e-8, 1.0, 1e8, 1e30, 1e150, 1e250]


def kinked(x):  # at 0: the set [2, 4] x {1}, min-norm element (2, 1); f falls along -(2, 1)
    return knp.abs(x[0]) + 3 * x[0] + x[1]


def smooth_here(x):  # at (1, 0): f = 2 x0 + x1 there, the set {(2, 1)}
    return x[0] + 2 * x[1] + knp.abs(x[0] - x[1])


def minimum(x):  # at 0: the set [-1/2, 3/2] x [-1, 1] holds 0, and 0 is a strict minimiser
    return knp.abs(x[0]) + 0.5 * x[0] + knp.abs(x[1])


@pytest.mark.parametrize("s", SCALES)
@pytest.mark.parametrize(("f", "x"), [(kinked, np.zeros(2)), (smooth_here, np.array([1.0, 0.0]))])
def test_a_nonstationary_point_at_every_scale(s, f, x):
    def g(z):
        return s * f(z)

    rep = kinkgrad.stationarity(g, x, tol=1e-8 * s)
    assert rep.verdict == "not stationary", rep.reason
    assert rep.distance / s == pytest.approx(math.sqrt(5), rel=1e-12)
    np.testing.assert_allclose(np.asarray(rep.min_norm) / s, [2.0, 1.0], rtol=1e-12)
    assert rep.slope / s == pytest.approx(-math.sqrt(5), rel=1e-12)
    assert rep.tol == 1e-8 * s
    mini = kinkgrad.minimality(g, x, tol=1e-8 * s)
    assert mini.verdict == "not minimal", mini.reason
    assert mini.slope < -1e-8 * s


@pytest.mark.parametrize("s", SCALES)
def test_a_minimiser_at_every_scale(s):
    def g(z):
        return s * minimum(z)

    rep = kinkgrad.stationarity(g, np.zeros(2), tol=1e-8 * s)
    assert rep.verdict == "stationary", rep.reason
    assert rep.distance <= 1e-8 * s
    mini = kinkgrad.minimality(g, np.zeros(2), tol=1e-8 * s)
    assert mini.verdict == "minimal", mini.reason
    assert mini.bounds[0] >= -1e-8 * s  # least slope: min(1/2, 1) s > 0 in truth


@pytest.mark.parametrize("s", SCALES)
def test_in_clarke_of_a_scaled_program(s):
    # |x0| + |x1| at 0: the Clarke set is the box [-1, 1]^2, s f's is s times it. (2, 2) s
    # was "inside" for s <= 1e-8 (an l1 residual within 1e-7 (1 + sizes) n: the 1 is f's
    # unit scale) and for s >= 1e16 (the LP solved on unscaled data)
    def g(z):
        return s * (knp.abs(z[0]) + knp.abs(z[1]))

    x = np.zeros(2)
    assert kinkgrad.in_clarke(g, x, np.array([2.0, 2.0]) * s) is False
    assert kinkgrad.in_clarke(g, x, np.array([1.5, 0.0]) * s) is False
    assert kinkgrad.in_clarke(g, x, np.array([0.5, -1.0]) * s) is True


def _seed19(x):  # a random program of _abs_programs (seed 19), written out
    v2 = knp.maximum(-0.5 * x[0], -1.0 * x[1])
    v3 = knp.sum(knp.sort(knp.stack([0.5 * v2, 2.0 * v2, -1.0 * x[0]])) * np.array(
        [1.0, -2.0, 0.5]))
    v4 = knp.minimum(1.0 * v3, -0.5 * x[0])
    v5 = knp.minimum(1.0 * x[1], 1.0 * v3)
    v6 = knp.linalg.norm(knp.stack([0.5 * v2, 0.5 * v4, -0.5 * v2]), ord=1)
    return 2.0 * v2 - 1.0 * v3 - 2.0 * v4 + 1.0 * v5 - 2.0 * v6


@pytest.mark.parametrize("s", [1e-12, 1e-8, 1.0, 1e20])
def test_certify_does_not_certify_a_scaled_non_clarke_vector(s):
    # backward mode's (3, 1) is no Clarke gradient of _seed19 at (0, -1/2): the limiting
    # gradients (finite differences beside x, the truth) are (2, 1) and (2.5, 1). At s <= 1e-8
    # s (3, 1) was certified ("blocks") for s f
    from _abs_programs import brute_gradients, same_sets

    x = np.array([0.0, -0.5])
    assert same_sets(brute_gradients(_seed19, x), np.array([[2.0, 1.0], [2.5, 1.0]]))

    def g(z):
        return s * _seed19(z)

    assert np.allclose(np.asarray(kinkgrad.grad(g)(x)) / s, [3.0, 1.0])
    assert not kinkgrad.certify(g, x).certified
    assert kinkgrad.in_clarke(g, x, s * np.array([3.0, 1.0])) is False
    assert kinkgrad.in_clarke(g, x, s * np.array([2.25, 1.0])) is True


@pytest.mark.parametrize("s", SCALES)
def test_in_clarke_beside_a_euclidean_norm_at_zero_at_every_scale(s):
    # ||z - c||_2 + w . z at c: the Clarke set is w + the unit ball (by hand), s f's s times
    # it. The norm's path (an SOCP distance) said True for w + 1.5 u and w + 3 u at
    # s <= 1e-200, raised a ValueError (infs or NaNs) at s <= 1e-150 and warned below 1e-100
    w, c = np.array([0.25, -0.5, 0.125]), np.array([0.5, -0.25, 1.0])
    u = np.array([2.0, -1.0, 2.0]) / 3.0

    def g(z):
        return s * (knp.linalg.norm(z - c) + knp.sum(w * z))

    assert kinkgrad.in_clarke(g, c, s * (w + 0.5 * u)) is True
    assert kinkgrad.in_clarke(g, c, s * (w + 1.5 * u)) is False
    assert kinkgrad.in_clarke(g, c, s * (w + 3.0 * u)) is False


@pytest.mark.parametrize("s", [1.0, 1e20, 1e25, 1e30, 1e100])
def test_certify_a_scaled_net_as_the_unscaled_one(s):
    # a 3-5-1 ReLU net with all five ReLUs at their kink: backward mode's vector is 0, and 0
    # lies in the hull of the gradients at points beside x (sampled, the truth); certify
    # said so at s = 1 .. 1e20 and 1e100 but not at 1e25 and 1e30: the model's gradient at
    # s = 1e25 erred by 2.7e8 (1e-17 of the terms) against an absolute 1e-8
    from _least_distance import hull_min_norm

    W1 = np.array([[0.25, 0.5, -0.25], [-0.375, 0.375, 0.375], [0.0, -0.375, 0.375],
                   [0.0, -0.375, -0.375], [-0.125, 0.25, -0.125]])
    W2 = np.array([[0.375, -0.5, -0.125, 0.0, 0.5]])
    b1 = np.array([-0.5, -0.09375, 0.65625, -0.09375, -0.375])
    x = np.array([-0.5, 0.75, -1.0])

    def net(z):
        return knp.sum(knp.matmul(W2, knp.relu(knp.matmul(W1, z) + b1)))

    rng = np.random.default_rng(0)
    U = rng.standard_normal((2000, 3))
    G = np.array([kinkgrad.grad(net)(x + 1e-6 * u / np.linalg.norm(u)) for u in U])
    assert hull_min_norm(np.unique(np.round(G, 12), axis=0)) <= 1e-9
    rep = kinkgrad.certify(lambda z: s * net(z), x)
    assert rep.certified, rep.reason
    assert not np.any(rep.gradient)


@pytest.mark.parametrize("tol", [1e10, 1e300])
def test_a_tol_beyond_every_norm_at_a_tiny_scale(tol):
    # tol / 2^e overflowed (OverflowError from math.ldexp) where f is rescaled by 2^-997;
    # every element of the set (norm ~2.2e-300) is within such a tol: "stationary"
    def g(z):
        return 1e-300 * kinked(z)

    assert kinkgrad.stationarity(g, np.zeros(2), tol=tol).verdict == "stationary"
    assert kinkgrad.minimality(g, np.zeros(2), tol=tol).verdict == "minimal"


def test_gradients_in_the_subnormal_range_are_rescaled_without_overflow():
    # f = |x0 1e-160 1e-160| at 1: its gradient is about 1e-320 (subnormal), and the exact
    # rescaling f / 2^-1063 overflowed math.ldexp (OverflowError, not a KinkgradError); the
    # exponent is now held within [-1000, 1000], and |1e-320| <= tol = 1e-8
    rep = kinkgrad.stationarity(lambda x: knp.abs(x[0] * 1e-160 * 1e-160), np.array([1.0]))
    assert rep.verdict == "stationary", rep.reason
