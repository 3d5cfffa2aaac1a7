"""Property tests on random abs-smooth programs (hypothesis, derandomized for speed and
reproducibility). Oracles: one-sided finite differences, brute-force gradients next to x,
LP hull membership."""

from __future__ import annotations

import numpy as np
from _abs_programs import Prog, brute_gradients, programs, same_sets
from _exact_pl import limiting_gradients
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kinkgrad
from _least_distance import exact_hull_min_norm
from kinkgrad.abs_normal import (
    certify,
    clarke_grad,
    directional,
    in_clarke,
    subdifferential,
)
from kinkgrad.abs_normal.lp import in_hull

SETTINGS = settings(derandomize=True, deadline=None, max_examples=80,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(programs(), st.integers(0, 2**31 - 1))
def test_directional_equals_one_sided_difference(prog, seed):
    D = np.random.default_rng(seed).choice([-1.0, -0.5, 0.5, 1.0, 2.0], size=(prog.n, 4))
    got = directional(prog, prog.x, D)
    t = 1e-7
    f0 = float(prog(prog.x))
    want = [(float(prog(prog.x + t * d)) - f0) / t for d in D.T]
    np.testing.assert_allclose(got, want, atol=1e-5)
    one = directional(prog, prog.x, D[:, 0])  # a single direction: a scalar
    assert np.ndim(one) == 0 and abs(float(one) - want[0]) < 1e-5


@SETTINGS
@given(programs(), st.integers(0, 1000))
@example(Prog(2, np.array([-1.0, -1.0]), [("max3", [0, 0, 0], [-2.0, -2.0, -2.0])], [-2.0]), 0)
def test_clarke_grad_lies_in_the_hull_of_the_limiting_gradients(prog, seed):
    g, info = clarke_grad(prog, prog.x, seed=seed)
    sub = subdifferential(prog, prog.x)
    assert not sub.partial
    assert in_hull(sub.matrix, np.atleast_1d(g))[0]
    # and it is one of the limiting gradients itself (a vertex candidate), not just a mean
    assert np.min(np.max(np.abs(sub.matrix - np.atleast_1d(g)), axis=1)) < 1e-9
    # each forward sweep adds one JVP pass (at most ~1.5 backward passes on these programs;
    # an unresolved tie takes a second sweep: max3 of one variable three times, 3.25)
    assert info.cost_ratio < 1 + 1.5 * info.sweeps


@settings(derandomize=True, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(n_max=2, ops_max=4))
@example(Prog(1, np.zeros(1), [("lin", [0, 0, 0], [-2.0, -2.0, -2.0]),
                               ("lin", [0, 0, 0], [-2.0, -2.0, -2.0]),
                               ("max3", [0, 0, 0], [-2.0, -1.0, -0.5])], [-2.0, -2.0, 0.5]))
def test_subdifferential_equals_brute_force(prog):
    sub = subdifferential(prog, prog.x)
    brute = brute_gradients(prog, prog.x)
    assert same_sets(brute, sub.matrix)
    assert same_sets(np.array(limiting_gradients(prog), float), sub.matrix, tol=1e-12)


@settings(derandomize=True, deadline=None, max_examples=150,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(n_max=3, ops_max=6, grid=[-0.5, 0.0, 0.5]))
# -12 |x0| + 4 x0 + x1 + 4 min(x0, x1) at 0 (exact min-norm 1): the bounds met to 2.7e-8,
# below the 1e-6 gap at which the QP's answer was polished, and the "exact" distance was
# 1.0000000271 (found with --hypothesis-seed=4)
@example(Prog(2, np.zeros(2), [("norm1", [0, 0, 0], [-2.0, -2.0, -2.0]),
                               ("lin", [0, 1, 0], [-2.0, -0.5, -2.0]),
                               ("maximum", [0, 1, 0], [-2.0, -2.0, -2.0])], [-2.0, -2.0, -2.0]))
def test_subdifferential_equals_the_exact_cells_on_kinks(prog):
    # x on the kinks of more ops, 3 variables, 6 ops: finite differences miss thin cones here,
    # the exact cells (_exact_pl: rational arithmetic, LPs confirmed exactly) do not
    want = np.array(limiting_gradients(prog), float)
    sub = subdifferential(prog, prog.x)
    if sub.partial:  # what it lists are limiting gradients
        assert same_sets(np.vstack([want, sub.matrix]), want, tol=1e-12)
    else:
        assert same_sets(want, sub.matrix, tol=1e-12)
    rep = kinkgrad.stationarity(prog, prog.x, tol=1e-9)
    truth = exact_hull_min_norm(want)
    assert rep.bounds[0] - 1e-9 <= truth <= rep.bounds[1] + 1e-9
    if rep.verdict != "undecided":
        assert (rep.verdict == "stationary") == (truth <= 1e-9)
    if rep.exact:
        assert abs(rep.distance - truth) <= 1e-9 * (1 + truth)


POLICIES = [kinkgrad.KinkPolicy(), kinkgrad.KinkPolicy(relu=0.5, leaky_relu=0.5, abs=0.25),
            kinkgrad.KinkPolicy(relu=1.0, abs=-1.0, max="split", sort="split", clip=0.0)]


@SETTINGS
@given(programs(), st.sampled_from(POLICIES))
def test_certify_never_certifies_a_vector_in_clarke_rejects(prog, policy):
    rep = certify(prog, prog.x, policy=policy)
    g = kinkgrad.grad(prog, policy=policy)(prog.x)
    np.testing.assert_allclose(rep.gradient, g)
    if rep.certified:
        assert in_clarke(prog, prog.x, g)
    if rep.active_kinks == 0:
        assert rep.certified


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(n_max=3, ops_max=5), st.sampled_from([1e-14, 1e-9]))
@example(Prog(3, np.full(3, 0.5), [("minimum", [0, 2, 2], [-0.5, -0.5, -0.5])], [-0.5]), 1e-14)
def test_a_scaled_program_has_the_scaled_subdifferential_and_verdict(p, s):
    # s f at tiny s: candidates and limiting gradients were told apart to digits of
    # max(1, their size), so below ~1e-9 distinct gradients merged (a "complete" list one
    # gradient short) and tournament checks passed on absolute tolerances. The relation:
    # the scaled program's limiting gradients are s times the unscaled ones (finite
    # differences with 720 directions miss thin cones, so they are not the truth here)
    def g(x):
        return s * p(x)

    want = kinkgrad.subdifferential(p, p.x)
    got = kinkgrad.subdifferential(g, p.x)
    if not got.partial and not want.partial:
        assert same_sets(np.asarray(got.matrix) / s, np.asarray(want.matrix), tol=1e-9)
    a = kinkgrad.stationarity(p, p.x, tol=1e-6)
    b = kinkgrad.stationarity(g, p.x, tol=1e-6 * s)
    assert {a.verdict, b.verdict} != {"stationary", "not stationary"}


