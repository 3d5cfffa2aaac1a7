"""A ``where`` tied at x whose branches agree (abs_normal/where_ties.py): Huber and ReLU
written with ``where`` get Clarke answers; a ``where`` that jumps is still refused.

Truth: gradients of plain-NumPy versions of the same functions by central differences at
points on either side of the tie (their hull is the Clarke subdifferential of these
one-dimensional piecewise-smooth functions), and hand values.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import NotAbsSmoothError

# (name, kinkgrad function, numpy function, point, [Clarke interval endpoints] per coordinate)
CASES = [
    ("relu", lambda x, m=knp: m.where(x > 0, x, 0.0), 0.0),
    ("relu via <", lambda x, m=knp: m.where(x < 0, 0.0, x), 0.0),
    ("V", lambda x, m=knp: m.where(x >= 0, 2.0 * x, -x), 0.0),
    ("concave", lambda x, m=knp: m.where(x > 0, -x, 2.0 * x), 0.0),
    ("huber at 1", lambda x, m=knp: m.where(m.abs(x) <= 1.0, 0.5 * x * x, m.abs(x) - 0.5), 1.0),
    ("huber at -1", lambda x, m=knp: m.where(m.abs(x) <= 1.0, 0.5 * x * x, m.abs(x) - 0.5),
     -1.0),
    ("shifted", lambda x, m=knp: m.where(x > 0.5, 3.0 * (x - 0.5), 0.25 * (x - 0.5)), 0.5),
]


def _fd_sides(f, x0: float, t: float = 1e-6, h: float = 1e-8) -> list[float]:  # noqa: ANN001
    """Derivatives at x0 - t and x0 + t by central differences of the NumPy version."""
    out = []
    for p in (x0 - t, x0 + t):
        out.append((float(f(np.float64(p + h), np)) - float(f(np.float64(p - h), np))) / (2 * h))
    return out


def _truth(f, x0: float) -> tuple[float, float]:  # noqa: ANN001
    lo, hi = sorted(_fd_sides(f, x0))
    return lo, hi


@pytest.mark.parametrize("name,f,x0", CASES, ids=[c[0] for c in CASES])
def test_tied_where_gets_the_clarke_set(name: str, f, x0: float) -> None:  # noqa: ANN001
    lo, hi = _truth(f, x0)
    x = np.float64(x0)
    sub = kinkgrad.subdifferential(lambda v: f(v), x)
    got = sorted(float(g) for g in np.ravel(sub.matrix))
    np.testing.assert_allclose([got[0], got[-1]], [lo, hi], atol=1e-5)
    g, _ = kinkgrad.clarke_grad(lambda v: f(v), x)
    assert min(abs(float(g) - lo), abs(float(g) - hi)) < 1e-5  # a limiting gradient
    for d in (1.0, -1.0):  # one-sided derivative: the derivative on the side d points to
        side = _fd_sides(f, x0)[1 if d > 0 else 0]
        np.testing.assert_allclose(kinkgrad.directional(lambda v: f(v), x, np.float64(d)),
                                   d * side, atol=1e-5)
    assert kinkgrad.in_clarke(lambda v: f(v), x, np.float64(np.round(0.5 * (lo + hi), 5)))
    if hi - lo > 1e-3:
        assert not kinkgrad.in_clarke(lambda v: f(v), x, np.float64(hi + 0.5))


def test_stationarity_and_certify_on_a_where_written_kink() -> None:
    f = lambda x: knp.sum(knp.where(x > 0, x, -0.5 * x))  # noqa: E731 - [-0.5, 1] at 0
    assert kinkgrad.stationarity(f, np.zeros(3)).verdict == "stationary"
    g = lambda x: knp.sum(knp.where(x > 0, x, 0.25 * x)) - 0.5 * x[0]  # noqa: E731
    rep = kinkgrad.stationarity(g, np.zeros(2))  # [0.25, 1] - 0.5 contains 0; x1: [0.25, 1]
    assert rep.verdict == "not stationary"
    np.testing.assert_allclose(rep.distance, 0.25, rtol=1e-9)
    assert kinkgrad.certify(g, np.zeros(2)).certified


def test_a_where_that_jumps_is_still_refused() -> None:
    with pytest.raises(NotAbsSmoothError, match="branches of its `where` differ"):
        kinkgrad.clarke_grad(lambda x: knp.where(x > 0, x + 1.0, x), np.float64(0.0))
    # branches agree at x but part along the switching surface x0 = 0: a jump at (0, t)
    with pytest.raises(NotAbsSmoothError, match="not a multiple of the switching quantity"):
        kinkgrad.certify(lambda x: knp.where(x[0] > 0, x[1], 0.0), np.zeros(2))
    with pytest.raises(NotAbsSmoothError, match="used other than as the condition"):
        kinkgrad.directional(lambda x: knp.sum(x * (x > 0)), np.zeros(2), np.ones(2))


def test_plain_grad_still_follows_the_condition() -> None:
    x = np.array([0.0, 0.0])
    np.testing.assert_array_equal(
        kinkgrad.grad(lambda v: knp.sum(knp.where(v >= 0, v, 0.0)))(x), [1.0, 1.0])
    np.testing.assert_array_equal(
        kinkgrad.grad(lambda v: knp.sum(knp.where(v > 0, v, 0.0)))(x), [0.0, 0.0])


@pytest.mark.parametrize("f, grad_at_0, certified", [
    # identically 0 (Clarke {0}); grad follows the conditions: 0 + (-1) = -1, no Clarke
    # gradient. certify certified its own rewrite's vector 0 before (not grad's)
    (lambda x: knp.where(x > 0, x, 0.0) + knp.where(x < 0, 0.0, -x), -1.0, False),
    # min(3x, -x): Clarke [-1, 3]; grad takes the else branch -x: -1, a limiting gradient
    (lambda x: knp.where(x < 0, 3.0 * x, -x), -1.0, True),
    # min(x, 2x): Clarke [1, 2]; grad takes 2x: 2, a limiting gradient
    (lambda x: knp.where(x > 0, x, 2.0 * x), 2.0, True),
])
def test_certify_judges_the_vector_grad_returns_at_a_tied_where(f, grad_at_0, certified):
    x = np.float64(0.0)
    assert float(kinkgrad.grad(f)(x)) == grad_at_0  # by hand: the branch the condition picks
    rep = kinkgrad.certify(f, x)
    assert float(rep.gradient) == grad_at_0 and bool(rep.certified) == certified


def _undecided_or(call, truth):  # noqa: ANN001
    """``call()``'s answer, which must be ``truth`` unless it refuses (NotAbsSmoothError)."""
    try:
        got = call()
    except NotAbsSmoothError:
        return None
    assert np.all(np.asarray(got) == np.asarray(truth)), (got, truth)
    return got


