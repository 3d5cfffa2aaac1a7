"""The SQP Lagrangian's curvature in the proximal finishing steps
(kinkgrad.optimize._lagrangian, kinkgrad.abs_normal.zero_norms.Linearized): norms replaced
by their linearization along multiplier directions, so the frozen program's Hessian holds
the curvature of nonlinear kink inputs and the cross terms of f's nonlinearity in its norms.

Truths are independent of the code: central differences of kinkgrad.grad(f) where f is
smooth on the differences' ball (no kink within 1e3 steps), the closed-form Lagrangian
Hessian of chained crescent I at its minimiser (weights 3/4 and 1/4 on the two maxima,
from stationarity), the closed-form gradient of crescent's kink input, the published
minima of kinkgrad.problems, and, at a certified point of a ReLU network's loss, f itself
along random directions (no direction lowers it).
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.zero_norms import Linearized
from kinkgrad.optimize._lagrangian import curvature_missing, lagrangian_groups
from kinkgrad.optimize._norm_finish import _first_crossing, finish_on_zero_norms
from kinkgrad.optimize._norm_groups import (
    fd_columns,
    group_inputs,
    regroup,
    zero_groups,
)
from kinkgrad.optimize.oracle import Oracle
from kinkgrad.problems import get


def _relu_net(m: int, hidden: tuple[int, ...], seed: int):
    """1/(2m) ||relu(... relu(X W1 + b1) ...) w + b - y||^2 over p = (W1, b1, ..., w, b),
    X in R^{m x 3}: a second hidden layer's kinks are nested in the first's."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 3))
    y = np.sin(2.0 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    sizes = (3, *hidden)
    shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]
    shapes += [(sizes[-1],), ()]  # the output layer: a weight vector and a scalar bias
    cut = np.cumsum([int(np.prod(s)) for s in shapes])

    def f(p):
        parts = [p[a:b].reshape(s) for a, b, s in zip(np.r_[0, cut[:-1]], cut, shapes)]
        h = X
        for W, c in zip(parts[:-2:2], parts[1:-2:2]):
            h = knp.relu(h @ W + c)
        r = h @ parts[-2] + parts[-1] - y
        return 0.5 * knp.mean(r * r)

    return f, 0.5 * rng.standard_normal(int(cut[-1]))


