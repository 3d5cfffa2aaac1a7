"""The abs forms of max/min over axes (a tournament) and of sort (the odd-even
transposition network), one vectorized level or round at a time, and the level-by-level
back substitution that evaluates blocks at many signatures.

Truths: pure NumPy networks written here (the documented pairing rules: items 2p and 2p + 1
of a tournament level meet, an odd item out moves up last; round r of the network compares
entries i, i + 1 for i = r mod 2, r mod 2 + 2, ...), the function itself on a dyadic grid
(piecewise linear: the linearization is exact), dense linear solves of
(I - K Sigma)^T w = sigma * bhat, and the closed-form distance of a sort tie class.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.expand import expand
from kinkgrad.abs_normal.tournament import (
    LevelSolver,
    block_value,
    block_values,
    signature_values,
)
from kinkgrad.modes._traced import trace_call


def _hand_switches(x: np.ndarray, axis: tuple, sign: float) -> np.ndarray:
    """The tournament's switch values a - b, level by level, pairs in order and within a
    pair the kept entries in C order (the numbering the abs-normal form documents)."""
    nd = x.ndim
    red = sorted(a % nd for a in axis)  # the reduced axes flattened in C order
    rest = [i for i in range(nd) if i not in red]
    cur = np.transpose(x, red + rest).reshape((-1,) + tuple(x.shape[i] for i in rest))
    out = []
    while cur.shape[0] > 1:
        k, h = cur.shape[0], cur.shape[0] // 2
        a, b = cur[0:2 * h:2], cur[1:2 * h:2]
        out.append((a - b).reshape(-1))
        nxt = (a + b + np.abs(a - b) * sign) * 0.5
        cur = np.concatenate([nxt, cur[k - 1:k]]) if k % 2 else nxt
    return np.concatenate(out) if out else np.zeros(0)


CASES = [((7,), None), ((8,), None), ((1,), None), ((2, 3), None), ((3, 5, 4), (0,)),
         ((3, 5, 4), (1,)), ((3, 5, 4), (2,)), ((3, 5, 4), (0, 2)), ((3, 5, 4), (-1, -2)),
         ((2, 1, 5), (1,))]


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_switches_are_the_tournament_differences_in_documented_order(shape, axis, name,
                                                                     keepdims):
    rng = np.random.default_rng(len(shape) * 7 + (0 if axis is None else sum(axis)))
    x = rng.integers(-2, 3, shape).astype(float)  # many ties
    red = tuple(range(len(shape))) if axis is None else tuple(a % len(shape) for a in axis)
    w = rng.integers(1, 4, np.max(x, axis=red, keepdims=keepdims).shape).astype(float)
    fn = getattr(knp, name)
    anf = kinkgrad.abs_normal_form(lambda v: knp.sum(fn(v, axis=axis, keepdims=keepdims) * w),
                                   x, dense=True)
    want = _hand_switches(x, red, 1.0 if name == "max" else -1.0)
    np.testing.assert_array_equal(anf.z, want)
    assert anf.s == want.size
    # piecewise linear on a dyadic grid: the linearization is f(x + dx) itself
    f = getattr(np, name)
    for dx in rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], size=(4,) + shape):
        _, y = anf.linearization(dx.reshape(-1))
        np.testing.assert_allclose(y, [np.sum(f(x + dx, axis=red, keepdims=keepdims) * w)],
                                   atol=1e-12)


def test_a_tournament_over_n_items_has_one_abs_per_level():
    n = 1000
    tr = trace_call(lambda v: knp.max(v), (np.zeros(n),), {}, [0], "test")
    exp = expand(tr)
    assert len(exp.abs_eqns) == int(np.ceil(np.log2(n)))  # 10 levels, not 999 equations
    assert exp.s == n - 1
    assert len(exp.eqns) < 12 * len(exp.abs_eqns)


def test_stationarity_of_max_of_squares_at_a_full_tie_and_off_it():
    # f = max_i x_i^2: 0 is the minimizer (every gradient 2 x_i e_i is 0 there); at x = 1
    # (all tied) the Clarke set is conv{2 e_i}, whose least-norm element 2/n * 1 is not 0
    n = 300
    f = kinkgrad.problems.get("maxq", n).f
    assert kinkgrad.stationarity(f, np.zeros(n)).verdict == "stationary"
    rep = kinkgrad.stationarity(f, np.ones(n))
    assert rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(2 / np.sqrt(n), rel=1e-9)


def _random_block(rng: np.random.Generator, m: int, n: int, density: float):
    K = np.tril(rng.normal(size=(m, m)) * (rng.random((m, m)) < density), -1)
    return rng.normal(size=(m, n)), K, rng.normal(size=m)


@pytest.mark.parametrize("m,density", [(1, 1.0), (5, 1.0), (20, 0.3), (70, 0.05)])
def test_signature_values_solve_the_transposed_systems(m, density):
    rng = np.random.default_rng(m)
    A, K, bhat = _random_block(rng, m, 6, density)
    sig = rng.choice([-1.0, 0.0, 1.0], size=(9, m))
    got = signature_values(A, K, bhat, sig)
    for s, g in zip(sig, got):
        w = np.linalg.solve((np.eye(m) - K * s[None, :]).T, s * bhat)
        np.testing.assert_allclose(g, w @ A, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(block_value(A, K, bhat, s), w @ A, rtol=1e-9, atol=1e-9)
    few, many = list(sig[:2]), list(sig)  # both paths of block_values
    for sigs in (few, many):
        np.testing.assert_allclose(np.array(block_values(A, K, bhat, sigs)),
                                   got[:len(sigs)], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- sort
def _hand_network(x: np.ndarray, axis: int) -> np.ndarray:
    """The network's switch values a - b, round by round, comparators in order and within a
    comparator the other axes' entries in C order."""
    cur = np.moveaxis(x, axis, 0).copy()
    n, out = cur.shape[0], []
    for rnd in range(n):
        for i in range(rnd % 2, n - 1, 2):
            a, b = cur[i].copy(), cur[i + 1].copy()
            out.append((a - b).reshape(-1))
            d = np.abs(a - b)
            cur[i], cur[i + 1] = (a + b - d) * 0.5, (a + b + d) * 0.5
    return np.concatenate(out) if out else np.zeros(0)


