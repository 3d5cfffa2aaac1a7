"""kinkgrad.stationarity against independent truth: gradients of plain NumPy functions taken by
finite differences at random differentiable points next to x, their hull's min-norm by
least-distance programming (SciPy's BVLS, ``_least_distance``); brute-force limiting gradients
of random piecewise-linear programs; one-sided finite differences along the descent direction;
published minimizers."""

from __future__ import annotations

import numpy as np
import pytest
from _abs_programs import programs
from _exact_pl import limiting_gradients
from hypothesis import HealthCheck, given, settings

import kinkgrad
import kinkgrad.numpy as knp
from _least_distance import exact_hull_min_norm, hull_min_norm


def sampled_gradients(f_np, x: np.ndarray, delta: float = 1e-5, k: int = 3000,
                      seed: int = 0) -> np.ndarray:
    """Central-difference gradients of the NumPy function at k random points of the sphere
    of radius delta around x; a sample is kept when two step sizes agree (no kink inside)."""
    rng = np.random.default_rng(seed)
    n = x.size
    out = []
    for _ in range(k):
        u = rng.standard_normal(n)
        y = x + delta * u / np.linalg.norm(u)
        gs = []
        for h in (1e-8, 2e-9):
            E = np.eye(n) * h
            gs.append(np.array([(f_np(y + e) - f_np(y - e)) / (2 * h) for e in E]))
        if np.max(np.abs(gs[0] - gs[1])) <= 1e-5 * (1 + np.max(np.abs(gs[0]))):
            out.append(gs[1])
    return np.array(out)


