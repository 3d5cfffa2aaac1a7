"""The gradient's finiteness check: fast (one dot product) and never fooled.

The truth is NumPy's entrywise ``np.isfinite(c).all()``; the check must agree with it on
arrays with a NaN or an inf anywhere (first entry, inside a SIMD block, the tail), on finite
arrays whose sum of squares overflows, and on the arrays it does not take the fast path for.
``value_and_grad`` must refuse a large gradient with a single non-finite entry.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import NonFiniteInputError
from kinkgrad.modes._nonfinite import finite

SHAPES = [(4097,), (64, 65), (3, 40, 41)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 7, 1000, -1])
def test_one_bad_entry_anywhere_is_found(dtype, shape, bad, where):
    c = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert finite(c) and bool(np.isfinite(c).all())
    c.reshape(-1)[where] = bad
    assert not finite(c)
    assert finite(c) == bool(np.isfinite(c).all())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_finite_entries_whose_squares_overflow_are_finite(dtype):
    c = np.full((70, 70), np.finfo(dtype).max / 2, dtype)  # c . c overflows to inf
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.dot(c.ravel(), c.ravel()))
    assert finite(c) is True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["warn", "raise", "ignore"])
@pytest.mark.parametrize("size", ["huge", "tiny"])
def test_squares_that_overflow_or_underflow_warn_nothing(dtype, mode, size):
    # a float32 gradient of 1e35 entries warned "overflow encountered in dot" from inside the
    # check (a RuntimeWarning raised under -W error, as this suite runs), whatever np.errstate
    info = np.finfo(dtype)
    c = np.full(4000, info.max / 4 if size == "huge" else info.tiny * 4, dtype)
    w, one = c[:64], np.ones(64, dtype)
    with np.errstate(all=mode):
        assert finite(c) is True
        g = kinkgrad.grad(lambda v: knp.sum((v - one) * w))(one)  # f(1) = 0, gradient w
    assert np.array_equal(g, w)


@pytest.mark.parametrize("array", [
    np.ones((80, 80), np.float16),                   # no BLAS dot for float16
    np.ones((80, 80))[:, ::2],                       # not contiguous
    np.broadcast_to(np.float64(1.0), (100, 100)),    # a broadcast view
    np.ones(10),                                     # small
    np.ones((80, 80), np.int64),                     # integers
])
def test_other_arrays_take_the_entrywise_test(array):
    assert finite(array) is True
    bad = np.array(array, dtype=np.float64 if array.dtype.kind == "i" else array.dtype)
    bad.reshape(-1)[-1] = np.nan
    assert finite(bad) is False


def test_value_and_grad_refuses_one_overflowing_entry_of_a_large_gradient():
    # d/dW sum(1 / W) = -1 / W^2: finite value, one entry of the gradient overflows float32
    w = np.full((64, 100), 2.0, np.float32)
    w[13, 57] = 1e-30
    with np.errstate(all="ignore"), pytest.raises(NonFiniteInputError, match="grad"):
        kinkgrad.value_and_grad(lambda w: knp.sum(1.0 / w))(w)
    w[13, 57] = 0.5  # and the same function elsewhere: the exact gradient -1 / w^2
    v, g = kinkgrad.value_and_grad(lambda w: knp.sum(1.0 / w))(w)
    expected = np.full(w.shape, -0.25, np.float32)
    expected[13, 57] = -4.0
    np.testing.assert_array_equal(g, expected)
    assert float(v) == pytest.approx(0.5 * (w.size - 1) + 2.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(40,), (64, 65), (5,)])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf, "huge"])
def test_torch_backed_arrays_agree_with_torch_isfinite(dtype, shape, bad):
    torch = pytest.importorskip("torch")
    from kinkgrad.backends import _torch_numpy, use_namespace
    from kinkgrad.modes import _finite

    t = torch.randn(shape, dtype=getattr(torch, dtype), generator=torch.Generator().manual_seed(1))
    if bad == "huge":  # finite entries whose sum of squares overflows
        t.fill_(float(np.finfo(dtype).max) / 2)
    elif bad is not None:
        t.view(-1)[len(t.view(-1)) // 2] = bad
    with use_namespace(_torch_numpy()):
        got = _finite.finite(_torch_numpy().asarray(t))
    assert got == bool(torch.isfinite(t).all())


SINGLE_VALUES = [0.0, -0.0, 1.5, 5e-324, np.nan, np.inf, -np.inf, 6e4, 3e38, 1.7e308]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
@pytest.mark.parametrize("value", SINGLE_VALUES)
@pytest.mark.parametrize("form", ["scalar", "0-d", "(1,)", "(1, 1)"])
def test_a_single_entry_agrees_with_isfinite(dtype, value, form):
    # the loss value's test: one entry, as a NumPy scalar or an array of any rank
    with np.errstate(over="ignore"):
        x = dtype(value)
    c = {"scalar": x, "0-d": np.array(x), "(1,)": np.array([x]), "(1, 1)": np.array([[x]])}[form]
    assert finite(c) is bool(np.isfinite(c).all())


def test_a_long_double_beyond_the_float64_range_is_finite():
    big = np.longdouble(np.finfo(np.float64).max) * 16  # inf as a Python float, finite here
    if not np.isfinite(big):  # long double is float64 on this platform
        pytest.skip("np.longdouble has no range beyond float64 here")
    assert finite(big) is True and finite(np.array([big])) is True
