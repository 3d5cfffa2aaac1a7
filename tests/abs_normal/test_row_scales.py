"""Kinks whose rows differ in size by 2^34: each row is judged against its own terms.

A switch's row counted as zero when it was below 1e-10 times the largest row of the model,
so beside 2^-34 relu(2^34 x_n) every unit row was "zero" and the pieces it separates were
merged in lists called complete. The truth is the exact cells of ``_exact_pl`` (rational
arithmetic, no part of the abs-normal machinery)."""

from __future__ import annotations

import numpy as np
import pytest
from _abs_programs import Prog, programs, same_sets
from _exact_pl import limiting_gradients
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.subdiff import UndecidedError

BIG = 2.0 ** 34

# relu(x0 - relu(x0 + x1)) + relu(x1) + 2^-34 relu(2^34 x2) at 0: 8 limiting gradients; 2
# averages were listed as complete, in_clarke called (0, 0, 0) and (1, 0, 0) outside
SEPARATE = Prog(3, np.zeros(3), [("relu", [0, 1, 0], [1.0, 1.0, 0.0]),
                                 ("relu", [0, 3, 0], [1.0, -1.0, 0.0]),
                                 ("relu", [1, 1, 0], [1.0, 0.0, 0.0]),
                                 ("relu", [2, 2, 0], [BIG, 0.0, 0.0])],
                [0.0, 1.0, 1.0, 1.0 / BIG])
# -relu(-(2 relu(x0) - x0)) + 2^-34 relu(2^34 x1 + relu(x0)) at 0 (the first term is 0):
# (+-1, .) were listed and in_clarke((1, 0)) was True; then (0, 1) and (2^-34, 1) were
# listed as one (rows rounded to 9 digits before deduplication)
COUPLED = Prog(2, np.zeros(2), [("relu", [0, 0, 0], [1.0, 0.0, 0.0]),
                                ("lin", [2, 0, 0], [2.0, -1.0, 0.0]),
                                ("relu", [3, 3, 0], [-1.0, 0.0, 0.0]),
                                ("relu", [1, 2, 0], [BIG, 1.0, 0.0])],
               [0.0, 0.0, -1.0, 1.0 / BIG])


def _check(prog: Prog, listed_exactly: bool = False) -> None:
    want = np.array(limiting_gradients(prog), float)
    sub = kinkgrad.subdifferential(prog, prog.x)
    if listed_exactly or not sub.partial:
        assert not sub.partial
        assert same_sets(want, sub.matrix, tol=1e-13)
        assert len(sub.matrix) == len(want)
    else:
        assert same_sets(np.vstack([want, sub.matrix]), want, tol=1e-13)
    for g in want:  # every limiting gradient is a Clarke gradient
        try:
            assert kinkgrad.in_clarke(prog, prog.x, g)
        except UndecidedError:
            pass
    # beyond the hull in every coordinate, and beyond in_clarke's tolerance (1e-7 n size)
    far = want.max(axis=0) + 1.0 + 1e-5 * float(np.abs(want).max())
    try:
        assert not kinkgrad.in_clarke(prog, prog.x, far)
    except UndecidedError:
        pass


def test_a_2_34_scaled_kink_beside_unit_kinks_keeps_their_pieces_apart():
    assert len(limiting_gradients(SEPARATE)) == 8
    _check(SEPARATE, listed_exactly=True)
    for g in ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 1.0]):
        assert kinkgrad.in_clarke(SEPARATE, SEPARATE.x, np.array(g))
    assert kinkgrad.stationarity(SEPARATE, SEPARATE.x).verdict == "stationary"