@pytest.mark.parametrize("shape,axis", [((1,), -1), ((2,), -1), ((5,), -1), ((6,), -1),
                                        ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1),
                                        ((2, 7), 0)])
def test_sort_switches_are_the_network_differences_in_documented_order(shape, axis):
    rng = np.random.default_rng(sum(shape) + axis)
    x = rng.integers(-2, 3, shape).astype(float)  # many ties
    W = rng.integers(-3, 4, shape).astype(float)
    anf = kinkgrad.abs_normal_form(lambda v: knp.sum(knp.sort(v, axis=axis) * W), x, dense=True)
    want = _hand_network(x, axis)
    np.testing.assert_array_equal(anf.z, want)
    for dx in rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], size=(4,) + shape):
        _, y = anf.linearization(dx.reshape(-1))
        np.testing.assert_allclose(y, [np.sum(np.sort(x + dx, axis=axis) * W)], atol=1e-12)


def test_a_sorting_network_over_n_entries_has_one_abs_per_round():
    n = 60
    tr = trace_call(lambda v: knp.sort(v), (np.arange(n, dtype=float),), {}, [0], "test")
    exp = expand(tr)
    assert len(exp.abs_eqns) == n  # one per round (n/2 or n/2 - 1 comparators each)
    assert exp.s == n * (n - 1) // 2


