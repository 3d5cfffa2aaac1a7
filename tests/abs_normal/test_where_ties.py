"""A ``where`` tied at x whose branches agree (abs_normal/where_ties.py): Huber and ReLU
written with ``where`` get Clarke answers; a ``where`` that jumps is still refused.

Truth: gradients of plain-NumPy versions of the same functions by central differences at
points on either side of the tie (their hull is the Clarke subdifferential of these
one-dimensional piecewise-smooth functions), and hand values.
"""

from __future__ import annotations

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