# (knp function, NumPy function, point on its kinks)
CASES = {
    "max-of-three-smooth": (
        lambda x: knp.maximum(knp.maximum(x[0] + x[1] ** 2, -x[0] + 2 * x[1]), x[0] ** 2 - x[1]),
        lambda x: max(x[0] + x[1] ** 2, -x[0] + 2 * x[1], x[0] ** 2 - x[1]),
        np.zeros(2)),
    "pl-nonconvex": (
        lambda x: knp.abs(x[0] - x[1]) + 2 * knp.relu(x[0] + x[1]) - 0.5 * knp.abs(x[0]),
        lambda x: abs(x[0] - x[1]) + 2 * max(x[0] + x[1], 0) - 0.5 * abs(x[0]),
        np.zeros(2)),
    "maxq-ties": (
        lambda x: knp.max(x ** 2),
        lambda x: float(np.max(x ** 2)),
        np.array([1.0, -1.0, 1.0, 0.5])),
    "linf-ties": (
        lambda x: knp.max(knp.abs(x - np.array([1.0, 0.0, -1.0]))) + 0.3 * x[0],
        lambda x: float(np.max(np.abs(x - np.array([1.0, 0.0, -1.0])))) + 0.3 * x[0],
        np.array([0.0, 1.0, 0.0])),
    "stationary-min": (
        lambda x: knp.maximum(knp.abs(x[0]) + x[1] ** 2, 0.5 * x[1] - x[0]),
        lambda x: max(abs(x[0]) + x[1] ** 2, 0.5 * x[1] - x[0]),
        np.zeros(2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("offset", [0.0, 1e-9])
def test_min_norm_matches_sampled_gradients(name, offset):
    f, f_np, x = CASES[name]
    x = x + offset * np.linspace(1.0, -0.7, x.size)
    truth = hull_min_norm(sampled_gradients(f_np, x))
    rep = kinkgrad.stationarity(f, x, radius=0.0 if offset == 0 else 1e-6)
    lo, hi = rep.bounds
    assert lo - 1e-4 <= truth <= hi + 1e-4, (rep, truth)
    if rep.exact:
        assert rep.distance == pytest.approx(truth, abs=1e-4)
    assert rep.verdict == ("stationary" if truth <= 1e-6 else "not stationary")


@pytest.mark.parametrize("name", sorted(CASES))
def test_descent_direction_checked_by_finite_differences(name):
    f, f_np, x = CASES[name]
    rep = kinkgrad.stationarity(f, x)
    if rep.verdict != "not stationary":
        assert rep.descent is None
        return
    d = np.asarray(rep.descent)
    assert np.linalg.norm(d) == pytest.approx(1.0)
    t = 1e-9
    fd = (f_np(x + t * d) - f_np(x)) / t
    assert fd == pytest.approx(rep.slope, abs=1e-5) and rep.slope < 0
    assert rep.slope <= -rep.bounds[0] + 1e-12  # f'(x; d) <= -lower (module docstring)


def test_cusp_is_stationary_and_its_second_order_piece_is_found():
    # the reproducer: f = |x0| - |x0 + x1^2| is differentiable on the cusp
    # -x1^2 < x0 < 0 with gradient (-2, -2 x1): the Clarke set is conv{(0, 0), (-2, 0)}
    f = lambda x: knp.abs(x[0]) - knp.abs(x[0] + x[1] ** 2)  # noqa: E731
    f_np = lambda x: abs(x[0]) - abs(x[0] + x[1] ** 2)  # noqa: E731
    assert kinkgrad.stationarity(f, np.zeros(2)).verdict == "stationary"
    y = np.array([-1e-6, 2e-3])  # inside the cusp: the gradient there, by differences
    g = np.array([(f_np(y + e) - f_np(y - e)) / 2e-10 for e in np.eye(2) * 1e-10])
    np.testing.assert_allclose(g, [-2.0, -4e-3], atol=1e-5)
    assert kinkgrad.in_clarke(f, np.zeros(2), np.array([-2.0, 0.0]))
    assert kinkgrad.in_clarke(f, np.zeros(2), np.array([-1.0, 0.0]))
    sub = kinkgrad.subdifferential(f, np.zeros(2))
    assert sub.partial  # a piece realised only at higher order cannot be excluded
    assert any(np.allclose(r, [-2.0, 0.0]) for r in sub.matrix)
    # (3, 0) lies outside every piece's gradient: proven not a Clarke gradient
    assert kinkgrad.in_clarke(f, np.zeros(2), np.array([3.0, 0.0])) is False
    with pytest.raises(kinkgrad.abs_normal.subdiff.UndecidedError):
        kinkgrad.in_clarke(f, np.zeros(2), np.array([1.0, 0.0]))


@settings(derandomize=True, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(n_max=2, ops_max=4))
def test_verdict_never_wrong_on_random_programs(prog):
    # the exact cells (_exact_pl) list every limiting gradient of these piecewise-linear
    # programs (finite differences beside x, the truth before, miss thin cones)
    truth = exact_hull_min_norm(np.array(limiting_gradients(prog), float))
    slack = 1e-9 * (1 + truth)
    for tol in (0.05, 0.5):
        rep = kinkgrad.stationarity(prog, prog.x, tol=tol)
        lo, hi = rep.bounds
        assert lo - slack <= truth <= hi + slack
        if rep.verdict == "stationary":
            assert truth <= tol + slack
        elif rep.verdict == "not stationary":
            assert truth > tol - slack


N = 1000
MINIMIZERS = ["maxq", "mxhilb", "chained-lq", "chained-cb3-1", "chained-cb3-2",
              "active-faces", "brown2", "chained-crescent-1", "chained-crescent-2"]


@pytest.mark.parametrize("name", MINIMIZERS)
def test_rounded_minimizers_at_n_1000_are_stationary(name):
    # chained LQ's minimizer 1/sqrt(2) is not a float: no switch is exactly 0 there
    p = kinkgrad.problems.get(name, N)
    rep = kinkgrad.stationarity(p.f, p.x_star, radius=1e-6)
    assert rep.verdict == "stationary", rep


def test_chained_lq_needs_the_ball():
    p = kinkgrad.problems.get("chained-lq", N)
    at_point = kinkgrad.stationarity(p.f, p.x_star)
    # at the float point itself f is differentiable, with the gradient of one piece
    g = kinkgrad.grad(p.f)(p.x_star)
    assert at_point.verdict == "not stationary" and at_point.num_active == 0
    assert at_point.distance == pytest.approx(np.linalg.norm(g), rel=1e-12)
    assert kinkgrad.stationarity(p.f, p.x_star, radius=1e-6).verdict == "stationary"


def test_maxq_near_one_hundredth_is_not_stationary_with_a_checked_descent():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.05, 0.05, N)
    x[:20] = 0.1 * np.where(np.arange(20) % 2, 1.0, -1.0)  # f = 1e-2, 20 tied maximisers
    p = kinkgrad.problems.get("maxq", N)
    rep = kinkgrad.stationarity(p.f, x, radius=1e-6)
    assert float(p.f(x)) == pytest.approx(1e-2)
    assert rep.verdict == "not stationary" and rep.num_active == 19
    # the hull of the 20 gradients 2 x_i e_i: min-norm 0.2 / sqrt(20)
    assert rep.distance == pytest.approx(0.2 / np.sqrt(20), rel=1e-9)
    d = np.asarray(rep.descent)
    t = 1e-7
    assert (float(np.max((x + t * d) ** 2)) - 1e-2) / t == pytest.approx(rep.slope, rel=1e-4)
    assert rep.slope < 0


@pytest.mark.parametrize("kw, match", [({"radius": -1.0}, "radius"), ({"tol": 0.0}, "tol"),
                                       ({"radius": float("nan")}, "radius"),
                                       ({"seed": -1}, "seed"), ({"seed": 0.5}, "seed"),
                                       ({"radius": True}, "radius"), ({"tol": True}, "tol"),
                                       ({"seed": True}, "seed")])
def test_bad_arguments(kw, match):
    with pytest.raises(kinkgrad.KinkgradError, match=match):
        kinkgrad.stationarity(lambda x: knp.sum(knp.abs(x)), np.zeros(2), **kw)


def test_not_abs_smooth_is_undecided_not_an_error():
    # a tied comparison used as a number (a jump): not abs-smooth, so undecided
    rep = kinkgrad.stationarity(lambda x: knp.sum(x * (x > 0)), np.zeros(3))
    assert rep.verdict == "undecided" and "not abs-smooth" in rep.reason
    # the Euclidean norm at 0 is not abs-smooth either, but isolated it is decided: B
    # (zero_norms.py; tests/abs_normal/test_zero_norms.py)
    assert kinkgrad.stationarity(lambda x: knp.linalg.norm(x), np.zeros(3)).verdict == \
        "stationary"


def test_min_norm_decides_a_hull_passing_a_hair_from_zero():
    # three pieces of a max, all at height d along one axis, the origin's projection on the
    # edge between the first two: distance d = 1.5e-8 from O(1) candidates, rotated so that
    # every entry rounds. Truth: the exact minimum over that edge, in fractions (the hull's
    # minimum lies within rounding of it). The float bound alone is poor at this scale; the
    # exact bound must decide (tol = 1e-8 < d) and both bounds must hold.
    from fractions import Fraction as F

    from kinkgrad.abs_normal.minnorm import min_norm

    decided = 0
    for seed in range(40):
        Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(6, 6)))
        d = 1.5e-8
        V = np.array([[3.0, 0, 0, 0, 0, d], [-1.0, 0, 0, 0, 0, d], [-1.0, 2.0, 0, 0, 0, d]]) @ Q.T
        mn = min_norm(np.zeros(6), [V], enough=1e-8)
        a, b = ([F(float(v)) for v in V[i]] for i in (0, 1))
        e = [x - y for x, y in zip(a, b)]
        t = -sum(x * y for x, y in zip(b, e)) / sum(x * x for x in e)
        truth = float(sum((y + t * x) ** 2 for x, y in zip(e, b))) ** 0.5
        assert mn.lower <= truth + 1e-15 and truth <= mn.upper + 1e-15
        decided += mn.lower > 1e-8
    assert decided >= 34  # 27 of 40 when the exact bound was tried only below upper / 2


