"""Which active switches are relevant (not dead, reaching f): the vectorised closure of
``active._relevant`` against the program-order loops of the definition, on random strictly
lower couplings, including chains longer than the relaxation's step cap."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kinkgrad.abs_normal import active


def _loops(A: np.ndarray, K: np.ndarray, bhat: np.ndarray) -> np.ndarray:
    m = K.shape[0]
    dead = ~np.any(A != 0, axis=1)
    for j in range(m):
        if dead[j] and np.any(K[j, :j] != 0):
            dead[j] = not np.any(~dead[:j][K[j, :j] != 0])
    reach = bhat != 0
    for j in range(m - 1, -1, -1):
        later = np.flatnonzero(K[j + 1:, j] != 0) + j + 1
        reach[j] = reach[j] or bool(np.any(reach[later]))
    return ~dead & reach


@pytest.mark.parametrize("seed", range(12))
def test_relevant_equals_the_definition(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 60))
    K = np.tril(rng.standard_normal((m, m)) * (rng.random((m, m)) < rng.uniform(0, 0.3)), -1)
    A = rng.standard_normal((m, 4)) * (rng.random((m, 1)) < 0.5)
    bhat = rng.standard_normal(m) * (rng.random(m) < 0.3)
    got = active._relevant(sp.csr_matrix(A), sp.csr_matrix(K), bhat)
    np.testing.assert_array_equal(got, _loops(A, K, bhat))


@pytest.mark.parametrize("m", [3, 200])
def test_relevant_on_a_long_chain(m):
    """z_j reads z_{j-1} only: the alive set grows from the one live row at the start, and
    reach from the last switch, over m steps (past the relaxation's cap for m = 200); a
    row reading 200 live switches at once (an int8 sum would wrap) is alive."""
    K = np.diag(np.ones(m - 1), -1)
    A = np.zeros((m, 2))
    A[0, 0] = 1.0
    bhat = np.zeros(m)
    bhat[-1] = 1.0
    assert active._relevant(sp.csr_matrix(A), sp.csr_matrix(K), bhat).all()
    wide = np.zeros((m + 1, m + 1))
    wide[m, :m] = 1.0
    Aw = np.zeros((m + 1, 2))
    Aw[:m, 0] = 1.0
    bw = np.zeros(m + 1)
    bw[m] = 1.0
    got = active._relevant(sp.csr_matrix(Aw), sp.csr_matrix(wide), bw)
    np.testing.assert_array_equal(got, _loops(Aw, wide, bw))
