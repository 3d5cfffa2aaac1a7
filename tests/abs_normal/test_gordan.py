"""Gordan certificates in the enumeration of realised signatures (:mod:`kinkgrad.abs_normal.gordan`)
against the LP they replace: a certificate prunes only row sets whose margin LP is at most
MARGIN, and the enumeration lists the same signatures and gradients with and without them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal import subdiff
from kinkgrad.abs_normal.gordan import GordanCache, row_key
from kinkgrad.abs_normal.lp import MARGIN, margin, row_duals


def _unit(R: np.ndarray) -> np.ndarray:
    return R / np.linalg.norm(R, axis=1, keepdims=True)


def _keys(U: np.ndarray) -> list[bytes]:
    return [row_key(u) for u in U]


def _infeasible_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows with no d making every r . d > 0: four random rows that d = e_1 realises, and
    minus a positive combination of two of them (Gordan's alternative by construction)."""
    R = rng.standard_normal((4, n))
    R[:, 0] = np.abs(R[:, 0]) + 0.5
    return _unit(np.vstack([R, -(0.7 * R[0] + 1.3 * R[2])]))


@pytest.mark.parametrize("seed", range(6))
def test_a_learnt_certificate_prunes_only_row_sets_the_lp_rejects(seed):
    rng = np.random.default_rng(seed)
    n = 3 + seed % 3
    U = _infeasible_rows(rng, n)
    t, d = margin(U)
    assert d is not None and t <= MARGIN
    cache = GordanCache()
    cache.learn(_keys(U), U, row_duals())
    for _ in range(10):  # supersets, the rows in random order; the newest is row 4, which
        #                   every certificate holds (rows 0-3 are realised by e_1)
        extra = _unit(rng.standard_normal((rng.integers(0, 4), n)))
        S = np.vstack([extra, U[rng.permutation(4)]][::rng.choice([1, -1])] + [U[4:]])
        assert cache.refutes(_keys(S), S)
        assert margin(S)[0] <= MARGIN  # the LP's own decision
    # the certificate's rows without the last one are realisable: not refuted, and feasible
    V = U[:4]
    assert margin(V)[0] > MARGIN
    assert not cache.refutes(_keys(V), V)
    assert cache.pruned == 10


def test_duals_that_are_no_certificate_are_not_learnt():
    rng = np.random.default_rng(0)
    U = _unit(rng.standard_normal((4, 3)))
    cache = GordanCache()
    cache.learn(_keys(U), U, np.ones(4))  # sum of the rows is not 0
    cache.learn(_keys(U), U, np.zeros(4))
    assert not cache.refutes(_keys(U), U)
    W = np.vstack([U, -U[0]])
    assert not cache.refutes(_keys(W), W)


