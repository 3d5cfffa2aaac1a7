"""Euclidean norms at zero in kinkgrad.stationarity (kinkgrad.abs_normal.zero_norms).

Truths are independent of the code: closed forms (Fermat-Weber's condition at a data point,
group lasso's KKT conditions at constructed points, max(0, ||c|| - 1) for +-||x|| + c.x),
the hull of gradients sampled next to the point (a subset of the Clarke set: its minimum
norm is an upper bound on the true distance, so a proven lower bound may not exceed it),
and SciPy's SLSQP on the ellipsoid sum where the set is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize as sp_minimize

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.minnorm_balls import min_norm_balls
from kinkgrad.errors import NotAbsSmoothError


def _fermat_weber(A):
    return lambda x: knp.sum(knp.linalg.norm(x[None, :] - A, axis=1))


@pytest.mark.parametrize("seed", range(4))
def test_fermat_weber_at_each_data_point_matches_the_classical_condition(seed):
    # f = sum_i ||x - a_i|| at x = a_j: the set is R_j + B with R_j the sum of the unit
    # vectors (a_j - a_i) / ||a_j - a_i||, so dist = max(0, ||R_j|| - 1)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((7, 3))
    A[0] = A[1:].mean(axis=0) + 0.01 * rng.standard_normal(3)  # a point near the median
    f = _fermat_weber(A)
    for j in range(len(A)):
        R = sum((A[j] - A[i]) / np.linalg.norm(A[j] - A[i]) for i in range(len(A)) if i != j)
        truth = max(0.0, np.linalg.norm(R) - 1.0)
        rep = kinkgrad.stationarity(f, A[j].copy(), tol=1e-8)
        assert rep.distance == pytest.approx(truth, abs=1e-9)
        lo, hi = rep.bounds
        assert lo - 1e-12 <= truth <= hi + 1e-12
        assert rep.verdict == ("stationary" if truth <= 1e-8 else "not stationary")
        if rep.verdict == "not stationary":
            assert rep.slope < 0


def _group_lasso(seed, m=60, G=8, d=3, lam=0.3, violate=None):
    """A group lasso 1/2 ||A x - b||^2 + lam sum_g ||x_g|| with a point xs constructed to be
    stationary (b chosen so that A^T (A xs - b) = -lam v, v_g = x_g / ||x_g|| on the three
    nonzero groups and ||v_g|| < 1 on the zero ones); ``violate``: {group: ||v_g|| > 1}."""
    rng = np.random.default_rng(seed)
    n = G * d
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    xs = np.zeros((G, d))
    xs[:3] = rng.standard_normal((3, d))
    v = np.zeros((G, d))
    v[:3] = xs[:3] / np.linalg.norm(xs[:3], axis=1, keepdims=True)
    u = rng.standard_normal((G - 3, d))
    v[3:] = u * (rng.uniform(0.1, 0.9, (G - 3, 1)) / np.linalg.norm(u, axis=1, keepdims=True))
    for g, size in (violate or {}).items():
        v[g] *= size / np.linalg.norm(v[g])
    r = np.linalg.lstsq(A.T, -lam * v.ravel(), rcond=None)[0]
    b = A @ xs.ravel() - r

    def f(x):
        res = A @ x - b
        return 0.5 * knp.sum(res * res) + lam * knp.sum(
            knp.linalg.norm(knp.reshape(x, (G, d)), axis=1))

    return f, xs.ravel(), v, lam


@pytest.mark.parametrize("seed", range(3))
def test_group_lasso_kkt_point_is_certified(seed):
    f, xs, _, _ = _group_lasso(seed)
    rep = kinkgrad.stationarity(f, xs)
    assert rep.verdict == "stationary" and rep.distance <= 1e-12
    assert rep.num_active == 5  # the five zero groups
    assert rep.exact


@pytest.mark.parametrize("sizes", [{4: 1.5}, {3: 1.2, 6: 2.0}])
def test_group_lasso_violated_groups_give_the_kkt_distance(sizes):
    # on a zero group the set is lam (v_g + B): dist = lam (||v_g|| - 1) where ||v_g|| > 1
    f, xs, _, lam = _group_lasso(1, violate=sizes)
    truth = lam * np.sqrt(sum((s - 1.0) ** 2 for s in sizes.values()))
    rep = kinkgrad.stationarity(f, xs)
    assert rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-9)
    assert rep.slope == pytest.approx(-truth, rel=1e-6)  # the convex case: f' = -dist


def test_sparse_group_lasso_zero_group_with_dependent_rows_but_convex():
    # lam ||x_g|| + mu ||x_g||_1 on a zero group with smooth gradient a e_1: the set is
    # a e_1 + lam B + mu [-1, 1]^d, whose distance from 0 is max(0, |a| - lam - mu)
    # (the abs switches' rows e_i and the ball's J = I are dependent: exact by convexity)
    lam, mu = 0.3, 0.1
    for a, truth in ((0.35, 0.0), (0.5, 0.1)):
        c = np.array([a, 0.0, 0.0])

        def f(x, c=c):
            return c @ x + lam * knp.linalg.norm(x) + mu * knp.sum(knp.abs(x))

        rep = kinkgrad.stationarity(f, np.zeros(3))
        assert rep.distance == pytest.approx(truth, abs=1e-12)
        assert rep.verdict == ("stationary" if truth == 0 else "not stationary")
        assert rep.exact


@pytest.mark.parametrize("c", [(0.3, 0.4), (0.6, 0.8), (1.5, 0.5), (0.0, 3.0)])
def test_a_decreasing_norm_at_zero(c):
    # -||x|| + c.x at 0: Clarke's set is c + B (of -||x||: -B = B), dist max(0, ||c|| - 1);
    # lambda = -1 < 0, so only the independence of J = I makes the inner set known
    c = np.array(c)
    rep = kinkgrad.stationarity(lambda x: -knp.linalg.norm(x) + knp.sum(x * c), np.zeros(2))
    truth = max(0.0, np.linalg.norm(c) - 1.0)
    assert rep.distance == pytest.approx(truth, abs=1e-12)
    assert rep.verdict == ("stationary" if truth <= 1e-8 else "not stationary")


def test_cancelling_norms_are_never_called_not_stationary():
    # ||x|| - ||x|| = 0: the outer set B + B holds 0, the inner is unknown (dependent rows,
    # a negative lambda): undecided, never "not stationary"
    rep = kinkgrad.stationarity(lambda x: knp.linalg.norm(x) - knp.linalg.norm(x),
                                np.zeros(3))
    assert rep.verdict == "undecided" and "outer" in rep.reason
    rep = kinkgrad.stationarity(lambda x: knp.linalg.norm(x) + knp.linalg.norm(2.0 * x),
                                np.zeros(3))
    assert rep.verdict == "stationary"  # both increase f: regular, exact


@pytest.mark.parametrize("f", [
    lambda x: knp.abs(knp.linalg.norm(x) - 0.0) + x[0],  # an active |.| reads the norm
    lambda x: knp.linalg.norm(knp.relu(x)) + 0.1 * x[0],  # active relus feed it
])
def test_norms_coupled_with_active_kinks_are_undecided(f):
    rep = kinkgrad.stationarity(f, np.zeros(2))
    assert rep.verdict == "undecided" and "isolated" in rep.reason


_N = knp.linalg.norm


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("f, slope", [
    # a zero norm inside another's group: -0.5 ||(-0.5 ||x||)|| = -0.25 ||x|| (not minimal,
    # Clarke set 0.25 B); ||(||x||)|| = ||x|| (set B); ||(||x||, x_1)|| + 0.3 x_1: f'(e_1) =
    # sqrt(2) + 0.3 > 0. The inner norm's derivative was cut, J_k = 0 and lambda_k = 0: the
    # set collapsed to {g0} ("minimal" for the first, in_clarke False inside B)
    (lambda x: -0.5 * _N(knp.stack([-0.5 * _N(x)])), -0.25),
    (lambda x: _N(knp.stack([_N(x)])), 1.0),
    (lambda x: -_N(knp.stack([_N(x), 0.0 * x[0]])), -1.0),
    (lambda x: _N(knp.stack([_N(x), x[0]])) + 0.3 * x[0], np.sqrt(2.0) + 0.3),
])
def test_a_norm_of_a_zero_norm_is_never_a_wrong_verdict(f, slope, n):
    x = np.zeros(n)
    e1 = np.eye(n)[0]
    h = 1e-7  # the truth: f is positively homogeneous at 0, f(h e_1) / h = f'(x; e_1)
    assert abs(float(f(h * e1)) / h - slope) < 1e-6
    inside = 0.5 * abs(slope) * e1  # in the Clarke set, which holds f'(x; e_1) e_1's half
    try:
        assert kinkgrad.in_clarke(f, x, inside)
    except kinkgrad.KinkgradError as exc:
        assert "undecided" in str(exc)
    m = kinkgrad.minimality(f, x)
    if slope < 0:  # no model, but the exact derivative along some +-e_i or random d is < 0
        d = np.asarray(m.descent)
        assert m.verdict == "not minimal" and m.method == "directions"
        assert abs(float(f(h * d)) / h - m.slope) < 1e-6 and m.slope < -0.2
    else:
        assert m.verdict in ("minimal", "undecided")
    st = kinkgrad.stationarity(f, x)
    assert st.verdict in ("stationary", "undecided")


def _sampled_distance(f, x, rng, count=400, eps=1e-6):
    """min-norm of the hull of gradients at points next to x (a subset of the Clarke set)."""
    G = np.array([kinkgrad.grad(f)(x + eps * u / np.linalg.norm(u))
                  for u in rng.standard_normal((count, x.size))])
    return min_norm_balls(np.zeros(x.size), [G]).upper


@pytest.mark.parametrize("seed", range(12))
def test_random_sums_of_norms_never_get_a_wrong_verdict(seed):
    # f = g.x + sum_k c_k ||B_k x|| + mu |a.x| at 0, random signs and shapes (dependent when
    # the B_k stack to more rows than columns): a "not stationary" lower bound never exceeds
    # the sampled hull's distance; where the set is closed-form (independent rows, no abs),
    # the distance is SLSQP's on g + sum |c_k| B_k^T Ball
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    q = int(rng.integers(1, 4))
    Bs = [rng.standard_normal((int(rng.integers(1, 3)), n)) for _ in range(q)]
    cs = rng.choice([-1.0, 1.0], q) * rng.uniform(0.2, 1.0, q)
    g = rng.standard_normal(n) * rng.uniform(0.05, 1.0)
    a, mu = rng.standard_normal(n), float(rng.choice([0.0, 0.3]))

    def f(x):
        out = knp.sum(x * g) + mu * knp.abs(knp.sum(x * a))
        for c, B in zip(cs, Bs):
            out = out + c * knp.linalg.norm(B @ x)
        return out

    x = np.zeros(n)
    rep = kinkgrad.stationarity(f, x, tol=1e-6)
    sampled = _sampled_distance(f, x, rng)
    assert rep.bounds[0] <= sampled + 1e-6
    if rep.verdict == "not stationary":
        assert sampled > 1e-6 - 1e-9
    R = np.vstack(Bs)
    if mu == 0.0 and np.linalg.matrix_rank(R) == R.shape[0]:
        dims = [B.shape[0] for B in Bs]

        def norm2(u):
            parts = np.split(u, np.cumsum(dims)[:-1])
            p = g + sum(abs(c) * B.T @ v for c, B, v in zip(cs, Bs, parts))
            return p @ p

        cons = [{"type": "ineq", "fun": lambda u, i=i, lo=lo: 1 - np.sum(
            u[lo:lo + dims[i]] ** 2)} for i, lo in enumerate(np.cumsum([0, *dims[:-1]]))]
        best = min(sp_minimize(norm2, rng.uniform(-0.3, 0.3, sum(dims)), method="SLSQP",
                               constraints=cons, options={"ftol": 1e-14, "maxiter": 500}).fun
                   for _ in range(3))
        assert rep.distance == pytest.approx(np.sqrt(max(best, 0.0)), abs=1e-6)
        assert rep.verdict != "undecided"


def test_near_zero_groups_count_at_a_radius():
    # the group lasso point with its zero groups at 1e-12 (as a method ends): at radius 1e-8
    # they are balls again and the verdict is the exact point's; at radius 0 the norms are
    # smooth there, with gradients lam x_g / ||x_g|| of norm lam: not stationary
    f, xs, _, lam = _group_lasso(2)
    x = xs.copy()
    rng = np.random.default_rng(0)
    x[9:] = 1e-12 * rng.standard_normal(x.size - 9)
    near = kinkgrad.stationarity(f, x, radius=1e-8)
    assert near.verdict == "stationary" and near.num_active == 5
    assert kinkgrad.stationarity(f, x).verdict == "not stationary"


def test_minimize_certifies_a_group_lasso_with_exact_zero_groups():
    # the bundle's test finds the zero groups; Newton steps on their manifold
    # (optimize/_norm_finish.py) land them on 0 exactly and certify at tol 1e-8
    f, xs, _, _ = _group_lasso(0)
    res = kinkgrad.minimize(f, np.ones(xs.size))
    assert res.success and "manifold" in res.message
    assert np.linalg.norm(res.x - xs) < 1e-7
    assert np.all(res.x[9:] == 0.0)  # the five zero groups, exactly


def test_a_small_nonzero_group_held_at_zero_is_released():
    # group 3 of the solution has norm 1e-4, below the identification radius 1e-3 (1 +
    # ||x||): held at zero, its multiplier leaves the ball (the problem is strictly convex,
    # so its minimiser is not on that manifold) and the active-set step releases it
    rng = np.random.default_rng(5)
    m, G, d, lam = 60, 8, 3, 0.3
    A = rng.standard_normal((m, G * d)) / np.sqrt(m)
    xs = np.zeros((G, d))
    xs[:3] = rng.standard_normal((3, d))
    xs[3] = 1e-4 * rng.standard_normal(d)
    v = np.zeros((G, d))
    v[:4] = xs[:4] / np.linalg.norm(xs[:4], axis=1, keepdims=True)
    v[4:] = 0.5 * rng.standard_normal((G - 4, d)) / np.sqrt(d) / 2
    b = A @ xs.ravel() - np.linalg.lstsq(A.T, -lam * v.ravel(), rcond=None)[0]

    def f(x):
        res = A @ x - b
        return 0.5 * knp.sum(res * res) + lam * knp.sum(
            knp.linalg.norm(knp.reshape(x, (G, d)), axis=1))

    assert kinkgrad.stationarity(f, xs.ravel()).verdict == "stationary"  # the construction
    res = kinkgrad.minimize(f, np.ones(G * d))
    assert res.success
    assert np.linalg.norm(res.x - xs.ravel()) < 1e-7
    assert np.linalg.norm(res.x[9:12]) == pytest.approx(np.linalg.norm(xs[3]), rel=1e-3)
    assert np.all(res.x[12:] == 0.0)


def test_minimize_lands_on_a_dominant_fermat_weber_point():
    # weighted Fermat-Weber with a dominant point a_0 (||R_0|| = 3.4 <= w_0 = 6): the
    # minimiser is a_0 itself, where the norm ||x - a_0|| is 0; the bundle's test holds it
    # and one Newton step on {x = a_0} lands there exactly
    rng = np.random.default_rng(3)
    A = rng.standard_normal((9, 2))
    A[0] = A[1:].mean(axis=0) + 0.02
    w = np.ones(9)
    w[0] = 6.0
    R = sum(w[i] * (A[0] - A[i]) / np.linalg.norm(A[0] - A[i]) for i in range(1, 9))
    assert np.linalg.norm(R) < w[0]  # the classical condition: a_0 is the minimiser
    res = kinkgrad.minimize(lambda x: knp.sum(w * knp.linalg.norm(x[None, :] - A, axis=1)),
                            np.zeros(2))
    assert res.success and np.array_equal(res.x, A[0])


def test_in_clarke_at_a_fermat_weber_point_is_the_ball_around_R():
    # at a_j the Clarke set is R_j + B (closed form): inside, on the sphere (a limiting
    # gradient, as clarke_grad returns) and just outside
    rng = np.random.default_rng(7)
    A = rng.standard_normal((5, 3))
    f = _fermat_weber(A)
    R = sum((A[0] - A[i]) / np.linalg.norm(A[0] - A[i]) for i in range(1, 5))
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    assert kinkgrad.in_clarke(f, A[0].copy(), R + 0.5 * u)
    assert kinkgrad.in_clarke(f, A[0].copy(), R + u)
    assert not kinkgrad.in_clarke(f, A[0].copy(), R + 1.001 * u)
    g, _ = kinkgrad.clarke_grad(f, A[0].copy())
    assert kinkgrad.in_clarke(f, A[0].copy(), g)
    assert np.linalg.norm(g - R) == pytest.approx(1.0, rel=1e-12)


def test_in_clarke_with_norms_is_never_a_wrong_false():
    # ||x|| - ||x|| = 0 has the set {0}; the outer set 2B is all that is known: a vector in
    # 2B is undecided (never False), one outside it is False (outside the outer set)
    f = lambda x: knp.linalg.norm(x) - knp.linalg.norm(x)  # noqa: E731
    with pytest.raises(kinkgrad.errors.KinkgradError, match="undecided"):
        kinkgrad.in_clarke(f, np.zeros(2), np.array([0.5, 0.0]))
    assert not kinkgrad.in_clarke(f, np.zeros(2), np.array([2.5, 0.0]))
    with pytest.raises(kinkgrad.errors.KinkgradError, match="active kinks"):
        kinkgrad.in_clarke(lambda x: knp.linalg.norm(knp.relu(x)), np.zeros(2), np.zeros(2))


def test_gradient_sampling_takes_the_zero_norm_steps_at_its_null_steps():
    # as the bundle at its tests: gradient sampling tries the finishing steps when it
    # shrinks its radius (at most once per 10 iterations), here from within its sampling
    # radius of the zeros, before maxiter (where minimize's end would take the same steps)
    f, xs, _, _ = _group_lasso(0)
    res = kinkgrad.minimize(f, np.ones(xs.size), method="gradient-sampling", maxiter=60)
    assert res.success and res.nit < 60
    assert "manifold" in res.message or "proximal Newton" in res.message
    assert np.linalg.norm(res.x - xs) < 1e-7 and np.all(res.x[9:] == 0.0)


def test_gradient_sampling_at_a_smooth_minimiser_of_norms_takes_a_newton_step():
    # Fermat-Weber with its minimiser away from every data point: f is smooth there and
    # gradient sampling converges linearly (sampled norm ~1e-7 after hundreds of steps);
    # with no norm near zero the finishing steps are the proximal model with every norm
    # in a cone, a Newton step. Truth: Weiszfeld's iteration run to convergence
    a = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 3.0], [3.0, 2.5], [0.5, 1.5]])

    def f(x):
        return knp.sum(knp.linalg.norm(a - x, axis=1))

    x = a.mean(axis=0)
    for _ in range(2000):
        w = 1.0 / np.linalg.norm(a - x, axis=1)
        x = (w[:, None] * a).sum(axis=0) / w.sum()
    res = kinkgrad.minimize(f, np.array([5.0, -1.0]), method="gradient-sampling",
                            maxiter=60)
    assert res.success and "proximal Newton" in res.message and res.nit < 60
    np.testing.assert_allclose(res.x, x, atol=1e-9)


def test_a_norm_of_a_constant_zero_vector_does_not_block_the_abs_normal_form():
    # zero padding: ||(x1 - x0, 0)|| and the pad's ||(0, 0)||; the pad is constant, so the
    # form, certify and the subdifferential are those of the program without it
    c = np.array([0.3, -1.0, 2.0])

    def with_pad(x):
        d = knp.concatenate([x[1:] - x[:-1], knp.zeros(1)])
        G = knp.stack([d, knp.zeros(3)], axis=-1)
        return knp.sum(knp.linalg.norm(G, axis=-1)) + knp.sum(knp.abs(x - c))

    def without(x):
        d = x[1:] - x[:-1]
        return knp.sum(knp.abs(d)) + knp.sum(knp.abs(x - c))

    x = np.array([0.3, 0.5, 2.0])  # |x0 - c0| and |x2 - c2| at their kinks
    assert kinkgrad.abs_normal_form(with_pad, x).z.size >= 2
    assert kinkgrad.certify(with_pad, x).certified == kinkgrad.certify(without, x).certified
    a = kinkgrad.subdifferential(with_pad, x)
    b = kinkgrad.subdifferential(without, x)
    rows = lambda s: sorted(map(tuple, np.round(np.asarray(s.matrix), 12)))  # noqa: E731
    assert rows(a) == rows(b) and len(rows(a)) == 4


def test_a_norm_with_vanishing_jacobian_is_strictly_differentiable():
    # ||(v0^2, v1^2)|| <= ||v||^2 at 0: derivative 0; the limiting gradients are |v0|'s,
    # and finite-difference gradients at random points near 0 approach them
    def h(v):
        return knp.linalg.norm(knp.stack([v[0] * v[0], v[1] * v[1]])) + knp.abs(v[0])

    sub = kinkgrad.subdifferential(h, np.zeros(2))
    got = sorted(map(tuple, np.round(np.asarray(sub.matrix), 12)))
    assert got == [(-1.0, 0.0), (1.0, 0.0)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = 1e-5 * rng.standard_normal(2)
        e = 1e-9
        fd = np.array([(float(h(v + e * u)) - float(h(v - e * u))) / (2 * e)
                       for u in np.eye(2)])
        assert min(np.linalg.norm(fd - np.array(gv)) for gv in got) <= 1e-4


def test_a_zero_norm_fed_by_an_active_kink_is_still_refused():
    # ||(relu(v0), v1^2)|| at 0: the policy's Jacobian is 0, but relu's is set-valued there
    # (the norm is relu(v0) along v1 = 0: not differentiable)
    def g(v):
        return knp.linalg.norm(knp.stack([knp.relu(v[0]), v[1] * v[1]]))

    with pytest.raises(NotAbsSmoothError, match="active kink"):
        kinkgrad.abs_normal_form(g, np.zeros(2))
    with pytest.raises(NotAbsSmoothError):
        kinkgrad.certify(g, np.zeros(2))


def test_abs_linear_from_every_group_at_zero_is_finished_by_proximal_steps():
    # x0 = 0: abs-linear has no abs-normal form there and the manifold steps, holding every
    # group, do not move; the proximal steps (optimize/_norm_prox.py) reach the constructed
    # KKT point and land its zero groups exactly
    f, xs, _, _ = _group_lasso(0)
    res = kinkgrad.minimize(f, np.zeros(xs.size), method="abs-linear")
    assert res.success and "proximal Newton" in res.message
    assert np.linalg.norm(res.x - xs) < 1e-7
    assert np.all(res.x[9:] == 0.0) and np.all(res.x[:9] != 0.0)


@pytest.mark.parametrize("seed", range(3))
def test_a_distance_off_the_balls_span_is_proven(seed):
    # g0 = M u* + 1.4e-7 w with w orthogonal to the span of M's columns and every u*_k
    # inside its ball: the distance of g0 + sum_k M_k B_k from 0 is that of g0 from the
    # span, 1.4e-7 (NumPy's least squares). Along the interior point's direction the 166
    # balls' support terms swallowed the bound (seed 0: [0, 1.4e-7], undecided at tol
    # 1e-8); along the polish's residual it is proven above tol
    rng = np.random.default_rng(seed)
    n, q = 256, 166
    M = sp.csc_matrix(sp.random(n, 2 * q, density=0.01, random_state=seed) * 0.15)
    u = rng.standard_normal((q, 2))
    u *= (rng.uniform(0.2, 0.999999, q) / np.linalg.norm(u, axis=1))[:, None]
    A = M.toarray()
    w = rng.standard_normal(n)
    w -= A @ np.linalg.lstsq(A, w, rcond=None)[0]
    g0 = A @ u.ravel() + 1.4e-7 * w / np.linalg.norm(w)
    truth = np.linalg.norm(g0 - A @ np.linalg.lstsq(A, g0, rcond=None)[0])
    got = min_norm_balls(g0, [], M, np.full(q, 2), tol=1e-8)
    assert truth * (1 - 1e-3) <= got.lower <= truth * (1 + 1e-6) <= got.upper * (1 + 2e-6)
    assert got.upper == pytest.approx(truth, rel=1e-3)


def test_segments_and_balls_off_their_span_are_proven():
    # TV-L1's set: 228 segments conv{a_b, -a_b} (abs kinks) and 100 balls M_k B_k, g0 =
    # sum_b t_b a_b + M u* + 1.3e-7 w with |t_b| < 1, u*_k inside, w orthogonal to the span
    # of the a_b and M: the distance is g0's from that span (NumPy's least squares). The
    # polish's simplex rows weighted by 1e8 made its solve's damping 1 (residual ~3 where
    # the interior point's was 1e-7: [0, 1.3e-7], undecided); now proven, both bounds tight
    rng = np.random.default_rng(0)
    n, nb, q = 600, 228, 100
    a = sp.random(nb, n, density=0.01, random_state=1).toarray() + np.eye(nb, n)
    M = sp.csc_matrix(sp.random(n, 2 * q, density=0.01, random_state=2) * 0.15)
    t = rng.uniform(-0.9, 0.9, nb)
    u = rng.standard_normal((q, 2))
    u *= (rng.uniform(0.2, 0.99, q) / np.linalg.norm(u, axis=1))[:, None]
    span = np.hstack([a.T, M.toarray()])
    w = rng.standard_normal(n)
    w -= span @ np.linalg.lstsq(span, w, rcond=None)[0]
    g0 = a.T @ t + M @ u.ravel() + 1.3e-7 * w / np.linalg.norm(w)
    truth = np.linalg.norm(g0 - span @ np.linalg.lstsq(span, g0, rcond=None)[0])
    got = min_norm_balls(g0, [np.array([r, -r]) for r in a], M, np.full(q, 2), tol=1e-8)
    assert truth * (1 - 1e-3) <= got.lower <= truth * (1 + 1e-6) <= got.upper * (1 + 2e-6)
    assert got.upper == pytest.approx(truth, rel=1e-3)


@pytest.mark.parametrize("seed", range(12))
def test_ball_bounds_never_exceed_a_feasible_point(seed):
    # random g0 + sum_b conv(V_b) + sum_k M_k B_k (rank-deficient M half the time, g0 inside
    # the set or 1e-7 .. 1 off it): the proven lower bound never exceeds the norm of a
    # feasible point SciPy's SLSQP finds (an upper bound on the distance), and the bounds
    # are ordered
    rng = np.random.default_rng(seed)
    n, nb, q = int(rng.integers(2, 7)), int(rng.integers(0, 4)), int(rng.integers(1, 4))
    blocks = [rng.standard_normal((int(rng.integers(1, 4)), n)) for _ in range(nb)]
    dims = rng.integers(1, 3, q)
    M = rng.standard_normal((n, int(dims.sum()))) * rng.uniform(0.1, 1.0)
    if seed % 2:
        M = M[:, :1] @ rng.standard_normal((1, M.shape[1]))
    inside = sum((rng.dirichlet(np.ones(len(b))) @ b for b in blocks), np.zeros(n))
    for k, d in enumerate(dims):
        u = rng.standard_normal(d)
        inside = inside + M[:, dims[:k].sum():dims[:k + 1].sum()] @ (u / np.linalg.norm(u)
                                                                    * rng.uniform())
    g0 = -inside + [0.0, 1e-7, 1e-3, 1.0][seed % 4] * rng.standard_normal(n)
    got = min_norm_balls(g0, blocks, sp.csr_matrix(M), dims, tol=1e-8)
    sizes, T, starts = [len(b) for b in blocks], sum(len(b) for b in blocks), \
        np.r_[0, np.cumsum(dims)]

    def point(v):
        lam = np.split(v[:T], np.cumsum(sizes)[:-1]) if blocks else []
        return g0 + sum((w @ b for w, b in zip(lam, blocks)), np.zeros(n)) + M @ v[T:]

    offs = np.r_[0, np.cumsum(sizes)]
    cons = [{"type": "eq", "fun": lambda v, a=a, b=b: np.sum(v[a:b]) - 1.0}
            for a, b in zip(offs[:-1], offs[1:])]
    cons += [{"type": "ineq", "fun": lambda v, a=T + a, b=T + b: 1.0 - np.sum(v[a:b] ** 2)}
             for a, b in zip(starts[:-1], starts[1:])]
    best = np.inf
    for _ in range(2):
        v0 = np.concatenate([rng.dirichlet(np.ones(s)) for s in sizes] + [np.zeros(M.shape[1])])
        r = sp_minimize(lambda v: point(v) @ point(v), v0, method="SLSQP", constraints=cons,
                        bounds=[(0, None)] * T + [(None, None)] * M.shape[1],
                        options={"ftol": 1e-20, "maxiter": 200})
        if np.all(r.x[:T] >= -1e-12) and all(
                (c["fun"](r.x) >= -1e-9) if c["type"] == "ineq" else abs(c["fun"](r.x)) <= 1e-9
                for c in cons):
            best = min(best, float(np.linalg.norm(point(r.x))))
    assert np.isfinite(best)  # SLSQP found a feasible point
    assert got.lower <= best + 1e-9 * (1 + np.linalg.norm(g0))
    assert got.lower <= got.upper
