"""Stationarity at ties of ``sort`` (tie classes of up to 7 entries, listed by orderings)
against independent truth: the permutohedron's distance from 0 in closed form, and brute
force over the orderings of the row that a direction realises (HiGHS LPs), their gradients'
hull min-norm by SciPy's NNLS."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
import pytest
from scipy.optimize import linprog, nnls

import kinkgrad
import kinkgrad.abs_normal.localset as localset
import kinkgrad.numpy as knp


def hull_min_norm(G: np.ndarray) -> float:
    """min ||G^T lam|| over the simplex (Lawson-Hanson least-distance programming)."""
    k, n = G.shape
    u, _ = nnls(np.vstack([G.T, np.ones((1, k))]), np.r_[np.zeros(n), 1.0], maxiter=50 * k)
    return float(np.linalg.norm(G.T @ (u / u.sum())))


def realised_gradients(B: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradients at x = 0 of the pieces of f(x) = w . sort(B x + c) met next to 0: every
    ordering of the entries that respects c and whose tie-breaks some direction d realises
    (strictly: (B d)_b - (B d)_a >= 1 for consecutive a, b of a tie group, an LP)."""
    values = np.unique(c)
    groups = [np.flatnonzero(c == v) for v in values]
    out = []
    for perms in product(*(permutations(g) for g in groups)):
        rows = [B[b] - B[a] for p in perms for a, b in zip(p, p[1:])]
        if rows:
            res = linprog(np.zeros(B.shape[1]), A_ub=-np.array(rows), b_ub=-np.ones(len(rows)),
                          bounds=[(None, None)] * B.shape[1], method="highs")
            if res.status != 0:
                continue
        order = np.concatenate(perms)  # order[j]: the entry at sorted position j
        out.append(w @ B[order])
    return np.array(out)


def sort_objective(B: np.ndarray, c: np.ndarray, w: np.ndarray):
    return lambda x: knp.sum(knp.sort(B @ x + c) * w)


@pytest.mark.parametrize("m", [3, 5, 6, 7])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_full_tie_is_the_permutohedron(m, shift):
    # at x = 0 every entry of sort(x) is tied: the Clarke subdifferential of w . sort(x) is
    # the hull of the permutations of w, whose distance from 0 is |mean(w)| sqrt(m)
    rng = np.random.default_rng(m)
    w = rng.standard_normal(m)
    w += shift - w.mean()
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.sort(x) * w), np.zeros(m))
    truth = abs(shift) * np.sqrt(m)
    assert rep.exact
    assert rep.verdict == ("stationary" if shift == 0 else "not stationary")
    assert rep.distance == pytest.approx(truth, abs=1e-9)
    if shift:
        assert rep.slope == pytest.approx(-truth, rel=1e-9)  # f'(x; d) along the unit -u


@pytest.mark.parametrize("seed", range(8))
def test_ties_of_a_linear_image_against_brute_force(seed):
    # sort(B x + c) with tie groups in c and B of low rank: some orderings of a tie group
    # are never entered, the block is then not complete and its realised values need LPs
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 7))
    k = int(rng.integers(2, 5))
    c = rng.choice([0.0, 1.0, 2.5], n, p=[0.6, 0.3, 0.1])
    B = rng.standard_normal((n, k))
    w = rng.standard_normal(n)
    truth = hull_min_norm(realised_gradients(B, c, w))
    rep = kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k))
    lo, hi = rep.bounds
    assert lo - 1e-9 <= truth <= hi + 1e-9
    if rep.exact:
        assert rep.distance == pytest.approx(truth, abs=1e-8)
    assert rep.verdict != "undecided"


@pytest.mark.parametrize("seed", range(4))
def test_orderings_agree_with_the_signature_enumeration(seed, monkeypatch):
    # classes of 3 and 4 entries (3 and 6 switches): the generic block lists all 2^M sign
    # patterns and tests each for a realising direction; the sort path must find the same set
    rng = np.random.default_rng(100 + seed)
    m = 3 + seed % 2
    B = rng.standard_normal((m + 1, 3))
    c = np.r_[np.zeros(m), 1.0]
    w = rng.standard_normal(m + 1)
    f = sort_objective(B, c, w)
    fast = kinkgrad.stationarity(f, np.zeros(3))
    monkeypatch.setattr(localset, "sort_orderings", lambda *a: None)
    generic = kinkgrad.stationarity(f, np.zeros(3))
    assert "sort tie" in fast.reason and "sort tie" not in generic.reason
    assert fast.verdict == generic.verdict
    assert fast.distance == pytest.approx(generic.distance, abs=1e-9)


