"""Gradient sampling (``kinkgrad.minimize(method="gradient-sampling")``) against independent
truth: closed-form minimizers, a min-norm computed here with SciPy's NNLS from gradients
sampled around the answer, and evaluation counts taken by a wrapped f."""

from __future__ import annotations

import numpy as np
import pytest
from _opt_cases import C3, hull_min_norm, l1, linf, max_quad, rosen_abs, sampled_min_norm

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.optimize import gradient_sampling as gs
from kinkgrad.optimize.common import CALLBACK, CONVERGED, MAXFEV, MAXITER, Monitor
from kinkgrad.optimize.oracle import Oracle

METHOD = "gradient-sampling"


CONVEX = [  # (f, x0, minimizer, f*)
    (l1, np.zeros(3), C3, 0.0),
    (linf, np.zeros(3), C3, 0.0),
    (max_quad, np.array([2.0, 1.5]), np.zeros(2), 1.0),
]


@pytest.mark.parametrize("f, x0, xstar, fstar", CONVEX, ids=["l1", "linf", "max-quadratics"])
def test_convex_minimizers(f, x0, xstar, fstar):
    res = kinkgrad.minimize(f, x0, method=METHOD)
    assert res.status == CONVERGED and res.success, res.message
    assert res.fun - fstar <= 1e-5
    np.testing.assert_allclose(res.x, xstar, atol=1e-5)
    assert res.stationarity.radius <= 1e-6  # converged at or below the final radius
    # success agrees with an independent check: gradients sampled in the ball of the final
    # radius have a hull element of norm <= tol (up to NNLS accuracy)
    lower, upper = sampled_min_norm(f, res.x, res.stationarity.radius)
    assert upper <= 1e-7


def test_nonsmooth_rosenbrock():
    res = kinkgrad.minimize(rosen_abs, np.array([-1.2, 1.0]), method=METHOD)
    assert res.status == CONVERGED, res.message
    assert res.fun <= 1e-6
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-5)
    r, tol = res.stationarity.radius, 1e-8
    # the gradients sampled in the final ball have a hull element of norm <= tol: the kink
    # curve x2 = x1^2 bends, so the gradients of one piece turn within the ball ...
    assert sampled_min_norm(rosen_abs, res.x, r)[1] <= tol
    # ... and success is the verdict on the first-order set at x, worked out by hand: the
    # gradients at x of the two pieces +-8 (x1^2 - x2) + (1 - x1)^2 when the switch
    # z = x1^2 - x2 can reach 0 in the ball (|z| <= r ||grad z||), else the one of sign(z)
    x1, x2 = res.x
    z, gz = x1**2 - x2, np.array([2 * x1, -1.0])
    smooth = np.array([-2 * (1 - x1), 0.0])
    rows = [s * 8 * gz + smooth for s in (1.0, -1.0) if abs(z) <= r * np.linalg.norm(gz)
            or s == np.sign(z)]
    lower, upper = hull_min_norm(np.array(rows))
    # agreement wherever the hand computation is conclusive (rows of norm 18 leave it an
    # absolute error of about 1e-7 on distances of 1e-8)
    if res.success:
        assert lower <= tol
    if lower > 2 * tol:
        assert not res.success
    if upper < tol / 2:
        assert res.success


@pytest.mark.parametrize("name", ["chained-crescent-1", "chained-crescent-2", "maxq"])
def test_test_problems(name):
    p = kinkgrad.problems.get(name, 4)
    res = kinkgrad.minimize(p.f, p.x0, method=METHOD)
    # sharp minima: x ends within about the final radius 1e-6, f within a Lipschitz multiple
    assert res.fun - p.f_star <= 1e-5, res.message
    np.testing.assert_allclose(res.x, p.x_star, atol=1e-4)
    if res.success:
        lower, upper = sampled_min_norm(p.f, res.x, res.stationarity.radius)
        assert upper <= 1e-6


