"""The column-by-column reductions of short groups (primitives/_lastaxis.py) against NumPy's
own reductions: values, kept dims, tie counts and first maximisers, on arrays large enough
to take the column path (and on small ones, which take NumPy's)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.primitives import _lastaxis as la


def _tied(rng: np.random.Generator, shape: tuple, dtype: type) -> np.ndarray:
    return rng.integers(-2, 3, shape).astype(dtype)  # many ties, signed zeros below


@pytest.mark.parametrize("shape, axis", [((64, 8, 4, 2, 4, 2), (-3, -1)),
                                         ((500, 3), (-1,)), ((7, 9, 16), (-2, -1)),
                                         ((3, 4), (-1,)), ((300, 17), (-1,))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_extreme_equals_numpy(shape: tuple, axis: tuple, dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = _tied(rng, shape, dtype)
    x[x == 0] *= rng.choice([-1.0, 1.0], size=int((x == 0).sum())).astype(dtype)  # +-0
    for sign, ref in ((1.0, np.max), (-1.0, np.min)):
        for keep in (False, True):
            got, want = la.extreme(x, axis, keep, sign), ref(x, axis=axis, keepdims=keep)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_nan_propagates_like_numpy() -> None:
    x = np.random.default_rng(1).normal(size=(200, 4))
    x[5, 2] = np.nan
    np.testing.assert_array_equal(la.extreme(x, (-1,), False, 1.0), np.max(x, axis=-1))
    np.testing.assert_array_equal(la.max_last(x)[..., 0], np.max(x, axis=-1))


@pytest.mark.parametrize("k", [2, 4, 9, 16, 17])
def test_counts_and_first_maximiser_equal_numpy(k: int) -> None:
    rng = np.random.default_rng(k)
    xl = _tied(rng, (256, k), np.float64)
    assert la._short(xl) == (k <= la.COLUMNS)
    cand = xl == la.max_last(xl)
    np.testing.assert_array_equal(la.count_last(cand), cand.sum(axis=-1, keepdims=True))
    one_hot = la.first_true(cand)
    assert one_hot.dtype == bool and (one_hot.sum(-1) == 1).all()
    np.testing.assert_array_equal(np.argmax(one_hot, -1), np.argmax(xl, -1))  # first max


def test_max_pool_gradient_at_ties_takes_the_first_maximiser() -> None:
    """End to end through knp.max on pooling windows (the column path): the gradient of a
    sum of window maxima puts each window's 1 on its first maximiser (the default policy),
    checked against NumPy's argmax."""
    x = _tied(np.random.default_rng(3), (32, 8, 6, 6), np.float64)
    windows = lambda v: knp.reshape(v, (32, 8, 3, 2, 3, 2))  # noqa: E731
    g = kinkgrad.grad(lambda v: knp.sum(knp.max(windows(v), axis=(3, 5))))(x)
    w = x.reshape(32, 8, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(32, 8, 3, 3, 4)
    want = np.zeros_like(w)
    np.put_along_axis(want, np.argmax(w, -1)[..., None], 1.0, axis=-1)
    want = want.reshape(32, 8, 3, 3, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)
    np.testing.assert_array_equal(g, want)
