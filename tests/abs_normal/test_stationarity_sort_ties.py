"""Stationarity at ties of ``sort`` (tie classes of up to 7 entries, listed by orderings)
against independent truth: the permutohedron's distance from 0 in closed form, and brute
force over the orderings of the row that a direction realises (HiGHS LPs), their gradients'
hull min-norm by least-distance programming (SciPy's BVLS, ``_least_distance``)."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import kinkgrad
import kinkgrad.abs_normal.localset as localset
import kinkgrad.abs_normal.subdiff
import kinkgrad.numpy as knp
from _least_distance import hull_min_norm


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


def ball_gradients(B: np.ndarray, c: np.ndarray, at: np.ndarray, w: np.ndarray, r: float
                   ) -> np.ndarray | None:
    """Gradients of the pieces of f(x) = w . sort(B x + at) that meet the ball of radius r
    around 0, where ``at`` is c plus offsets far below r (entries of different c values keep
    their order in the ball): every ordering within c's groups whose cell of the arrangement
    (B_b - B_a) . x >= at_a - at_b for consecutive a, b of a group holds a point of the box
    |x_i| <= r / sqrt(k) (inside the ball; an LP, scaled by the offsets' size), checked
    against the box |x_i| <= r (around the ball): None where the two disagree."""
    k = B.shape[1]
    scale = max(float(np.max(np.abs(at - c))), 1e-300)
    groups = [np.flatnonzero(c == v) for v in np.unique(c)]
    out = []
    for perms in product(*(permutations(g) for g in groups)):
        pairs = [(a, b) for p in perms for a, b in zip(p, p[1:])]
        met = []
        for half in (r / np.sqrt(k), r):
            if not pairs:
                met.append(True)
                continue
            R = np.array([B[b] - B[a] for a, b in pairs])
            off = np.array([(at[b] - at[a]) / scale for a, b in pairs])
            # max t s.t. R y + off >= t, |y_i| <= half / scale (x = scale y)
            res = linprog(np.r_[np.zeros(k), -1.0], A_ub=np.hstack([-R, np.ones((len(pairs), 1))]),
                          b_ub=off, bounds=[(-half / scale, half / scale)] * k + [(None, 1.0)],
                          method="highs")
            met.append(res.status == 0 and -res.fun > 1e-7)
        if met[0] != met[1]:
            return None
        if met[0]:
            out.append(w @ B[np.concatenate(perms)])
    return np.array(out)


def sort_objective(B: np.ndarray, c: np.ndarray, w: np.ndarray):
    return lambda x: knp.sum(knp.sort(B @ x + c) * w)


@pytest.mark.parametrize("m", [3, 5, 6, 7, 8, 12, 20])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_full_tie_is_the_permutohedron(m, shift):
    # at x = 0 every entry of sort(x) is tied: the Clarke subdifferential of w . sort(x) is
    # the hull of the permutations of w, whose distance from 0 is |mean(w)| sqrt(m); listed
    # up to m = 7, by the assignment oracle above
    rng = np.random.default_rng(m)
    w = rng.standard_normal(m)
    w += shift - w.mean()
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.sort(x) * w), np.zeros(m))
    truth = abs(shift) * np.sqrt(m)
    assert "sort tie" in rep.reason and rep.exact
    assert rep.verdict == ("stationary" if shift == 0 else "not stationary")
    assert rep.distance == pytest.approx(truth, abs=1e-8)
    lo, hi = rep.bounds
    assert lo <= truth + 1e-9 and truth <= hi + 1e-9
    if shift:  # f'(x; d) along the unit -u
        assert lo == pytest.approx(truth, rel=1e-7)
        assert rep.slope == pytest.approx(-truth, rel=1e-7)


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
    # patterns and tests each for a realising direction; the listed orderings and the
    # routing of derivatives (sort_near.py, here at exact ties) must find the same set
    rng = np.random.default_rng(100 + seed)
    m = 3 + seed % 2
    B = rng.standard_normal((m + 1, 3))
    c = np.r_[np.zeros(m), 1.0]
    w = rng.standard_normal(m + 1)
    f = sort_objective(B, c, w)
    fast = kinkgrad.stationarity(f, np.zeros(3))
    monkeypatch.setattr(localset, "sort_orderings", lambda *a: None)  # the routing path
    routed = kinkgrad.stationarity(f, np.zeros(3))
    monkeypatch.setattr(localset, "near_oracle", lambda *a: None)
    generic = kinkgrad.stationarity(f, np.zeros(3))
    assert "sort tie" in fast.reason and "sort tie" in routed.reason
    assert "sort tie" not in generic.reason
    for rep in (fast, routed):
        assert rep.verdict == generic.verdict
        assert rep.distance == pytest.approx(generic.distance, abs=1e-9)


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


@pytest.mark.parametrize("m", [3, 6, 10])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_near_ties_in_a_ball_are_the_permutohedron(m, shift):
    # entries 1e-9 apart, radius 1e-6: every comparator is moved onto its kink, and the set
    # (the Clarke subdifferential of the program with them at their kinks) is the
    # permutohedron of w again; decided through the token routing (sort_near.py)
    w = np.linspace(-1, 1, m) + shift
    x = np.arange(m) * 1e-9
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x, radius=1e-6)
    truth = abs(shift) * np.sqrt(m)
    lo, hi = rep.bounds
    assert lo - 1e-9 <= truth <= hi + 1e-9
    assert "sort tie" in rep.reason
    assert rep.verdict == ("stationary" if shift == 0 else "not stationary")
    if shift:
        assert rep.distance == pytest.approx(truth, rel=1e-7)
        assert rep.slope < 0


@pytest.mark.parametrize("seed", range(3))
def test_near_ties_of_a_linear_image_against_birkhoff(seed):
    # 7 of 9 entries of B x + c within 1e-9 of each other (B full rank), radius 1e-6: the
    # ball's set is the hull of the class's 5,040 permutations through B (NNLS on all)
    rng = np.random.default_rng(400 + seed)
    m, k = 7, 7
    c = np.r_[rng.uniform(0, 1e-9, m), -1.0, 1.0]
    B = rng.standard_normal((m + 2, k))
    w = rng.standard_normal(m + 2)
    order = np.argsort(c, kind="stable")
    fixed = w[0] * B[order[0]] + w[-1] * B[order[-1]]
    truth = hull_min_norm(np.array([fixed + w[1:m + 1] @ B[list(p)]
                                    for p in permutations(range(m))]))
    rep = kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k), radius=1e-6)
    lo, hi = rep.bounds
    assert "sort tie" in rep.reason
    assert lo - 1e-7 <= truth <= hi * (1 + 1e-6) + 1e-7
    assert rep.verdict == "not stationary" and rep.slope < 0
    assert lo == pytest.approx(truth, rel=1e-5)


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


# ------------------------------------------------------- classes too large to list (m > 7)
def birkhoff_min_norm(M: np.ndarray, w: np.ndarray, g: np.ndarray) -> float:
    """min ||g + M^T D^T w|| over doubly stochastic D (Birkhoff-von Neumann: the hull of
    the permutations), by SciPy's SLSQP on the m^2 entries of D."""
    from scipy.optimize import minimize

    m = w.size

    def vec(d: np.ndarray) -> np.ndarray:
        return g + M.T @ (d.reshape(m, m).T @ w)

    def fun(d: np.ndarray) -> float:
        return 0.5 * float(vec(d) @ vec(d))

    def jac(d: np.ndarray) -> np.ndarray:
        return np.outer(w, M @ vec(d)).reshape(-1)  # d/dD_rt of 1/2 ||v||^2

    cons = [{"type": "eq", "fun": lambda d: d.reshape(m, m).sum(axis=1) - 1},
            {"type": "eq", "fun": lambda d: d.reshape(m, m).sum(axis=0)[:-1] - 1}]  # one
    # column sum follows from the others: SLSQP refuses the redundant one
    res = minimize(fun, np.full(m * m, 1.0 / m), jac=jac, bounds=[(0, 1)] * (m * m),
                   constraints=cons, method="SLSQP", options={"ftol": 1e-16, "maxiter": 2000})
    assert res.status in (0, 8), res.message  # 8: no descent left at the precision limit
    return float(np.linalg.norm(vec(res.x)))


@pytest.mark.parametrize("seed", range(3))
def test_large_tie_of_a_linear_image_against_birkhoff(seed):
    # sort(B x + c): 9 tied entries among 11, B (11 x 9) of full rank, so every ordering of
    # the class is entered; the other two entries (distinct values) add a fixed gradient
    rng = np.random.default_rng(200 + seed)
    m, k = 9, 9
    c = np.r_[np.zeros(m), -1.0, 1.0]
    perm = rng.permutation(m + 2)
    c = c[perm]
    B = rng.standard_normal((m + 2, k))
    w = rng.standard_normal(m + 2)
    cls = np.flatnonzero(c == 0)
    order = np.argsort(c, kind="stable")  # sorted position -> entry
    pos = np.flatnonzero(c[order] == 0)  # the class's sorted positions
    fixed = sum(w[j] * B[order[j]] for j in range(m + 2) if j not in pos)
    # the piece of an ordering: sorted position pos[r] gets the class entry ranked r
    truth = birkhoff_min_norm(B[cls], w[pos], fixed)
    rep = kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k))
    assert "sort tie" in rep.reason and rep.exact
    lo, hi = rep.bounds
    assert lo - 1e-7 <= truth <= hi * (1 + 1e-6) + 1e-7
    assert rep.distance == pytest.approx(truth, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("shift", [0.5, 3.0])
def test_large_tie_without_every_ordering_is_never_wrong(shift):
    # 9 tied entries of B x with B (9 x 3): not every ordering is entered, so no oracle; the
    # true distance lies between that of the permutohedron's image (the set lies inside it)
    # and that of the hull of the orderings met along 200,000 random directions (inside
    # the set); the verdict and the bounds must agree with both
    rng = np.random.default_rng(5)
    B = rng.standard_normal((9, 3))
    w = rng.standard_normal(9) + shift
    rep = kinkgrad.stationarity(sort_objective(B, np.zeros(9), w), np.zeros(3))
    below = birkhoff_min_norm(B, w, np.zeros(3))
    seen = np.unique(np.argsort(np.random.default_rng(1).standard_normal((200_000, 3)) @ B.T,
                                axis=1), axis=0)
    above = hull_min_norm(np.array([w @ B[o] for o in seen]))
    lo, hi = rep.bounds
    assert lo <= above + 1e-7 and hi >= below * (1 - 1e-6) - 1e-7
    if rep.verdict == "stationary":
        assert below <= rep.tol
    if rep.verdict == "not stationary":
        assert above > rep.tol and rep.slope < 0


@pytest.mark.parametrize("seed", range(4))
def test_oracle_listed_and_switch_blocks_together(seed):
    # f = w1 . sort(x1) + w2 . sort(x2) + sum c |x3| + b . x3 at a tie of 9 (oracle), a tie
    # of 5 (listed) and three kinks of |.|: on separate coordinates the set is the product
    # Perm(w1) x Perm(w2) x prod [b_i - c_i, b_i + c_i], whose distance from 0 is closed form
    rng = np.random.default_rng(300 + seed)
    w1, w2 = rng.standard_normal(9), rng.standard_normal(5)
    c, b = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3) * 2
    if seed % 2 == 0:  # stationary instances: zero means, |b| inside the boxes
        w1, w2, b = w1 - w1.mean(), w2 - w2.mean(), b * 0.1

    def f(x):
        return (knp.sum(knp.sort(x[:9]) * w1) + knp.sum(knp.sort(x[9:14]) * w2)
                + knp.sum(knp.abs(x[14:]) * c) + knp.sum(x[14:] * b))

    x = np.r_[np.full(9, 0.7), np.full(5, -0.2), np.zeros(3)]
    rep = kinkgrad.stationarity(f, x)
    truth = np.sqrt(9 * w1.mean() ** 2 + 5 * w2.mean() ** 2
                    + np.sum(np.maximum(np.abs(b) - c, 0) ** 2))
    assert rep.exact and rep.blocks == 5
    assert rep.distance == pytest.approx(truth, abs=1e-8)
    assert rep.verdict == ("stationary" if truth <= rep.tol else "not stationary")