def _chained_zonotope(seed: int, distance: float):
    """700 chained segments conv{v_i, v_i + d_i}, d_i = -(a_i e_i + b_i e_(i+1)) with a_i,
    b_i ~ 5 (as chained Mifflin 2's |q_i| terms near its minimiser: D^T D is close to a
    discrete Laplacian, condition ~1e5), placed so that the minimum-norm point is at weights
    s with a dozen s_i ~ 1e-4 (an interior point solution weights them below 1e-3 of their
    block) and lies ``distance`` from 0 along the null space of D^T."""
    rng = np.random.default_rng(seed)
    n, m = 702, 700
    s_star = rng.uniform(0.05, 0.95, m)
    s_star[rng.choice(m, 12, replace=False)] = rng.uniform(1e-4, 3e-4, 12)
    D = np.zeros((n, m))
    for i in range(m):
        D[i:i + 2, i] = -rng.uniform(4.9, 5.0, 2)
    z = rng.normal(size=n)
    p_star = z - D @ np.linalg.lstsq(D, z, rcond=None)[0]  # orthogonal to every d_i
    p_star *= distance / np.linalg.norm(p_star) if distance else 0.0
    V0 = rng.normal(size=(m, 2))
    blocks = [(np.array([i, i + 1]), np.vstack([V0[i], V0[i] + D[i:i + 2, i]]))
              for i in range(m)]
    offset = np.bincount(np.r_[np.arange(m), np.arange(m) + 1], np.r_[V0[:, 0], V0[:, 1]],
                         minlength=n)
    g0 = p_star - D @ s_star - offset
    return g0, blocks, D, g0 + offset


