"""knp.sin, cos, cumsum, prod, var, std, argmax and argmin: values against NumPy, derivatives
against analytic formulas and central differences, the edge cases of each (zeros of prod,
constant inputs of std, ties of argmax), dtypes, and NumPy's dispatch to them."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError, ShapeError


def _fd_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar NumPy function."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


RNG = np.random.default_rng(42)
X = RNG.normal(size=(3, 4))
W = RNG.normal(size=(3, 4))


# ---------------------------------------------------------------------- sin, cos
@pytest.mark.parametrize("name,deriv", [("sin", np.cos), ("cos", lambda x: -np.sin(x))])
def test_sin_cos_values_and_analytic_derivatives(name, deriv):
    fn, ref = getattr(knp, name), getattr(np, name)
    np.testing.assert_allclose(fn(X), ref(X), rtol=1e-15)
    g = kinkgrad.grad(lambda x: knp.sum(fn(x) * W))(X)
    np.testing.assert_allclose(g, W * deriv(X), rtol=1e-14, atol=1e-15)
    jac = kinkgrad.jacobian(fn, mode="fwd")(X[0])
    np.testing.assert_allclose(jac, np.diag(deriv(X[0])), rtol=1e-14, atol=1e-15)
    # np.sin / np.cos on a traced value route to the primitive
    g2 = kinkgrad.grad(lambda x: np.sum(ref(x) * W))(X)
    np.testing.assert_array_equal(g2, g)


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_keep_float32(name):
    x = X.astype(np.float32)
    g = kinkgrad.grad(lambda v: knp.sum(getattr(knp, name)(v)))(x)
    assert g.dtype == np.float32
    want = np.cos(X) if name == "sin" else -np.sin(X)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- cumsum
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2])
def test_cumsum_values_and_gradient_is_the_reversed_cumsum(axis):
    np.testing.assert_allclose(knp.cumsum(X, axis=axis), np.cumsum(X, axis=axis), rtol=1e-15)
    w = RNG.normal(size=np.cumsum(X, axis=axis).shape)
    g = kinkgrad.grad(lambda x: knp.sum(knp.cumsum(x, axis=axis) * w))(X)
    # analytic: d/dx_i sum_k w_k (x_0 + ... + x_k) = w_i + ... + w_{n-1}, by loops
    if axis is None:
        flat = np.array([w[i:].sum() for i in range(w.size)])
        want = flat.reshape(X.shape)
    else:
        a = axis % 2
        want = np.zeros_like(X)
        for i in range(X.shape[a]):
            want[(slice(None),) * a + (i,)] = np.take(w, range(i, X.shape[a]), axis=a).sum(a)
    np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g, _fd_grad(lambda x: np.sum(np.cumsum(x, axis=axis) * w), X),
                               rtol=1e-7, atol=1e-8)


def test_cumsum_jacobian_is_lower_triangular_ones_both_modes():
    x = np.arange(1.0, 6.0)
    for mode in ("fwd", "rev"):
        np.testing.assert_array_equal(kinkgrad.jacobian(knp.cumsum, mode=mode)(x),
                                      np.tril(np.ones((5, 5))))


def test_cumsum_float32_0d_dispatch_and_bad_axis():
    x = X.astype(np.float32)
    out, vjp_fn = kinkgrad.vjp(lambda v: knp.cumsum(v, axis=-1), x)
    assert out.dtype == np.float32 and vjp_fn(np.ones((3, 4), np.float32))[0].dtype == np.float32
    np.testing.assert_array_equal(vjp_fn(np.ones((3, 4), np.float32))[0],
                                  np.broadcast_to([4.0, 3.0, 2.0, 1.0], (3, 4)))
    assert knp.cumsum(np.float64(2.5)).shape == (1,)  # NumPy flattens a 0-d input
    g = kinkgrad.grad(lambda v: np.sum(np.cumsum(v)))(X[0])  # np.cumsum dispatches
    np.testing.assert_array_equal(g, [4.0, 3.0, 2.0, 1.0])
    with pytest.raises(ShapeError, match="out of bounds"):
        knp.cumsum(X, axis=2)


# ---------------------------------------------------------------------- prod
def _others(x: np.ndarray) -> np.ndarray:
    """prod_{j != i} x_j for a 1-D x, by explicit loops (the analytic derivative)."""
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), (-1, False),
                                           ((0, 1), True)])
def test_prod_values_and_derivatives_without_zeros(axis, keepdims):
    x = RNG.uniform(0.5, 1.5, (3, 4)) * np.array([1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(knp.prod(x, axis=axis, keepdims=keepdims),
                               np.prod(x, axis=axis, keepdims=keepdims), rtol=1e-14)
    w = RNG.normal(size=np.prod(x, axis=axis, keepdims=keepdims).shape)
    g = kinkgrad.grad(lambda v: knp.sum(knp.prod(v, axis=axis, keepdims=keepdims) * w))(x)
    # away from zeros the derivative is prod / x_i: an independent formula
    want = np.prod(x, axis=axis, keepdims=True) / x * np.reshape(
        w, np.prod(x, axis=axis, keepdims=True).shape)
    np.testing.assert_allclose(g, want, rtol=1e-13)
    f = lambda v: np.sum(np.prod(v, axis=axis, keepdims=keepdims) * w)  # noqa: E731
    np.testing.assert_allclose(g, _fd_grad(f, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("x,want", [
    (np.array([2.0, 0.0, 3.0, 4.0]), np.array([0.0, 24.0, 0.0, 0.0])),  # one zero
    (np.array([2.0, 0.0, 3.0, 0.0]), np.zeros(4)),                      # two zeros
    (np.array([0.0, 0.0, 0.0]), np.zeros(3)),                           # all zeros
    (np.array([0.0]), np.array([1.0])),                                 # prod of one entry
    (np.array([-0.5, 0.0, 1.5, 2.0, -4.0]), np.array([0.0, 6.0, 0.0, 0.0, 0.0])),
])
def test_prod_derivative_with_zeros_is_the_product_of_the_others(x, want):
    np.testing.assert_array_equal(want, _others(x))  # the expected values are that product
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        g = kinkgrad.grad(knp.prod)(xd)
        assert g.dtype == dtype and np.all(np.isfinite(g))
        np.testing.assert_array_equal(g, want.astype(dtype))
        jac = kinkgrad.jacobian(knp.prod, mode="fwd")(xd)
        np.testing.assert_array_equal(jac, want.astype(dtype))


def test_prod_along_an_axis_with_rows_holding_no_one_and_two_zeros():
    x = np.array([[1.5, 2.0, -1.0, 0.5],
                  [3.0, 0.0, 2.0, 0.5],
                  [0.0, 2.0, 0.0, 4.0]])
    for axis in (1, -1):
        jac = kinkgrad.jacobian(lambda v, a=axis: knp.prod(v, axis=a), mode="rev")(x)
        want = np.zeros((3, 3, 4))
        for r in range(3):
            want[r, r] = _others(x[r])
        np.testing.assert_array_equal(jac, want)
    g = kinkgrad.grad(lambda v: knp.sum(knp.prod(v, axis=0)))(x)  # column-wise
    np.testing.assert_array_equal(g, np.stack([_others(x[:, c]) for c in range(4)], axis=1))
    g2 = kinkgrad.grad(lambda v: np.sum(np.prod(v, axis=0)))(x)  # np.prod dispatches
    np.testing.assert_array_equal(g2, g)


def test_prod_float32_values_and_0d():
    x = RNG.uniform(0.5, 1.5, (3, 4)).astype(np.float32)
    out = knp.prod(x, axis=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.prod(x.astype(np.float64), axis=0), rtol=1e-6)
    assert kinkgrad.grad(knp.prod)(np.float64(3.0)) == 1.0


# ---------------------------------------------------------------------- var, std
@pytest.mark.parametrize("axis,ddof,keepdims", [(None, 0, False), (0, 0, False), (1, 1, True),
                                                (-1, 0, False), ((0, 1), 1, False)])
def test_var_std_values_and_derivatives(axis, ddof, keepdims):
    kw = {"axis": axis, "ddof": ddof, "keepdims": keepdims}
    for name in ("var", "std"):
        fn, ref = getattr(knp, name), getattr(np, name)
        np.testing.assert_allclose(fn(X, **kw), ref(X, **kw), rtol=1e-13)
        w = RNG.normal(size=np.shape(ref(X, **kw)))
        g = kinkgrad.grad(lambda x, fn=fn, w=w: knp.sum(fn(x, **kw) * w))(X)
        np.testing.assert_allclose(g, _fd_grad(lambda x, ref=ref, w=w: np.sum(ref(x, **kw) * w),
                                               X), rtol=1e-7, atol=1e-9)
        n = X.size // np.size(np.mean(X, axis=axis))
        dev = X - np.mean(X, axis=axis, keepdims=True)
        wk = np.reshape(w, np.shape(np.var(X, axis=axis, keepdims=True)))
        want = 2 * dev / (n - ddof) * wk  # analytic derivative of var
        if name == "std":
            want = want / (2 * np.std(X, axis=axis, ddof=ddof, keepdims=True))
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)
        g2 = kinkgrad.grad(lambda x, ref=ref, w=w: np.sum(ref(x, **kw) * w))(X)  # dispatch
        np.testing.assert_allclose(g2, g, rtol=1e-15)


def test_var_float32_and_a_large_offset():
    x = (1e8 + RNG.normal(size=50)).astype(np.float64)
    np.testing.assert_allclose(knp.var(x), np.var(x), rtol=1e-7)
    x32 = X.astype(np.float32)
    v, g = kinkgrad.value_and_grad(lambda a: knp.std(a))(x32)
    assert np.asarray(v).dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(v, np.std(X), rtol=1e-6)


@pytest.mark.parametrize("c", [0.0, 0.3, 0.7, -2.5])
def test_std_of_a_constant_input_raises_through_grad_not_nan(c):
    x = np.full(3, c)  # 0.3 and 0.7: sum(x) / 3 != c in floating point
    assert knp.std(x) == 0.0 and knp.var(x) == 0.0  # the value itself is fine
    assert kinkgrad.value_and_grad(knp.var)(x)[1].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(KinkgradError, match="sqrt"):
        kinkgrad.grad(knp.std)(x)
    with pytest.raises(KinkgradError, match="sqrt"):  # one constant row among varying ones
        kinkgrad.grad(lambda v: knp.sum(knp.std(v, axis=1)))(np.stack([x, [1.0, 2.0, 4.0]]))
    # smoothed, as the docstring suggests: the derivative at a constant input is 0
    g = kinkgrad.grad(lambda v: knp.sqrt(knp.var(v) + 1e-12))(x)
    np.testing.assert_array_equal(g, np.zeros(3))


def test_var_without_degrees_of_freedom_raises():
    with pytest.raises(ShapeError, match="ddof"):
        knp.var(np.ones(3), ddof=3)
    with pytest.raises(ShapeError, match="degrees of freedom"):
        kinkgrad.grad(lambda v: knp.std(v, ddof=1))(np.ones(1))
    with pytest.raises(ShapeError, match="undefined"):  # NumPy: NaN with a warning
        knp.var(np.ones((0, 3)), axis=0)
    assert knp.var(np.ones((3, 0)), axis=0).shape == (0,)  # an empty result, as NumPy's


# ---------------------------------------------------------------------- argmax, argmin
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin_equal_numpy_with_ties_to_the_first(axis):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 0.0, 0.0, 5.0]])
    for name in ("argmax", "argmin"):
        got = getattr(knp, name)(x, axis=axis)
        want = getattr(np, name)(x, axis=axis)
        np.testing.assert_array_equal(got, want)
        assert np.asarray(got).dtype.kind == "i"
    np.testing.assert_array_equal(knp.argmax(x, axis=1), [1, 0, 0])  # first maximiser
    np.testing.assert_array_equal(knp.argmin(x, axis=1), [3, 0, 1])


def test_argmax_on_a_traced_value_is_a_numpy_constant_usable_as_an_index():
    x = np.array([1.0, 4.0, -2.0, 4.0])
    seen = {}

    def f(v):
        i, j = knp.argmax(v), knp.argmin(v)
        seen["types"] = (type(i), type(j))
        return v[i] - 2.0 * v[j]

    val, g = kinkgrad.value_and_grad(f)(x)
    assert all(issubclass(t, (np.integer, np.ndarray)) for t in seen["types"])
    assert val == 4.0 + 4.0
    np.testing.assert_array_equal(g, [0.0, 1.0, -2.0, 0.0])  # ties: the first maximiser
    prog = kinkgrad.trace(f, x)
    assert {e.prim.name for e in prog.eqns} <= {"getitem", "mul", "sub"}
    # along an axis, and through NumPy's dispatch
    m = np.array([[1.0, 3.0, 2.0], [6.0, 5.0, 6.0]])
    g = kinkgrad.grad(lambda v: knp.sum(v[np.arange(2), np.argmax(v, axis=1)]))(m)
    np.testing.assert_array_equal(g, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    g = kinkgrad.grad(lambda v: knp.sum(v[knp.argmin(v, axis=0), np.arange(3)]))(m)
    np.testing.assert_array_equal(g, [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])


def test_where_with_one_argument_is_nonzero_and_a_constant_index():
    c = np.array([[1.0, 0.0, -2.0], [0.0, 3.0, 0.0]])
    got, want = knp.where(c), np.nonzero(c)  # NumPy's np.where(cond) is np.nonzero(cond)
    assert len(got) == len(want) == 2
    for a, b in zip(got, want):
        assert a.dtype.kind == "i"
        np.testing.assert_array_equal(a, b)
    x = np.array([1.0, -1.0, 3.0, 0.0])
    # sum of x_i^2 over the positive entries: gradient 2 x_i there, 0 elsewhere (by hand)
    for spell in (lambda v: knp.where(v > 0), lambda v: np.where(v > 0)):
        v, g = kinkgrad.value_and_grad(lambda v, s=spell: knp.sum(v[s(v)] ** 2))(x)
        assert v == 10.0
        np.testing.assert_array_equal(g, [2.0, 0.0, 6.0, 0.0])


def test_argmax_on_torch_tensors():
    torch = pytest.importorskip("torch")
    x = torch.tensor([1.0, 4.0, -2.0, 4.0], dtype=torch.float64)
    assert int(knp.argmax(x)) == 1
    g = kinkgrad.grad(lambda v: v[knp.argmax(v)] * knp.sum(knp.sin(v)))(x)
    assert isinstance(g, torch.Tensor)
    xn = x.numpy()
    want = np.cos(xn) * 4.0
    want[1] += np.sum(np.sin(xn))
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-14)


def test_new_names_are_listed_by_info():
    from kinkgrad.cli import info_table

    words = set(info_table().split())
    for name in ("sin", "cos", "cumsum", "prod", "var", "std", "argmax", "argmin"):
        assert name in words, name


def test_concatenate_with_axis_none_flattens_as_numpy():
    # knp.concatenate([m, m], axis=None) joined along axis 0: shape (6, 4), NumPy's (24,)
    m = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(knp.concatenate([m, m], axis=None),
                                  np.concatenate([m, m], axis=None))
    # d/dv sum(concat(v, 2v) * w) with w = 0..23: w_i + 2 w_(12 + i), by hand 24 + 3 i
    g = kinkgrad.grad(lambda v: knp.sum(knp.concatenate([v, 2 * v], axis=None)
                                        * np.arange(24.0)))(m)
    np.testing.assert_array_equal(g, 24.0 + 3.0 * np.arange(12.0).reshape(3, 4))


def test_logsumexp_of_a_zero_dimensional_array():
    # a 0-d ndarray raised a raw TypeError ("return arrays must be of ArrayType") from the
    # in-place exp of the shifted entries (a NumPy scalar there); logsumexp(c) = c, slope 1
    assert knp.logsumexp(np.asarray(0.5)) == 0.5
    assert kinkgrad.grad(knp.logsumexp)(np.asarray(0.5)) == 1.0


def test_float16_mean_does_not_overflow_where_numpy_does_not():
    # 3,000 entries of 30 in float16: the sum (90,000) passed float16's 65,504, so knp.mean
    # was inf and value_and_grad raised; NumPy (and torch) sum in float32: 30
    x = np.full(3000, 30.0, np.float16)
    assert knp.mean(x) == np.mean(x) == 30.0 and knp.mean(x).dtype == np.float16
    v, g = kinkgrad.value_and_grad(knp.mean)(x)
    assert v == 30.0 and g.dtype == np.float16
    np.testing.assert_allclose(g, 1.0 / 3000, rtol=1e-3)  # d mean / d x_i = 1 / n