def test_a_2_34_scaled_kink_reading_a_unit_kink_lists_exactly_its_pieces():
    want = limiting_gradients(COUPLED)
    assert sorted(map(tuple, np.array(want, float).tolist())) == [
        (0.0, 0.0), (0.0, 1.0), (1.0 / BIG, 1.0)]
    _check(COUPLED, listed_exactly=True)
    for g in ([1.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [-1.0, 1.0]):
        assert not kinkgrad.in_clarke(COUPLED, COUPLED.x, np.array(g))


@st.composite
def _with_a_scaled_reader(draw):
    """A random program on the kinks plus 2^-34 relu(2^34 x_new + c v_j), v_j one of its
    inputs or ops (a new input at 0, appended: later indices move up by one)."""
    prog = draw(programs(n_max=2, ops_max=4, grid=[-0.5, 0.0, 0.5]))
    n = prog.n

    def moved(i: int) -> int:
        return i if i < n else i + 1

    ops = [(kind, [moved(i) for i in a], c) for kind, a, c in prog.ops]
    j = moved(draw(st.integers(0, n + len(ops) - 1)))
    c = draw(st.sampled_from([-1.0, 1.0, 0.5]))
    ops.append(("relu", [n, j, 0], [BIG, c, 0.0]))
    return Prog(n + 1, np.append(prog.x, 0.0), ops, list(prog.weights) + [1.0 / BIG])


@settings(derandomize=True, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow])
@given(_with_a_scaled_reader())
def test_random_programs_beside_a_2_34_scaled_reader_against_the_exact_cells(prog):
    _check(prog)


def test_a_k_way_min_of_pieces_2_40_apart_lists_no_piece_that_no_direction_enters():
    # -min(p1.x, ..., p5.x) - relu(e.x) at 0: leaf differences of norm 1e-11 were "zero"
    # against the leaves' size, and (-p3_0 - e0, 0, 0), the gradient of "p3 wins the min
    # where e.x > 0", was listed as complete and called a Clarke gradient. That piece is
    # empty: p3.d < p1.d, p3.d < p4.d and e.d > 0 need d0 > 0 and
    # ((2^24 - 1) 2^-38 - 2^-40) d0 < 2^-37 d1 and d1 < -(2^24 - 1) 2^-24 d0 (checked below
    # in Fractions), so every limiting gradient's first coordinate is -p_i0 or
    # -p_i0 - e0 for another i: at least -(2 + 2^-31 + 2^-40) beyond -2.00006
    from fractions import Fraction as Q

    P = [(1 + 2.0 ** -40, 2.0 ** -37, 0.0), (1.0, 0.0, -2.0 ** -39),
         (1 + (2 ** 24 - 1) * 2.0 ** -38, 0.0, 0.0), (1.0, -2.0 ** -14, 0.0),
         (1.0, -2.0, -2.0)]
    e = (1 + 2.0 ** -31, 0.0, 0.0)
    lower = (Q(P[2][0]) - Q(P[0][0])) / (Q(P[0][1]) - Q(P[2][1]))  # p3.d < p1.d: d1 > lower d0
    upper = -(Q(P[2][0]) - Q(P[3][0])) / (Q(P[2][1]) - Q(P[3][1]))  # p3.d < p4.d: d1 < upper d0
    assert lower > 0 > upper  # with d0 > 0 (e.d > 0) no d1 satisfies both

    def f(x):
        return (-knp.min(knp.stack([p[0] * x[0] + p[1] * x[1] + p[2] * x[2] for p in P]))
                - knp.relu(e[0] * x[0]))

    x = np.zeros(3)
    empty = np.array([-P[2][0] - e[0], 0.0, 0.0])
    floor = -(P[0][0] + e[0])  # the least first coordinate of another leaf with e.x > 0
    assert empty[0] < floor - 5e-5
    try:
        assert not kinkgrad.in_clarke(f, x, empty)
    except UndecidedError:
        pass
    sub = kinkgrad.subdifferential(f, x)
    assert sub.partial or np.all(sub.matrix[:, 0] >= floor - 1e-12)


def test_terms_that_cancel_far_above_the_gradient_leave_verdicts_undecided():
    # relu(2^60 x1 - 2^60 x1) + relu(x1) - relu(-x1) is x1 (its first term is 0 for every
    # x), but the reverse sweep adds the unit terms to 2^59 ones and loses them: the
    # computed set {(0, 0)} was "stationary" and "minimal" (truth: f'(x; -e1) = -1)
    big = 2.0 ** 60

    def f(x):
        return knp.relu(big * x[1] - big * x[1]) + knp.relu(x[1]) - knp.relu(-x[1])

    x = np.zeros(2)
    assert float(f(np.array([0.0, -1e-3]))) == -1e-3  # f = x1 as computed at these points
    assert kinkgrad.stationarity(f, x).verdict != "stationary"
    assert kinkgrad.minimality(f, x).verdict != "minimal"

    # 2^53 relu(x1 - x1) - relu(x1 - x0) / 2 at (1, 1): the limiting gradients are (0, 0)
    # and (1/2, -1/2), so x is stationary; the computed set was {(1/2, -1/4), (0, 1/4)}
    # and the verdict "not stationary"
    def g(x):
        return 2.0 ** 53 * knp.relu(x[1] - x[1]) - 0.5 * knp.relu(x[1] - x[0])

    assert kinkgrad.stationarity(g, np.ones(2)).verdict != "not stationary"


