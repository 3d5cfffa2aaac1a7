"""Decisions f takes on traced values (knp.argmax, argmin, argsort, where(cond), .value) enter
the trace as constants: the set-valued answers hold for f only where those decisions hold
next to x (kinkgrad.abs_normal._reads). The truths are written by hand: x[argmax(x)] is
max(x), whose Clarke subdifferential at x is the hull of the e_i of its largest entries."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kinkgrad as kg
import kinkgrad.numpy as knp
from kinkgrad.errors import NotAbsSmoothError, ValueReadError


def by_argmax(x):
    return x[knp.argmax(x)]  # max(x) in f


def by_argmin(x):
    return x[knp.argmin(x)]  # min(x)


def by_argsort(x):
    return x[knp.argsort(x)][-1]  # max(x)


def positive_part(x):
    return knp.sum(x[knp.where(x > 0)])  # sum relu(x_i)


SET_VALUED = [
    lambda f, x: kg.in_clarke(f, x, np.full(x.shape, 1.0 / x.size)),
    lambda f, x: kg.certify(f, x),
    lambda f, x: kg.subdifferential(f, x),
    lambda f, x: kg.clarke_grad(f, x),
    lambda f, x: kg.directional(f, x, np.ones(x.shape)),
    lambda f, x: kg.abs_normal_form(f, x),
]


@pytest.mark.parametrize("f", [by_argmax, by_argmin, by_argsort])
@pytest.mark.parametrize("ask", range(len(SET_VALUED)))
def test_a_read_at_a_tie_gives_no_answer(f, ask):
    # before: in_clarke((1/2, 1/2)) False, certify "no kinks", subdifferential one gradient
    # and directional f'(x; (1, 1)) wrong for max(x) at a tie
    with pytest.raises(ValueReadError, match="tie"):
        SET_VALUED[ask](f, np.array([1.0, 1.0]))


def test_the_read_error_is_a_not_abs_smooth_error_naming_the_fix():
    with pytest.raises(NotAbsSmoothError, match=r"knp\.max"):
        kg.in_clarke(by_argmax, np.array([3.0, 3.0, 1.0]), np.array([0.5, 0.5, 0.0]))


@pytest.mark.parametrize("report", [kg.stationarity, kg.minimality])
def test_verdicts_at_a_tie_are_undecided(report):
    rep = report(by_argmax, np.array([1.0, 1.0]))
    assert rep.verdict == "undecided" and "argmax" in rep.reason


def test_away_from_the_tie_the_answers_are_f_s():
    x = np.array([2.0, 1.0])  # f = x0 next to x
    assert kg.in_clarke(by_argmax, x, np.array([1.0, 0.0])) is True
    assert kg.in_clarke(by_argmax, x, np.array([0.5, 0.5])) is False
    assert kg.directional(by_argmax, x, np.array([-1.0, 3.0])) == -1.0


@pytest.mark.parametrize("radius, decided", [(0.4, True), (0.49, True), (0.5, False),
                                             (0.6, False)])
def test_a_read_of_inputs_holds_in_the_ball_when_its_margin_exceeds_twice_the_radius(
        radius, decided):
    # margin 1: in the ball of radius r the entries' difference moves by at most 2 r (here
    # sqrt(2) r: r = 0.6 reaches the tie at (1.5, 1.5); 0.5 is refused by the bound 2 r)
    rep = kg.stationarity(by_argmax, np.array([2.0, 1.0]), radius=radius)
    assert rep.verdict == ("not stationary" if decided else "undecided")
    if not decided:
        assert "radius" in rep.reason


def test_a_read_of_computed_values_is_not_taken_at_a_radius():
    def f(x):
        y = 2.0 * x
        return y[knp.argmax(y)]

    x = np.array([2.0, 1.0])
    assert kg.stationarity(f, x).verdict == "not stationary"
    rep = kg.stationarity(f, x, radius=0.1)
    assert rep.verdict == "undecided" and "computed" in rep.reason


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="long double is float64")
def test_a_read_the_rounding_decided_is_refused():
    # y0 = (x0 + 1e16) - 1e16 is 2 as computed and 1.2 in f: argmax picks y0 as computed,
    # y1 = 1.5 in f, so f = x1 next to x and the program's gradient (1, 0) is not f's
    def f(x):
        y = knp.stack([(x[0] + 1e16) - 1e16, x[1]])
        return y[knp.argmax(y)]

    with pytest.raises(ValueReadError, match="rounding"):
        kg.in_clarke(f, np.array([1.2, 1.5]), np.array([1.0, 0.0]))
    # and away from the rounding's reach the computed read is taken
    assert kg.in_clarke(f, np.array([10.0, 1.5]), np.array([1.0, 0.0])) is True


def test_where_cond_at_a_tie_gives_no_answer_and_away_is_f_s():
    # sum relu(x_i) at (0, 1): the Clarke set is [0, 1] x {1}; the trace had x1 alone
    with pytest.raises(ValueReadError, match="where"):
        kg.in_clarke(positive_part, np.array([0.0, 1.0]), np.array([0.5, 1.0]))
    assert kg.in_clarke(positive_part, np.array([-1.0, 1.0]), np.array([0.0, 1.0])) is True
    assert kg.in_clarke(positive_part, np.array([-1.0, 1.0]), np.array([0.5, 1.0])) is False


def test_a_bare_value_read_gives_no_set_valued_answer():
    def f(x):  # |x0| written with a Python branch: the trace at 0 is -x0 alone
        return x[0] if x.value[0] > 0 else -x[0]

    with pytest.raises(ValueReadError, match=r"\.value"):
        kg.in_clarke(f, np.array([0.0]), np.array([0.5]))
    rep = kg.stationarity(f, np.array([0.0]))
    assert rep.verdict == "undecided"
    assert kg.grad(f)(np.array([2.0]))[0] == 1.0  # plain AD is the program's, as before


def test_debug_print_shows_the_values_and_records_no_read(capsys):
    def f(x):  # max(x0, x1) at the tie (1, 1): its Clarke set is the segment e_0 -- e_1
        pair = {"z": x - 1.0, "rows": [x[0], 2.0 * x[1]]}
        kg.debug_print("{} {z} {rows}", x, **pair)
        return knp.max(x)

    x = np.array([1.0, 1.0])
    assert kg.in_clarke(f, x, np.array([0.5, 0.5])) is True  # answered: nothing was read
    assert kg.in_clarke(f, x, np.array([0.5, 0.6])) is False
    assert kg.stationarity(f, x).verdict == "not stationary"  # distance sqrt(1/2)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{x} {x - 1.0} {[np.float64(1.0), np.float64(2.0)]}"
    assert len(printed) >= 3  # once per trace


def test_debug_print_of_plain_values_is_print():
    buffer = io.StringIO()
    kg.debug_print("{:.2f} and {}", 1.0 / 3.0, [1, 2], file=buffer)
    assert buffer.getvalue() == "0.33 and [1, 2]\n"


def test_minimize_runs_on_a_function_that_reads_and_never_certifies_a_tie():
    def inf_norm(x):  # ||x - 1||_inf by argmax: its minimum at (1, 1, 1) is all ties
        d = knp.abs(x - 1.0)
        return d[knp.argmax(d)]

    res = kg.minimize(inf_norm, np.array([3.0, -2.0, 0.5]), method="bundle", maxfev=400)
    assert np.isfinite(res.fun) and res.fun < 2.0  # it steps (from f(x0) = 3)
    # f is stationary only at its minimum (1, 1, 1), where every entry ties: the trace there
    # is one |x_i - 1| and its verdict is not f's, so no point is certified
    assert res.stationarity.verdict != "stationary" and not res.success
    assert "argmax" in res.stationarity.reason or res.stationarity.verdict == "not stationary"


@given(st.lists(st.integers(0, 2), min_size=2, max_size=4),
       st.lists(st.integers(0, 3), min_size=4, max_size=4))
def test_in_clarke_of_max_by_argmax_is_never_wrong(entries, weights):
    # brute-force truth: g is in the hull of the e_i of the largest entries iff g >= 0,
    # sum g = 1 and g is 0 off them
    x = np.array(entries, float)
    w = np.array(weights[:x.size], float)
    g = w / w.sum() if w.sum() else np.full(x.size, 1.0 / x.size)
    top = x == x.max()
    truth = bool(np.all(g[~top] == 0))
    try:
        got = kg.in_clarke(by_argmax, x, g)
    except ValueReadError:
        assert top.sum() > 1  # refused at a tie only
        return
    assert got is truth


def test_every_read_kind_refuses_exactly_at_ties():
    for kind, f in [("argmax", by_argmax), ("argmin", by_argmin), ("argsort", by_argsort)]:
        for x in itertools.product([0.0, 1.0], repeat=3):
            x = np.array(x)
            tie = (len(set(x)) < 3) if kind == "argsort" else \
                np.sum(x == (x.min() if kind == "argmin" else x.max())) > 1
            try:
                kg.clarke_grad(f, x)
                refused = False
            except ValueReadError:
                refused = True
            assert refused == tie, (kind, x)


def test_a_read_of_a_value_that_underflowed_in_both_precisions_is_refused():
    # y0 = x0 1e-300^17 1e300^17 is 0 as computed and in long double, x0 (1 + 1e-15) in f:
    # argmax(y) is 0 in f (y1 = x1 / 2), 1 as computed; in_clarke said (0, 1) is f's
    # gradient and (1, 0) is not, where f = x0 next to (1, 1)
    def f(x):
        t = x[0]
        for _ in range(17):
            t = t * 1e-300
        for _ in range(17):
            t = t * 1e300
        return x[knp.argmax(knp.stack([t, 0.5 * x[1]]))]

    for g in ([0.0, 1.0], [1.0, 0.0]):
        with pytest.raises(ValueReadError, match="rounding"):
            kg.in_clarke(f, np.array([1.0, 1.0]), np.array(g))
