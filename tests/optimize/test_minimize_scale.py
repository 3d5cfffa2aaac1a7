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


@pytest.mark.parametrize("method", ["bundle", "abs-linear", "gradient-sampling"])
def test_every_call_of_a_huge_objective_is_counted(method):
    # 1e22 ||x - 1||_1: the stationarity test rescaled f itself (gradients beyond 2^64) and
    # its trace was not counted: nfev 28 for 32 calls, maxfev=2 overrun. minimize rescales
    # such an f (terms beyond 2^40 at a near x0) before the tests see it
    calls = []

    def f(x):
        calls.append(1)
        return 1e22 * knp.sum(knp.abs(x - 1.0))

    res = kinkgrad.minimize(f, np.zeros(3), method=method)
    assert res.success and res.nfev == len(calls)
    np.testing.assert_allclose(res.x, np.ones(3), atol=1e-6)
    calls.clear()
    res = kinkgrad.minimize(f, np.zeros(3), method=method, maxfev=5)
    assert res.nfev == len(calls) <= 5


@pytest.mark.parametrize("maxfev", [2, 3, 4, 5])
def test_a_budget_spent_inside_the_norm_finish_ends_the_run(maxfev):
    # abs-linear on a group-lasso-like f with maxfev 3 or 4 raised the internal
    # BudgetExhausted (the finishing steps' trace spent the last call)
    f = lambda x: knp.linalg.norm(x[:2] - 1.0) + knp.linalg.norm(x[2:])  # noqa: E731
    res = kinkgrad.minimize(f, np.ones(4), method="abs-linear", maxfev=maxfev)
    assert res.nfev <= maxfev


def test_a_float32_start_is_not_rescaled():
    # float16 / float32 x0 with a tiny f: f / 2^e overflowed in f's dtype (fun = inf)
    res = kinkgrad.minimize(lambda x: 1e-7 * knp.sum(knp.abs(x - 1.0)),
                            np.zeros(3, np.float16))
    assert np.isfinite(res.fun) and "2^" not in res.message