def test_gradients_of_very_different_sizes_are_told_apart_entry_by_entry():
    # 2^40 relu(x2) - relu(x1 - x0) / 2 at 0: four limiting gradients (the two pieces of
    # each term); rounded against the largest entry of all, (0, 0, 0) and (1/2, -1/2, 0)
    # were one and the list of 2 was called complete
    prog = Prog(3, np.zeros(3), [("relu", [2, 2, 0], [1.0, 0.0, 0.0]),
                                 ("relu", [1, 0, 0], [1.0, -1.0, 0.0])],
                [2.0 ** 40, -0.5])
    assert len(limiting_gradients(prog)) == 4
    _check(prog, listed_exactly=True)


def test_a_max_reading_a_clip_through_a_2_42_coefficient_keeps_both_vertices():
    # the clip of c0 x0 + c1 x0 (c0 + c1 = -1 exactly) on its bound at x0 = -1/2, read by a
    # 3-way max with weight 3 2^42: the tournament's check allowed 1e-9 of max|bhat| max|A|
    # (1e25 here), its leaves 2.5e-6 apart passed as one, and in_clarke called the vertex
    # (3 2^41, 0) outside. The truth: f's one-sided slopes along +-e0, by exact differences
    from fractions import Fraction

    c0, c1, A = 3 * 2.0 ** -44, -(1 + 3 * 2.0 ** -44), 3 * 2.0 ** 42

    def f(x):
        v = knp.clip(c0 * x[0] + c1 * x[0], -0.5, 0.5)
        return 2.0 ** 24 * v - 0.5 * knp.max(knp.stack([A * v, -A * x[0], 1.0 * v]))

    x, h = np.array([-0.5, 0.25]), 2.0 ** -20
    slopes = []
    for s in (1.0, -1.0):
        y = x + np.array([s * h, 0.0])
        slopes.append(s * (Fraction(float(f(y))) - Fraction(float(f(x)))) / Fraction(h))
    vertices = sorted(float(v) for v in slopes)  # 1-D in x0 (f does not read x1)
    assert vertices == [3 * 2.0 ** 41 - 2.0 ** 24, 3 * 2.0 ** 41]
    for v in vertices:
        assert kinkgrad.in_clarke(f, x, np.array([v, 0.0]))
    sub = kinkgrad.subdifferential(f, x)
    assert sorted(sub.matrix[:, 0].tolist()) == vertices and not sub.partial


def test_a_list_of_vectors_summed_from_far_larger_terms_says_so():
    # relu(2^60 x1 - 2^60 x1) + relu(x1) - relu(-x1) = x1: the listed gradient (0, 0) is
    # the rounded sum (truth (0, 1)); the message says how far it may be off
    def f(x):
        return knp.relu(2.0 ** 60 * x[1] - 2.0 ** 60 * x[1]) + knp.relu(x[1]) - knp.relu(-x[1])

    sub = kinkgrad.subdifferential(f, np.zeros(2))
    off = float(sub.message.split("off by up to about ")[1].split(" ")[0])
    assert off >= 1.0  # the distance from the listed (0, 0) to the truth (0, 1)
    plain = kinkgrad.subdifferential(lambda x: knp.relu(x[1]) - knp.relu(-x[1]), np.zeros(2))
    assert "off by" not in plain.message