def test_nested_max_certified_by_manifold_steps_that_keep_contracting():
    # chained CB3 II at n = 50 (a max of three sums, its three tied at x* = 1): the
    # sampling stops 1.4e-7 from x*, where the regularized Newton steps on the two zero
    # kinks contract about fourfold each; five steps ended "not stationary" (3.3e-6 at
    # radius 1e-8, after 1,000 iterations, 16 s); ten certify. f* = 2 (n - 1), published
    p = kinkgrad.problems.get("chained-cb3-2", 50)
    res = kinkgrad.minimize(p.f, p.x0, method=METHOD)
    assert res.stationarity.verdict == "stationary", res.message
    assert abs(res.fun - p.f_star) <= 1e-10 * p.f_star
    np.testing.assert_allclose(res.x, p.x_star, atol=1e-6)


def test_not_converged_agrees_with_independent_check():
    res = kinkgrad.minimize(l1, np.full(3, 10.0), method=METHOD, maxiter=2)
    assert res.status == MAXITER and not res.success
    # far from c every gradient in the ball is (1, 1, 1): min-norm sqrt(3) > tol, and the
    # verdict proves it
    lower, upper = sampled_min_norm(l1, res.x, res.stationarity.radius)
    assert lower > 1.0
    assert res.stationarity.verdict == "not stationary"


def test_start_on_kinks_at_the_minimizer():
    # x0 = c hits every kink: the starting gradient is a limiting one, no step decreases f
    # (failed line searches, resampling keeps the hull's support) and the samples end up
    # showing 0 in the hull at the final radius, with the point unmoved
    res = kinkgrad.minimize(l1, C3.copy(), method=METHOD)
    assert res.success and res.status == CONVERGED
    np.testing.assert_array_equal(res.x, C3)


def test_maxiter_status_and_message():
    res = kinkgrad.minimize(rosen_abs, np.array([-1.2, 1.0]), method=METHOD, maxiter=5)
    assert res.status == MAXITER == 1
    assert res.nit == 5
    assert "maxiter=5 iterations reached" in res.message
    assert len(res.history["fun"]) == 5
    assert np.all(np.diff(res.history["fun"]) <= 0)  # monotone


def test_maxfev_respected_and_best_point_returned():
    x0 = np.array([-1.2, 1.0])
    for maxfev in (2, 7, 40, 123):
        res = kinkgrad.minimize(rosen_abs, x0, method=METHOD, maxfev=maxfev)
        assert res.nfev <= maxfev
        # (123 evaluations suffice for the finishing steps, which see rosen_abs's kink as
        # a norm of one entry, to reach and certify the minimiser)
        assert (res.status == MAXFEV and "maxfev" in res.message) or (
            maxfev == 123 and res.success)
        assert res.fun == pytest.approx(float(rosen_abs(res.x)), abs=0.0)
        assert res.fun <= float(rosen_abs(x0))


def test_counts_match_a_wrapped_function():
    calls = []

    def f(x):
        calls.append(1)
        return l1(x)

    oracle = Oracle(f, np.zeros(3), seed=3)
    monitor = Monitor(None, oracle.tree, False, "test")
    out = gs.run(oracle, tol=1e-8, maxiter=None, monitor=monitor)
    assert out.status == CONVERGED
    assert oracle.nfev == len(calls)  # every evaluation of f is counted, nothing else
    # every iteration samples m = n + 1 = 4 gradients, and x0 needs one
    assert oracle.ngev >= 4 * out.nit + 1
    assert oracle.ngev <= oracle.nfev
    h = oracle.history
    assert len(h["fun"]) == out.nit
    assert np.all(np.diff(h["nfev"]) > 0) and np.all(np.diff(h["ngev"]) >= 4)


def test_samples_option_sets_gradients_per_iteration():
    res = kinkgrad.minimize(l1, np.full(3, 10.0), method=METHOD, maxiter=1,
                            options={"samples": 7})
    # 1 at x0, 7 samples, and 1 at the new iterate when the line search moved
    assert res.ngev in (8, 9)