def test_min_norm_reaches_a_long_chained_zonotope_at_zero():
    # Truth: the construction (weights s* in (0, 1) put the point exactly at 0). 3,000
    # chained segments, condition ~1e5: LSQR's affine polish stopped 5e-5 from 0 on this
    # seed ("undecided" at tol 1e-8); the sparse LU of the augmented system reaches 0.
    from kinkgrad.abs_normal.minnorm import min_norm

    rng = np.random.default_rng(0)
    m = 3000
    s_star = rng.uniform(0.05, 0.95, m)
    s_star[rng.choice(m, 12, replace=False)] = rng.uniform(1e-4, 3e-4, 12)
    a = -rng.uniform(4.9, 5.0, (m, 2))
    V0 = rng.normal(size=(m, 2))
    blocks = [(np.array([i, i + 1]), np.vstack([V0[i], V0[i] + a[i]])) for i in range(m)]
    at_star = np.zeros(m + 2)
    for (c, V), s in zip(blocks, s_star):
        at_star[c] += (1 - s) * V[0] + s * V[1]
    g0 = -at_star
    mn = min_norm(g0, blocks, enough=1e-8)
    assert mn.upper <= 1e-9 and mn.lower == 0.0
    point = g0 + sum(np.bincount(c, w @ V, minlength=m + 2)
                     for (c, V), w in zip(blocks, mn.weights))
    assert np.linalg.norm(point) == pytest.approx(mn.upper, rel=1e-6, abs=1e-13)  # rounding
    assert all(np.all(w >= 0) and abs(w.sum() - 1) < 1e-12 for w in mn.weights)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("distance", [0.0, 3e-8])
def test_min_norm_decides_a_chained_zonotope_near_zero(seed, distance):
    # Truth: the construction (the distance is known) and scipy's bounded least squares
    # (BVLS, an active-set method) on the same data: min ||b + D s|| over 0 <= s <= 1.
    # Before the polish tried the loose support, distance 0 ended at norm 9e-5 on seeds 1
    # and 3; before the refined exact bound, distance 3e-8 had lower bound 0 (the float
    # direction's cancellation error over 700 segments swamps 3e-8): "undecided" at tol 1e-8.
    from scipy.optimize import lsq_linear

    from kinkgrad.abs_normal.minnorm import min_norm

    g0, blocks, D, b = _chained_zonotope(seed, distance)
    truth = np.linalg.norm(b + D @ lsq_linear(D, -b, bounds=(0, 1), method="bvls").x)
    assert truth == pytest.approx(distance, abs=1e-11)
    mn = min_norm(g0, blocks, enough=1e-8)
    assert mn.lower <= truth + 1e-12 and truth - 1e-12 <= mn.upper
    if distance:
        assert mn.lower > 1e-8 and mn.upper <= truth + 1e-12
    else:
        assert mn.upper <= 1e-9
    n = g0.size
    point = g0 + sum(np.bincount(c, w @ V, minlength=n) for (c, V), w in zip(blocks, mn.weights))
    assert np.linalg.norm(point) == pytest.approx(mn.upper, rel=1e-6, abs=1e-13)  # rounding
    assert all(np.all(w >= 0) and abs(w.sum() - 1) < 1e-12 for w in mn.weights)


def test_a_block_too_large_to_describe_is_undecided(monkeypatch):
    # active faces at 0: one block of 2n + 1 coupled switches over n columns. With the dense
    # limit below its size, stationarity says "undecided" (and why) instead of allocating,
    # in_clarke raises a KinkgradError naming the block, certify stays uncertified
    from kinkgrad import problems
    from kinkgrad.abs_normal import _block_rows

    p = problems.get("active-faces", 50)
    x = np.zeros(50)
    assert kinkgrad.stationarity(p.f, x).verdict == "stationary"
    monkeypatch.setattr(_block_rows, "DENSE_BLOCK", 100)
    rep = kinkgrad.stationarity(p.f, x)
    assert rep.verdict == "undecided" and "too large" in rep.reason and not rep
    with pytest.raises(kinkgrad.KinkgradError, match="coupled active switches"):
        kinkgrad.in_clarke(p.f, x, np.zeros(50))
    assert not kinkgrad.certify(p.f, x).certified


