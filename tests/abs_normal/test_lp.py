"""The package's LPs (HiGHS through ``highspy``) against SciPy's ``linprog`` as a peer, and
the max-margin LP against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from kinkgrad.abs_normal import lp


@pytest.mark.parametrize("seed", range(20))
def test_solve_lp_matches_linprog(seed):
    # random LPs, some infeasible or unbounded: the same status and optimal value
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 8)), int(rng.integers(1, 6))
    A = rng.standard_normal((m, n))
    if seed % 3 == 0:
        A = sp.random(m, n, density=0.5, random_state=seed, format="csr") + sp.csr_matrix(A)
    c = rng.standard_normal(n)
    b = rng.standard_normal(m)
    bounded = seed % 4 != 1
    lo, hi = (np.full(n, -2.0), np.full(n, 3.0)) if bounded else (np.zeros(n), np.full(n, np.inf))
    ours = lp.solve_lp(c, A, np.full(m, -np.inf), b, lo, hi)
    ref = linprog(c, A_ub=A, b_ub=b, bounds=list(zip(lo, [None if np.isinf(h) else h
                                                           for h in hi])), method="highs")
    assert (ours is not None) == (ref.status == 0)
    if ours is not None:
        x, val = ours
        assert val == pytest.approx(ref.fun, abs=1e-9)
        assert np.all(A @ x <= b + 1e-9) and np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)


def test_margin_closed_form():
    # two rows at angle theta > pi/2 in the plane: by hand, the optimum has d_2 = 1 and
    # r_1 . d = r_2 . d, i.e. d_1 = cot(theta / 2), the margin
    theta = 2.5
    R = np.array([[1.0, 0.0], [np.cos(theta), np.sin(theta)]]) * 3.0  # scaling is ignored
    t, d = lp.margin(R)
    assert t == pytest.approx(1.0 / np.tan(theta / 2), rel=1e-9)
    assert np.all(lp._unit(R) @ d >= t - 1e-9)
    # opposite rows: no direction has both signs, margin 0 (not realised)
    assert lp.margin(np.array([[1.0, 2.0], [-1.0, -2.0]]))[0] <= lp.MARGIN
    # an equality that forbids the only good direction
    assert lp.margin(np.array([[1.0, 0.0]]), E=np.array([[0.0, 1.0]]))[0] == pytest.approx(1.0)
    assert lp.margin(np.array([[1.0, 0.0]]), E=np.array([[1.0, 0.0]]))[0] <= lp.MARGIN


def test_no_banner_on_stdout(capfd):
    # HiGHS prints a banner from C++ when its first solver object is built; the package's
    # solver objects are built with descriptor 1 silenced, one per thread
    import threading

    out = []
    th = threading.Thread(target=lambda: out.append(lp.margin(np.eye(2))[0]))
    th.start()
    th.join()
    assert out == [1.0]
    assert "HiGHS" not in capfd.readouterr().out


def test_sum_of_hulls_widened_by_the_sets_slack():
    # g0 + conv{(0, 0), (1, 0)} + conv{(0, 0), (0, 1)} is the unit square; g = (1 + d, 0.5)
    # lies at 2-norm (and l1) distance d from it. A set known to within slack >= d cannot
    # exclude g (a False would not be proven); slack < d / sqrt(2) leaves g outside.
    g0 = np.zeros(2)
    blocks = [(np.array([0]), np.array([[0.0], [1.0]])), (np.array([1]), np.array([[0.0], [1.0]]))]
    d = 1e-3
    g = np.array([1.0 + d, 0.5])
    inside, res = lp.in_sum_of_hulls(g, g0, blocks)
    assert not inside and res == pytest.approx(d, rel=1e-9)
    assert lp.in_sum_of_hulls(g, g0, blocks, widen=d)[0]
    assert not lp.in_sum_of_hulls(g, g0, blocks, widen=0.6 * d)[0]
    assert lp.in_sum_of_hulls(np.array([0.5, 0.5]), g0, blocks)[0]


@pytest.mark.parametrize("seed", range(12))
def test_margin_in_the_rows_span_makes_the_full_lps_decisions(seed):
    # few rows in many dimensions: margin() solves the LP in the rows' span; its decision
    # against MARGIN must be the full LP's (the peer here: lp._margin_lp, the LP as stated),
    # a returned direction must be a box point whose own margin is >= t, an exclusion must
    # be one the full LP makes too. Cones open (rows around a common direction, or fewer
    # generic rows than n), closed (a row's negative combination added), with equalities
    rng = np.random.default_rng(seed)
    n, k = 400, int(rng.integers(2, 60))
    kind = seed % 3
    R = rng.standard_normal((k, n))
    if kind == 0:
        R += 3.0 * rng.standard_normal(n)  # a common direction: open
    elif kind == 1:
        R[-1] = -np.abs(rng.standard_normal(k - 1)) @ R[:-1]  # closed: 0 in the rows' hull
    E = rng.standard_normal((int(rng.integers(1, 5)), n)) if seed % 4 == 3 else None
    t, d = lp.margin(R, E)
    t_full, d_full = lp._margin_lp(R, E)
    assert (t > lp.MARGIN) == (t_full > lp.MARGIN)
    if t > lp.MARGIN:
        assert np.max(np.abs(d)) <= 1 + 1e-12 and t <= t_full + 1e-9
        assert np.min(lp._unit(R) @ d) >= t * (1 - 1e-9)
        if E is not None:
            assert np.max(np.abs(lp._unit(E) @ d)) <= 1e-9


def test_a_failed_realisability_lp_leaves_the_subdifferential_partial(monkeypatch):
    # |x0 - x1| + 2 relu(x0 + x1) - |x0| / 2 at 0 has 6 limiting gradients (its complete
    # list); an LP that HiGHS fails to solve was read as "not realised", and the list was
    # still called complete with a gradient missing
    import sys

    import kinkgrad
    import kinkgrad.numpy as knp

    def f(x):
        return knp.abs(x[0] - x[1]) + 2 * knp.relu(x[0] + x[1]) - 0.5 * knp.abs(x[0])

    from _abs_programs import brute_gradients  # the truth: finite differences beside 0

    assert len(brute_gradients(f, np.zeros(2))) == 6
    realise = sys.modules["kinkgrad.abs_normal.realise"]
    real, calls = realise.margin, []

    def failing(R, E=None):  # the first node's LP and its well-conditioned retry fail
        calls.append(1)
        return (-1.0, None) if len(calls) <= 2 else real(R, E)

    monkeypatch.setattr(realise, "margin", failing)
    got = kinkgrad.subdifferential(f, np.zeros(2))
    assert got.partial or len(got.gradients) == 6
    assert "failed to solve" in got.message  # the words of a failed LP, not of the limit


@pytest.mark.parametrize("seed", range(6))
def test_in_hull_builds_a_sparse_lp_beyond_its_dense_budget(seed, monkeypatch):
    # a ReLU net's 48k parameters made the dense constraint matrix 35 GiB (MemoryError);
    # beyond _DENSE_ENTRIES it is sparse: the same answers and residuals as dense
    from kinkgrad.abs_normal import lp

    rng = np.random.default_rng(seed)
    G = rng.standard_normal((5, 40))
    inside = rng.dirichlet(np.ones(5)) @ G
    outside = inside + rng.standard_normal(40)
    dense = [lp.in_hull(G, g) for g in (inside, outside)]
    monkeypatch.setattr(lp, "_DENSE_ENTRIES", 0)
    sparse = [lp.in_hull(G, g) for g in (inside, outside)]
    assert [d[0] for d in dense] == [s[0] for s in sparse] == [True, False]
    for (_, rd), (_, rs) in zip(dense, sparse):
        assert rs == pytest.approx(rd, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("size", [1e-300, 1e-160, 1.0, 1e160, 1e300])
def test_row_norms_neither_overflow_nor_underflow(size):
    # sqrt(w . w) squares the entries: 1e-160 underflows to 0 and 1e160 overflows to inf;
    # the truth is the exact norm of a Pythagorean row (3, 4) * size = 5 * size
    import scipy.sparse as sp

    from kinkgrad.abs_normal import lp

    W = np.array([[3.0, 4.0], [0.0, 0.0], [-4.0, 3.0]]) * size
    want = np.array([5.0, 0.0, 5.0])  # in units of size
    np.testing.assert_allclose(lp.row_norms(W) / size, want, rtol=1e-15)
    np.testing.assert_allclose(lp.row_norms(sp.csr_matrix(W)) / size, want, rtol=1e-15)
    assert [lp.row_norm(w) / size for w in W] == pytest.approx(list(want), rel=1e-15)
    # a row is zero only against its own terms: 1e-15 of its terms is rounding, 1e-13 not
    assert list(lp.nonzero_rows(W, 5.0 * size)) == [True, False, True]
    if size > 1e-280:
        assert not lp.nonzero_rows(W[:1] * 1e-15, 5.0 * size)[0]
        assert lp.nonzero_rows(W[:1] * 1e-13, 5.0 * size)[0]