def test_reproducible_with_seed():
    a = kinkgrad.minimize(rosen_abs, np.array([-1.2, 1.0]), method=METHOD, seed=5)
    b = kinkgrad.minimize(rosen_abs, np.array([-1.2, 1.0]), method=METHOD, seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.nfev, a.ngev, a.nit, a.fun) == (b.nfev, b.ngev, b.nit, b.fun)
    assert a.history == b.history


def test_callback_stops():
    seen = []

    def cb(r):
        seen.append(r.nit)
        return r.nit >= 3

    res = kinkgrad.minimize(rosen_abs, np.array([-1.2, 1.0]), method=METHOD, callback=cb)
    assert res.status == CALLBACK and seen == [1, 2, 3]


def test_perturbation_leaves_a_kink():
    # a step that lands exactly on kinks of ||x - c||_1 is moved to a kink-free point that
    # keeps the Armijo decrease, within min(t, eps) ||g|| of the landing point
    oracle = Oracle(l1, np.zeros(3), seed=0)
    x, fx = np.zeros(3), float(l1(np.zeros(3)))
    g = np.array([-1.0, 2.0, -0.25])  # x - g = c: every coordinate on its kink
    gn, t, eps, beta = float(np.linalg.norm(g)), 1.0, 0.1, 1e-4
    y = x - t * g
    z, fz, gz, on = gs._accept(oracle, oracle.rng, x, fx, g, gn, eps, beta,
                               (t, y, float(l1(y))), max_perturb=10)
    assert on  # the check stays on
    assert np.all(z != C3)  # off every kink: f is differentiable at z
    assert np.linalg.norm(z - y) <= min(t, eps) * gn
    assert fz < fx - beta * t * gn**2
    np.testing.assert_array_equal(gz, np.sign(z - C3))  # the gradient there


def test_structural_kinks_turn_the_check_off():
    # abs(x0 - x0) is on its kink at every point: the check would perturb at every step, so
    # after one failed perturbation it is turned off
    def f(x):
        return l1(x) + knp.abs(x[0] - x[0])

    res = kinkgrad.minimize(f, np.zeros(3), method=METHOD)
    assert res.success
    np.testing.assert_allclose(res.x, C3, atol=1e-5)
    # per iteration m = 4 samples and the gradient at the new iterate; once, 10 perturbation
    # trials and a limiting gradient; at x0 a gradient and a limiting gradient; where the
    # finishing steps end the run (the kinks seen as norms of one entry), their Hessian
    # differences, gradients and tests besides (at most 10 n + 10 here)
    finishing = 10 * 3 + 10 if "Then" in res.message else 0
    assert res.ngev <= 5 * res.nit + 11 + 2 + finishing


@pytest.mark.parametrize("f, x0", [
    (lambda x: x * 2.0, np.ones(2)),                             # not scalar
    (lambda x: knp.sum(knp.abs(x)), np.array([np.nan, 1.0])),    # NaN in x0
    (lambda x: knp.sum(1.0 / x), np.array([0.0, 1.0])),          # f(x0) = inf
], ids=["non-scalar", "nan-x0", "f-x0-inf"])
def test_bad_input_raises(f, x0):
    with np.errstate(all="ignore"), pytest.raises(kinkgrad.KinkgradError):
        kinkgrad.minimize(f, x0, method=METHOD)


@pytest.mark.parametrize("opts", [{"samples": 0}, {"radius": -1.0}, {"radius_factor": 1.0},
                                  {"armijo": 0.0}, {"backtrack": float("nan")},
                                  {"samples": 2.5}])
def test_bad_options_raise(opts):
    with pytest.raises(kinkgrad.KinkgradError):
        kinkgrad.minimize(l1, np.zeros(3), method=METHOD, options=opts)