def test_rows_and_two_classes_in_one_row():
    # axis 0 over a (6, 2) matrix: column 0 holds two tie classes (3 and 2 entries), column 1
    # one of 6; each class is its own block, the set their sum
    x = np.array([[0.0, 1.0], [2.0, 1.0], [0.0, 1.0], [2.0, 1.0], [0.0, 1.0], [5.0, 1.0]])
    W = np.random.default_rng(7).standard_normal((6, 2))

    def f(z):
        return knp.sum(knp.sort(z, axis=0) * W)

    rep = kinkgrad.stationarity(f, x)
    col0 = realised_gradients(np.eye(6), x[:, 0], W[:, 0])
    col1 = realised_gradients(np.eye(6), x[:, 1], W[:, 1])
    truth = np.hypot(hull_min_norm(col0), hull_min_norm(col1))  # separate coordinates
    assert rep.blocks == 3 and rep.exact
    assert rep.distance == pytest.approx(truth, abs=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_near_ties_in_a_ball_stay_sound(shift):
    # entries 1e-9 apart, radius 1e-6: the comparators are moved onto their kinks, which the
    # orderings argument does not cover; whatever the path, the verdict must not be wrong
    m = 6
    w = np.linspace(-1, 1, m) + shift
    x = np.arange(m) * 1e-9
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x, radius=1e-6)
    truth = abs(shift) * np.sqrt(m)  # the permutohedron again: every comparator moved
    lo, hi = rep.bounds
    assert lo - 1e-9 <= truth <= hi + 1e-9
    assert rep.verdict in ("undecided", "stationary" if shift == 0 else "not stationary")


def test_class_scattered_in_a_longer_row():
    # 7 equal entries at scattered places of a row of 40 (the network compares them many
    # times: far more than 21 active switches); the rest of the gradient is fixed, the tied
    # sorted positions p..p+6 contribute the permutohedron of w[p:p+7]
    rng = np.random.default_rng(1)
    n, cls = 40, [5, 11, 17, 23, 29, 3, 9]
    x = rng.standard_normal(n)
    x[cls] = 0.123
    w = rng.standard_normal(n)
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x)
    p = int(np.searchsorted(np.sort(x), 0.123))
    g = np.zeros(n)
    g[np.argsort(x, kind="stable")] = w
    others = np.setdiff1d(np.arange(n), cls)
    truth = np.sqrt(np.sum(g[others] ** 2) + 7 * np.mean(w[p:p + 7]) ** 2)
    assert rep.num_active > 21 and rep.exact and rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-10)


def in_permutohedron(g: np.ndarray, w: np.ndarray) -> bool:
    """Rado's theorem: g is in the hull of the permutations of w iff the sums agree and
    every sum of the k largest entries of g is at most that of w."""
    a, b = np.cumsum(np.sort(g)[::-1]), np.cumsum(np.sort(w)[::-1])
    return bool(abs(a[-1] - b[-1]) < 1e-12 and np.all(a <= b + 1e-12))


def test_in_clarke_at_a_tie_of_six_against_majorization():
    rng = np.random.default_rng(3)
    w = np.round(rng.standard_normal(6), 2)

    def f(x):
        return knp.sum(knp.sort(x) * w)

    perms = np.array([rng.permutation(w) for _ in range(4)])
    inside = [rng.dirichlet(np.ones(4)) @ perms for _ in range(3)] + [perms[0]]
    outside = [perms[0] * 1.1, perms[0] + np.r_[0.3, -0.3, 0, 0, 0, 0] * np.sign(
        perms[0][0] - perms[0][1] + 1e-9) * 10]
    assert all(in_permutohedron(g, w) for g in inside)
    assert not any(in_permutohedron(g, w) for g in outside)
    for g in inside + outside:
        assert kinkgrad.in_clarke(f, np.zeros(6), g) == in_permutohedron(g, w)
