"""The abs form of max/min over axes, one vectorized tournament level at a time, and the
batched back substitution that checks and evaluates tournament blocks.

Truths: a pure NumPy tournament written here (the documented pairing rule: items 2p and
2p + 1 of a level meet, an odd item out moves up last), the function itself on a dyadic grid
(piecewise linear: the linearization is exact), and a dense linear solve of
(I - K Sigma)^T w = sigma * bhat.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.expand import expand
from kinkgrad.abs_normal.tournament import block_value, block_values, signature_values
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
