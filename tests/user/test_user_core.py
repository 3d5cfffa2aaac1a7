"""What a first user trips on in the core API: regression tests for the fixes.

Expected numbers come from NumPy itself (norms, the function values), never from kinkgrad.
"""

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError, UnknownNameError, UnsupportedOperationError


# --------------------------------------------------------------------------- linalg.norm
def test_norm_ord2_of_a_matrix_is_the_spectral_norm_not_frobenius():
    # NumPy: ord=2 of a 2-D array is the largest singular value, not sqrt(sum a_ij^2)
    a = np.eye(2)  # singular values (1, 1): spectral norm 1, Frobenius sqrt(2)
    spectral, frob = np.linalg.norm(a, ord=2), np.sqrt(np.sum(a * a))
    assert abs(spectral - frob) > 0.4  # the two readings differ on this input
    for axis in (None, (0, 1)):
        v, g = kinkgrad.value_and_grad(lambda x, ax=axis: knp.linalg.norm(x, ord=2, axis=ax))(a)
        assert float(v) == spectral
        # a tied largest singular value: "first" takes u = v = e_1, a subgradient of the norm
        np.testing.assert_array_equal(g, [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(UnsupportedOperationError, match="matrix norm"):
        kinkgrad.grad(lambda x: knp.linalg.norm(x, ord=2))(np.ones((2, 2, 2)))


@pytest.mark.parametrize("ord_", [None, "fro"])
def test_frobenius_norm_of_a_matrix_still_works(ord_):
    a = np.arange(1.0, 7.0).reshape(2, 3)
    v, g = kinkgrad.value_and_grad(lambda x: knp.linalg.norm(x, ord=ord_))(a)
    fro = np.linalg.norm(a, ord=ord_)
    assert np.isclose(v, fro)
    np.testing.assert_allclose(g, a / fro, rtol=1e-12)  # d||A||_F = A / ||A||_F


def test_norm_ord2_along_one_axis_of_a_matrix_is_the_row_norm():
    a = np.arange(1.0, 7.0).reshape(2, 3)
    v = kinkgrad.value_and_grad(lambda x: knp.sum(knp.linalg.norm(x, ord=2, axis=1)))(a)[0]
    assert np.isclose(v, np.sum(np.linalg.norm(a, ord=2, axis=1)))


# --------------------------------------------------------------------------- tracer methods
def test_astype_to_the_same_dtype_is_a_no_op_under_grad():
    x = np.array([1.0, -2.0, 3.0])
    g = kinkgrad.grad(lambda v: knp.sum(v.astype(np.float64) ** 2))(x)
    np.testing.assert_array_equal(g, 2 * x)


def test_astype_to_another_dtype_names_the_fix():
    with pytest.raises(UnsupportedOperationError, match="astype"):
        kinkgrad.grad(lambda v: knp.sum(v.astype(np.float32)))(np.ones(3))


def test_missing_array_method_is_a_clear_error_and_still_an_attribute_error():
    with pytest.raises(UnknownNameError, match=r"\.searchsorted"):
        kinkgrad.grad(lambda v: v[v.searchsorted(0.5)])(np.ones(3))
    seen = {}

    def f(v):
        seen["has_searchsorted"] = hasattr(v, "searchsorted")  # probing tools keep working
        seen["has_dlpack"] = hasattr(v, "__dlpack__")
        return knp.sum(v)

    kinkgrad.grad(f)(np.ones(2))
    assert seen == {"has_searchsorted": False, "has_dlpack": False}


# --------------------------------------------------------------------------- jvp arguments
def test_jvp_with_bare_arrays_instead_of_tuples_says_so():
    with pytest.raises(KinkgradError, match=r"jvp\(f, \(x,\), \(t,\)\)"):
        kinkgrad.jvp(lambda x: x * x, np.arange(3.0), np.ones(3))


def test_jvp_with_lists_still_works():
    x, t = np.arange(3.0), np.ones(3)
    v, jt = kinkgrad.jvp(lambda x: x * x, [x], [t])
    np.testing.assert_array_equal(v, x * x)
    np.testing.assert_array_equal(jt, 2 * x * t)
