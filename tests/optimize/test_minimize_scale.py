"""minimize(s f, tol = s tol) behaves as minimize(f, tol) for every s > 0.

The truth is by hand (the minimiser and f* of the test function) and the published f* of
MaxQ. Before: at s = 1e-200 the bundle's metric divided by a squared norm that underflowed
to 0 (ZeroDivisionError); at s = 1e12 the verdict's radius was tol-sized, 1e4: "success" at
x0; at s = 1e-12 the step tests' 4 u (1 + |f|) hid every decrease of f.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import problems

SCALES = [1e-200, 1e-30, 1e-12, 1.0, 1e12, 1e200]


def _f(x):  # minimiser (1, -1/2, 0, 0), f* = 0 (by hand)
    return knp.abs(x[0] - 1) + 2 * knp.abs(x[1] + 0.5) + x[2] ** 2 + knp.max(
        knp.stack([x[3], -x[3], 0.5 * x[3]]))


@pytest.mark.parametrize("method", ["bundle", "abs-linear"])
@pytest.mark.parametrize("s", SCALES)
def test_a_scaled_objective_is_minimized_and_certified_as_the_unscaled_one(method, s):
    x0 = np.array([3.0, 2.0, 1.0, -2.0])
    seen = []
    res = kinkgrad.minimize(lambda z: s * _f(z), x0, method=method, tol=1e-8 * s,
                            callback=lambda r: seen.append(r.fun))
    assert res.success, res.message
    np.testing.assert_allclose(res.x, [1.0, -0.5, 0.0, 0.0], atol=1e-6)
    assert 0.0 <= res.fun / s <= 1e-10
    assert res.stationarity.verdict == "stationary" and res.stationarity.tol == 1e-8 * s
    assert res.stationarity.radius <= 1e-6 * 3  # x's units, whatever s
    # what the caller sees is s f's: the history, the callback
    f0 = 3 + 2 * 2.5 + 1 + 2  # f(x0) by hand
    shown = res.history["fun"] + seen
    assert seen and all(v / s <= f0 * (1 + 1e-12) for v in shown)
    assert res.history["fun"][-1] / s <= 1e-6


@pytest.mark.parametrize("s", [1e-200, 1e12])
def test_maxq_at_extreme_scales(s):
    p = problems.get("maxq", 10)
    res = kinkgrad.minimize(lambda z: s * p.f(z), p.x0, tol=1e-8 * s)
    assert res.success, res.message
    assert res.fun / s - p.f_star <= 1e-10


def test_a_far_start_is_not_rescaled_into_the_step_tests_floor():
    # chained CB3 I from 1e7 x0: f's terms there are ~2^75. Minimizing f / 2^75 put the
    # values near f* = 18 (published) below the step tests' floors: it ended at 1.2e10,
    # uncertified. Large terms are rescaled only beyond 2^100
    p = problems.get("chained-cb3-1", 10)
    res = kinkgrad.minimize(p.f, p.x0 * 1e7)
    assert res.success and "2^" not in res.message
    assert res.fun - p.f_star <= 1e-8 * p.f_star