def test_exact_tie_of_nine_in_a_ball():
    # radius 1e-6 moves nothing else of this sort (the other entries are 1 apart): the tie
    # class keeps its orderings' oracle and the set is still the permutohedron
    w = np.linspace(-1.0, 1.0, 11) + 0.2
    x = np.r_[np.zeros(9), -1.0, 1.0]
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x, radius=1e-6)
    tied = w[1:10]  # sorted positions 1..9 hold the class
    truth = np.sqrt(w[0] ** 2 + w[10] ** 2 + 9 * tied.mean() ** 2)
    assert "sort tie" in rep.reason and rep.exact and rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-9)


@pytest.mark.parametrize("m", [9, 12])
def test_in_clarke_at_a_large_tie_against_majorization(m):
    rng = np.random.default_rng(m)
    w = np.round(rng.standard_normal(m), 2)

    def f(x):
        return knp.sum(knp.sort(x) * w)

    perms = np.array([rng.permutation(w) for _ in range(5)])
    inside = [rng.dirichlet(np.ones(5)) @ perms for _ in range(3)] + [perms[1]]
    outside = [perms[0] * 1.05, perms[0] + 1e-4, np.r_[w.max() + 0.1, np.full(m - 1, (
        w.sum() - w.max() - 0.1) / (m - 1))]]
    assert all(in_permutohedron(g, w) for g in inside)
    assert not any(in_permutohedron(g, w) for g in outside)
    for g in inside + outside:
        assert kinkgrad.in_clarke(f, np.zeros(m), g) == in_permutohedron(g, w)


