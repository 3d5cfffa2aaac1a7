"""stationarity and minimality at a radius > 0 against the ball's own set, computed
independently: for piecewise-linear functions of one variable the exact hull of the slopes
on the pieces that meet [x - r, x + r] (breakpoints by hand, slopes by central differences
inside each piece); in more variables the hull of plain AD gradients at random points of
the ball (an inner approximation of the set, so its distance bounds the true one from above)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from _least_distance import hull_min_norm
from kinkgrad.abs_normal import ball_model


def ball_slopes(f_np, kinks: np.ndarray, x: float, r: float) -> np.ndarray:
    """The slopes of a piecewise-linear f of one variable on its pieces meeting [x - r, x + r]
    (kinks: every breakpoint of f, possibly more)."""
    cuts = np.sort(np.r_[x - r, kinks[(kinks > x - r) & (kinks < x + r)], x + r])
    mids = (cuts[:-1] + cuts[1:]) / 2
    h = np.maximum(np.diff(cuts) / 8, 1e-12)
    return np.array([(f_np(m + e) - f_np(m - e)) / (2 * e) for m, e in zip(mids, h)])


def distance(slopes: np.ndarray) -> float:
    lo, hi = float(slopes.min()), float(slopes.max())
    return 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))


def test_a_k_way_candidate_dominated_throughout_the_ball_does_not_count():
    # max(2x, x/2 + 1, 1/2) at 0.8, r = 0.6: both comparisons are near-active (their kinks
    # 2/3 and 1/4 ... the second is the entry 1/2 against 2x), but on [0.2, 1.4] the entry
    # 1/2 never wins (x/2 + 1 >= 1.1 there): the ball meets the slopes 1/2 and 2 only
    def f(x):
        return knp.max(knp.stack([2 * x[0], x[0] / 2 + 1, 0 * x[0] + 0.5]))

    def f_np(t):
        return max(2 * t, t / 2 + 1, 0.5)

    truth = ball_slopes(f_np, np.array([2 / 3, 0.25, -1.0]), 0.8, 0.6)
    assert set(np.round(truth, 9)) == {0.5, 2.0}
    rep = kinkgrad.stationarity(f, np.array([0.8]), radius=0.6)
    assert rep.verdict == "not stationary", rep.reason
    assert rep.bounds[0] == pytest.approx(0.5, abs=1e-9)
    assert rep.slope == pytest.approx(-2.0)  # f'(0.8; -1)
    mini = kinkgrad.minimality(f, np.array([0.8]), radius=0.6)
    assert mini.verdict == "not minimal" and mini.slope < 0  # f falls leftwards at 0.8


def test_the_piece_between_two_near_active_kinks_counts():
    # x - 2 relu(x - 0.5) + 3 relu(x - 0.8) at 0, r = 0.9: moving both kinks onto x lost the
    # slope -1 on (0.5, 0.8), so the set was [1, 2], "not stationary"; the ball meets the
    # slopes 1, -1 and 2, and holds the strict local minimiser 0.8
    def f(x):
        return x[0] - 2 * knp.relu(x[0] - 0.5) + 3 * knp.relu(x[0] - 0.8)

    def f_np(t):
        return t - 2 * max(t - 0.5, 0) + 3 * max(t - 0.8, 0)

    truth = ball_slopes(f_np, np.array([0.5, 0.8]), 0.0, 0.9)
    assert set(np.round(truth, 9)) == {1.0, -1.0, 2.0}
    assert kinkgrad.stationarity(f, np.array([0.0]), radius=0.9).verdict == "stationary"


def test_separate_kinks_that_cannot_meet_within_the_ball():
    # |x0 - 1/2| + |x1 - 1/2| at 0, r = 0.6: each kink alone is near-active, together
    # (1/2, 1/2) is 0.71 away, so the piece (1, 1) is not met; (1, -1) and (-1, 1) are, and
    # 0 is their mean: stationary. No point of the ball puts both on their kinks, and f falls
    # at 0 along (1, 1): not minimal (the model holding both on their kinks said minimal)
    def f(x):
        return knp.abs(x[0] - 0.5) + knp.abs(x[1] - 0.5)

    x = np.zeros(2)
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4000, 2))
    pts = 0.6 * u / np.linalg.norm(u, axis=1, keepdims=True) * rng.random((4000, 1)) ** 0.5
    G = np.unique([np.asarray(kinkgrad.grad(f)(p)) for p in pts], axis=0)
    assert {tuple(g) for g in G} == {(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0)}
    assert hull_min_norm(G) <= 1e-12
    rep = kinkgrad.stationarity(f, x, radius=0.6)
    assert rep.verdict == "stationary", rep.reason
    mini = kinkgrad.minimality(f, x, radius=0.6)
    assert mini.verdict == "not minimal", mini.reason
    assert mini.slope == pytest.approx(-np.sqrt(2))


@pytest.mark.parametrize("s", [1e-20, 1e-200, 1e100])
def test_a_scaled_program_falls_where_the_unscaled_one_does(s):
    # s (|x0 - 1/2| + |x1 - 1/2|) at 0, r = 0.6 falls along (1, 1) as the unscaled one does
    # (truth: f(t (1, 1)) = s (1 - 2t) below f(0) = s). The fall had to beat an absolute
    # 4 u (1 + |f(x)|), never beaten below s ~ 1e-15, and x's own gradient was normalised
    # by a norm whose square underflowed below ~1e-154: "undecided"
    def f(x):
        return s * (knp.abs(x[0] - 0.5) + knp.abs(x[1] - 0.5))

    assert f(np.full(2, 0.3)) < f(np.zeros(2))
    mini = kinkgrad.minimality(f, np.zeros(2), radius=0.6, tol=1e-8 * s)
    assert mini.verdict == "not minimal", mini.reason
    assert mini.slope == pytest.approx(-np.sqrt(2) * s)


def test_many_near_active_kinks_fall_back_soundly():
    # the dominated candidate beside 21 kinks |x_i - 0.1| (23 near-active switches, beyond
    # the enumeration): the moved model's set holds 0 (its first coordinate [0, 2]); the
    # ball's first coordinate is in {1/2, 2}, so the ball's set does not. Not "stationary"
    def f(x):
        return knp.max(knp.stack([2 * x[0], x[0] / 2 + 1, 0 * x[0] + 0.5])) \
            + knp.sum(knp.abs(x[1:] - 0.1))

    x = np.r_[0.8, np.zeros(21)]
    rng = np.random.default_rng(1)
    for _ in range(200):
        u = rng.standard_normal(22)
        g = np.asarray(kinkgrad.grad(f)(x + 0.6 * rng.random() * u / np.linalg.norm(u)))
        assert g[0] in (0.5, 2.0)
    rep = kinkgrad.stationarity(f, x, radius=0.6)
    assert rep.verdict != "stationary", rep.reason
    assert kinkgrad.minimality(f, x, radius=0.6).verdict != "minimal"


@pytest.mark.parametrize("seed", range(6))
def test_random_one_variable_programs_against_their_exact_ball_sets(seed):
    # sums of weighted relu / abs kinks and a max of affine pieces, x within a few radii of
    # the kinks, radii 1e-3 .. 0.5: a verdict must agree with the exact hull of the slopes
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(40):
        k = int(rng.integers(1, 4))
        w, b = rng.normal(size=k), rng.normal(scale=0.5, size=k)
        a, c = rng.normal(size=3), rng.normal(size=3)
        g0 = float(rng.normal())
        r = float(10.0 ** rng.uniform(-3, -0.3))
        kinks = np.r_[b, [(c[j] - c[i]) / (a[i] - a[j]) for i in range(3) for j in range(i)]]
        x0 = float(rng.choice(kinks) + rng.uniform(-3, 3) * r)

        def f(x, w=w, b=b, a=a, c=c, g0=g0):
            t = x[0]
            return g0 * t + knp.sum(w * knp.abs(t - b)) + knp.max(a * t + c)

        def f_np(t, w=w, b=b, a=a, c=c, g0=g0):
            return g0 * t + float(np.sum(w * np.abs(t - b))) + float(np.max(a * t + c))

        truth = distance(ball_slopes(f_np, kinks, x0, r))
        rep = kinkgrad.stationarity(f, np.array([x0]), radius=r, tol=1e-6)
        if rep.verdict == "stationary":
            assert truth <= 1e-6 + 1e-9, (seed, x0, r, rep.reason)
        elif rep.verdict == "not stationary":
            assert truth > 1e-6, (seed, x0, r, rep.reason)
            assert rep.bounds[0] <= truth + 1e-9
        checked += rep.verdict != "undecided"
    assert checked >= 32  # decided, not dodged


@pytest.mark.parametrize("seed", range(4))
def test_random_two_variable_programs_never_exclude_sampled_gradients(seed):
    # a "not stationary" lower bound holds for every element of the ball's set, so for every
    # plain AD gradient at a random point of the ball and for their hull (the truth's inner
    # approximation): its distance from 0 can never be below the bound
    rng = np.random.default_rng(100 + seed)
    for _ in range(12):
        B, c = rng.normal(size=(4, 2)), rng.normal(scale=0.3, size=4)
        w = rng.normal(size=4)
        g0 = rng.normal(size=2)
        r = float(10.0 ** rng.uniform(-2, -0.3))
        x0 = np.linalg.lstsq(B[:2], -c[:2], rcond=None)[0] + rng.uniform(-2, 2, 2) * r

        def f(x, B=B, c=c, w=w, g0=g0):
            z = B @ x + c
            return g0 @ x + knp.sum(w[:2] * knp.abs(z[:2])) + knp.max(z[2:] * w[2:])

        rep = kinkgrad.stationarity(f, x0, radius=r, tol=1e-6)
        if rep.verdict != "not stationary":
            continue
        u = rng.standard_normal((400, 2))
        pts = x0 + r * u / np.linalg.norm(u, axis=1, keepdims=True) * rng.random((400, 1)) ** 0.5
        G = np.unique(np.round([np.asarray(kinkgrad.grad(f)(p)) for p in pts], 12), axis=0)
        assert hull_min_norm(G) >= rep.bounds[0] - 1e-9, (seed, x0, r, rep.reason)


def test_the_thin_cells_between_near_tied_entries_of_a_sort_count():
    # w . sort(b x + c), entries of c 1e-10 apart, radius 1e-6: the three entries' kinks lie
    # within 6e-9 of 0, and the cells between them (no direction from 0 enters them) carry
    # the slopes 0.561 and -0.228 beside the outer ones -0.341 and -0.181: 0 is in the hull
    b = np.array([0.5854028, 1.23739649, 0.55118076])
    w = np.array([-0.53947874, 0.84499048, -0.30551174])
    c = np.arange(3) * 1e-10

    def f_np(t):
        return float(np.sum(np.sort(b * t + c) * w))

    kinks = np.array([(c[j] - c[i]) / (b[i] - b[j]) for i in range(3) for j in range(i)])
    truth = ball_slopes(f_np, kinks, 0.0, 1e-6)
    assert truth.min() < 0 < truth.max() and len(truth) == 4
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.sort(b * x[0] + c) * w), np.zeros(1),
                                radius=1e-6)
    assert rep.verdict == "stationary", rep.reason


@pytest.mark.parametrize("scale", [1.0, 1e-12, 1e-30])
def test_a_scaled_function_keeps_its_k_way_candidates(scale):
    # s max(2x, x/2, 0) at 0: the Clarke set s [0, 2] holds 0 at every scale; candidates were
    # told apart to 11 digits of max(1, their size), so below 1e-11 they merged into one and
    # the set was {2 s} (bounds (2e-12, 2e-12) at s = 1e-12)
    def f(x):
        return scale * knp.max(knp.stack([2 * x[0], x[0] / 2, 0 * x[0]]))

    h = 1e-6  # the truth: the slopes beside 0 are 0 (left) and 2 s (right)
    assert float(f(np.array([-h]))) == 0.0 and float(f(np.array([h]))) == pytest.approx(
        2 * scale * h)
    rep = kinkgrad.stationarity(f, np.zeros(1), tol=0.1 * scale)
    assert rep.verdict == "stationary", rep.reason
    rep = kinkgrad.stationarity(lambda x: scale * knp.max(knp.stack(
        [2 * x[0], x[0] / 2 + 1, 0.5 + 0 * x[0]])), np.array([0.8]), radius=0.6, tol=0.6 * scale)
    assert rep.verdict == "stationary", rep.reason  # the ball's slopes {1/2, 2} s


def test_the_upper_bound_of_a_not_stationary_ball_is_an_element_of_its_set():
    # a ReLU / abs net at radius 0.49: the moved model's inner element (norm 0.0586) was
    # reported as the upper bound, with exact=True; the ball's set is 0.1258 from 0 (sampled
    # gradients in the ball, as in the docstring's truth)
    W1 = np.array([[1.73, 0.23, -0.27], [0.02, 0.17, 0.78], [-1.81, -0.83, -1.35]])
    b1 = np.array([-0.24, 0.64, 0.15])
    W2 = np.array([[0.29, -1.48, -0.87], [0.3, 0.02, 0.07], [-0.31, 0.35, 0.02]])
    b2 = np.array([-0.74, 0.26, 0.0])
    v, c = np.array([0.35, -1.06, -1.78]), np.array([-0.26, -0.04, 0.01])
    x, r = np.array([0.03, 0.46, 0.04]), 0.492

    def f(x):
        return knp.sum(v * knp.abs(W2 @ knp.maximum(W1 @ x + b1, 0) + b2)) + c @ x

    rng = np.random.default_rng(0)
    U = rng.standard_normal((20000, 3))
    X = x + U / np.linalg.norm(U, axis=1)[:, None] * (r * rng.random(20000) ** (1 / 3))[:, None]
    Z1 = X @ W1.T + b1
    S2 = np.sign(np.maximum(Z1, 0) @ W2.T + b2)
    G = np.unique(c + ((Z1 > 0) * ((v * S2) @ W2)) @ W1, axis=0)
    truth = hull_min_norm(G)
    assert truth == pytest.approx(0.1258, abs=1e-3)
    rep = kinkgrad.stationarity(f, x, radius=r, tol=0.05)
    assert rep.verdict == "not stationary"
    assert rep.bounds[0] <= truth + 1e-9 <= rep.bounds[1] + 2e-9


def test_extreme_radii_give_no_warning_and_no_wrong_verdict():
    # radius 1e300 overflowed ||d||^2 (a RuntimeWarning, then d scaled by 0); radius 1e-300
    # underflowed the meeting point's least squares ("minimal" lost below 1e-160)
    def f(x):
        return x[0] - 2 * knp.relu(x[0] - 0.5) + 3 * knp.relu(x[0] - 0.8)

    rep = kinkgrad.stationarity(f, np.zeros(1), radius=1e300, tol=0.5)
    assert rep.verdict != "not stationary"  # the ball meets the slopes 1, -1 and 2
    for r in (1e-100, 1e-200, 1e-300):
        rep = kinkgrad.minimality(lambda x, r=r: knp.abs(x[0] - r / 2), np.zeros(1), radius=r)
        assert rep.verdict == "minimal", rep.reason  # |x - r/2| is minimal at r/2, in the ball


def test_beside_a_norm_at_zero_kinks_that_cannot_meet_prove_nothing():
    # the dominated k-way entry beside ||x[1:]|| at 0: the ball's set is {1/2, 2} x the unit
    # disc (distance 1/2); the moved model's (with the norm's disc) held 0: "stationary"
    def f(x):
        return knp.max(knp.stack([2 * x[0], x[0] / 2 + 1, 0 * x[0] + 0.5])) \
            + knp.linalg.norm(x[1:])

    x = np.array([0.8, 0.0, 0.0])
    rng = np.random.default_rng(2)
    for _ in range(200):  # the truth: the first coordinate of every gradient in the ball
        u = rng.standard_normal(3)
        g = np.asarray(kinkgrad.grad(f)(x + 0.6 * rng.random() * u / np.linalg.norm(u)))
        assert g[0] in (0.5, 2.0)
    assert kinkgrad.stationarity(f, x, radius=0.6).verdict != "stationary"


def test_a_minimal_verdict_at_a_radius_names_the_point_it_is_about():
    # |x0 - 1e-9| + |x1 + 2e-9| + (x0 + x1) / 10 at 0, radius 1e-8: minimal at the point
    # y = (1e-9, -2e-9) where both kinks meet, sqrt(5) 1e-9 from x; f falls at x itself
    def f(x):
        return knp.abs(x[0] - 1e-9) + knp.abs(x[1] + 2e-9) + (x[0] + x[1]) / 10

    x = np.zeros(2)
    h = 1e-12  # the truth: f falls at x along (1, 0) (slope -0.9)
    assert (float(f(x + [h, 0.0])) - float(f(x))) / h == pytest.approx(-0.9, rel=1e-3)
    rep = kinkgrad.minimality(f, x, radius=1e-8)
    assert rep.verdict == "minimal"
    assert f"{np.sqrt(5) * 1e-9:.3g} from x" in rep.reason and "fall at x itself" in rep.reason


def _verdicts_agree_with_slopes(f, exact_slope, radii) -> None:
    """stationarity of the 1-D f at 0 at each radius is "undecided" or the truth: 0 in the
    hull of the exact slopes (``exact_slope(t)``, f read in real arithmetic) on the ball."""
    for r in radii:
        slopes = {exact_slope(t) for t in np.linspace(-r, r, 2001)}
        truth = "stationary" if min(slopes) <= 0 <= max(slopes) else "not stationary"
        rep = kinkgrad.stationarity(f, np.zeros(1), radius=r, tol=1e-8)
        assert rep.verdict in ("undecided", truth), (r, rep.reason)


def test_a_kink_reached_through_a_nested_near_active_one():
    # -x - 4 clip(|x|, 0, 1/2) + 4|x| at 0 has the slopes -1 on |x| < 1/2, 3 beyond 1/2 and
    # -5 below -1/2 (exact, as a piecewise-linear function of x): a ball of radius 3/4 holds
    # 0 in its set. The clip's upper switch reads |x| through its lower one, whose gradient
    # on x's piece is 0, so the reach test (that gradient alone) left it out: "not
    # stationary" (bounds (1, 1)) was wrong for every radius in (1/2, 1)
    def f(x):
        return -x[0] - 4 * knp.clip(knp.abs(x[0]), 0.0, 0.5) + 4 * knp.abs(x[0])

    def exact_slope(t: float) -> float:  # of the same program in real arithmetic
        return -1.0 if abs(t) < 0.5 else (3.0 if t > 0 else -5.0)

    _verdicts_agree_with_slopes(f, exact_slope, (0.3, 0.6, 0.75, 0.99, 1.2))


def test_a_kink_reached_through_a_near_active_one_off_its_kink():
    # x - relu(relu(|x + 1/4| - 3/8) - 1/8) at 0: the inner relu switches on at 1/8 and the
    # outer at 1/4, past which the slope is 0 (exact, as a piecewise-linear function of x).
    # The reach of the outer switch took |x + 1/4| in [0, r] over the ball (the near-active
    # switch moved onto its kink) instead of [1/4 - r, 1/4 + r]: "not stationary" at radii
    # 0.26 and 0.3, where the ball holds the slopes 1 and 0
    def f(x):
        return x[0] - knp.relu(knp.relu(knp.abs(x[0] + 0.25) - 0.375) - 0.125)

    def exact_slope(t: float) -> float:
        return 0.0 if t > 0.25 else 1.0

    _verdicts_agree_with_slopes(f, exact_slope, (0.2, 0.26, 0.3, 0.5))


def test_a_kink_reached_through_a_three_way_tie():
    # |max(3x, 3x/4, 3x/2) - 1/4| at 0, radius 0.1: slopes -3/4, -3 and +3 on the ball (the
    # outer kink at 1/12 lies inside), so 0 is in the set; "not stationary" (bounds 0.75):
    # the tie's second comparator reads the first's |z| and has a gradient of its own, so
    # the nested reach left it out; it is now the sum for every switch, capped by the
    # sort's switch_lipschitz (2 max |move of an entry|) where a tie's inputs are clean
    def f(x):
        return knp.abs(knp.sort(knp.stack([3.0 * x[0], 0.75 * x[0], 1.5 * x[0]]))[2] - 0.25)

    rep = kinkgrad.stationarity(f, np.zeros(1), radius=0.1, tol=1e-8)
    assert rep.verdict in ("undecided", "stationary"), rep.reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-12, 12), min_size=2, max_size=4), st.integers(-6, 6),
       st.sampled_from([0.045, 0.11, 0.33, 0.7, 1.3]), st.booleans())
def test_kinks_read_through_a_k_way_tie_against_brute_force(slopes, c, radius, by_sort):
    # f = |max_i(a_i x) - c/8| at 0 (a 1-D piecewise-linear program): the ball's set is the
    # hull of the slopes f takes on [-r, r]: sign(A x - c/8) A for x > 0 (A = max a_i, the
    # tie's winner there) and sign(B x - c/8) B for x < 0 (B = min a_i); brute force on a
    # grid finer than every kink's distance (the radii avoid the kinks c/(8A) exactly)
    a = np.array(slopes, float) / 4
    cc = c / 8

    def f(x):
        v = knp.stack([float(ai) * x[0] for ai in a])
        top = knp.sort(v)[-1] if by_sort else knp.max(v)
        return knp.abs(top - cc)

    xs = np.linspace(-radius, radius, 8001)  # NOTE: the slopes between grid points lie in
    fx = np.abs(np.max(np.outer(xs, a), axis=1) - cc)  # the hull of the pieces' slopes
    s = np.diff(fx) / np.diff(xs)
    truth = 0.0 if (s.min() <= 1e-12 and s.max() >= -1e-12) else float(np.min(np.abs(s)))
    rep = kinkgrad.stationarity(f, np.zeros(1), radius=radius, tol=1e-8)
    if rep.verdict == "stationary":
        assert truth <= 1e-8, (rep.reason, truth)
    elif rep.verdict == "not stationary":
        assert truth > 1e-8, (rep.reason, truth)


# (slopes, offsets, which order statistic (None: knp.max), linear term, radius): a comparator
# of a tournament or sorting network that flips inside the ball, reached only through a
# near-active (or tied) comparator of the same primitive one level down (an adversarial pass)
_NETWORK_CASES = [
    ([0.0, -3.0, 0.0, 0.0, 0.0], [0.0, 1 / 32, 1 / 32, -1.0, 1 / 16], None, 1.0, 0.011),
    ([-0.5, 3.0, -0.25, -3.0, 1.5], [0.0, 1 / 32, 1 / 32, 1 / 64, -1 / 32], 0, 0.0, 0.011),
    ([0.25, 2, -1, -1, 0, -0.0625, -0.5],
     [-0.015625, -0.046875, -0.046875, 0.0625, -0.03125, -0.046875, -0.015625], 6, 0.0, 0.037),
    ([0.25, 1, -0.25, -0.5, 3, 0], [-0.0625, -0.015625, 0.0, -0.046875, -0.015625, 0.015625],
     2, 0.5, 0.011),
]


@pytest.mark.parametrize("case", range(len(_NETWORK_CASES)))
def test_a_network_comparator_reached_through_its_own_primitive(case):
    a, b, idx, lin, r = _NETWORK_CASES[case]

    def f(x):
        v = knp.stack([float(ai) * x[0] + bi for ai, bi in zip(a, b)])
        return (knp.max(v) if idx is None else knp.sort(v)[idx]) + lin * x[0]

    xs = np.linspace(-r, r, 400001)  # NOTE: brute force: the slopes f takes on the ball
    vals = np.outer(xs, a) + b
    fx = (vals.max(1) if idx is None else np.sort(vals, 1)[:, idx]) + lin * xs
    s = np.diff(fx) / np.diff(xs)
    assert s.min() <= 0 <= s.max()  # the truth: stationary (the hull of the slopes holds 0)
    rep = kinkgrad.stationarity(f, np.zeros(1), radius=r, tol=1e-8)
    assert rep.verdict in ("stationary", "undecided"), rep.reason


def _min_beside_many_kinks(x):
    # min(2 x0 + 1e-9, -x0, 2 x0) + sum_i |x_i| (i >= 1): the min's tie of its first and
    # last entries reads the comparison with -x0, near-active at x0 = -0.0026
    a = x[0]
    return knp.min(knp.stack([2 * a + 1e-9, -a, 2 * a])) + knp.sum(knp.abs(x[1:]))


@pytest.mark.parametrize("extra", [10, 4200])
def test_a_nested_reach_beside_thousands_of_near_active_switches(extra):
    # at x = (-0.0026, 0, ..., 0), radius 0.01: the ball holds y = (1e-4, 0, ..., 0), where the
    # min is -x0 (slope -1), and x, where it is 2 x0 (slope 2); with every |x_i| at its kink
    # at both, the set holds (2, 0, ..., 0) and (-1, 0, ..., 0), so 1/3 of one plus 2/3 of the
    # other: 0, stationary. Beyond 4,096 near-active switches and their readers the nested
    # reach was skipped, and the ball's set {2} x [-1, 1]^extra said "not stationary, the set
    # described exactly"
    x = np.zeros(extra + 1)
    x[0] = -0.0026
    rep = kinkgrad.stationarity(_min_beside_many_kinks, x, radius=0.01, tol=1e-8)
    assert rep.verdict in ("stationary", "undecided"), rep.reason


def test_past_the_nested_rows_limit_the_ball_says_undecided(monkeypatch):
    # too many rows for the nested reach: every switch reading a near-active one may be reached
    monkeypatch.setattr(ball_model, "_NESTED_LIMIT", 0)
    monkeypatch.setattr(ball_model, "_NESTED_ROWS", 1)
    x = np.zeros(11)
    x[0] = -0.0026
    rep = kinkgrad.stationarity(_min_beside_many_kinks, x, radius=0.01, tol=1e-8)
    assert rep.verdict in ("stationary", "undecided"), rep.reason


def test_the_nested_reach_of_the_rows_read_alone_agrees_with_brute_force(monkeypatch):
    # the path taken beyond _NESTED_LIMIT (rows of the switches the candidates read only),
    # forced on the 1-D cases whose truth is brute force on a grid: the same verdicts
    monkeypatch.setattr(ball_model, "_NESTED_LIMIT", 0)
    for case in range(len(_NETWORK_CASES)):
        test_a_network_comparator_reached_through_its_own_primitive(case)
    test_a_kink_reached_through_a_nested_near_active_one()
    test_a_kink_reached_through_a_near_active_one_off_its_kink()
    test_a_kink_reached_through_a_three_way_tie()
    test_a_nested_reach_beside_thousands_of_near_active_switches(10)