def test_a_tied_where_whose_gap_has_a_kink_is_not_rewritten() -> None:
    # where(2 x0 > 0, -relu(-2 x0), 0) - x0: the first branch is 0 wherever it is taken, so f
    # is -x0 everywhere (checked below at random points): its set is {(-1, 0, 0)}. The gap
    # between the branches, -relu(-2 x0), has a kink at 0, and the three directions of the
    # first-order test all had x0 > 0: 0 was called a Clarke gradient, f'(0; -e0) = -1
    def f(x):
        z = 2.0 * x[0] + 0.0 * x[1] + 0.0 * x[2]
        return knp.where(z > 0, -knp.relu(-z), 0.0 * z) - 0.5 * z

    for y in np.random.default_rng(0).standard_normal((20, 3)):
        assert float(f(y)) == -y[0]
    x = np.zeros(3)
    _undecided_or(lambda: kinkgrad.in_clarke(f, x, np.zeros(3)), False)
    _undecided_or(lambda: kinkgrad.in_clarke(f, x, np.array([-1.0, 0.0, 0.0])), True)
    _undecided_or(lambda: kinkgrad.directional(f, x, np.array([-1.0, 0.0, 0.0])), 1.0)
    assert kinkgrad.stationarity(f, x).verdict in ("not stationary", "undecided")
    assert kinkgrad.minimality(f, x).verdict in ("not minimal", "undecided")


def test_a_tied_where_whose_branch_is_an_abs_at_the_tie_is_not_rewritten() -> None:
    # where(z > 0, |z|, 0) + z / 2 + |x1 - x2|, z = x0 - x1: relu(z) + z / 2 + |x1 - x2|, so
    # f'(0; -e0) = -1/2 (falls) and every element of the Clarke set has first entry in
    # [1/2, 3/2]; the rewrite read the gap |z| as c z and said f'(0; -e0) = 1/2
    def f(x):
        z = x[0] - x[1]
        return knp.where(z > 0, knp.abs(z), 0.0 * z) + 0.5 * z + knp.abs(x[1] - x[2])

    x = np.zeros(3)
    _undecided_or(lambda: kinkgrad.directional(f, x, np.array([-1.0, 0.0, 0.0])), -0.5)
    _undecided_or(lambda: kinkgrad.in_clarke(f, x, np.array([-0.5, 0.5, 0.0])), False)
    assert kinkgrad.minimality(f, x).verdict in ("not minimal", "undecided")
    assert kinkgrad.stationarity(f, x).verdict in ("not stationary", "undecided")


def test_branches_one_ulp_apart_in_f_are_a_jump() -> None:
    # where(x0 > 0, x0 + (1 + 2^-52), 1 - x0) + |x1| + |x2| at 0: f(0) = 1 and f > 1 on both
    # sides of x0 = 0 (Fractions below), a strict local minimiser. The branches differ by
    # 2^-52, which the 16 units of roundoff allowed as computed; "not stationary" with the
    # descent direction -e0 was wrong (f'(0; -e0) = 1)
    def f(x):
        return knp.where(x[0] > 0, x[0] + (1 + 2.0**-52), 1 - x[0]) + knp.abs(x[1]) \
            + knp.abs(x[2])

    for t in (Fraction(1, 2**60), Fraction(-1, 2**60)):
        value = t + (1 + Fraction(2.0**-52)) if t > 0 else 1 - t
        assert value > 1
    x = np.zeros(3)
    assert kinkgrad.stationarity(f, x).verdict in ("stationary", "undecided")
    assert kinkgrad.minimality(f, x).verdict in ("minimal", "undecided")


def test_a_where_that_flips_within_the_ball_decides_nothing() -> None:
    # where(x0 < 1/2, x0 - 2 relu(x0 - 0.6), x0) is x0 everywhere (the relu is 0 where the
    # first branch is taken): at 0, radius 0.7, the ball's set is {(1, 0)}, not stationary;
    # the set kept the branch of x beyond the flip at 1/2 and held relu's slope -1
    def f(x):
        return knp.where(x[0] < 0.5, x[0] - 2 * knp.relu(x[0] - 0.6), x[0]) + 0 * x[1]

    for y in np.random.default_rng(1).uniform(-2, 2, (40, 2)):
        assert float(f(y)) == y[0]
    rep = kinkgrad.stationarity(f, np.zeros(2), radius=0.7)
    assert rep.verdict in ("not stationary", "undecided"), rep.reason