def test_in_clarke_never_a_wrong_false_when_orderings_are_missing():
    # B (10 x 3): not every ordering of the 10 tied entries is entered; a piece's gradient
    # met along a direction is a Clarke gradient: True or undecided, never False
    rng = np.random.default_rng(11)
    B, w = rng.standard_normal((10, 3)), rng.standard_normal(10)
    f = sort_objective(B, np.zeros(10), w)
    for _ in range(3):
        d = rng.standard_normal(3)
        g = w @ B[np.argsort(B @ d)]
        try:
            assert kinkgrad.in_clarke(f, np.zeros(3), g)
        except kinkgrad.abs_normal.subdiff.UndecidedError:
            pass
    far = w @ B[np.argsort(B @ rng.standard_normal(3))] + 100.0
    assert not kinkgrad.in_clarke(f, np.zeros(3), far)


def test_near_class_of_fifteen_scattered_in_a_row_of_sixty():
    # 15 entries within 1.5e-9 of 0.5 at random places of a row of 60, radius 1e-6: the rest
    # of the gradient is fixed, the class's sorted positions contribute the permutohedron
    rng = np.random.default_rng(0)
    n, m = 60, 15
    x = rng.standard_normal(n)
    cls = rng.choice(n, m, replace=False)
    x[cls] = 0.5 + np.arange(m) * 1e-10
    w = rng.standard_normal(n)
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x, radius=1e-6)
    order = np.argsort(x, kind="stable")
    g = np.zeros(n)
    g[order] = w
    pos = np.flatnonzero(np.isin(order, cls))
    truth = np.sqrt(np.sum(np.delete(g, cls) ** 2) + m * np.mean(w[pos]) ** 2)
    assert "sort tie" in rep.reason and rep.verdict == "not stationary"
    assert rep.bounds[0] == pytest.approx(truth, rel=1e-9)
    assert rep.distance == pytest.approx(truth, rel=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(3, 5), st.integers(1, 4), st.booleans())
