"""The abs-normal form: hand example, finite differences of the augmented function, operators
against dense matrices, the selection-gradient formula against plain AD and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from _abs_programs import fd_gradient, programs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal import abs_normal_form

SETTINGS = settings(derandomize=True, deadline=None, max_examples=50,
                    suppress_health_check=[HealthCheck.too_slow])


def test_hand_example():
    # f = |x0 - |x1|| + relu(x0): switches z1 = x1, z2 = x0 - |z1|, z3 = x0 (relu's abs)
    f = lambda x: knp.abs(x[0] - knp.abs(x[1])) + knp.relu(x[0])  # noqa: E731
    anf = abs_normal_form(f, np.array([1.0, -1.0]))
    assert anf.dense and (anf.n, anf.s, anf.p) == (2, 3, 1)
    np.testing.assert_array_equal(anf.z, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(anf.sigma, [-1, 0, 1])
    np.testing.assert_array_equal(anf.active, [False, True, False])
    np.testing.assert_array_equal(anf.Z, [[0, 1], [1, 0], [1, 0]])
    np.testing.assert_array_equal(anf.L, [[0, 0, 0], [-1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(anf.J, [[0.5, 0.0]])
    np.testing.assert_array_equal(anf.Y, [[0.0, 1.0, 0.5]])
    np.testing.assert_array_equal(anf.cz, [-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(anf.cy, [0.5])
    assert [nd.primitive for nd in anf.nodes] == ["abs", "abs", "relu"]
    assert anf.node_of.tolist() == [0, 1, 2] and "relu" in anf.names[2]
    # the two sides of the active kink z2: gradients (1, 1) + (1, 0) and (-1, -1) + (1, 0)
    np.testing.assert_array_equal(anf.selection_gradient([-1, 1, 1]), [2.0, 1.0])
    np.testing.assert_array_equal(anf.selection_gradient([-1, -1, 1]), [0.0, -1.0])


def _augmented_fd(anf, h=1e-6):
    u = np.abs(anf.z)
    cols_x, cols_u = [], []
    for e in np.eye(anf.n):
        zp, yp = anf.augmented(anf.x + h * e, u)
        zm, ym = anf.augmented(anf.x - h * e, u)
        cols_x.append(np.concatenate([zp - zm, yp - ym]) / (2 * h))
    for e in np.eye(anf.s):
        zp, yp = anf.augmented(anf.x, u + h * e)
        zm, ym = anf.augmented(anf.x, u - h * e)
        cols_u.append(np.concatenate([zp - zm, yp - ym]) / (2 * h))
    return np.array(cols_x).T, np.array(cols_u).reshape(anf.s, anf.s + anf.p).T


@SETTINGS
@given(programs())
def test_matrices_match_finite_differences_of_the_augmented_function(prog):
    anf = abs_normal_form(prog, prog.x)
    z0, y0 = anf.augmented(anf.x, np.abs(anf.z))
    np.testing.assert_allclose(z0, anf.z, atol=1e-12)
    np.testing.assert_allclose(y0, [prog(prog.x)], atol=1e-12)
    X, U = _augmented_fd(anf)
    s = anf.s
    np.testing.assert_allclose(X[:s], anf.Z, atol=1e-6)
    np.testing.assert_allclose(X[s:], anf.J, atol=1e-6)
    if s:
        np.testing.assert_allclose(U[:s], anf.L, atol=1e-6)
        np.testing.assert_allclose(U[s:], anf.Y, atol=1e-6)
        assert np.all(np.triu(anf.L) == 0)  # strictly lower triangular


@SETTINGS
@given(programs(), st.integers(0, 1000))
def test_linearization_is_exact_for_piecewise_linear_programs(prog, seed):
    anf = abs_normal_form(prog, prog.x)
    for dx in np.random.default_rng(seed).normal(size=(3, prog.n)):
        _, y = anf.linearization(dx)
        np.testing.assert_allclose(y, [prog(prog.x + dx)], atol=1e-9)


@SETTINGS
@given(programs(), st.integers(0, 1000))
def test_operators_agree_with_dense_matrices(prog, seed):
    dense = abs_normal_form(prog, prog.x)
    ops = abs_normal_form(prog, prog.x, dense=False)
    assert not ops.dense and dense.dense
    rng = np.random.default_rng(seed)
    for a, b in ((ops.Z, dense.Z), (ops.L, dense.L), (ops.J, dense.J), (ops.Y, dense.Y)):
        x = rng.normal(size=b.shape[1])
        y = rng.normal(size=b.shape[0])
        np.testing.assert_allclose(a @ x, b @ x, atol=1e-10)
        np.testing.assert_allclose(a.T @ y, b.T @ y, atol=1e-10)
    np.testing.assert_allclose(ops.cz, dense.cz, atol=1e-10)
    sig = np.where(dense.sigma == 0, rng.choice([-1.0, 1.0], dense.s), dense.sigma)
    np.testing.assert_allclose(ops.selection_gradient(sig), dense.selection_gradient(sig),
                               atol=1e-10)
    assert np.allclose(ops.todense().L, dense.L) and ops.dense


@SETTINGS
@given(programs(n_max=4, ops_max=8))
def test_sparse_matrices_equal_dense_ones(prog):
    """tosparse (compressed reverse sweeps) against the dense matrices (forward sweeps)."""
    dense = abs_normal_form(prog, prog.x)
    sp_form = abs_normal_form(prog, prog.x, dense=False).tosparse()
    assert sp_form.sparse and not sp_form.dense and "sparse" in repr(sp_form)
    for name in "ZLJY":
        np.testing.assert_allclose(getattr(sp_form, name).toarray(), getattr(dense, name),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sp_form.cz, dense.cz, atol=1e-10)
    converted = abs_normal_form(prog, prog.x).tosparse()
    assert converted.sparse and np.array_equal(converted.Z.toarray(), dense.Z)
    assert np.array_equal(sp_form.todense().L, sp_form.L) and sp_form.dense


def test_sparse_form_of_a_long_chain_in_few_sweeps():
    """A chained function at n = 3000: the form's rows share sweeps (structure, not time),
    and its rows are the gradients of z_i = x_i^2 + x_(i+1)^2 - 1 (by hand)."""
    n = 3000
    x = np.random.default_rng(0).normal(size=n)
    anf = abs_normal_form(lambda v: knp.sum(knp.abs(v[:-1] ** 2 + v[1:] ** 2 - 1.0)), x,
                          dense=False).tosparse()
    assert anf.sweep_stats.sweep_rows < 150 < anf.s
    rows = np.arange(n - 1)
    Z = np.zeros((n - 1, n))
    Z[rows, rows], Z[rows, rows + 1] = 2 * x[:-1], 2 * x[1:]
    np.testing.assert_allclose(anf.Z.toarray(), Z, rtol=1e-15)
    assert anf.L.nnz == 0
    np.testing.assert_allclose(anf.Y.toarray(), [np.ones(n - 1)])


# abs'(0) = c that reproduces each policy choice, restated from the abs forms by hand
def _c(node, policy):
    prod, ordinal = node.producer, node.ordinal
    if prod == "norm" and ordinal > 0:
        prod = "max"
    # maximum(x, c) / minimum(x, c) tied with a constant: the traced operand takes relu'(0)
    const = node.params.get("const") if prod in ("maximum", "minimum") else None
    w = 1.0 if const is None else (policy.relu if const == 1 else 1.0 - policy.relu)
    table = {"abs": policy.abs, "norm": policy.abs, "relu": 2 * policy.relu - 1,
             "leaky_relu": 2 * policy.leaky_relu - 1, "maximum": 2 * w - 1, "max": 1.0,
             "minimum": 1 - 2 * w, "min": -1.0, "sort": -1.0}
    if prod == "clip":  # default clip "relu": the relu choice
        s = policy.relu if policy.clip == "relu" else policy.clip
        return 2 * s - 1 if ordinal == 0 else 1 - 2 * s
    return table[prod]


POLICIES = [kinkgrad.KinkPolicy(), kinkgrad.KinkPolicy(relu=0.5, leaky_relu=0.25, abs=0.75),
            kinkgrad.KinkPolicy(relu=1.0, abs=-1.0, clip=0.0)]


@SETTINGS
@given(programs(), st.sampled_from(POLICIES))
def test_selection_formula_reproduces_plain_ad(prog, policy):
    anf = abs_normal_form(prog, prog.x)
    sig = anf.sigma.astype(float)
    for i in np.flatnonzero(anf.active):
        sig[i] = _c(anf.nodes[anf.node_of[i]], policy)
    want = kinkgrad.grad(prog, policy=policy)(prog.x)
    np.testing.assert_allclose(anf.selection_gradient(sig), want, atol=1e-12)


@SETTINGS
@given(programs(n_max=2), st.integers(0, 1000))
def test_selection_formula_reproduces_brute_force_gradients(prog, seed):
    anf = abs_normal_form(prog, prog.x)
    t = 1e-6
    for d in np.random.default_rng(seed).normal(size=(4, prog.n)):
        z, _ = anf.linearization(t * d)  # signs of the switches on the piece d enters
        g_fd = fd_gradient(prog, prog.x + t * d, 1e-10)
        if g_fd is None or np.any(z == 0):
            continue
        np.testing.assert_allclose(anf.selection_gradient(np.sign(z)), g_fd, atol=1e-4)


def test_large_networks_get_operators():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 8))
    W = rng.normal(size=(8, 128))
    f = lambda b: knp.sum(knp.relu(X @ W + b))  # noqa: E731
    anf = abs_normal_form(f, np.zeros(128))
    assert anf.s == 64 * 128 and not anf.dense
    v = rng.normal(size=128)
    np.testing.assert_allclose(anf.Z @ v, np.tile(v, 64), atol=1e-12)  # dz/db = I per sample
    w = rng.normal(size=anf.s)
    np.testing.assert_allclose(anf.Z.T @ w, w.reshape(64, 128).sum(0), atol=1e-10)
    np.testing.assert_allclose(anf.Y @ np.ones(anf.s), [0.5 * anf.s])


@pytest.mark.parametrize("lo, hi", [(-1, 1), (0, 2), (np.int64(-1), np.int64(1)), (-1.0, 1.0)])
def test_integer_clip_bounds_give_the_form_of_float_ones(lo, hi):
    # the exact path scaled float inputs to integers times 2^E but passed integer constants
    # unscaled: clip(x, -1, 1) at its bound 1 had z = [1, 1] (no switch active) instead of
    # [2, 0]; certify, stationarity and subdifferential then described another set
    f = lambda x: knp.sum(knp.clip(x, lo, hi))  # noqa: E731
    x = np.array([float(hi)])
    anf = kinkgrad.abs_normal_form(f, x)
    assert np.array_equal(anf.z, [float(hi - lo), 0.0])
    for dx in (-0.3, -1e-6, 0.0, 1e-6, 0.3):  # piecewise linear: the model is f itself
        assert anf.linearization(np.array([dx]))[1][0] == pytest.approx(
            float(f(x + dx)), abs=1e-15)
    # by hand: the Clarke set of clip at its bound is [0, 1]; minus x / 2 holds 0
    assert sorted(float(g[0]) for g in kinkgrad.subdifferential(f, x).gradients) == [0.0, 1.0]
    g = lambda x: knp.sum(knp.clip(x, lo, hi)) - 0.5 * x[0]  # noqa: E731
    assert kinkgrad.stationarity(g, x).verdict == "stationary"
    # clip(x, lo, hi) + relu(hi - x) is constant near x = hi: {0}; torch's 1 is no Clarke
    # gradient (certify said "certified" with integer bounds)
    h = lambda x: knp.sum(knp.clip(x, lo, hi)) + knp.relu(float(hi) - x[0])  # noqa: E731
    rep = kinkgrad.certify(h, x, policy=kinkgrad.kink_policy("torch"))
    assert not (rep.certified and float(np.asarray(rep.gradient).ravel()[0]) != 0.0)
