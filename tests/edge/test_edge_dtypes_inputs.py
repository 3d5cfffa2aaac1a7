"""float16/float32 kept as given by every primitive and every transformation (NumPy's NEP 50
promotion is the reference), empty arrays, integer/boolean/NaN inputs, constant functions,
0-d arrays, NumPy scalars and Python floats.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import grad, value_and_grad
from kinkgrad.errors import IntegerInputError, KinkgradError, NonFiniteInputError

W = np.array([[0.5, -1.0], [2.0, 0.25]])
OPS = {
    "abs": knp.abs, "relu": knp.relu, "leaky_relu": lambda x: knp.leaky_relu(x, 0.1),
    "maximum": lambda x: knp.maximum(x, 0.5), "minimum": lambda x: knp.minimum(x, 0.5),
    "clip": lambda x: knp.clip(x, -0.5, 0.5), "max": lambda x: knp.max(x, axis=1),
    "min": lambda x: knp.min(x, axis=0), "sort": knp.sort, "exp": knp.exp,
    "log": lambda x: knp.log(knp.abs(x) + 1.0), "log1p": lambda x: knp.log1p(knp.abs(x)),
    "sqrt": lambda x: knp.sqrt(knp.abs(x) + 1.0), "tanh": knp.tanh, "sigmoid": knp.sigmoid,
    "softplus": knp.softplus, "logsumexp": lambda x: knp.logsumexp(x, axis=1),
    "mul": lambda x: x * 2.0, "div": lambda x: x / 3.0, "rdiv": lambda x: 1.0 / (x + 5.0),
    "sub": lambda x: 1.0 - x, "pow": lambda x: x ** 2, "pow_half": lambda x: (x * x + 1.0) ** 0.5,
    "neg": lambda x: -x, "matmul": lambda x: x @ W.astype(x.dtype),
    "norm1": lambda x: knp.linalg.norm(x, 1, axis=1), "norm2": lambda x: knp.linalg.norm(x, axis=1),
    "norminf": lambda x: knp.linalg.norm(x, np.inf, axis=1), "reshape": lambda x: x.reshape(-1),
    "transpose": knp.transpose, "getitem": lambda x: x[1:, 0],
    "getitem_int": lambda x: x[np.array([0, 2, 2])],
    "concatenate": lambda x: knp.concatenate([x, x]),
    "stack": lambda x: knp.stack([x, x]), "where": lambda x: knp.where(x > 0, x, 0.0),
    "mean": knp.mean, "sum": knp.sum, "broadcast_to": lambda x: knp.broadcast_to(x, (2, 3, 2)),
    "softmax": knp.softmax,
}
X0 = np.array([[0.5, -1.25], [2.0, 0.0], [-0.75, 1.5]])  # dyadic: exact in float16


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("name", sorted(OPS))
def test_dtype_is_kept_by_every_primitive_and_transformation(name, dtype):
    f, x = OPS[name], X0.astype(dtype)
    plain = np.asarray(f(x))
    assert plain.dtype == dtype  # python float constants do not upcast (NEP 50)
    v, g = value_and_grad(lambda a: knp.sum(f(a)))(x)
    assert np.asarray(v).dtype == dtype and g.dtype == dtype
    val, t = kinkgrad.jvp(f, (x,), (np.ones_like(x),))
    assert np.asarray(val).dtype == dtype and np.asarray(t).dtype == dtype
    val, fn = kinkgrad.vjp(f, x)
    assert np.asarray(val).dtype == dtype and fn(np.ones_like(np.asarray(val)))[0].dtype == dtype
    for mode in ("rev", "fwd"):
        assert kinkgrad.jacobian(f, mode=mode)(x).dtype == dtype


def test_mixed_float32_float64_inputs_follow_numpy_promotion():
    a = np.array([1.5, -2.0], np.float32)
    b = np.array([0.5, 3.0])
    v, (ga, gb) = value_and_grad(lambda p, q: knp.sum(p * q), argnums=(0, 1))(a, b)
    assert np.asarray(v).dtype == np.result_type(a, b) == np.float64
    assert ga.dtype == np.float32 and gb.dtype == np.float64  # each input's own dtype
    assert ga.tolist() == [0.5, 3.0] and gb.tolist() == [1.5, -2.0]
    # a NumPy float64 scalar promotes (NEP 50); a Python float does not
    assert np.asarray(value_and_grad(lambda p: knp.sum(p * np.float64(2.0)))(a)[0]).dtype == \
        (a * np.float64(2.0)).dtype == np.float64
    assert np.asarray(value_and_grad(lambda p: knp.sum(p * 2.0))(a)[0]).dtype == np.float32
    # jacobian of a float32 input through a float64 constant: both modes agree on the dtype
    f = lambda p: p @ W[:, :1].ravel()  # noqa: E731
    jr, jf = kinkgrad.jacobian(f)(a), kinkgrad.jacobian(f, mode="fwd")(a)
    assert jr.dtype == jf.dtype and jr.tolist() == jf.tolist() == [0.5, 2.0]


# ------------------------------------------------------------------ empty arrays
@pytest.mark.parametrize("shape,axis", [((0,), None), ((3, 0), 1), ((3, 0), 0), ((0, 3), 1),
                                        ((3, 0), None)])
def test_sum_over_empty_axes_works_like_numpy(shape, axis):
    x = np.zeros(shape)
    v, g = value_and_grad(lambda a: knp.sum(knp.sum(a, axis=axis)))(x)
    assert float(v) == float(np.sum(np.sum(x, axis=axis))) == 0.0
    assert g.shape == shape
    assert np.asarray(knp.sum(x, axis=axis)).shape == np.sum(x, axis=axis).shape


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("shape,axis", [((0,), None), ((3, 0), 1), ((3, 0), None)])
def test_max_min_of_empty_raise_a_clear_error(name, shape, axis):
    x = np.zeros(shape)
    with pytest.raises(ValueError):  # NumPy refuses too
        getattr(np, name)(x, axis=axis)
    fn = getattr(knp, name)
    with pytest.raises(KinkgradError, match=f"{name}.*empty"):
        grad(lambda a: knp.sum(fn(a, axis=axis)))(x)
    with pytest.raises(KinkgradError, match="empty"):
        fn(x, axis=axis)  # outside a transformation as well


@pytest.mark.parametrize("name", ["max", "min", "sort", "relu", "abs", "norm2", "logsumexp"])
def test_reductions_with_an_empty_result_work_like_numpy(name):
    x = np.zeros((3, 0))
    fns = {"max": lambda a: knp.max(a, axis=0), "min": lambda a: knp.min(a, axis=0),
           "sort": knp.sort, "relu": knp.relu, "abs": knp.abs,
           "norm2": lambda a: knp.linalg.norm(a, axis=0),
           "logsumexp": lambda a: knp.logsumexp(a, axis=0)}
    v, g = value_and_grad(lambda a: knp.sum(fns[name](a)))(x)
    assert float(v) == 0.0 and g.shape == (3, 0)


@pytest.mark.parametrize("idx", [[], [[]], (slice(None), []), ([], [])],
                         ids=["[]", "[[]]", ":,[]", "[],[]"])
def test_an_empty_list_index_is_an_empty_integer_index_as_in_numpy(idx):
    x = np.arange(6.0).reshape(2, 3)
    v, g = value_and_grad(lambda a: knp.sum(a[idx]) + knp.sum(a))(x)
    assert float(v) == 15.0  # the empty selection adds 0
    np.testing.assert_array_equal(g, np.ones((2, 3)))
    assert kinkgrad.trace(lambda a: a[idx], x)(x).shape == x[idx].shape
    with pytest.raises(KinkgradError, match=r"index of dtype float64"):  # NumPy refuses too
        grad(lambda a: knp.sum(a[np.array([])]))(x)


def test_mean_and_norm_of_empty_arrays():
    with pytest.raises(KinkgradError, match="mean.*empty"):
        grad(knp.mean)(np.zeros((0,)))
    with pytest.raises(KinkgradError, match="mean.*empty"):
        grad(lambda a: knp.sum(knp.mean(a, axis=1)))(np.zeros((3, 0)))
    v, g = value_and_grad(lambda a: knp.sum(knp.mean(a, axis=0)))(np.zeros((3, 0)))
    assert float(v) == 0.0 and g.shape == (3, 0)  # NumPy: an empty mean, no warning
    v, g = value_and_grad(knp.linalg.norm)(np.zeros((0,)))
    assert float(v) == float(np.linalg.norm(np.zeros(0))) == 0.0 and g.shape == (0,)
    with pytest.raises(KinkgradError, match="empty"):
        grad(lambda a: knp.linalg.norm(a, np.inf))(np.zeros((0,)))
    with pytest.raises(KinkgradError, match="empty"):
        grad(knp.logsumexp)(np.zeros((0,)))


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("x", [np.array([1, 2]), np.array([True, False]), 3, True,
                               np.int32(2)])
def test_integer_and_boolean_inputs_raise(x):
    for tf in (kinkgrad.grad, kinkgrad.value_and_grad):
        with pytest.raises(IntegerInputError, match="astype"):
            tf(lambda a: knp.sum(a * 2.0))(x)
    with pytest.raises(IntegerInputError):
        kinkgrad.jacobian(knp.relu)(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_raise(bad):
    x = np.array([1.0, bad], np.float32)
    with pytest.raises(NonFiniteInputError, match="NaN or inf"):
        grad(knp.sum)(x)
    with pytest.raises(NonFiniteInputError):
        kinkgrad.jvp(knp.relu, (x,), (np.ones_like(x),))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (3,), (2, 0)])
def test_output_independent_of_the_input_gives_zeros(dtype, shape):
    x = np.ones(shape, dtype)
    for f in (lambda a: 3.0, lambda a: knp.sum(np.ones(4)), lambda a: knp.sum(a * 0.0) * 0.0):
        g = grad(f)(x)
        assert g.dtype == dtype and g.shape == shape and not np.any(g)


# ------------------------------------------------------------------ scalars
@pytest.mark.parametrize("x,dtype", [(np.array(0.5), np.float64), (np.float32(0.5), np.float32),
                                     (np.float16(0.5), np.float16), (0.5, np.float64)])
def test_scalar_inputs(x, dtype):
    # d/dx tanh(x)^2 = 2 tanh(x) (1 - tanh(x)^2), independent float64 reference
    t = np.tanh(0.5)
    v, g = value_and_grad(lambda a: knp.tanh(a) ** 2)(x)
    assert np.shape(g) == () and g.dtype == dtype and np.asarray(v).dtype == dtype
    np.testing.assert_allclose(float(g), 2 * t * (1 - t * t), rtol=float(np.finfo(dtype).eps) * 8)
    for f, want in ((knp.relu, 1.0), (knp.abs, 1.0), (knp.max, 1.0), (knp.linalg.norm, 1.0),
                    (lambda a: knp.clip(a, 0.0, 0.5), 0.0)):  # 0.5 sits at hi: clip'=relu'(0)
        assert float(grad(f)(x)) == want
