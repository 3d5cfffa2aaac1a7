"""Known cases with hand-computed answers (paper B's examples)."""

from __future__ import annotations

import numpy as np
import pytest
from _abs_programs import brute_gradients, same_sets

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal import (
    EnumerationLimitError,
    abs_normal_form,
    certify,
    clarke_grad,
    directional,
    in_clarke,
    ld_derivative,
    subdifferential,
)
from kinkgrad.errors import NotAbsSmoothError, ShapeError


def relu_diff(x):
    return knp.relu(x) - knp.relu(-x)  # = x; Clarke gradient at 0 is {1}


def test_relu_difference_at_zero():
    x = np.float64(0.0)
    assert float(kinkgrad.grad(relu_diff)(x)) == 0.0  # plain AD (PyTorch, JAX too)
    sub = subdifferential(relu_diff, x)
    assert sub.matrix.tolist() == [[1.0]] and not sub.partial
    rep = certify(relu_diff, x)
    assert not rep.certified and rep.condition == "none"
    assert rep.active_kinks == 2 and rep.rank == 1 and len(rep.offending) == 2
    assert not in_clarke(relu_diff, x, 0.0) and in_clarke(relu_diff, x, 1.0)
    for seed in range(5):
        g, info = clarke_grad(relu_diff, x, seed=seed)
        assert float(g) == 1.0 and info.kinks == 2 and info.ties == 0
    # with relu'(0) = 1/2 backward mode returns 1 = (1/2 + 1/2): in Clarke; is it certified?
    rep_half = certify(relu_diff, x, policy=kinkgrad.KinkPolicy(relu=0.5))
    assert float(rep_half.gradient) == 1.0
    assert not rep_half.certified or in_clarke(relu_diff, x, 1.0)


def test_l1_norm_at_zero_has_the_four_vertices():
    f = lambda x: knp.abs(x[0]) + knp.abs(x[1])  # noqa: E731
    x = np.zeros(2)
    sub = subdifferential(f, x)
    want = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float)
    assert same_sets(sub.matrix, want, 0) and len(sub.vertices()) == 4
    assert same_sets(sub.matrix, brute_gradients(f, x))
    rep = certify(f, x)
    assert rep.certified and rep.condition == "LIKQ" and rep.rank == 2
    assert in_clarke(f, x, [0.3, -0.9]) and not in_clarke(f, x, [1.2, 0.0])


def test_max_of_three_at_a_triple_tie():
    x = np.ones(3)
    sub = subdifferential(knp.max, x)
    assert same_sets(sub.matrix, np.eye(3), 0)
    D = np.random.default_rng(0).normal(size=(3, 7))
    np.testing.assert_allclose(directional(knp.max, x, D), D.max(axis=0), atol=1e-15)
    g, _ = clarke_grad(knp.max, x, seed=3)
    assert sorted(g.tolist()) == [0.0, 0.0, 1.0]
    assert certify(knp.max, x).certified  # LIKQ: rows e1 - e2, (e1 + e2)/2 - e3
    assert in_clarke(knp.max, x, np.ones(3) / 3)


def test_norms_and_hinge():
    x = np.zeros(3)
    inf = lambda v: knp.linalg.norm(v, ord=np.inf)  # noqa: E731
    assert same_sets(subdifferential(inf, x).matrix, np.vstack([np.eye(3), -np.eye(3)]), 0)
    one = lambda v: knp.linalg.norm(v, ord=1)  # noqa: E731
    assert len(subdifferential(one, x)) == 8
    hinge = lambda w: knp.relu(1.0 - 2.0 * knp.sum(w))  # noqa: E731  hinge of a margin
    w = np.array([0.25, 0.25])
    assert same_sets(subdifferential(hinge, w).matrix, np.array([[0.0, 0.0], [-2.0, -2.0]]), 0)
    np.testing.assert_allclose(directional(hinge, w, np.array([[-1.0, 1.0], [0.0, 0.0]])),
                               [2.0, 0.0])