def _no_descent(f, x: np.ndarray, fun: float, slope: float = 0.0) -> None:
    """f(x + t v) >= f(x) - slope t (to 1e-15) along 50 random unit v, t = 1e-7 and 1e-5:
    no direction lowers f faster than ``slope`` (an independent check of a certified
    point: 0 at a kinked minimiser, tol at a smooth one)."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.standard_normal(x.size)
        for t in (1e-7, 1e-5):
            assert float(f(x + t * v / np.linalg.norm(v))) >= fun - slope * t - 1e-15


def _central_hessian(f, x: np.ndarray, h: float) -> np.ndarray:
    grad = kinkgrad.grad(f)
    H = np.array([(np.asarray(grad(x + h * e)) - np.asarray(grad(x - h * e))) / (2 * h)
                  for e in np.eye(x.size)])
    return 0.5 * (H + H.T)


def test_linearized_norms_give_fs_gradient_and_hessian_at_a_smooth_point():
    # every kink of a ReLU net away from zero, each linearized along its sign: f's own
    # gradient and Hessian (the norm of one entry has no curvature of its own); frozen at
    # their values instead, the Hessian misses the cross terms |z| x next weights
    f, x = _relu_net(20, (4,), 3)
    oracle = Oracle(f, x)
    balls = zero_groups(oracle, x, np.inf)
    w = group_inputs(oracle, x, balls.chosen)
    assert oracle.kinks_as_norms and np.min(np.abs(w)) > 1e-2
    lin = lagrangian_groups(balls, w, np.zeros(x.size), near=1e-3)
    np.testing.assert_allclose(oracle.frozen_gradient(x, lin), kinkgrad.grad(f)(x),
                               rtol=1e-12, atol=1e-14)
    truth = _central_hessian(f, x, 1e-6)
    gl = oracle.frozen_gradient(x, lin)
    H = fd_columns(oracle, x, gl, lin, np.arange(x.size))
    np.testing.assert_allclose(0.5 * (H + H.T), truth, atol=1e-6 * np.abs(truth).max())
    g0 = oracle.frozen_gradient(x, balls.chosen)
    H0 = fd_columns(oracle, x, g0, balls.chosen, np.arange(x.size))
    assert np.linalg.norm(0.5 * (H0 + H0.T) - truth) > 0.1 * np.linalg.norm(truth)


@pytest.mark.parametrize("n", [2, 5])
def test_crescent_lagrangian_hessian_at_its_minimiser(n):
    # chained crescent I at x* = 0: f = max(T1, T2), grad T1 = -1 and grad T2 = 3 on the
    # b-entries, so 3/4 T1 + 1/4 T2 is stationary and its Hessian (1/2) diag(grad^2 T1) =
    # diag(1, 2, ..., 2, 1); phi = (T1 + T2) / 2 alone is linear (Hessian 0)
    p = get("chained-crescent-1", n)
    x = p.x_star
    oracle = Oracle(p.f, x)
    balls = zero_groups(oracle, x, np.inf)
    g = oracle.frozen_gradient(x, balls.chosen)
    w = group_inputs(oracle, x, balls.chosen)
    lin = lagrangian_groups(balls, w, g, near=1e-3)
    gl = oracle.frozen_gradient(x, lin)
    np.testing.assert_allclose(gl, 0.0, atol=1e-12)  # the multiplier makes it stationary
    H = fd_columns(oracle, x, gl, lin, np.arange(n))
    truth = np.diag(np.r_[1.0, np.full(n - 2, 2.0), 1.0])
    np.testing.assert_allclose(0.5 * (H + H.T), truth, atol=1e-6)
    H0 = fd_columns(oracle, x, g, balls.chosen, np.arange(n))
    np.testing.assert_allclose(H0, 0.0, atol=1e-6)


def test_curvature_missing_only_where_the_norms_are_not_penalties():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((15, 8)), rng.standard_normal(15)

    def group_lasso(x):  # affine w_k, f linear in its norms: nothing missing
        r = X @ x - y
        return 0.5 * knp.sum(r * r) + 0.3 * knp.sum(
            knp.linalg.norm(knp.reshape(x, (4, 2)), axis=1)) + 0.1 * knp.sum(knp.abs(x))

    crescent = get("chained-crescent-1", 6)
    net, p0 = _relu_net(12, (3,), 1)
    for f, x, missing in [(group_lasso, rng.standard_normal(8), False),
                          (crescent.f, crescent.x_star + 0.1, True), (net, p0, True)]:
        oracle = Oracle(f, x)
        balls = zero_groups(oracle, x, np.inf)
        g = oracle.frozen_gradient(x, balls.chosen)
        assert curvature_missing(oracle, x, balls, g) is missing


def test_regroup_gives_the_rows_at_the_new_point():
    # crescent's kink input is +-(T1 - T2), gradient 4 a on the a-entries and 4 (b - 1) on
    # the b-entries (a = x[:-1], b = x[1:])
    p = get("chained-crescent-1", 5)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(5), rng.standard_normal(5)
    oracle = Oracle(p.f, x)
    balls = zero_groups(oracle, x, np.inf)
    moved = regroup(oracle, y, balls)
    truth = np.zeros(5)
    truth[:-1] += 4.0 * y[:-1]
    truth[1:] += 4.0 * (y[1:] - 1.0)
    row = moved.rows.toarray().ravel()
    np.testing.assert_allclose(np.abs(row), np.abs(truth), rtol=1e-12)
    assert np.all(np.sign(row) == np.sign(row[0] * truth[0]) * np.sign(truth))


@pytest.mark.parametrize("name", ["chained-crescent-1", "chained-crescent-2", "chained-lq"])
def test_finishing_steps_certify_near_a_minimiser_of_nonlinear_kinks(name):
    # from 1e-4 off the published minimiser: phi's Hessian alone (linear phi for the
    # crescents) gave unbounded or wrong models and no certificate
    p = get(name, 10)
    x = p.x_star + 1e-4 * np.random.default_rng(0).standard_normal(10)
    oracle = Oracle(p.f, x)
    done = finish_on_zero_norms(oracle, x, oracle.value(x), 1e-8, 1e-8, 0, "")
    assert done is not None
    res, rep = done
    assert rep.verdict == "stationary"
    assert abs(res.fun - p.f_star) <= 1e-12 * (1.0 + abs(p.f_star))


def test_bundle_certifies_a_relu_networks_loss_within_its_default_limit():
    # the 3-8-1 net of benchmarks/regression.py: before, 1,871 iterations ended 9e-8 from
    # stationarity at radius 1e-8; no direction may lower f at the certified point
    f, x0 = _relu_net(100, (8,), 6)
    res = kinkgrad.minimize(f, x0, method="bundle")
    assert res.stationarity.verdict == "stationary"
    assert res.nit < 1000
    _no_descent(f, res.x, res.fun)


def test_bundle_certifies_a_relu_net_whose_near_kink_is_concave():
    # a 3-8-1 net (seed 2) whose only kink near zero has lambda_k < 0: before, the
    # manifold steps held it and stopped 2.3e-7 short after 1,870 iterations (for a while
    # they certified the Clarke-stationary point on it, f falling at slope 9e-4 beside
    # it); now regularized Newton steps with no kink held end at a smooth stationary
    # point: no direction lowers f faster than the tolerance 1e-8 there
    f, x0 = _relu_net(100, (8,), 2)
    res = kinkgrad.minimize(f, x0, method="bundle")
    assert res.stationarity.verdict == "stationary", res.message
    assert res.nit < 1000
    _no_descent(f, res.x, res.fun, slope=1e-8)


def test_bundle_goes_on_from_the_finishing_steps_best_point():
    # a 3-10-1 net (seed 5): the Newton steps tried during the run reach a lower f without
    # certifying; going on from there the run is certified (before: 2,073 iterations, 1.6e-5
    # from stationarity). No direction may lower f at the certified point
    f, x0 = _relu_net(100, (10,), 5)
    res = kinkgrad.minimize(f, x0, method="bundle")
    assert res.stationarity.verdict == "stationary", res.message
    _no_descent(f, res.x, res.fun)


def test_zero_directions_are_the_plain_freeze_and_values_are_fs():
    # d_k = 0: n_k(x) + 0 . (w_k(y) - w_k(x)) is the constant of the plain freeze, at x and
    # at replayed points; the linearized program's value at x is f(x) either way
    f, x = _relu_net(10, (3,), 2)
    oracle = Oracle(f, x)
    balls = zero_groups(oracle, x, np.inf)
    zero = Linearized(balls.chosen, {k: np.zeros((v.size, 1)) for k, v in balls.chosen.items()})
    rng = np.random.default_rng(4)
    points = [x + 1e-3 * rng.standard_normal(x.size) for _ in range(3)]
    for got, want in zip(oracle.frozen_gradients(x, zero, iter(points)),
                         oracle.frozen_gradients(x, balls.chosen, iter(points))):
        np.testing.assert_array_equal(got, want)
    lin = lagrangian_groups(balls, group_inputs(oracle, x, balls.chosen), np.zeros(x.size),
                            near=1e-3)
    tr, out = oracle._frozen(x, lin)
    np.testing.assert_allclose(float(tr.vals[out.index]), float(f(x)), rtol=1e-14)


@pytest.mark.parametrize("seed", [1, 4])
def test_bundle_certifies_a_deep_relu_networks_loss_by_manifold_steps(seed):
    # 3-6-6-1 nets (73 weights, 1,200 nested kinks). Seed 1: before, 2,510 iterations
    # ended 5.2e-7 from stationarity; the Newton-SQP steps on its zero kinks (the
    # Lagrangian's Hessian, regularized) certify. Seed 4: the steps crossed kinks they did
    # not hold and released a kink on multipliers 1.02 times its lambda before converging
    # (2,513 iterations, 4.5e-8 short); now the run, having gone on from their best point,
    # stalls near a minimiser that the abs-linear finishing steps certify. No direction may
    # lower f at the certified point
    f, x0 = _relu_net(100, (6, 6), seed)
    res = kinkgrad.minimize(f, x0, method="bundle")
    assert res.stationarity.verdict == "stationary", res.message
    if seed == 1:
        assert "Newton step(s) on the manifold" in res.message
    _no_descent(f, res.x, res.fun)


def test_a_step_stops_at_the_first_kink_it_crosses_and_holds_it():
    # f = |x0| + 2 |x1 - 1| + |x0 + x1 - 3| + ||x||^2 / 2 at (0, 0.5), |x0| held: along
    # dx = (1, 4) the kink inputs x1 - 1 = -0.5 + 4 t and x0 + x1 - 3 = -2.5 + 5 t reach
    # zero at t = 1/8 and 1/2; along (0, 1) at 1/2 and 5/2; along (0, -1) never
    def f(x):
        return knp.abs(x[0]) + 2.0 * knp.abs(x[1] - 1.0) + knp.abs(x[0] + x[1] - 3.0) \
            + 0.5 * knp.sum(x * x)

    x = np.array([0.0, 0.5])
    oracle = Oracle(f, x)
    balls = zero_groups(oracle, x, 1e-6)
    assert balls.q == 1
    held = np.ones(1, bool)
    for dx, want in (([1.0, 4.0], 0.125), ([0.0, 1.0], 0.5)):
        t, grown, now_held = _first_crossing(oracle, x, np.array(dx), balls, held)
        assert t == pytest.approx(want, rel=1e-14)
        np.testing.assert_allclose(grown.lam, [1.0, 2.0])  # |x0| and 2 |x1 - 1|
        assert now_held.tolist() == [True, True]
    assert _first_crossing(oracle, x, np.array([0.0, -1.0]), balls, held) is None
    # a released kink is not held again (it would cycle): |x0| at 0.3, moving back
    x = np.array([0.3, 0.5])
    balls = zero_groups(Oracle(f, x), x, 0.5)
    assert _first_crossing(Oracle(f, x), x, np.array([-1.0, 0.0]), balls.subset(
        balls.lam == 1.0), np.zeros(1, bool)) is None


def test_finishing_steps_do_not_hold_a_concave_kink():
    # f = (x0 - 1)^2 + x1^2 - |x1| + |x0 + x1 - 1| / 2: (1, 0) is Clarke stationary (0 in
    # 2 x1 - [-1, 1]) but no local minimiser, f(1, t) = t^2 - |t| < 0 for 0 < |t| < 1; held
    # at zero, |x1| led the steps there from 1e-9 off ("stationary", f = 0). Not held, they
    # reach the minimiser (3/4, 1/4) on the convex kink (f = -1/8, as at (5/4, -1/4))
    def f(x):
        return (x[0] - 1.0) ** 2 + x[1] ** 2 - knp.abs(x[1]) + 0.5 * knp.abs(x[0] + x[1] - 1.0)

    x = np.array([1.0 + 1e-9, 1e-9])
    done = finish_on_zero_norms(Oracle(f, x), x, float(f(x)), 1e-8, 1e-8, 0, "")
    assert done is not None
    res, rep = done
    assert rep.verdict == "stationary"
    np.testing.assert_allclose(res.x, [0.75, 0.25], atol=1e-12)
    assert res.fun == pytest.approx(-0.125, abs=1e-15)