@pytest.mark.parametrize("n,m", [(40, 5), (120, 12), (150, 20)])
def test_sort_tie_class_distance_matches_the_closed_form(n, m):
    # w . sort(x) with the m smallest entries tied: the tied ranks' gradient entries range
    # over the permutohedron of w[:m], whose least-norm point is their mean
    rng = np.random.default_rng(n + m)
    x = rng.normal(size=n)
    x[:m] = x.min() - 1.0
    w = rng.normal(size=n)
    rep = kinkgrad.stationarity(lambda v: knp.sum(knp.sort(v) * w), x)
    truth = np.sqrt(m * np.mean(w[:m]) ** 2 + np.sum(w[m:] ** 2))
    assert rep.verdict == "not stationary"
    lo, hi = rep.bounds
    assert lo - 1e-9 * truth <= truth <= hi + 1e-9 * truth
    assert hi - lo <= 1e-9 * truth  # decided tightly, not just bounded


def test_level_solver_on_a_network_like_dense_block():
    # every switch reads all switches of the earlier rounds: K dense below the round blocks
    rng = np.random.default_rng(3)
    rounds = [4, 3, 4, 3, 4]
    m = sum(rounds)
    start = np.cumsum([0] + rounds)
    K = np.zeros((m, m))
    for r in range(1, len(rounds)):
        K[start[r]:start[r + 1], :start[r]] = rng.normal(size=(rounds[r], start[r]))
    A, bhat = rng.normal(size=(m, 5)), rng.normal(size=m)
    solver = LevelSolver(A, K, bhat)
    assert len(solver.steps) == len(rounds)
    sig = rng.choice([-1.0, 0.0, 1.0], size=(12, m))
    got = solver(sig)
    for s, g in zip(sig, got):
        w = np.linalg.solve((np.eye(m) - K * s[None, :]).T, s * bhat)
        np.testing.assert_allclose(g, w @ A, rtol=1e-9, atol=1e-9)


def test_block_values_with_sparse_signatures_solve_the_transposed_systems():
    # many signatures with small supports (as a tournament's leaves: a path to the root)
    # take the sparse-coefficient path of block_values: against dense solves
    rng = np.random.default_rng(7)
    m = 80
    A, K, bhat = _random_block(rng, m, 6, 0.05)
    sig = np.zeros((60, m))
    for s in sig:
        supp = rng.choice(m, 5, replace=False)
        s[supp] = rng.choice([-1.0, 1.0], 5)
    got = np.array(block_values(A, K, bhat, list(sig)))
    for s, g in zip(sig, got):
        w = np.linalg.solve((np.eye(m) - K * s[None, :]).T, s * bhat)
        np.testing.assert_allclose(g, w @ A, rtol=1e-9, atol=1e-9)


def test_local_set_memo_of_tournament_structures(monkeypatch):
    # chained CB3 I at n = 60: 59 k-way max blocks of one structure. The memo checks the
    # first on coefficient vectors and reuses it; every block must equal the one analysed
    # on its own (memo off)
    from kinkgrad import problems
    from kinkgrad.abs_normal import localset
    from kinkgrad.abs_normal._flat import FlatSpec, scalar_output, trace_at
    from kinkgrad.abs_normal.active import ActiveModel

    p = problems.get("chained-cb3-1", 60)
    tr = trace_at(p.f, np.ones(60), "test")
    out, _ = scalar_output(tr, "test")
    model = ActiveModel(expand(tr), FlatSpec(tr), out)
    calls = []
    real = localset.tournament

    def spy(A, K, bhat, T, S, rng, memo=None):
        calls.append(memo is not None and len(memo) > 0)
        return real(A, K, bhat, T, S, rng, memo)

    monkeypatch.setattr(localset, "tournament", spy)
    fast = localset.local_set(model)
    assert len(fast.blocks) == 59 and all(b.kind == "k-way max" for b in fast.blocks)
    assert sum(calls) == 58  # every block after the first found its structure remembered
    monkeypatch.setattr(localset, "tournament",
                        lambda A, K, bhat, T, S, rng, memo=None: real(A, K, bhat, T, S, rng))
    slow = localset.local_set(model)
    for a, b in zip(fast.blocks, slow.blocks):
        assert a.kind == b.kind and a.convex == b.convex and a.complete == b.complete
        np.testing.assert_array_equal(a.cols, b.cols)
        np.testing.assert_allclose(a.outer, b.outer, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(a.inner, b.inner, rtol=1e-15, atol=1e-15)