def test_euclidean_norm_and_tied_where_are_not_abs_smooth():
    x = np.zeros(2)
    l2 = lambda v: knp.linalg.norm(v)  # noqa: E731
    with pytest.raises(NotAbsSmoothError):
        abs_normal_form(l2, x)
    with pytest.raises(NotAbsSmoothError):
        certify(l2, x)
    # directional derivatives still exist for the 2-norm: ||d||
    np.testing.assert_allclose(directional(l2, x, np.array([3.0, 4.0])), 5.0)
    step = lambda v: knp.sum(knp.where(v > 0, v + 1.0, 0.0))  # noqa: E731 - a jump at 0
    for fn in (abs_normal_form, certify, subdifferential):
        with pytest.raises(NotAbsSmoothError):
            fn(step, x)
    with pytest.raises(NotAbsSmoothError):
        clarke_grad(step, x)
    assert certify(step, np.array([1.0, -1.0])).certified  # no tie: smooth there


def test_pytree_points_and_directions():
    f = lambda p: knp.relu(p["a"][0] - p["b"]) + knp.abs(p["a"][1])  # noqa: E731
    p = {"a": np.array([1.0, 0.0]), "b": np.float64(1.0)}
    g, _ = clarke_grad(f, p, seed=0)
    assert set(g) == {"a", "b"} and g["a"].shape == (2,) and np.shape(g["b"]) == ()
    d = {"a": np.array([[1.0, -1.0], [1.0, 1.0]]), "b": np.array([0.0, 0.0])}
    np.testing.assert_allclose(directional(f, p, d), [2.0, 1.0])  # k = 2 directions
    flat = np.array([[1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])  # the same, flat (n, k)
    np.testing.assert_allclose(directional(f, p, flat), [2.0, 1.0])
    sub = subdifferential(f, p)
    assert len(sub) == 4 and set(sub.gradients[0]) == {"a", "b"}
    assert in_clarke(f, p, {"a": np.array([0.5, 0.0]), "b": np.float64(-0.5)})
    with pytest.raises(ShapeError):
        directional(f, p, np.ones(5))


def test_ld_derivative_and_limits():
    f = lambda x: knp.abs(x[0] - x[1]) + knp.relu(x[1])  # noqa: E731
    x = np.zeros(2)
    M = np.array([[0.0, 1.0], [1.0, 0.0]])  # first e2, then e1
    # along e2: z1 = x0 - x1 < 0 and z2 = x1 > 0, the piece with gradient (-1, 2)
    np.testing.assert_allclose(ld_derivative(f, x, M), [2.0, -1.0])
    J_L = ld_derivative(f, x, M) @ np.linalg.inv(M)
    np.testing.assert_allclose(J_L, [-1.0, 2.0])
    assert any(np.allclose(J_L, g) for g in subdifferential(f, x).matrix)
    with pytest.raises(ShapeError):
        ld_derivative(f, x, np.array([[1.0, 2.0], [2.0, 4.0]]))
    big = lambda v: knp.sum(knp.abs(v))  # noqa: E731
    sub = subdifferential(big, np.zeros(9), limit=20)
    assert sub.partial and len(sub) == 20 and "limit=20" in sub.message
    # outside the outer set (every limiting gradient has entries in [-1, 1]): proven False
    # without listing anything
    assert in_clarke(big, np.zeros(9), np.full(9, 2.0), limit=20) is False
    # |v_i| - |v_i|/2: the blocks are neither convex nor independent, so the listing decides,
    # and it stops at the limit: 0.9 lies in the outer box [-1.5, 1.5]^9, not in the Clarke
    # box [-0.5, 0.5]^9 (the function is sum |v_i| / 2), and that cannot be told from 20 pieces
    half = lambda v: knp.sum(knp.abs(v)) - knp.sum(knp.abs(v)) / 2  # noqa: E731
    with pytest.raises(EnumerationLimitError):
        in_clarke(half, np.zeros(9), np.full(9, 0.9), limit=20)
    assert in_clarke(half, np.zeros(9), np.full(9, 0.9), limit=1024) is False


def test_reductions_over_axes_of_matrices():
    # x is a 2 x 3 matrix: column maxima with ties, row minima (keepdims), sort along axis 0
    def f(X):
        return (knp.sum(knp.max(X, axis=0) * np.array([1.0, 2.0, 3.0]))
                + knp.sum(knp.min(X, axis=1, keepdims=True) * np.array([[1.0], [-1.0]]))
                + knp.sum(knp.sort(X, axis=0) * np.array([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]])))

    X = np.array([[1.0, 0.0, 2.0], [1.0, 0.5, 2.0]])  # ties in columns 0 and 2
    D = np.random.default_rng(3).choice([-1.0, 0.5, 2.0], size=(2, 3, 5))
    t = 1e-7
    want = [(f(X + t * D[..., j]) - f(X)) / t for j in range(5)]
    np.testing.assert_allclose(directional(f, X, D), want, atol=1e-5)  # D: x.shape + (k,)
    sub = subdifferential(f, X)
    # column 0: max and sort resolve the same tie together: (1 + 0.5, 1) or (1, 1 + 0.5);
    # column 2: max's 3 and sort's -1 go to the larger entry, sort's 2 to the smaller: (2, 2)
    want = np.array([[[1.5, 1.0, 2.0], [1.0, 2.0, 2.0]], [[1.0, 1.0, 2.0], [1.5, 2.0, 2.0]]])
    assert sub.gradients[0].shape == (2, 3) and same_sets(sub.matrix, want.reshape(2, 6), 0)
    g, _ = clarke_grad(f, X, seed=1)
    assert np.min(np.abs(sub.matrix - g.ravel()).max(axis=1)) < 1e-12
    # plain AD is inconsistent here: max "first" treats row 0 as the larger entry of the tied
    # columns, stable sort treats it as the smaller one; no nearby point does both
    g_ad = kinkgrad.grad(f)(X)
    np.testing.assert_array_equal(g_ad, [[2.0, 1.0, 5.0], [0.5, 2.0, -1.0]])
    assert not in_clarke(f, X, g_ad) and not certify(f, X).certified