# three near ties 1e-10 apart on a line: they "met" within 1e-3 of the ball's reach, so the
# moved model's ordering (2, 0, 1), which no point realises, was a proven element (1.2706
# below the truth 1.2982): a wrong "stationary" wherever such a piece is within tol
@example(2999, 4, 1, True)
def test_verdicts_are_never_wrong_at_ties_exact_or_near(seed, n, k, near):
    # random tie groups in c (exact, or 1e-10 apart with radius 1e-6), random B and w: the
    # bounds must hold the brute-force distance (exact ties: orderings entered by some
    # direction; near ties: orderings whose cell meets the ball, the cells 1e-10 across
    # between the near-tied entries' kinks included; HiGHS; hull min-norm by NNLS)
    rng = np.random.default_rng(seed)
    c = rng.choice([0.0, 1.0, 2.0], n, p=[0.6, 0.3, 0.1])
    B, w = rng.standard_normal((n, k)), rng.standard_normal(n)
    if rng.random() < 0.3:
        w -= w.mean()  # some stationary instances
    at = c + (np.arange(n) * 1e-10 if near else 0.0)
    G = ball_gradients(B, c, at, w, 1e-6) if near else realised_gradients(B, c, w)
    if G is None:  # NOTE: a cell meets the box around the ball, not the box inside it
        return
    truth = hull_min_norm(G)
    f = lambda x: knp.sum(knp.sort(B @ x + at) * w)  # noqa: E731
    rep = kinkgrad.stationarity(f, np.zeros(k), radius=1e-6 if near else 0.0)
    lo, hi = rep.bounds
    assert lo - 1e-8 <= truth <= hi + 1e-8
    if rep.verdict == "stationary":
        assert truth <= rep.tol + 1e-8
    if rep.verdict == "not stationary":
        assert truth > rep.tol and rep.slope < 0


