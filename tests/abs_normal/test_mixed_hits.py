"""Kinks the computed values put at x together that f has at no one point of the rounding
next to x (abs_normal/_mixed_hits.py): the answers refuse (undecided) rather than describe
a configuration no point has; kinks that do meet at a point of the box are still answered.

Truths: the programs read in real arithmetic with Fractions (their float constants exact),
and the slopes of one-dimensional piecewise-linear functions written out by hand."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal._membership import UndecidedError


def _relu(v):
    return max(v, 0)


def _in_clarke_or_undecided(f, x, g):
    try:
        return kinkgrad.in_clarke(f, x, np.asarray(g, float))
    except UndecidedError:
        return None


def test_two_kinks_of_one_normal_apart_in_f_are_not_merged():
    # 2 relu((x + c) - 1) - relu((x - c) - 1), c = 5e-17, at 1: both arguments are 0 as
    # computed; in f the kinks lie at 1 -+ c, with the slopes 0 | 2 | 1. The model's set
    # {0, 1} is the set at no point; f's gradient 2 at x was called outside
    c = 5e-17

    def f(x):
        return 2 * knp.relu((x[0] + c) - 1.0) - knp.relu((x[0] - c) - 1.0)

    def exact(t):
        return 2 * _relu(t + F(c) - 1) - _relu(t - F(c) - 1)

    eps = F(1, 10**20)
    assert (exact(1 + eps) - exact(1)) / eps == 2  # the slope at x itself
    assert _in_clarke_or_undecided(f, np.ones(1), [2.0]) in (True, None)
    sub = kinkgrad.subdifferential(f, np.ones(1))
    sets_in_the_box = [{0.0}, {0.0, 2.0}, {2.0}, {1.0, 2.0}, {1.0}]
    assert sub.partial or {float(g[0]) for g in sub.gradients} in sets_in_the_box
    assert kinkgrad.stationarity(f, np.ones(1)).verdict != "stationary" or sub.partial


@pytest.mark.parametrize("case", ["same kink", "max and min"])
def test_a_kink_hit_as_computed_beside_its_twin_off_it_is_not_taken(case):
    # f is 0 (relu((x + 1e-16) - 1) - relu((x - 1) + 1e-16)) or 2.5 (x - 3) (a maximum and a
    # minimum whose kinks meet and cancel) everywhere; as computed one kink is hit and its
    # twin, at the same point of f, is not: -1 was certified, 4 called a Clarke gradient
    if case == "same kink":
        def f(x):
            return knp.relu((x[0] + 1e-16) - 1.0) - knp.relu((x[0] - 1.0) + 1e-16)

        def exact(t):
            return _relu(t + F(1e-16) - 1) - _relu(t - 1 + F(1e-16))

        x, slope, wrong = np.ones(1), 0.0, -1.0
    else:
        def f(x):
            return (knp.maximum(((x[0] + 0.0) - 3.0) * 2.0, ((x[0] - 2.0**-50) - 3.0) * 0.5)
                    + knp.minimum(((x[0] + 0.0) - 3.0) * 0.5, ((x[0] + 2.0**-52) - 3.0) * 2.0))

        def exact(t):
            return (max((t - 3) * 2, (t - F(2.0**-50) - 3) / 2)
                    + min((t - 3) / 2, (t + F(2.0**-52) - 3) * 2))

        x, slope, wrong = np.full(1, 3.0), 2.5, 4.0
    for t in np.linspace(float(x[0]) - 1e-14, float(x[0]) + 1e-14, 41):  # f's slope: one
        for s in (F(1, 10**30), -F(1, 10**30)):
            assert (exact(F(t) + s) - exact(F(t))) / s == F(slope)
    assert _in_clarke_or_undecided(f, x, [wrong]) in (False, None)
    rep = kinkgrad.certify(f, x)
    assert not rep.certified or float(rep.gradient[0]) == slope


def test_a_flipped_kink_beside_a_hit_one_gives_no_piece_f_lacks():
    # relu(((x1 + x0) - x0) - 3/4) - relu(x1 - 3/4) at (2^53, 3/4) is 0 everywhere (both
    # arguments are x1 - 3/4 in f); as computed the first is -3/4 and the second is hit, so
    # the model held the piece (0, -1)
    def f(x):
        return knp.relu(((x[1] + x[0]) - x[0]) - 0.75) - knp.relu(x[1] - 0.75)

    x = np.array([2.0**53, 0.75])
    assert _in_clarke_or_undecided(f, x, [0.0, -1.0]) in (False, None)
    assert _in_clarke_or_undecided(f, x, [0.0, -0.5]) in (False, None)


@pytest.mark.parametrize("n", [2, 300])
def test_kinks_that_meet_within_the_box_are_still_answered(n):
    # relu((x0 + 5e-17) - 1) + 2 relu((x1 - 5e-17) - 1) + sum(x) / 10 at (1, ..., 1): both
    # kinks hit as computed, in f 5e-17 from x along their own coordinates, so they meet at a
    # point of the box, where the set is [0, 1] x [0, 2] shifted by 1/10
    def f(x):
        return knp.relu((x[0] + 5e-17) - 1.0) + 2 * knp.relu((x[1] - 5e-17) - 1.0) \
            + 0.1 * knp.sum(x)

    x = np.ones(n)
    g = np.full(n, 0.1)
    g[0] += 0.5
    g[1] += 1.0
    assert kinkgrad.in_clarke(f, x, g) is True
    g[1] += 1.5
    assert kinkgrad.in_clarke(f, x, g) is False
    sub = kinkgrad.subdifferential(f, x)
    assert not sub.partial and len(sub.gradients) == 4


def test_kinks_apart_by_less_than_the_replays_error_are_not_merged():
    # 2 relu((x + c1) - 1) - relu((x + c2) - 1) at 1, c2 = c1 + 2^-62: both offsets are lost
    # as computed, kept apart in long double by less than the replay's error; in f the kinks
    # lie 2e-19 apart, left of x, where f has the slope 1 (Fractions below): 0 is in the
    # Clarke set at no point holding both (one long double apart: the least-norm point's
    # residual shows it; bit-identical offsets are taken as one kink, a known gap)
    c1 = 3e-17
    c2 = c1 + 2.0**-62

    def f(x):
        return 2 * knp.relu((x[0] + c1) - 1.0) - knp.relu((x[0] + c2) - 1.0)

    def exact(t):
        return 2 * _relu(t + F(c1) - 1) - _relu(t + F(c2) - 1)

    eps = F(1, 10**30)
    assert F(c2) > F(c1) and (exact(1 + eps) - exact(1)) / eps == 1
    assert (exact(1) - exact(1 - eps)) / eps == 1
    x = np.ones(1)
    assert _in_clarke_or_undecided(f, x, [0.0]) in (False, None)
    sub = kinkgrad.subdifferential(f, x)
    assert sub.partial or [float(g[0]) for g in sub.gradients] == [1.0]
    rep = kinkgrad.certify(f, x)
    assert not rep.certified or float(rep.gradient[0]) == 1.0


@pytest.mark.parametrize("form", ["max", "clip"])
def test_kinks_of_a_max_or_clip_hit_as_computed_apart_in_f_refuse(form):
    # the pair of the first test written with a k-way max or a clip, whose switching values
    # have no sign: the search cannot place them, and in_clarke called f's gradient 2 outside
    c = 5e-17

    def piece(z):
        return knp.max(knp.stack([z, 0.0 * z, 0.0 * z - 1.0])) if form == "max" \
            else knp.clip(z, 0.0, 10.0)

    def f(x):
        return 2 * piece((x[0] + c) - 1.0) - piece((x[0] - c) - 1.0)

    assert _in_clarke_or_undecided(f, np.ones(1), [2.0]) in (True, None)


@pytest.mark.parametrize("c1, c2", [(1e-20, -1e-20), (3e-17, 3.001e-17)])
def test_offsets_the_replay_cannot_tell_apart_are_read_exactly(c1, c2):
    # 2 relu((x + c1) - 1) - relu((x + c2) - 1) at 1: the offsets are 0 in long double too
    # (1e-20), or one long double (3e-17, 3.001e-17); in f the kinks lie apart and x sits
    # beside or between them (Fractions below). The replay could not tell, and f's gradient 2
    # was called outside (or 0 certified, where f's set is {1}); the program only adds and
    # takes kinks, so its switching values are now read exactly
    def f(x):
        return 2 * knp.relu((x[0] + c1) - 1.0) - knp.relu((x[0] + c2) - 1.0)

    def exact(t):
        return 2 * _relu(t + F(c1) - 1) - _relu(t + F(c2) - 1)

    eps = F(1, 10**40)
    slope = (exact(1 + eps) - exact(1)) / eps
    assert slope == (exact(1) - exact(1 - eps)) / eps  # f is differentiable at x
    x = np.ones(1)
    assert _in_clarke_or_undecided(f, x, [float(slope)]) in (True, None)
    assert _in_clarke_or_undecided(f, x, [0.0]) in (False, None)
    sub = kinkgrad.subdifferential(f, x)
    assert sub.partial or [float(g[0]) for g in sub.gradients] == [float(slope)]
    rep = kinkgrad.certify(f, x)
    assert not rep.certified or float(rep.gradient[0]) == float(slope)


@pytest.mark.parametrize("form", ["relu", "maximum"])
def test_exact_offsets_that_round_to_one_float_are_told_apart(form):
    # 2 g((x + 1e-20) + 1e-40) - g(x + 1e-20), g = relu(. - 1) or maximum(., 1), at 1: the two
    # kinks lie 1e-40 apart in f, both left of x, where f has the slope 1 (Fractions below);
    # rounded to float64 the two exact offsets were one, and 0 was certified
    def g(v):
        return knp.relu(v - 1.0) if form == "relu" else knp.maximum(v, 1.0) - 1.0

    def f(x):
        return 2 * g((x[0] + 1e-20) + 1e-40) - g(x[0] + 1e-20)

    def exact(t):
        return 2 * _relu(t + F(1e-20) + F(1e-40) - 1) - _relu(t + F(1e-20) - 1)

    eps = F(1, 10**60)
    assert (exact(1 + eps) - exact(1)) / eps == 1 == (exact(1) - exact(1 - eps)) / eps
    x = np.ones(1)
    assert _in_clarke_or_undecided(f, x, [0.0]) in (False, None)
    rep = kinkgrad.certify(f, x)
    assert not rep.certified or float(rep.gradient[0]) == 1.0


def test_nearly_parallel_kinks_meeting_outside_the_box_are_not_taken_at_x():
    # relu(x0 + x1 + 1e-20 - 2) - relu(x0 + (1 + d) x1 + c2 - (2 + d)) at (1, 1), d = 2^-26:
    # both hit as computed; in f they meet about two box widths away (c2 below), so f is
    # smooth at x with gradient (0, -d); (1, 1) was called a Clarke gradient, (0, 0) certified
    d = 2.0**-26
    w = 64 * 2.0**-53
    c2 = 1e-20 + 2 * w * d  # NOTE: the kinks meet where d x1 = c2 - 1e-20, x1 - 1 = 2 w

    def f(x):
        return knp.relu(x[0] + x[1] + 1e-20 - 2.0) - knp.relu(
            x[0] + (1 + d) * x[1] + c2 - (2 + d))

    x = np.ones(2)
    assert _in_clarke_or_undecided(f, x, [1.0, 1.0]) in (False, None)
    rep = kinkgrad.certify(f, x)
    assert not rep.certified or np.allclose(rep.gradient, [0.0, -d], rtol=0, atol=1e-12)


def test_an_exact_offset_below_float64s_range_keeps_its_sign():
    # the exact path rounds f's switching values to float64 once; an offset below float64's
    # range (1e-400) kept the sign 0 of its float (a kink beside x taken as one at x)
    from kinkgrad.modes._wide import nonzero_float64

    got = nonzero_float64(np.array([F(1, 10**400), -F(1, 10**400), F(0)], dtype=object))
    assert got[0] > 0 > got[1] and got[2] == 0
    scalar = nonzero_float64(np.asarray(-F(1, 10**400), dtype=object))  # 0-d: np.sign is an int
    assert float(scalar) < 0