def test_ties_between_random_floats_survive_the_abs_forms():
    # (a + b + |a - b|)/2 rounds for most floats; the tie max(a, b) == a must still be found
    rng = np.random.default_rng(7)
    for _ in range(20):
        a, b = rng.normal(size=2)
        x = np.array([a, b, a])
        want = np.eye(3)[[0, 2]] if a > b else np.eye(3)[[1]]
        assert same_sets(subdifferential(knp.max, x).matrix, want, 0)
        # sort weighted by (1, 3, -2): the two copies of a share their two sorted positions
        srt = lambda v: knp.sum(knp.sort(v) * np.array([1.0, 3.0, -2.0]))  # noqa: E731
        if a > b:  # b first, then a, a
            want = np.array([[3.0, 1.0, -2.0], [-2.0, 1.0, 3.0]])
        else:  # a, a, then b
            want = np.array([[1.0, -2.0, 3.0], [3.0, -2.0, 1.0]])
        assert same_sets(subdifferential(srt, x).matrix, want, 0)


def test_subdifferential_lists_only_the_strict_winners_of_a_convex_max():
    # max(-2x, -x, -x/2) at 0: the middle line never wins strictly, so its slope is in the
    # hull but not a limiting gradient (found by a randomized run of the brute-force property)
    sub = kinkgrad.subdifferential(
        lambda x: 16 * x[0] + 0.5 * knp.max(knp.stack([-2 * x[0], -x[0], -0.5 * x[0]])),
        np.zeros(1))
    assert sorted(sub.matrix.ravel().tolist()) == [15.0, 15.75] and not sub.partial
    # in two dimensions: (0.25, 0) lies inside the diamond of the four others
    f = lambda x: knp.max(knp.stack([x[0], -x[0], x[1], -x[1], 0.25 * x[0]]))  # noqa: E731
    sub = kinkgrad.subdifferential(f, np.zeros(2))
    assert sorted(map(tuple, sub.matrix.tolist())) == [(-1.0, 0.0), (0.0, -1.0), (0.0, 1.0),
                                                       (1.0, 0.0)] and not sub.partial
    # a strict winner along some direction for each listed one, by finite differences
    for g in sub.matrix:
        d = g + 1e-3 * np.array([0.3, 0.7])
        t = 1e-6
        assert abs((float(f(t * d)) - float(f(np.zeros(2)))) / t - g @ d) < 1e-6
    # the hull is unchanged: the dropped slope is still a Clarke subgradient
    assert kinkgrad.in_clarke(f, np.zeros(2), np.array([0.25, 0.0]))