def test_a_minimum_scaled_by_1e_14_keeps_both_limiting_gradients():
    # min(x0, x2) / -2 at x = (1/2, 1/2, 1/2) scaled by 1e-14: its two limiting gradients (by
    # finite differences beside x) merged into one "complete" list of one
    p = Prog(3, np.full(3, 0.5), [("minimum", [0, 2, 2], [-0.5, -0.5, -0.5])], [-0.5])
    want = brute_gradients(p, p.x)
    assert len(want) == 2
    got = kinkgrad.subdifferential(lambda x: 1e-14 * p(x), p.x)
    assert not got.partial and same_sets(np.asarray(got.matrix) / 1e-14, want)


@settings(derandomize=True, deadline=None, max_examples=40,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(n_max=3, ops_max=6, grid=[-0.5, 0.0, 0.5]), st.integers(0, 2**16))
def test_the_exact_oracle_agrees_with_the_programs_values(prog, seed):
    # the oracle's own check: its rational f equals the program's (dyadic, exact in floats),
    # and f(x + t d) - f(x) = t phi(d) for small dyadic t (f is piecewise linear)
    from fractions import Fraction

    from _exact_pl import evaluate, phi

    d = np.random.default_rng(seed).integers(-8, 9, prog.n) / 8.0
    assert evaluate(prog, prog.x) == Fraction(float(prog(prog.x)))
    t = Fraction(1, 2**20)
    step = [Fraction(float(a)) + t * Fraction(float(b)) for a, b in zip(prog.x, d)]
    assert evaluate(prog, step) - evaluate(prog, prog.x) == t * phi(prog, d)
