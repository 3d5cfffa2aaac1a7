"""kinkgrad._core.csr.dense_to_csr against scipy's own conversion (the truth)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kinkgrad._core.csr import dense_to_csr


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 3), (3, 0), (100, 1000)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_matrix_as_scipy(shape, dtype):
    rng = np.random.default_rng(0)
    C = (rng.standard_normal(shape) * (rng.random(shape) < 0.1)).astype(dtype)
    if C.size:
        C[tuple(np.array(shape) // 2)] = -0.0  # a signed zero is no entry
    got, want = dense_to_csr(C), sp.csr_matrix(C)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_a_column_major_array():
    C = np.asfortranarray(np.arange(24.0).reshape(4, 6) % 5)
    np.testing.assert_array_equal(dense_to_csr(C).toarray(), C)
