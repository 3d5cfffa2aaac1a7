"""Compressed forward-difference Hessians (kinkgrad.optimize._sparse_hessian): supports
measured by NaN propagation, disjoint columns sharing one difference.

Truths are independent of the code: Hessians written out by hand (a separable quadratic,
a chained Rosenbrock's tridiagonal matrix, a rank-one dense one), and the gradient counts
the oracle reports against n, the plain differences' cost.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import kinkgrad.numpy as knp
from kinkgrad.optimize._sparse_hessian import sparse_hessian
from kinkgrad.optimize.oracle import Oracle


def _hessian(f, x):
    oracle = Oracle(f, x)
    before = oracle.ngev
    g = oracle.frozen_gradient(x, {})
    H = sparse_hessian(oracle, x, g, {})
    return H, oracle.ngev - before - 1


def test_a_diagonal_hessian_costs_a_few_dozen_gradients_not_n():
    n = 4096
    rng = np.random.default_rng(0)
    y, c = rng.standard_normal(n), rng.uniform(1.5, 2.0, n)  # H positive definite

    def f(x):
        r = x - y
        return 0.5 * knp.sum(c * r * r) + knp.sum(knp.sin(x[:10]))

    x = rng.standard_normal(n)
    H, spent = _hessian(f, x)
    want = np.diag(c)
    want[np.arange(10), np.arange(10)] -= np.sin(x[:10])
    np.testing.assert_allclose(H.toarray(), want, atol=1e-6)
    assert spent <= 41  # the flat probe, 2 log2(4096) probes, a sample of 8, a
    # difference, the check


def test_chained_rosenbrock_tridiagonal_by_residue_groups():
    # f = sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2: H tridiagonal, written out below; its
    # columns 6 apart are disjoint (residues mod 1 and 2 are shared, mod 6 not)
    n = 1000
    x = np.random.default_rng(1).uniform(0.9, 1.1, n)

    def f(v):
        return knp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)

    d = np.zeros(n)
    d[:-1] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    d[1:] += 200.0
    off = -400.0 * x[:-1]
    want = np.diag(d) + np.diag(off, 1) + np.diag(off, -1)
    H, spent = _hessian(f, x)
    low = float(np.linalg.eigvalsh(want)[0])
    if low < 0:
        want += -low * (1 + 1e-8) * np.eye(n)
    np.testing.assert_allclose(H.toarray(), want, atol=1e-4 * np.max(np.abs(want)))
    assert spent < n // 4


def test_a_dependence_nan_does_not_reach_is_caught_by_the_check():
    # sum_i where(x_i > 0, x_i, 0) x_{i+1}: with x_i NaN the comparison is False and the
    # forward pass selects the constant, so the probe of column i misses row i + 1 (H has
    # 1 at (i, i + 1) and (i + 1, i) where x_i > 0); the check along a random direction
    # sends H to plain differences
    n = 100
    x = np.linspace(-1.0, 2.0, n) + 0.013

    def f(v):
        return knp.sum(knp.where(v[:-1] > 0, v[:-1], 0.0) * v[1:]) + 2.0 * knp.sum(v * v)

    H, spent = _hessian(f, x)
    off = np.where(x[:-1] > 0, 1.0, 0.0)
    want = 4.0 * np.eye(n) + np.diag(off, 1) + np.diag(off, -1)
    np.testing.assert_allclose(H.toarray(), want, atol=1e-6)
    assert spent >= n  # the plain differences ran


def _rank_one(n: int):
    """0.5 (a . v)^2: Hessian a a^T, dense."""
    a = np.linspace(0.5, 1.5, n)

    def f(v):
        s = knp.sum(a * v)
        return 0.5 * s * s

    return f, a


def test_a_dense_hessian_goes_to_plain_differences_after_the_sample():
    n = 80
    f, a = _rank_one(n)
    H, spent = _hessian(f, np.ones(n))
    np.testing.assert_allclose(H.toarray(), np.outer(a, a), atol=1e-6)
    assert n + 1 <= spent <= n + 9  # the flat probe, the 8-column sample, n differences


def test_a_dense_hessian_beyond_3000_columns_is_not_estimated():
    # n differences, n^2 entries and a KKT factorization that fills in (active faces at
    # n = 10^4 ran SuperLU out of memory): None after the probe and the sample
    n = 3001
    H, spent = _hessian(_rank_one(n)[0], np.ones(n))
    assert H is None
    assert spent <= 9


def test_a_polyhedral_function_has_hessian_zero_after_one_difference():
    # MXHILB's max_i |sum_j x_j / (i + j - 1)| at a point off its kinks: piecewise linear,
    # so H = 0 (without the probe: n differences to find it)
    n = 120
    A = 1.0 / (np.arange(n)[:, None] + np.arange(n)[None, :] + 1.0)

    def f(v):
        return knp.max(knp.abs(A @ v))

    x = np.random.default_rng(3).standard_normal(n)
    H, spent = _hessian(f, x)
    assert H.shape == (n, n) and H.nnz == 0
    assert spent == 1


@pytest.mark.parametrize("n", [10, 63])
def test_few_columns_are_differenced_plainly(n):
    def f(v):
        return knp.sum(v ** 4)

    x = np.linspace(0.5, 1.0, n)
    H, spent = _hessian(f, x)
    np.testing.assert_allclose(H.toarray(), np.diag(12.0 * x ** 2), rtol=1e-6)
    assert spent == n
    assert sp.issparse(H)
