"""Whether a sign pattern of rows is realised (:mod:`kinkgrad.abs_normal.realise`), against
an exact truth: rows with dyadic entries, decided in Fractions.

The exact truth in the plane: the pattern's open cone {d : r_j . d > 0} is an intersection
of half-planes through 0; when it is not empty and narrower than a half-plane its boundary
rays are perpendiculars of rows and their sum lies inside, and a half-plane contains a row.
So the pattern is realised iff one of those candidates passes every row exactly."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations, product

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal.lp import MARGIN
from kinkgrad.abs_normal.realise import DEPENDENT, realised
from kinkgrad.abs_normal.subdiff import UndecidedError


def _exact_realised_2d(R: np.ndarray) -> bool:
    rows = [(Fraction(a), Fraction(b)) for a, b in R.tolist()]
    perps = [p for a, b in rows for p in ((-b, a), (b, -a))]
    cands = rows + perps + [(p[0] + q[0], p[1] + q[1]) for p, q in combinations(perps, 2)]
    return any(all(a * u + b * v > 0 for a, b in rows) for u, v in cands)


def _exact_margin_2d(R: np.ndarray) -> float:
    """A lower bound on the margin the module's unit rows have: the best candidate's."""
    U = R / np.linalg.norm(R, axis=1, keepdims=True)
    rows = [(Fraction(a), Fraction(b)) for a, b in R.tolist()]
    perps = [p for a, b in rows for p in ((-b, a), (b, -a))]
    best = 0.0
    for u, v in rows + perps + [(p[0] + q[0], p[1] + q[1]) for p, q in
                                combinations(perps, 2)]:
        d = np.array([float(u), float(v)])
        top = np.max(np.abs(d))
        if top > 0:
            best = max(best, float(np.min(U @ (d / top))))
    return best


@pytest.mark.parametrize("k", list(range(4, 50, 2)))
def test_two_nearly_parallel_rows_are_realised_both_ways_or_undecided(k):
    # (1, 1) and (1, 1 + 2^-k) are independent: all four patterns are realised exactly.
    # HiGHS (tolerance 1e-7) called the thin ones unrealised from 2^-23 on (its t even came
    # back -4e-8); now they are realised while the cone's margin exceeds MARGIN, undecided
    # below, and never "unrealised" unless the rows agree to DEPENDENT
    delta = 2.0 ** -k
    for s in product((1.0, -1.0), repeat=2):
        R = np.array(s)[:, None] * np.array([[1.0, 1.0], [1.0, 1.0 + delta]])
        assert _exact_realised_2d(R)
        entered, d = realised(R)
        if entered:
            assert np.all(R @ d > 0) and np.max(np.abs(d)) <= 1.0
        if _exact_margin_2d(R) > 2 * MARGIN:
            assert entered is True, (k, s)
        if entered is False:
            U = R / np.linalg.norm(R, axis=1, keepdims=True)
            assert np.abs(d @ U).sum() <= DEPENDENT and delta < 1e-13


@pytest.mark.parametrize("k", [3, 8, 12, 16, 20, 24, 28])
def test_three_nearly_parallel_rows_in_the_plane_against_the_exact_cone(k):
    # more rows than dimensions: (1, 0), (1, 2^-k), (1, 2^-k+1); the middle row is the mean
    # of the others, so (+, -, +) and (-, +, -) are not realised (exactly), the other six are
    delta = 2.0 ** -k
    base = np.array([[1.0, 0.0], [1.0, delta], [1.0, 2 * delta]])
    for s in product((1.0, -1.0), repeat=3):
        R = np.array(s)[:, None] * base
        truth = _exact_realised_2d(R)
        assert truth == (s not in ((1.0, -1.0, 1.0), (-1.0, 1.0, -1.0)))
        entered, d = realised(R)
        assert entered is not (not truth), (k, s, entered)  # a decision is the truth's
        if entered:
            assert np.all(R @ d > 0)
        if truth and _exact_margin_2d(R) > 2 * MARGIN:
            assert entered is True, (k, s)
        if not truth:
            assert entered is False, (k, s)  # an exact cancellation is proven


def test_rows_that_cancel_exactly_are_proven_unrealised_with_a_certificate():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 6))
        a = rng.integers(-4, 5, (3, n)).astype(float)
        R = np.vstack([a, -(a.sum(axis=0))[None]])  # the rows sum to 0 exactly
        if np.any(np.linalg.norm(R, axis=1) == 0):
            continue
        entered, y = realised(R)
        assert entered is False
        U = R / np.linalg.norm(R, axis=1, keepdims=True)
        assert np.all(y >= 0) and y.sum() == pytest.approx(1.0)
        assert np.abs(y @ U).sum() <= DEPENDENT


def _nearly_parallel_kinks(delta: float):
    def f(x):
        return knp.relu((x[0] + x[1]) - 2.0) - knp.relu((x[0] + (1 + delta) * x[1])
                                                       - (2.0 + delta))
    return f


def _exact_gradients(delta: float) -> set:
    # both kinks are exactly at (1, 1) and the rows (1, 1), (1, 1 + delta) are independent:
    # every sign pattern is realised, the gradient of (s_u, s_v) is s_u (1, 1) - s_v row_v
    D = Fraction(delta)
    out = set()
    for su, sv in product((0, 1), repeat=2):
        out.add((float(su - sv), float(su - sv * (1 + D))))
    return out


@pytest.mark.parametrize("k", [20, 23, 26])
def test_kinks_of_nearly_parallel_rows_list_all_four_gradients(k):
    # the pieces with u < 0 < v and v < 0 < u lie in cones of margin 2^-k / 4; the list
    # held 3 of the 4 gradients and was called complete, and in_clarke((-1, -1 - d)) said
    # False for a limiting gradient (2^-23 and 2^-26)
    delta = 2.0 ** -k
    f, x = _nearly_parallel_kinks(delta), np.ones(2)
    sub = kinkgrad.subdifferential(f, x)
    got = {tuple(map(float, g)) for g in sub.matrix}
    assert got == _exact_gradients(delta) and not sub.partial
    assert kinkgrad.in_clarke(f, x, np.array([-1.0, -1.0 - delta]))


@pytest.mark.parametrize("k", [30, 36, 40, 44])
def test_kinks_too_nearly_parallel_to_tell_are_undecided_not_false(k):
    # margins below MARGIN and rows that do not cancel to DEPENDENT: not listed as complete,
    # and in_clarke does not call a limiting gradient outside
    delta = 2.0 ** -k
    f, x = _nearly_parallel_kinks(delta), np.ones(2)
    sub = kinkgrad.subdifferential(f, x)
    assert {tuple(map(float, g)) for g in sub.matrix} <= _exact_gradients(delta)
    assert sub.partial and "undecided" in sub.message
    for g in _exact_gradients(delta):
        try:
            assert kinkgrad.in_clarke(f, x, np.array(g))
        except UndecidedError:
            pass
