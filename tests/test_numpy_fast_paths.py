"""The C-level fast paths of the hot rules on NumPy arrays (issue 13): a broadcast view built
by the ndarray constructor, sums by ``ufunc.reduce``, a scatter-add by ``np.add.at``, the
softmax of logsumexp from its output, and the sweeps skipping a selection nobody makes.
Each is checked against an independent truth: NumPy's own function, the adjoint identity
<vjp(g), v> = <g, jvp(v)> with the linear map applied by NumPy, a Jacobian built from unit
vectors, or a softmax computed in high precision by mpmath."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.primitive import broadcast_view, registry, unbroadcast
from kinkgrad.kinks import resolve_policy

BROADCASTS = [((), (3, 4)), ((1,), (5,)), ((3, 1), (2, 3, 4)), ((2, 3), (2, 3)),
              ((1, 1), (4, 1)), ((4,), (0, 4)), ((0,), (3, 0))]


@pytest.mark.parametrize("src,dst", BROADCASTS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_broadcast_view_is_numpys_broadcast_to(src: tuple, dst: tuple, dtype: type) -> None:
    x = (np.arange(int(np.prod(src))) + 1).astype(dtype).reshape(src)
    got, want = broadcast_view(x, dst), np.broadcast_to(x, dst)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert not got.flags.writeable  # a view of x: writing it would write x


def test_broadcast_view_of_a_strided_array_and_of_a_misfit() -> None:
    x = np.arange(12.0).reshape(3, 4)[:, ::2]  # not contiguous: NumPy's path
    np.testing.assert_array_equal(broadcast_view(x[:, :1], (3, 5)), np.broadcast_to(x[:, :1],
                                                                                 (3, 5)))
    with pytest.raises(ValueError):
        broadcast_view(np.ones(3), (4,))
    with pytest.raises(ValueError):
        broadcast_view(np.ones((2, 3)), (3,))


@pytest.mark.parametrize("shape,out_shape,batch", [
    ((4,), (3, 4), ()), ((1, 4), (3, 4), ()), ((3, 1), (3, 4), (2,)), ((), (3, 4), ()),
    ((2, 1, 4), (5, 2, 3, 4), (2,)), ((3, 4), (3, 4), ())])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unbroadcast_is_the_adjoint_of_broadcasting(shape: tuple, out_shape: tuple,
                                                     batch: tuple, dtype: type) -> None:
    rng = np.random.default_rng(0)
    g = rng.standard_normal(batch + out_shape).astype(dtype)
    v = rng.standard_normal(shape).astype(dtype)
    got = np.asarray(unbroadcast(g, shape, out_shape))
    assert got.shape == batch + shape
    for b in np.ndindex(*batch):  # <unbroadcast(g), v> = <g, broadcast(v)>
        np.testing.assert_allclose(np.sum(got[b] * v), np.sum(g[b] * np.broadcast_to(
            v, out_shape)), rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("axis,keepdims", [(None, False), ((0,), False), ((-1,), True),
                                           ((0, 2), False), ((1,), True)])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_sum_vjp_is_the_adjoint_of_sum(axis: tuple | None, keepdims: bool, batch: tuple
                                       ) -> None:
    prim = registry()["sum"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2))
    params = {"axis": tuple(a - 3 if a >= 0 else a for a in (axis or (0, 1, 2))),
              "keepdims": keepdims}
    out = prim.impl(x, **params)
    g = rng.standard_normal(batch + np.shape(out))
    (got,) = prim.vjp(None, g, [x], out, params, [True])
    assert got.shape == batch + x.shape
    v = rng.standard_normal(x.shape)
    for b in np.ndindex(*batch):
        np.testing.assert_allclose(np.sum(got[b] * v),
                                   np.sum(g[b] * np.sum(v, axis=axis, keepdims=keepdims)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sum_of_a_scalar_cotangent_reaches_every_entry(dtype: type) -> None:
    # mean -> sum: the cotangent of the sum is a NumPy scalar (0-d arithmetic returns one)
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    g = kinkgrad.grad(lambda a: knp.mean(a) * 2)(x)
    assert g.dtype == dtype and g.shape == x.shape
    np.testing.assert_array_equal(g, np.full(x.shape, dtype(2) / dtype(6)))


INDEXES = [(np.array([0, 0, 1, 2, 2, 2]), np.array([1, 1, 2, 0, 0, 3])),  # repeated pairs
           (np.array([-1, 0]), np.array([-4, 3])),  # negative indices
           (np.array([[0], [2]]), np.array([1, 1, 3])),  # index arrays that broadcast
           (np.array([1, 1, 1]),)]  # whole rows, the same one thrice


@pytest.mark.parametrize("idx", INDEXES, ids=range(len(INDEXES)))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_integer_indexing_vjp_is_its_jacobian_transposed(idx: tuple, dtype: type) -> None:
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    n_out = x[idx].size
    rng = np.random.default_rng(2)
    w = rng.integers(-3, 4, x[idx].shape).astype(dtype)  # small integers: exact sums
    got = kinkgrad.grad(lambda a: knp.sum(a[idx] * w))(x)
    jac = np.zeros((n_out, x.size))  # d x[idx] / d x from unit vectors of x
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = 1
        jac[:, j] = e.reshape(x.shape)[idx].ravel()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, (w.astype(np.float64).ravel() @ jac).reshape(x.shape))


def _softmax_mp(row: np.ndarray) -> list:
    with mpmath.workdps(50):
        vals = [mpmath.mpf(float(v)) for v in row]
        top = max(vals)
        e = [mpmath.exp(v - top) for v in vals]
        s = mpmath.fsum(e)
        return [float(t / s) for t in e]


@pytest.mark.parametrize("dtype,offset", [(np.float16, 0.0), (np.float16, -3e3),
                                          (np.float32, 0.0), (np.float32, 1e4),
                                          (np.float32, -3e30), (np.float64, 1e8),
                                          (np.float64, 1e300), (np.float64, -1e15)])
def test_logsumexp_gradient_is_the_softmax_to_a_few_ulps(dtype: type, offset: float) -> None:
    # the softmax comes from exp(x - out) normalised: the rounding of out cancels, at any
    # offset, whether the row's entries differ or tie
    rng = np.random.default_rng(3)
    x = (offset + rng.integers(-64, 65, (5, 7)) / 16.0).astype(dtype)
    x[1] = x[1, 0]  # a row of equal entries
    g = kinkgrad.grad(lambda a: knp.sum(knp.logsumexp(a, axis=1)))(x)
    assert g.dtype == dtype
    want = np.array([_softmax_mp(r) for r in x])
    np.testing.assert_allclose(g, want, rtol=16 * np.finfo(dtype).eps,
                               atol=4 * np.finfo(dtype).tiny)
    np.testing.assert_array_equal(g[1], np.full(7, g[1, 0]))


def test_logsumexp_gradient_with_infinite_entries() -> None:
    x = np.array([[0.0, -np.inf, np.log(3.0)], [-np.inf, -np.inf, 5.0]])
    g = kinkgrad.grad(lambda a: knp.sum(knp.logsumexp(a, axis=1)))(x)
    np.testing.assert_allclose(g, [[0.25, 0.0, 0.75], [0.0, 0.0, 1.0]], rtol=1e-15)


def test_primitives_that_select_nothing_return_no_selection() -> None:
    # the sweeps skip the selection rule of a primitive whose ``selects`` is False: that
    # rule must give None at every sample, or the skip would change a derivative
    policy = resolve_policy(None)
    rng = np.random.default_rng(4)
    skipped = 0
    for name, prim in sorted(registry().items()):
        if prim.selects:
            continue
        skipped += 1
        for args, params in prim.samples(rng):
            out = prim.impl(*args, **params)
            assert prim.selection(policy, list(args), out, params) is None, name
            assert prim.select(policy, list(args), out, params)[0] is None, name
    assert skipped >= 10  # add, sub, sum, matmul, reshape, ...: the common smooth ones
