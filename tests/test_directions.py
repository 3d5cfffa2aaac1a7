"""One convention for many directions (kinkgrad.modes.directions): the batch axis is the last
one for jvp tangents, vjp cotangents, directional and ld_derivative directions, and their
batched results; ``batch_axis=0`` reads and returns rows. A square matrix given as rows is read
as rows only when asked, and a leading batch that the shapes reveal is refused with the fix.

Truth: Jacobians by central differences of the plain-NumPy function, one-sided directional
derivatives by forward differences of the plain-NumPy piecewise-linear function (exact for a
small enough step), lexicographic derivatives by the definition f'(x; M) = J_L M."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError, ShapeError

RNG = np.random.default_rng(11)
A = RNG.normal(size=(4, 3))
X = RNG.normal(size=3)


def f_knp(x):
    return knp.tanh(A @ x) * 2.0


def f_np(x):
    return np.tanh(A @ x) * 2.0


def _jac_fd(x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    cols = [(f_np(x + h * e) - f_np(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    return np.stack(cols, axis=-1)


J = _jac_fd(X)


def test_jvp_batch_is_the_last_axis_and_gives_J_times_T():
    T = RNG.normal(size=(3, 5))
    _, out = kinkgrad.jvp(f_knp, (X,), (T,))
    assert out.shape == (4, 5)
    np.testing.assert_allclose(out, J @ T, rtol=1e-7, atol=1e-9)
    _, rows = kinkgrad.jvp(f_knp, (X,), (T.T,), batch_axis=0)
    assert rows.shape == (5, 4)
    np.testing.assert_allclose(rows, (J @ T).T, rtol=1e-7, atol=1e-9)


def test_vjp_batch_is_the_last_axis_and_gives_J_transpose_times_W():
    W = RNG.normal(size=(4, 6))
    _, fn = kinkgrad.vjp(f_knp, X)
    (g,) = fn(W)
    assert g.shape == (3, 6)
    np.testing.assert_allclose(g, J.T @ W, rtol=1e-7, atol=1e-9)
    (rows,) = fn(W.T, batch_axis=0)
    np.testing.assert_allclose(rows, (J.T @ W).T, rtol=1e-7, atol=1e-9)


def _pl(x: np.ndarray) -> float:
    """A piecewise-linear function with a kink at 0 in every direction."""
    return abs(x[0] - x[1]) + max(x[1], x[2], 0.0) - 2.0 * abs(x[2])


def _pl_knp(x):
    return knp.abs(x[0] - x[1]) + knp.max(knp.stack([x[1], x[2], 0.0 * x[0]])) - 2 * knp.abs(x[2])


def _one_sided(x: np.ndarray, d: np.ndarray, t: float = 1e-7) -> float:
    return (_pl(x + t * d) - _pl(x)) / t


def test_a_square_matrix_is_read_as_columns_unless_batch_axis_0():
    x0 = np.zeros(3)
    D = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]])  # not symmetric
    cols = kinkgrad.directional(_pl_knp, x0, D)
    rows = kinkgrad.directional(_pl_knp, x0, D, batch_axis=0)
    want_cols = [_one_sided(x0, D[:, j]) for j in range(3)]
    want_rows = [_one_sided(x0, D[i]) for i in range(3)]
    np.testing.assert_allclose(cols, want_cols, rtol=1e-6)
    np.testing.assert_allclose(rows, want_rows, rtol=1e-6)
    assert not np.allclose(want_cols, want_rows)  # the reading matters for this D


def test_ld_derivative_rows_equal_columns_of_the_transpose():
    x0 = np.zeros(3)
    M = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.5, -1.0, 1.0]])
    cols = kinkgrad.ld_derivative(_pl_knp, x0, M)
    rows = kinkgrad.ld_derivative(_pl_knp, x0, M.T, batch_axis=0)
    np.testing.assert_array_equal(cols, rows)
    # f'(x; M) = J_L M with J_L the gradient of the piece entered along m_1, then m_2, ...:
    # the first column is the one-sided derivative along m_1
    assert cols[0] == pytest.approx(_one_sided(x0, M[:, 0]), rel=1e-6)
    # every column of an LD derivative is linear in the piece: J_L = f'(x; M) M^{-1}
    JL = cols @ np.linalg.inv(M)
    piece = x0 + 1e-6 * M[:, 0] + 1e-9 * M[:, 1] + 1e-12 * M[:, 2]
    g_fd = [(_pl(piece + 1e-14 * e) - _pl(piece - 1e-14 * e)) / 2e-14 for e in np.eye(3)]
    np.testing.assert_allclose(JL, g_fd, atol=1e-6)


def test_pytree_directions_follow_the_same_rule():
    x = {"a": np.array([1.0, -2.0]), "b": np.array(0.5)}
    f = lambda p: knp.sum(p["a"] ** 2) * p["b"]  # noqa: E731
    Da, Db = RNG.normal(size=(2, 4)), RNG.normal(size=4)
    cols = kinkgrad.directional(f, x, {"a": Da, "b": Db})
    rows = kinkgrad.directional(f, x, {"a": Da.T, "b": Db}, batch_axis=0)
    want = 2 * x["a"] @ Da * x["b"] + np.sum(x["a"] ** 2) * Db
    np.testing.assert_allclose(cols, want, rtol=1e-12)
    np.testing.assert_allclose(rows, want, rtol=1e-12)


def test_flat_directions_for_an_x_of_several_dimensions_or_none():
    # max of a (2, 2) array at a 4-way tie: f'(x; d) = max(d) (by hand); the lexicographic
    # derivative along e_1, ..., e_4 picks entry 0 first: [1, 0, 0, 0]
    X2 = np.ones((2, 2))
    D = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # n = 4, k = 2 columns
    np.testing.assert_array_equal(kinkgrad.directional(knp.max, X2, D), [2.0, 3.0])
    np.testing.assert_array_equal(kinkgrad.directional(knp.max, X2, D.T, batch_axis=0),
                                  [2.0, 3.0])
    assert kinkgrad.directional(knp.max, X2, D[:, 1]) == 3.0
    np.testing.assert_array_equal(kinkgrad.ld_derivative(knp.max, X2, np.eye(4)),
                                  [1.0, 0.0, 0.0, 0.0])
    # shaped like x still means one direction, x's shape + (k,) k directions
    assert kinkgrad.directional(knp.max, X2, D[:, 1].reshape(2, 2)) == 3.0
    # |x| at a 0-d x = 0: f'(0; d) = |d|; lexicographic along (1, -1): sign +, so [1, -1]
    np.testing.assert_array_equal(kinkgrad.directional(knp.abs, np.float64(0.0),
                                                       np.array([[1.0, -2.0]])), [1.0, 2.0])
    np.testing.assert_array_equal(kinkgrad.ld_derivative(knp.abs, np.float64(0.0),
                                                         np.array([[1.0, -1.0]])), [1.0, -1.0])
    with pytest.raises(ShapeError, match=r"flat array of shape \(4,\) or \(4, k\)"):
        kinkgrad.directional(knp.max, X2, np.ones((3, 2)))
    with pytest.raises(ShapeError, match=r"2 directions on a leading axis.*batch_axis=0"):
        kinkgrad.directional(knp.max, X2, D.T)


def test_a_leading_batch_the_shapes_reveal_is_refused_with_the_fix():
    T = RNG.normal(size=(5, 3))  # 5 tangents as rows
    with pytest.raises(ShapeError, match=r"5 tangents on a leading axis.*batch_axis=0"):
        kinkgrad.jvp(f_knp, (X,), (T,))
    with pytest.raises(ShapeError, match=r"5 directions on a leading axis.*batch_axis=0"):
        kinkgrad.directional(_pl_knp, np.zeros(3), T)
    _, fn = kinkgrad.vjp(f_knp, X)
    with pytest.raises(ShapeError, match=r"2 cotangents on a leading axis.*batch_axis=0"):
        fn(np.ones((2, 4)))
    with pytest.raises(ShapeError, match=r"trailing axis \(columns\): drop batch_axis=0"):
        kinkgrad.jvp(f_knp, (X,), (T.T,), batch_axis=0)


@pytest.mark.parametrize("bad", [1, 2, -2, True, "rows"])
def test_batch_axis_takes_minus_one_or_zero(bad):
    with pytest.raises(KinkgradError, match="batch_axis"):
        kinkgrad.jvp(f_knp, (X,), (np.ones(3),), batch_axis=bad)
    with pytest.raises(KinkgradError, match="batch_axis"):
        kinkgrad.directional(_pl_knp, np.zeros(3), np.ones(3), batch_axis=bad)
