"""stationarity(radius > 0) with comparisons (``where`` conditions, masks) that can flip
inside the ball: the ball model keeps them at their value at x, so its "not stationary" would
be unfounded there; the verdict must then be "undecided" (never a wrong verdict), and it stays
decided where no comparison can flip. The independent truth: the same function spelled with
``abs``/``relu`` (abs switches, which the ball model moves onto their kinks)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp


def where_abs(x):
    return knp.sum(knp.where(x > 0, x, -x))


def plain_abs(x):
    return knp.sum(knp.abs(x))


def masked_relu(x):  # relu written with a mask: x * (x > 0)
    return knp.sum(x * (x > 0) - 0.25 * x)


def plain_relu(x):
    return knp.sum(knp.relu(x) - 0.25 * x)


@pytest.mark.parametrize("f, g", [(where_abs, plain_abs), (masked_relu, plain_relu)])
def test_flippable_comparison_makes_not_stationary_undecided(f, g):
    x = np.array([0.01, 0.02])  # every kink within the ball of radius 0.1
    assert kinkgrad.stationarity(g, x, radius=0.1).verdict == "stationary"
    rep = kinkgrad.stationarity(f, x, radius=0.1)
    assert rep.verdict == "undecided"
    assert "comparison" in rep.reason and rep.descent is None


@pytest.mark.parametrize("f, g", [(where_abs, plain_abs), (masked_relu, plain_relu)])
def test_comparisons_out_of_reach_keep_the_verdict(f, g):
    x = np.array([1.0, -2.0])  # the kinks are farther than the radius
    for radius in (0.0, 0.1, 0.5):
        want = kinkgrad.stationarity(g, x, radius=radius)
        got = kinkgrad.stationarity(f, x, radius=radius)
        assert want.verdict == got.verdict == "not stationary"
        assert got.distance == pytest.approx(want.distance, rel=1e-12)


def test_radius_zero_is_unchanged_and_the_count_follows_the_gradient_norm():
    # z = 3 x0 - 0.3: |z| = 0.3 at x0 = 0.2; ||grad z|| = 3, so it flips within r iff r >= 0.1
    f = lambda x: knp.sum(knp.where(3.0 * x[0] - 0.3 > 0, x, 2.0 * x))  # noqa: E731
    x = np.array([0.2, 0.5])
    from kinkgrad.abs_normal._flat import FlatSpec, trace_at
    from kinkgrad.abs_normal.ball_comparisons import flippable_comparisons

    tr = trace_at(f, x, "test")
    spec = FlatSpec(tr)
    assert flippable_comparisons(tr, spec, 0.0) == 0
    assert flippable_comparisons(tr, spec, 0.09) == 0
    assert flippable_comparisons(tr, spec, 0.11) == 1