def test_a_row_equal_only_to_rounding_is_checked_on_its_own_values():
    # the key matches (rounded to 10 digits) but the combination is re-evaluated on the
    # current rows: a row moved by 1e-16 still cancels within DEPENDENT, one moved by 1e-11
    # (same key) no longer does (its rows may enter a cone thinner than the LP's MARGIN:
    # realise.py decides it), one moved by 1e-6 would not, and its key differs anyway
    U = _unit(np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
    cache = GordanCache()
    cache.learn(_keys(U), U, np.array([0.5, 0.5]))
    moved = U.copy()
    moved[1, 1] = 1e-16
    assert cache.refutes(_keys(moved), moved)
    moved[1, 1] = 1e-11
    assert _keys(moved) == _keys(U) and not cache.refutes(_keys(moved), moved)
    far = U.copy()
    far[1] = _unit(np.array([[-1.0, 1e-6, 0.0]]))[0]
    assert not cache.refutes(_keys(far), far)


def _sort_tie(m: int, seed: int):
    rng = np.random.default_rng(seed)
    B, w = rng.standard_normal((m, 3)), rng.standard_normal(m)
    return (lambda x: knp.sum(knp.sort(B @ x) * w)), np.zeros(3)


def _mixed(seed: int):
    M = np.random.default_rng(seed).integers(-2, 3, (6, 3)).astype(float)
    return (lambda x: knp.max(M @ x) + knp.sum(knp.abs(M[:3] @ x))
            - knp.abs(knp.max(M[3:] @ x))), np.zeros(3)


@pytest.mark.parametrize("case", [("sort", 6, 1), ("sort", 6, 2), ("mixed", 0, 0),
                                  ("mixed", 0, 5), ("mixed", 0, 9)])
def test_enumeration_lists_the_same_pieces_with_and_without_certificates(case, monkeypatch):
    kind, m, seed = case
    f, x = _sort_tie(m, seed) if kind == "sort" else _mixed(seed)
    ls, _, _ = subdiff._local(f, x, "test")
    model = ls.model
    sigs, G, complete, lps = subdiff.enumerate_signatures(model, 10**6)
    # the selection gradients the search formed agree with the model's own (sparse solve)
    assert np.allclose(G, [model.gradient(s) for s in sigs], rtol=0, atol=1e-12)
    monkeypatch.setattr(GordanCache, "refutes", lambda self, keys, U: False)
    sigs0, G0, complete0, lps0 = subdiff.enumerate_signatures(model, 10**6)
    assert complete and complete0
    assert sorted(map(tuple, sigs)) == sorted(map(tuple, sigs0))
    assert lps < lps0  # the certificates replaced some LPs


def test_the_enumeration_stops_once_a_vector_is_in_the_hull_of_the_found_gradients():
    from scipy.optimize import linprog

    from kinkgrad.abs_normal.lp import in_hull

    rng = np.random.default_rng(11)
    B, w = rng.standard_normal((8, 3)), rng.standard_normal(8)
    f = lambda x: knp.sum(knp.sort(B @ x) * w)  # noqa: E731
    ls, _, _ = subdiff._local(f, np.zeros(3), "test")
    _, G_all, complete, _ = subdiff.enumerate_signatures(ls.model, 10**6)
    assert complete and len(G_all) > 64
    g = G_all[len(G_all) // 2] * 0.5 + G_all[-1] * 0.5  # in the hull, found late
    calls = []

    def stop(G):
        calls.append(len(G))
        return in_hull(G, g)[0]

    _, G, complete, _ = subdiff.enumerate_signatures(ls.model, 10**6, stop=stop)
    assert not complete and len(G) < len(G_all) and calls == [16 * 2 ** k for k in
                                                               range(len(calls))]
    # independent check (SciPy's LP): g is a convex combination of the gradients returned
    k = len(G)
    res = linprog(np.zeros(k), A_eq=np.vstack([G.T, np.ones(k)]), b_eq=np.r_[g, 1.0],
                  bounds=[(0, None)] * k, method="highs")
    assert res.status == 0
    assert kinkgrad.in_clarke(f, np.zeros(3), g)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(2, 3), st.integers(3, 5))
def test_certificates_never_drop_a_piece_on_random_degenerate_programs(seed, n, k):
    """Random piecewise-linear programs with every kink active at 0 (integer rows, so rows
    repeat and recur under many prefixes, and nested abs/max couple them): the signatures
    listed with certificates are exactly those the LP at every node lists (at n = 3, k = 5
    the certificates reject ~2-4 partial signatures for each LP solved)."""
    rng = np.random.default_rng(seed)
    M = rng.integers(-2, 3, (k, n)).astype(float)
    N = rng.integers(-1, 2, (k, k)).astype(float)
    w = rng.standard_normal(k)

    def f(x):
        a = knp.abs(M @ x)
        return knp.max(N @ a + M @ x) + w @ knp.abs(a - knp.abs(M[::-1] @ x))

    model, _ = subdiff._model(f, np.zeros(n), "test")  # the whole active model
    sigs, G, complete, _ = subdiff.enumerate_signatures(model, 4096)
    plain = GordanCache.refutes
    try:
        GordanCache.refutes = lambda self, keys, U: False
        sigs0, G0, complete0, _ = subdiff.enumerate_signatures(model, 4096)
    finally:
        GordanCache.refutes = plain
    assert complete == complete0
    assert sorted(map(tuple, sigs)) == sorted(map(tuple, sigs0))


@pytest.mark.parametrize("seed", range(3))
def test_realised_patterns_answer_as_the_lp_on_every_pattern(seed):
    from itertools import product

    from kinkgrad.abs_normal._sparse_tournament import reader_levels
    from kinkgrad.abs_normal.gordan import RealisedPatterns
    from kinkgrad.abs_normal.tournament import signature_margin

    rng = np.random.default_rng(seed)
    M = rng.integers(-2, 3, (3, 2)).astype(float)
    N = rng.integers(-1, 2, (3, 3)).astype(float)

    def f(x):
        a = knp.abs(M @ x)
        return knp.max(N @ a + M @ x) + knp.sum(knp.abs(a - knp.abs(M[::-1] @ x)))

    model, _ = subdiff._model(f, np.zeros(2), "test")
    A, K = model.A, model.K
    assert 8 <= model.m <= 11
    levels = reader_levels(K)
    realised = RealisedPatterns(A, K, levels)
    patterns = [np.array(p) for p in product((1.0, -1.0), repeat=model.m)]
    got = [realised(s) for s in patterns]
    truth = [signature_margin(A, K, s, levels)[0] > MARGIN for s in patterns]
    assert got == truth and any(truth) and not all(truth)
    assert realised.lps < len(patterns) // 4  # most answered by a direction or a certificate