def _low_rank_case(seed: int) -> tuple:
    """(B, c, w, k) of a random sort objective whose B has few columns."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 7)), int(rng.integers(1, 5))
    rng.integers(0, 2)
    c = rng.choice([0.0, 1.0, 2.0], n, p=[0.6, 0.3, 0.1])
    B, w = rng.standard_normal((n, k)), rng.standard_normal(n)
    if rng.random() < 0.3:
        w -= w.mean()
    return B, c, w, k


@pytest.mark.parametrize("seed", [33, 132, 164, 184, 332, 364])
def test_low_rank_ties_of_a_piecewise_linear_program_are_exact(seed):
    # B with 1 or 2 columns: most orderings of a tie class of 3 or 4 are never entered; the
    # program is piecewise linear and every ordering was tested by LP, so the realised ones
    # are the whole set (these seeds were "undecided" with the lower bound 0 of all orderings)
    B, c, w, k = _low_rank_case(seed)
    truth = hull_min_norm(realised_gradients(B, c, w))
    rep = kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k))
    assert rep.exact and rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-7)


@pytest.mark.parametrize("near", [False, True])
def test_repeated_weights_leave_comparators_irrelevant(near):
    # equal weights at tied positions: swapping those entries changes no gradient, and the
    # comparators doing it are dropped from the model as irrelevant (sort_near.py routes
    # them either way); the set is still the permutohedron of the weights
    m = 8
    w = np.array([1.0, 1.0, 1.0, -0.5, -0.5, 2.0, 2.0, 0.3])
    x = np.arange(m) * (1e-10 if near else 0.0)
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x,
                                radius=1e-6 if near else 0.0)
    truth = abs(w.mean()) * np.sqrt(m)
    assert "sort tie" in rep.reason and rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-8)
    assert rep.bounds[0] == pytest.approx(truth, rel=1e-7)


@pytest.mark.parametrize("m", [5, 9])
@pytest.mark.parametrize("near", [False, True])
def test_float32_ties(m, near):
    # float32 values and weights: ties are exact float32 equalities (or 1e-7 apart within
    # radius 1e-4); the truth from the same float32 weights, in float64
    w = (np.linspace(-1, 1, m) + 0.3).astype(np.float32)
    x = (np.arange(m) * (1e-7 if near else 0.0)).astype(np.float32)
    rep = kinkgrad.stationarity(lambda z: knp.sum(knp.sort(z) * w), x,
                                radius=1e-4 if near else 0.0)
    truth = abs(float(np.mean(w.astype(np.float64)))) * np.sqrt(m)
    assert "sort tie" in rep.reason and rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(truth, rel=1e-6)


def test_fitted_oracle_values_prove_no_element():
    # an oracle value without a signature (the near-tie fit's <H, P>) may miss the true
    # block value by the fit's error: with_oracles then keeps its lower bound and gives no
    # upper one, so no "stationary" and no in_clarke True rests on it
    from types import SimpleNamespace

    from kinkgrad.abs_normal.sort_oracle_min import with_oracles

    perms = np.array(list(permutations([1.0, 2.0, 4.0])))

    class Fitted:
        complete = True

        def argmin(self, u):
            k = int(np.argmin(perms @ u))
            return perms[k], None, float(perms[k] @ u)

    block = SimpleNamespace(oracle=Fitted(), inner=np.zeros((0, 3)), outer=None,
                            cols=np.arange(3))
    mn = with_oracles(np.zeros(3), [block], 1e-8)
    truth = np.linalg.norm(np.full(3, 7.0 / 3))  # the permutohedron's centre
    assert mn.upper == np.inf
    assert mn.lower == pytest.approx(truth, rel=1e-9)


def test_a_failed_ordering_lp_does_not_make_a_sort_tie_exact(monkeypatch):
    # the low-rank tie of seed 33 is exact when every ordering was tested by LP; an LP that
    # HiGHS fails to solve was read as "not entered" and the tie still called exact
    import sys

    B, c, w, k = _low_rank_case(33)
    assert kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k)).exact
    calls = []

    def failing_first(real):  # undecided: its LP failed (or its rows nearly dependent)
        mine = []

        def realised(R):
            mine.append(1)
            calls.append(1)
            return (None, None) if len(mine) == 1 else real(R)
        return realised

    for name in ("gordan", "signatures"):  # the orderings' LPs, and the enumeration's
        mod = sys.modules[f"kinkgrad.abs_normal.{name}"]
        monkeypatch.setattr(mod, "realised", failing_first(mod.realised))
    rep = kinkgrad.stationarity(sort_objective(B, c, w), np.zeros(k))
    assert calls and not rep.exact
    truth = hull_min_norm(realised_gradients(B, c, w))  # brute force: every ordering by LP
    assert rep.bounds[0] - 1e-8 <= truth <= rep.bounds[1] + 1e-8


@pytest.mark.parametrize("seed", [2999, 27])
@pytest.mark.parametrize("curve", ["sin", "cubic"])
def test_near_ties_through_a_smooth_step_meet_only_where_they_do(seed, curve):
    # the near ties of test_verdicts_are_never_wrong_at_ties_exact_or_near, read through a
    # smooth step (sin x or x + x^3, both x + O(x^3) in the ball of radius 1e-6, so the
    # piecewise-linear brute force holds to 1e-18): curved switches "met" within 1e-3 of
    # the ball's reach, an ordering no point realises was a proven element, and with
    # tol = 1.28 between its bound 1.2706 and the truth 1.2982 the verdict was "stationary"
    rng = np.random.default_rng(seed)
    n, k = 4, 1
    c = rng.choice([0.0, 1.0, 2.0], n, p=[0.6, 0.3, 0.1])
    B, w = rng.standard_normal((n, k)), rng.standard_normal(n)
    if rng.random() < 0.3:
        w -= w.mean()
    at = c + np.arange(n) * 1e-10
    G = ball_gradients(B, c, at, w, 1e-6)
    assert G is not None
    truth = hull_min_norm(G)
    smooth = knp.sin if curve == "sin" else (lambda x: x + x ** 3)
    tol = truth - 0.01  # between the spurious bound and the truth for seed 2999
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.sort(B @ smooth(x) + at) * w),
                                np.zeros(k), radius=1e-6, tol=tol)
    lo, hi = rep.bounds
    assert lo - 1e-8 <= truth <= hi + 1e-8
    assert rep.verdict != "stationary"


@pytest.mark.parametrize("r,eps,slack", [(1e-7, 1e-4, 2e-4), (1e-6, 0.12, 0.3)])
@pytest.mark.parametrize("curve", ["sin", "cubic"])
def test_a_max_whose_fourth_entry_misses_the_meeting_point_is_not_stationary(r, eps, slack,
                                                                             curve):
    # f = max_j (B_j . smooth(x) + c_j) at 0: entries 1-3 meet at (0, r/2), entry 4 lies
    # slack r below them there and, exactly (Fractions below), never wins in the ball;
    # every gradient then has second component >= cos(r) ~ 1. The four "met" within 1e-3 of
    # the move's reach (their linear system is inconsistent by slack r) and the fourth
    # entry's gradient (1 - eps below) made the verdict "stationary" at tol 1 - eps / 2
    from fractions import Fraction

    B = np.array([[1.0, 1.0], [-1.0, 1.0], [0.0, 3.0 if slack < 0.1 else 3000.0],
                  [0.0, 1.0 - eps]])
    c = -B @ np.array([0.0, r / 2])
    c[3] -= slack * r
    reach = Fraction(r) + Fraction(r) ** 3  # |sin x|, |x + x^3| <= r + r^3 in the ball
    half = [Fraction(B[3, i]) - (Fraction(B[0, i]) + Fraction(B[1, i])) / 2 for i in (0, 1)]
    assert Fraction(c[3]) - (Fraction(c[0]) + Fraction(c[1])) / 2 + (
        abs(half[0]) + abs(half[1])) * reach < 0  # the premise: entry 4 never wins
    smooth = knp.sin if curve == "sin" else (lambda x: x + x ** 3)
    rep = kinkgrad.stationarity(lambda x: knp.max(B @ smooth(x) + c), np.zeros(2), radius=r,
                                tol=1 - eps / 2)
    assert rep.verdict != "stationary" and rep.bounds[1] >= np.cos(r) - 1e-8, rep.bounds
