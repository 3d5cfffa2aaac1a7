"""minimize on convex programs with Euclidean norms *and* other kinks (the sparse group
lasso; a group-penalised hinge loss), whose finishing steps see every kink as a norm of one
entry (kinkgrad.abs_normal.kinks_as_norms).

Truths independent of the code: the sparse group lasso's closed form under an orthogonal
design (x_g = max(0, 1 - l2 / ||s_g||) s_g with s = soft(X^T y / m, l1), Simon et al. 2013),
and Clarabel on the conic reformulation (t_k >= ||x_g||, s_i >= |x_i|, u_j >= max(0, .))
for a general design.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import kinkgrad
import kinkgrad.numpy as knp

METHODS = ("bundle", "abs-linear", "gradient-sampling")


def _sgl(X, y, l1, l2, G, k):
    m = X.shape[0]

    def f(x):
        r = X @ x - y
        return (0.5 / m * knp.sum(r * r) + l1 * knp.sum(knp.abs(x))
                + l2 * knp.sum(knp.linalg.norm(knp.reshape(x, (G, k)), axis=1)))
    return f


def _orthogonal_sgl(seed):
    """(f, its minimiser in closed form) of a sparse group lasso with X^T X / m = I."""
    rng = np.random.default_rng(seed)
    G, k = 6, 4
    n = m = G * k
    X = np.sqrt(m) * np.linalg.qr(rng.standard_normal((m, m)))[0]  # X^T X / m = I
    w = rng.standard_normal(n) * (rng.random(n) < 0.6)
    w[:k] = 0.05 * rng.standard_normal(k)  # a group the penalty zeroes
    y = X @ w + 0.1 * rng.standard_normal(m)
    l1, l2 = 0.15, 0.2
    v = X.T @ y / m
    s = np.sign(v) * np.maximum(np.abs(v) - l1, 0.0)
    sg = np.linalg.norm(s.reshape(G, k), axis=1, keepdims=True)
    truth = (np.maximum(0.0, 1.0 - l2 / np.where(sg > 0, sg, 1.0)) * s.reshape(G, k)).ravel()
    assert 0 < np.sum(truth == 0) < n and np.any(sg.ravel() <= l2)  # both kinds of zeros
    return _sgl(X, y, l1, l2, G, k), truth


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("start", ["zero", "ones"])
def test_sparse_group_lasso_under_an_orthogonal_design_reaches_the_closed_form(method, start):
    f, truth = _orthogonal_sgl(3)
    x0 = np.zeros(truth.size) if start == "zero" else np.ones(truth.size)
    res = kinkgrad.minimize(f, x0, method=method)
    assert res.stationarity.verdict == "stationary", res.message
    np.testing.assert_allclose(res.x, truth, atol=1e-9)
    assert np.all(np.abs(res.x[truth == 0]) <= 1e-20)  # zeros on their kinks (to 1e-20)
    assert res.fun <= float(f(truth)) + 1e-12


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed, start", [(3, "zero"), (4, "ones"), (5, "ones")])
def test_a_float32_start_ends_at_float32s_resolution_of_the_closed_form(method, seed, start):
    # x stays float32 (and so do f's l1 and norm terms): no point is certified at tol 1e-8,
    # rounding x moves the gradient by ~1e-7. The finishing steps' point is kept where it
    # beats the method's, f as low and a smaller distance; before, abs-linear stayed at
    # x0 = 0 (f - f* = 4.2) or ran out of its default 200 iterations from ones (5.5e-4
    # off), the bundle and gradient sampling ended with zeros ~1e-7 off (distance 0.5),
    # and the bundle's history held its discarded finishing steps
    f, truth = _orthogonal_sgl(seed)
    x0 = (np.zeros if start == "zero" else np.ones)(truth.size, np.float32)
    res = kinkgrad.minimize(f, x0, method=method)
    assert res.x.dtype == np.float32
    assert np.max(np.abs(res.x - truth)) <= 1e-6  # float32 spacing at |x| ~ 1: 1.2e-7
    assert np.all(np.abs(res.x[truth == 0]) <= 1e-20)
    assert res.stationarity.distance <= 1e-6
    assert res.fun <= float(f(truth)) + 1e-6
    assert len(res.history["fun"]) == res.nit
    if not res.success:  # the message says why and what to pass
        assert "float64 x0" in res.message and "tol to match" in res.message
    res64 = kinkgrad.minimize(f, x0.astype(np.float64), method=method)
    assert res64.success and "float64 x0" not in res64.message


def test_better_ranks_by_f_then_by_the_stationarity_distance():
    from kinkgrad.optimize._norm_groups import better
    from kinkgrad.optimize.oracle import Oracle

    oracle = Oracle(lambda x: knp.sum(x * x), np.ones(2, np.float32))
    u = oracle.unit_roundoff
    assert u == np.finfo(np.float32).eps / 2  # a float32 x rounds f's terms in float32
    assert better(oracle, 1.0 - 1e-3, 1.0, 1.0, 0.0)  # f lower beyond rounding
    assert not better(oracle, 1.0 + 1e-3, 0.0, 1.0, 1.0)  # f higher beyond rounding
    assert better(oracle, 1.0 + 2 * u, 1e-7, 1.0, 0.5)  # f tied: the smaller distance
    assert not better(oracle, 1.0 - 2 * u, 0.5, 1.0, 1e-7)


def _clarabel_reference(X, y, l1, l2, G, k, H, a):
    """min 1/2m ||Xx - y||^2 + l1 sum s_i + l2 sum t_g + sum u_j over (x, t, s, u)."""
    import clarabel

    m, n = X.shape
    h = H.shape[0]
    nv = n + G + n + h
    P = sp.block_diag([sp.csc_matrix(X.T @ X / m), sp.csc_matrix((G + n + h, G + n + h))],
                      format="csc")
    c = np.r_[-X.T @ y / m, l2 * np.ones(G), l1 * np.ones(n), np.ones(h)]
    rows, b, cones = [], [], []
    hinge = np.zeros((2 * h, nv))  # s = b - A z >= 0: u_j, and u_j - H_j x - a_j
    hinge[np.arange(h), 2 * n + G + np.arange(h)] = -1.0
    hinge[h + np.arange(h), 2 * n + G + np.arange(h)] = -1.0
    hinge[h:, :n] = H
    rows.append(hinge)
    b.append(np.r_[np.zeros(h), -a])
    cones.append(clarabel.NonnegativeConeT(2 * h))
    for g in range(G):  # (t_g, x_g)
        r = np.zeros((1 + k, nv))
        r[0, n + g] = -1.0
        r[1 + np.arange(k), g * k + np.arange(k)] = -1.0
        rows.append(r)
        b.append(np.zeros(1 + k))
        cones.append(clarabel.SecondOrderConeT(1 + k))
    for i in range(n):  # (s_i, x_i)
        r = np.zeros((2, nv))
        r[0, n + G + i] = -1.0
        r[1, i] = -1.0
        rows.append(r)
        b.append(np.zeros(2))
        cones.append(clarabel.SecondOrderConeT(2))
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-12
    sol = clarabel.DefaultSolver(P, c, sp.csc_matrix(np.vstack(rows)), np.concatenate(b),
                                 cones, st).solve()
    return np.asarray(sol.x[:n])


@pytest.mark.parametrize("method", METHODS)
def test_group_penalised_hinge_and_l1_against_clarabel(method):
    rng = np.random.default_rng(11)
    G, k, m, h = 5, 3, 30, 6
    n = G * k
    X = rng.standard_normal((m, n))
    w = rng.standard_normal(n) * (rng.random(n) < 0.5)
    y = X @ w + 0.1 * rng.standard_normal(m)
    H, a = rng.standard_normal((h, n)) / np.sqrt(n), rng.standard_normal(h)
    l1, l2 = 0.1, 0.3
    sgl = _sgl(X, y, l1, l2, G, k)

    def f(x):
        return sgl(x) + knp.sum(knp.maximum(H @ x + a, 0.0))

    ref = _clarabel_reference(X, y, l1, l2, G, k, H, a)
    f_star = float(f(ref))
    res = kinkgrad.minimize(f, np.zeros(n), method=method)
    assert res.stationarity.verdict == "stationary", res.message
    assert res.fun <= f_star + 1e-9 * (1.0 + abs(f_star))
    np.testing.assert_allclose(res.x, ref, atol=1e-5)
    assert np.all(np.abs(res.x[np.abs(ref) < 1e-8]) <= 1e-20)  # Clarabel's zeros: on kinks


@pytest.mark.parametrize("method", ["bundle", "abs-linear"])
def test_tv_l1_denoising_is_certified_at_the_conic_minimum(method):
    # sum |u - y| + w TV(u): no smooth part at all (H = 0), 2 N^2 kinks and norms
    import clarabel

    N, weight = 12, 0.5
    rng = np.random.default_rng(14)
    y = np.zeros((N, N))
    y[3:9, 3:9] = 1.0
    hit = rng.random((N, N)) < 0.1
    y[hit] = rng.random(int(hit.sum()))
    n = N * N

    def f(u):
        U = knp.reshape(u, (N, N))
        dx = knp.concatenate([U[1:, :] - U[:-1, :], knp.zeros((1, N))], axis=0)
        dy = knp.concatenate([U[:, 1:] - U[:, :-1], knp.zeros((N, 1))], axis=1)
        return knp.sum(knp.abs(u - y.ravel())) + weight * knp.sum(
            knp.linalg.norm(knp.stack([dx, dy], axis=-1), axis=-1))

    d1 = sp.diags([-np.r_[np.ones(N - 1), 0.0], np.ones(N - 1)], [0, 1], (N, N))
    Dx, Dy = sp.kron(d1, sp.identity(N)), sp.kron(sp.identity(N), d1)
    Z, Id = sp.csr_matrix((n, n)), sp.identity(n, format="csr")
    tv = sp.vstack([sp.hstack([Z, -Id, Z]), sp.hstack([-Dx, Z, Z]), sp.hstack([-Dy, Z, Z])],
                   format="csr")[np.arange(3 * n).reshape(3, n).T.ravel()]
    l1 = sp.vstack([sp.hstack([Z, Z, -Id]), sp.hstack([-Id, Z, Z])],
                   format="csr")[np.arange(2 * n).reshape(2, n).T.ravel()]
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-12
    sol = clarabel.DefaultSolver(
        sp.csc_matrix((3 * n, 3 * n)), np.r_[np.zeros(n), weight * np.ones(n), np.ones(n)],
        sp.vstack([tv, l1], format="csc"),
        np.r_[np.zeros(3 * n), np.c_[np.zeros(n), -y.ravel()].ravel()],
        [clarabel.SecondOrderConeT(3)] * n + [clarabel.SecondOrderConeT(2)] * n, st).solve()
    f_ref = float(f(np.asarray(sol.x[:n])))
    res = kinkgrad.minimize(f, y.ravel().copy(), method=method)
    assert res.stationarity.verdict == "stationary", res.message
    assert res.fun <= f_ref + 1e-9


def test_the_bundle_method_finishes_a_lasso_by_proximal_steps_on_its_kinks():
    # no Euclidean norm at all: the l1 kinks alone are seen as norms of one entry, and the
    # proximal step lands on scikit-learn's minimiser (coordinate descent at tol 1e-12)
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(5)
    m, n, lam = 40, 30, 0.5
    X = rng.standard_normal((m, n))
    w = rng.standard_normal(n) * (rng.random(n) < 0.3)
    y = X @ w + 0.1 * rng.standard_normal(m)

    def f(v):
        r = X @ v - y
        return 0.5 * knp.sum(r * r) + lam * knp.sum(knp.abs(v))

    ref = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-12, max_iter=10**6).fit(X, y).coef_
    res = kinkgrad.minimize(f, np.zeros(n), method="bundle")
    assert res.stationarity.verdict == "stationary", res.message
    assert "as norms of one entry" in res.message  # the finishing steps certified it
    assert "Euclidean" not in res.message  # (it said "zero Euclidean norm(s)": there is none)
    assert res.fun <= float(f(ref)) + 1e-12
    np.testing.assert_array_equal(res.x == 0, np.abs(ref) < 1e-10)


def test_tries_that_do_not_certify_space_out():
    from kinkgrad.optimize._norm_finish import finish_on_zero_norms
    from kinkgrad.optimize.oracle import Oracle

    def f(v):  # unbounded below: no step can end at a stationary point
        return knp.sum(v) + knp.abs(v[0])

    x = np.array([0.0, 0.3, 1.0])
    oracle = Oracle(f, x)
    assert oracle.norm_steps and oracle.norm_interval(60) == 60
    assert finish_on_zero_norms(oracle, x, float(f(x)), 1e-8, 1e-8, 0, "") is None
    assert oracle.norm_failures == 1 and oracle.norm_interval(60) == 120


@pytest.mark.parametrize("method", ["bundle", "gradient-sampling"])
def test_finishing_steps_are_counted_as_iterations_and_calls(method):
    # the history holds one entry per iteration counted in nit, finishing steps included,
    # and every call of f (the finishing steps' traces too) is counted in nfev
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((40, 30)), rng.standard_normal(40)
    calls = {"n": 0}

    def f(v):
        calls["n"] += 1
        r = X @ v - y
        return 0.5 * knp.sum(r * r) + 0.5 * knp.sum(knp.abs(v))

    res = kinkgrad.minimize(f, np.zeros(30), method=method)
    assert res.success and "Then" in res.message  # finished by the steps
    assert len(res.history["fun"]) == res.nit
    assert calls["n"] == res.nfev