@pytest.mark.parametrize("eps", [1e-9, 1e-12, 1e-16, 0.0, -1e-9])
@pytest.mark.parametrize("form", ["min", "max"])
def test_a_switch_reached_through_a_near_active_one_is_in_the_ball(eps, form):
    # min(2x + eps, -x, 2x) at x = -0.0026, radius 0.01: the tie of 2x + eps and 2x has
    # gradient 0 on x's piece but reads the comparison with -x (near-active: its kink x = 0
    # lies in the ball), across which it moves: the ball meets the slopes 2 and -1, and 0 is
    # in their hull. The set was {2}, "not stationary", for eps > 0.
    sign = 1.0 if form == "min" else -1.0
    red = knp.min if form == "min" else knp.max

    def f(x):
        return sign * red(knp.stack([sign * (2 * x[0] + eps), -sign * x[0], sign * 2 * x[0]]))

    x = np.array([-0.0026])
    slopes = {float(kinkgrad.grad(f)(np.array([t]))[0])  # the truth: plain AD off the kinks
              for t in x[0] + np.linspace(-0.0099, 0.0099, 41) if abs(t) > 1e-6}
    assert slopes == {2.0, -1.0}
    assert kinkgrad.stationarity(f, x, radius=0.01).verdict == "stationary"


@pytest.mark.parametrize("seed", range(6))
def test_the_ball_never_misses_a_slope_of_a_nested_min(seed):
    # min over random affine pieces in R^1, some of them parallel and 1e-9 apart, at a point
    # beside a kink: "not stationary" at radius r only where the slopes AD meets in [x - r,
    # x + r] (a fine grid off the kinks) all have one sign
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, 6).astype(float)
    b = rng.normal(size=6) * 1e-2
    a[3:], b[3:] = a[:3], b[:3] + 1e-9  # near-duplicate pieces
    f = lambda x: knp.min(a * x[0] + b)  # noqa: E731
    for x0 in rng.normal(size=8) * 1e-2:
        for r in (1e-3, 1e-2):
            ts = x0 + np.linspace(-r, r, 2001)
            slopes = {float(kinkgrad.grad(f)(np.array([t]))[0]) for t in ts}
            rep = kinkgrad.stationarity(f, np.array([x0]), radius=r)
            if rep.verdict == "not stationary":
                assert min(slopes) > 0 or max(slopes) < 0, (x0, r, slopes)


@pytest.mark.parametrize("form", ["min(-x, |x|)", "max(x, -|x|)", "2-d"])
def test_degenerate_k_way_blocks_on_piecewise_linear_programs_are_decided(form):
    # min(-x, |x|) = -x and max(x, -|x|) = x everywhere: the k-way block's outer set held the
    # slope of the leaf never selected (+1, -1), its inner only the realised one: "undecided"
    # on a smooth function. Enumerating the realised pieces (exact for PL programs) decides
    if form == "2-d":
        def f(x):
            return knp.minimum(-x[0], knp.abs(x[0])) + 0.5 * knp.abs(x[1])

    else:
        def f(x):
            return (knp.minimum(-x[0], knp.abs(x[0])) if form.startswith("min")
                    else knp.maximum(x[0], -knp.abs(x[0])))
    n = 2 if form == "2-d" else 1
    h = 1e-6
    for t in (-1e-3, 1e-3):  # the truth: central differences beside 0
        y, e = np.full(n, t), h * np.eye(n)[0]
        g = (float(f(y + e)) - float(f(y - e))) / (2 * h)
        assert abs(abs(g) - 1.0) < 1e-6
    rep = kinkgrad.stationarity(f, np.zeros(n))
    assert rep.verdict == "not stationary", rep.reason
    assert rep.bounds[0] == pytest.approx(1.0, abs=1e-9)  # 2-d: {-1} x [-1/2, 1/2]


def test_a_decided_verdict_on_few_switches_has_the_exact_distance():
    # -min(-x, -2x) - relu(-2x + min(-x, -2x)) / 2 at 0: slopes 2 (right) and 2.5 (left),
    # by hand: the set [2, 2.5], distance 2. The verdict was right with the bounds [1, 2]
    # and distance 1 (the outer set's); two switches: the realised pieces are enumerated
    def f(x):
        m = knp.minimum(-1.0 * x[0], -2.0 * x[0])
        return -1.0 * m - 0.5 * knp.relu(-2.0 * x[0] + 1.0 * m)

    rep = kinkgrad.stationarity(f, np.zeros(1), tol=1e-9)
    assert rep.verdict == "not stationary" and rep.exact
    assert rep.distance == pytest.approx(2.0) and rep.bounds == pytest.approx((2.0, 2.0))
    assert rep.slope == pytest.approx(-2.5)  # along -1: f = 2.5 x on the left