@pytest.mark.parametrize("k", [1, 2, 3, 40, 60])
def test_the_sums_rounding_margin_counts_only_for_terms_far_above_the_vectors(k):
    # relu(2^k x1 - 2^k x1) + relu(x1) - relu(-x1) = x1: not stationary (distance 1). With
    # terms up to 2^(k-1) <= 16 the verdict is decided (the sums lose nothing); at 2^40 the
    # margin 64 u 2^39 sqrt(2) is 1e-3, still below the distance; at 2^60 it is undecided
    big = 2.0 ** k

    def f(x):
        return knp.relu(big * x[1] - big * x[1]) + knp.relu(x[1]) - knp.relu(-x[1])

    rep = kinkgrad.stationarity(f, np.zeros(2))
    assert rep.verdict == ("undecided" if k == 60 else "not stationary")
    assert rep.bounds[0] <= 1.0 <= rep.bounds[1] or rep.verdict == "undecided"


def test_a_k_way_max_keeps_a_small_leaf_beside_a_2_40_one():
    # max(2^40 x2, x0 - x1, 0) at 0: each leaf wins on an open cone (2^40 x2 < 0 and
    # x0 < x1 for the 0 leaf), so all three are limiting gradients and 0 is one: x is
    # stationary. Candidates rounded to 11 digits of the largest merged (1, -1, 0)'s
    # neighbour (0, 0, 0) away: the list of 2 was called complete and stationarity undecided
    big = 2.0 ** 40
    prog = Prog(3, np.zeros(3), [("max3", [2, 0, 1], [big, 1.0, -1.0])], [1.0])
    # (max3 of (2^40 x2, x0, -x1) is not the same function; the exact cells decide both)
    f = lambda x: knp.max(knp.stack([big * x[2], x[0] - x[1], 0.0 * x[0]]))  # noqa: E731
    sub = kinkgrad.subdifferential(f, np.zeros(3))
    want = {(0.0, 0.0, big), (1.0, -1.0, 0.0), (0.0, 0.0, 0.0)}
    assert {tuple(map(float, g)) for g in sub.matrix} == want and not sub.partial
    assert kinkgrad.stationarity(f, np.zeros(3)).verdict == "stationary"
    _check(prog, listed_exactly=True)


def test_batched_max_blocks_keep_leaves_small_beside_a_2_40_entry():
    # sum_i max(x_i + 2^40 y_i, x_i, -x_i) at 0, 64 blocks of one structure (batched): each
    # block's leaves (1, 2^40), (1, 0), (-1, 0) win on open cones (x_i > 0 > y_i for the
    # second, x_i < 0 with x_i + 2^40 y_i < -x_i for the third), the set is the product of
    # the blocks' hulls and holds 0 ((1, 0) and (-1, 0) halved): stationary. Rounded to 11
    # digits of the block's largest entry, (1, 0) and (-1, 0) were one: "undecided" with
    # the lower bound 7.94 on a distance of 0
    k = 64

    def f(z):
        x, y = z[:k], z[k:]
        return knp.sum(knp.max(knp.stack([x + 2.0 ** 40 * y, x, -x]), axis=0))

    rep = kinkgrad.stationarity(f, np.zeros(2 * k))
    assert rep.bounds[0] <= 0.0 and rep.verdict == "stationary"


@pytest.mark.parametrize("big", [1.0, 2.0 ** 40])
def test_a_convex_max_keeps_a_vertex_whose_cone_is_too_thin_for_the_lp(big):
    # max(big x2, x0 + x1, x0 - x1, (1 + e) x0) at 0, e = 2^-36: the last leaf wins where
    # e d0 > |d1| and (1 + e) d0 > big d2 (d = (1, 0, -1) is inside: checked in Fractions),
    # so (1 + e, 0, 0) is a limiting gradient. Its winner LP's t fell below 1e-9, HiGHS put
    # it inside the others' hull (l1 distance e), and the list of 3 was called complete
    from fractions import Fraction as Q

    e = 2.0 ** -36
    d = (Q(1), Q(0), Q(-1))
    assert Q(e) * d[0] > abs(d[1]) and (1 + Q(e)) * d[0] > Q(big) * d[2]

    def f(x):
        return knp.max(knp.stack([big * x[2], x[0] + x[1], x[0] - x[1], (1 + e) * x[0]]))

    sub = kinkgrad.subdifferential(f, np.zeros(3))
    listed = {tuple(map(float, g)) for g in sub.matrix}
    assert (1 + e, 0.0, 0.0) in listed
    assert {(0.0, 0.0, big), (1.0, 1.0, 0.0), (1.0, -1.0, 0.0)} <= listed
