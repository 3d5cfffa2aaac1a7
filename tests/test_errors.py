"""Every error is a KinkgradError subclass whose message names the operation and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import (
    IntegerInputError,
    KinkgradError,
    NestedTransformError,
    NonFiniteInputError,
    NonScalarOutputError,
    PolicyError,
    ShapeError,
    TracerBoolConversionError,
    UnsupportedOperationError,
)

X = np.array([0.5, -1.0, 2.0])


def test_unsupported_numpy_functions_on_traced_values():
    with pytest.raises(UnsupportedOperationError, match=r"numpy\.fft\.fft.*kinkgrad info"):
        kinkgrad.grad(lambda x: knp.sum(np.fft.fft(x)))(X)
    with pytest.raises(UnsupportedOperationError, match=r"numpy\.cumprod.*register a primitive"):
        kinkgrad.grad(lambda x: knp.sum(np.cumprod(x)))(X)
    with pytest.raises(UnsupportedOperationError, match=r"np\.arcsin.*no primitive"):
        kinkgrad.grad(lambda x: knp.sum(np.arcsin(x)))(X)
    with pytest.raises(UnsupportedOperationError, match=r"np\.add\.reduce"):
        kinkgrad.grad(lambda x: np.add.reduce(x))(X)
    with pytest.raises(UnsupportedOperationError, match=r"np\.asarray"):
        kinkgrad.grad(lambda x: knp.sum(np.asarray(x)))(X)
    with pytest.raises(UnsupportedOperationError, match=r"ord=3"):
        kinkgrad.grad(lambda x: knp.linalg.norm(x, ord=3))(X)
    with pytest.raises(UnsupportedOperationError, match=r"knp\.where"):
        kinkgrad.grad(lambda x: knp.sum(x[x > 0]))(X)
    assert issubclass(UnsupportedOperationError, KinkgradError)


def test_python_control_flow_on_traced_values():
    def branchy(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(TracerBoolConversionError, match=r"knp\.where\(cond, a, b\)"):
        kinkgrad.grad(branchy)(1.0)
    with pytest.raises(TracerBoolConversionError, match=r"float\(\)"):
        kinkgrad.grad(lambda x: float(x) * 2)(1.0)
    with pytest.raises(TracerBoolConversionError, match=r"bool\(\)"):
        kinkgrad.grad(lambda x: knp.sum(x) if knp.max(x) else 0.0)(X)


@pytest.mark.parametrize("f", [lambda x: knp.sum(x) > 0, lambda x: knp.sum(x > 0),
                               lambda x: 3])
def test_grad_of_a_comparison_or_a_count_is_refused(f):
    # their "gradient" came out as zeros; JAX refuses integer and bool outputs alike
    with pytest.raises(NonScalarOutputError, match="real floating-point scalar"):
        kinkgrad.grad(f)(np.array([1.0, -2.0]))
    assert kinkgrad.grad(lambda x: 3.0)(np.array([1.0, -2.0])).tolist() == [0.0, 0.0]


def test_non_scalar_output_to_grad():
    with pytest.raises(NonScalarOutputError, match=r"shape \(3,\).*jacobian"):
        kinkgrad.grad(lambda x: x * 2)(X)
    with pytest.raises(NonScalarOutputError, match=r"returned 2 arrays"):
        kinkgrad.grad(lambda x: (knp.sum(x), knp.sum(x)))(X)


def test_shape_mismatch_in_add_and_matmul():
    with pytest.raises(ShapeError, match=r"add: operands of shapes \(3,\), \(4,\)"):
        kinkgrad.grad(lambda x: knp.sum(x + np.ones(4)))(X)
    with pytest.raises(ShapeError, match=r"matmul: operands of shapes \(3, 3\), \(4, 2\)"):
        kinkgrad.grad(lambda x: knp.sum(x @ np.ones((4, 2))))(np.ones((3, 3)))
    with pytest.raises(ShapeError, match=r"reshape.*\(3,\).*\(2, 2\)"):
        kinkgrad.grad(lambda x: knp.sum(knp.reshape(x, (2, 2))))(X)
    with pytest.raises(ShapeError, match=r"axis 3 is out of bounds"):
        kinkgrad.grad(lambda x: knp.sum(x, axis=3))(X)
    prog = kinkgrad.trace(lambda x: knp.sum(x), X)
    with pytest.raises(ShapeError, match=r"traced with shape \(3,\).*re-trace"):
        prog(np.ones(4))


def test_integer_and_non_finite_inputs():
    with pytest.raises(IntegerInputError, match=r"int64.*astype"):
        kinkgrad.grad(lambda x: knp.sum(x))(np.arange(3))
    with pytest.raises(IntegerInputError, match=r"bool"):
        kinkgrad.grad(lambda x: knp.sum(x))(np.array([True, False]))
    with pytest.raises(NonFiniteInputError, match=r"NaN or inf.*nan_to_num"):
        kinkgrad.grad(lambda x: knp.sum(x))(np.array([1.0, np.nan]))
    with pytest.raises(NonFiniteInputError, match=r"NaN or inf"):
        kinkgrad.jvp(lambda x: x, (np.array([np.inf]),), (np.ones(1),))


def test_nested_transformations():
    def outer(x):
        return knp.sum(kinkgrad.grad(lambda y: knp.sum(y * y))(x))

    with pytest.raises(NestedTransformError, match=r"first-order"):
        kinkgrad.grad(outer)(X)
    leaked = []
    kinkgrad.grad(lambda x: leaked.append(x) or knp.sum(x))(X)
    with pytest.raises(KinkgradError, match=r"escaped"):
        knp.exp(leaked[0])


def test_log_of_a_negative_number():
    # under NumPy's default error state (no trap), the value becomes NaN at the log node
    with np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(NonFiniteInputError, match=r"`log` node"):
            kinkgrad.grad(lambda x: knp.sum(knp.log(x)))(X)
        with pytest.raises(KinkgradError, match=r"log: the argument has entries <= 0"):
            kinkgrad.jvp(knp.log, (X,), (np.ones(3),))


def test_sqrt_at_zero():
    with pytest.raises(KinkgradError, match=r"sqrt: derivative at 0 is infinite.*linalg\.norm"):
        kinkgrad.grad(lambda x: knp.sum(knp.sqrt(x)))(np.array([0.0, 4.0]))
    with pytest.raises(KinkgradError, match=r"power: the derivative of x\*\*0\.5 at x = 0"):
        kinkgrad.grad(lambda x: knp.sum(x ** 0.5))(np.array([0.0, 4.0]))


@pytest.mark.parametrize("bad,match", [
    ({"relu": 2.0}, r"relu=2\.0.*\[0, 1\]"),
    ({"abs": -1.5}, r"abs=-1\.5.*\[-1, 1\]"),
    ({"clip": "one"}, r"clip='one'"),
    ({"leaky_relu": -0.1}, r"leaky_relu"),
    ({"max": "middle"}, r"max='middle'.*'first'.*'split'"),
    ({"sort": "random"}, r"sort='random'"),
    ({"norm": "unit"}, r"norm='unit'"),
    ({"maxx": "first"}, r"unknown key.*maxx"),
])
def test_invalid_policy_values(bad, match):
    with pytest.raises(PolicyError, match=match):
        kinkgrad.kink_policy(**bad)


def test_invalid_arguments_to_transformations():
    with pytest.raises(PolicyError, match=r"pass a KinkPolicy"):
        kinkgrad.grad(knp.relu, policy="zero")(0.0)
    with pytest.raises(KinkgradError, match=r"mode='backward'"):
        kinkgrad.jacobian(knp.relu, mode="backward")
    with pytest.raises(KinkgradError, match=r"argnums 2 is out of range"):
        kinkgrad.grad(lambda a, b: knp.sum(a), argnums=2)(X, X)
    with pytest.raises(KinkgradError, match=r"has_aux=True.*pair"):
        kinkgrad.grad(lambda x: knp.sum(x), has_aux=True)(X)
    with pytest.raises(KinkgradError, match=r"negative_slope=1\.5"):
        knp.leaky_relu(X, 1.5)
    with pytest.raises(ShapeError, match=r"tangent of shape \(2,\)"):
        kinkgrad.jvp(knp.exp, (X,), (np.ones(2),))
    _, fn = kinkgrad.vjp(knp.exp, X)
    with pytest.raises(ShapeError, match=r"cotangent of shape \(2,\)"):
        fn(np.ones(2))


@pytest.mark.parametrize("bad", [1.0, "x", True, np.bool_(False), (0, True), (0, 1.0), None])
def test_argnums_must_be_ints_in_every_transformation(bad):
    f = lambda a, b: knp.sum(a * b)  # noqa: E731
    for make in (lambda: kinkgrad.grad(f, argnums=bad), lambda: kinkgrad.value_and_grad(
            f, argnums=bad), lambda: kinkgrad.jacobian(f, argnums=bad)):
        with pytest.raises(KinkgradError, match=r"argnums=.* is not an int or a tuple of ints"):
            make()
    if bad is not None:  # trace's None: every floating-point argument
        with pytest.raises(KinkgradError, match=r"trace: argnums=.*argnums=\(0, 1\)"):
            kinkgrad.trace(f, X, X, argnums=bad)


def test_where_with_one_of_x_and_y_names_the_fix():
    with pytest.raises(UnsupportedOperationError, match=r"knp.where: .*pass both.*or neither"):
        knp.where(X > 0, X)
    with pytest.raises(UnsupportedOperationError, match=r"knp.where: .*pass both.*or neither"):
        kinkgrad.grad(lambda z: knp.sum(knp.where(z > 0, z)))(X)
    with pytest.raises(ShapeError, match=r"knp.where: .*0-d condition.*atleast_1d"):
        knp.where(np.float64(1.0))


def test_every_error_class_documents_cause_and_fix():
    import kinkgrad.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, KinkgradError) and len(cls.__doc__ or "") > 40, name


def test_item_assignment_floordiv_and_mod_name_the_fix():
    import numpy as np
    import pytest

    import kinkgrad
    import kinkgrad.numpy as knp

    def assign(x):
        x[0] = 1.0
        return knp.sum(x)

    with pytest.raises(kinkgrad.KinkgradError, match=r"x.at\[i\].set"):
        kinkgrad.grad(assign)(np.ones(3))
    for f in (lambda x: knp.sum(x // 2.0), lambda x: knp.sum(x % 2.0)):
        with pytest.raises(kinkgrad.KinkgradError, match="jump"):
            kinkgrad.grad(f)(np.ones(3))


def test_at_set_and_add_against_numpy_and_finite_differences():
    import numpy as np

    import kinkgrad
    import kinkgrad.numpy as knp

    w = np.array([1.0, 2.0, 3.0])
    f = lambda x: knp.sum(x.at[0].set(x[1] ** 2) * w)  # noqa: E731
    x = np.array([1.0, 2.0, 3.0])
    y = x.copy()
    y[0] = x[1] ** 2
    assert float(kinkgrad.trace(f, x)(x)) == float(np.sum(y * w))
    # f = 1 x1^2 + 2 x1 + 3 x2: gradient (0, 2 x1 + 2, 3), by hand
    np.testing.assert_allclose(kinkgrad.grad(f)(x), [0.0, 6.0, 3.0])
    g = lambda v: knp.sum(v.at[1:].add(5.0) ** 2)  # noqa: E731
    np.testing.assert_allclose(kinkgrad.grad(g)(x), [2.0, 14.0, 16.0])


def test_jacobian_with_a_tuple_of_argnums():
    import numpy as np

    import kinkgrad

    ja, jb = kinkgrad.jacobian(lambda a, b: a * b, argnums=(0, 1))(np.ones(2), 2 * np.ones(2))
    np.testing.assert_array_equal(ja, 2 * np.eye(2))
    np.testing.assert_array_equal(jb, np.eye(2))


def test_public_surface_and_array_methods():
    import numpy as np

    import kinkgrad
    import kinkgrad.numpy as knp

    for leak in ("annotations", "Any", "PackageNotFoundError"):
        assert leak not in dir(kinkgrad) and leak not in dir(knp)
    assert "linalg" in dir(knp) and "minimize" in dir(kinkgrad)

    def f(x):
        return (knp.sum(np.ones_like(x) * x) + x.std() + x.prod() + x.cumsum()[-1]
                + x.copy()[x.argmax()])

    x = np.array([1.0, 2.0, 3.0])
    # d/dx: 1 + (x - mean) / (n std) + prod / x + 1 + e_argmax, by hand
    std = np.std(x)
    want = 1 + (x - x.mean()) / (3 * std) + np.prod(x) / x + 1 + np.array([0, 0, 1.0])
    np.testing.assert_allclose(kinkgrad.grad(f)(x), want, rtol=1e-12)


def test_cost_certify_and_linearization_refuse_bad_arguments_with_the_fix():
    # a non-function to cost raised TypeError "'int' object is not callable"; certify took
    # limit=-1; linearization returned NaN for a NaN step
    x = np.array([1.0, -2.0])
    with pytest.raises(kinkgrad.KinkgradError, match="cost: f must be a function"):
        kinkgrad.cost(3, x)
    for kw in ({"limit": -1}, {"limit": 2.5}, {"max_kinks": True}):
        with pytest.raises(kinkgrad.KinkgradError, match="certify: "):
            kinkgrad.certify(lambda v: knp.sum(knp.abs(v)), x, **kw)
    anf = kinkgrad.abs_normal_form(lambda v: knp.sum(knp.abs(v)), x)
    with pytest.raises(kinkgrad.errors.NonFiniteInputError, match="linearization"):
        anf.linearization(np.array([np.nan, 0.0]))


def test_sqrt_of_a_negative_number_is_named_as_such():
    # sqrt(x0 - 1) at x0 = 0: the message said "sqrt: derivative at 0 is infinite"
    def f(x):
        return knp.sqrt(x[0] - 1.0) + knp.abs(x[1])

    with np.errstate(invalid="ignore"), pytest.raises(kinkgrad.KinkgradError,
                                                      match="sqrt: the argument is negative"):
        kinkgrad.stationarity(f, np.zeros(2))
