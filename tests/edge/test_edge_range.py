"""Huge and tiny values: no overflow where the result is representable, exact smooth
derivatives at subnormal inputs, and a clear KinkgradError (naming the node) where a value or
a derivative is not representable, never a silent inf/NaN gradient.

References are independent: mpmath at 60 digits, or a power-of-two rescaling (exact in
binary floating point) of a moderate computation in float64.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import grad, value_and_grad
from kinkgrad.errors import KinkgradError

mpmath.mp.dps = 60


def _mp_norm(x) -> tuple[float, list[float]]:
    """||x||_2 and x / ||x||_2 in 60-digit arithmetic, rounded to float64."""
    xs = [mpmath.mpf(float(v)) for v in np.asarray(x, np.float64)]
    n = mpmath.sqrt(sum(v * v for v in xs))
    return float(n), [float(v / n) for v in xs]


# ------------------------------------------------------------------ huge values
@pytest.mark.parametrize("x,dtype,rtol", [
    ([1e300, 1e300, -3e299], np.float64, 1e-15),
    ([1.7e308, 1e307], np.float64, 1e-15),
    ([4e4, -3e4], np.float16, 1e-3),       # 5e4 < 65504; the sum of squares overflows f16
    ([3e38, 1e38], np.float32, 1e-6),      # 3.16e38 < 3.4e38; x^2 overflows f32
])
def test_norm2_of_huge_vectors_has_no_overflow(x, dtype, rtol):
    x = np.array(x, dtype)
    v, g = value_and_grad(knp.linalg.norm)(x)
    want_v, want_g = _mp_norm(x)
    assert v.dtype == dtype and g.dtype == dtype
    assert np.isfinite(v) and np.all(np.isfinite(g))
    np.testing.assert_allclose(float(v), want_v, rtol=rtol)
    np.testing.assert_allclose(g.astype(np.float64), want_g, rtol=rtol, atol=rtol)


def test_norm2_huge_matches_a_scaled_reference():
    # ||s y|| = s ||y|| for s = 2^1000 (exact scaling): the gradient is the same unit vector
    y = np.array([1.0, -2.0, 2.0])  # ||y|| = 3
    s = 2.0 ** 1000
    v, g = value_and_grad(knp.linalg.norm)(y * s)
    assert float(v) == 3.0 * s
    np.testing.assert_allclose(g, y / 3.0, rtol=1e-15)


@pytest.mark.parametrize("dtype,big", [(np.float64, 1e300), (np.float32, 3e38),
                                       (np.float16, 6e4)])
def test_logsumexp_sigmoid_softplus_tanh_at_huge_values(dtype, big):
    x = np.array([-big, big], dtype)
    v, g = value_and_grad(knp.logsumexp)(x)
    assert float(v) == float(x[1]) and g.tolist() == [0.0, 1.0]  # softmax is one-hot
    v, g = value_and_grad(lambda a: knp.sum(knp.sigmoid(a)))(x)
    assert float(v) == 1.0 and g.tolist() == [0.0, 0.0]  # sigmoid(-b) + sigmoid(b) = 1
    v, g = value_and_grad(lambda a: knp.sum(knp.softplus(a)))(x)
    assert float(v) == float(x[1]) and g.tolist() == [0.0, 1.0]  # softplus(b) = b, s' = s
    v, g = value_and_grad(lambda a: knp.sum(knp.tanh(a)))(x)
    assert float(v) == 0.0 and g.tolist() == [0.0, 0.0]
    assert g.dtype == dtype


def test_logsumexp_of_equal_huge_entries():
    x = np.array([1e300, 1e300])
    v, g = value_and_grad(knp.logsumexp)(x)
    assert float(v) == 1e300  # 1e300 + log 2 rounds to 1e300
    assert g.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("dtype,x", [(np.float64, 710.0), (np.float32, 89.0),
                                     (np.float16, 11.1)])
def test_exp_overflow_raises_naming_the_node(dtype, x):
    assert mpmath.exp(x) > mpmath.mpf(float(np.finfo(dtype).max))  # not representable
    with pytest.raises(KinkgradError, match="exp"):
        grad(lambda a: knp.sum(knp.exp(a)))(np.array([x], dtype))


def test_hidden_overflow_under_a_finite_value_raises_not_nan():
    # tanh(exp(1000)) = 1 is finite, but its derivative is inf * 0: NaN if returned
    with pytest.raises(KinkgradError, match="exp"):
        grad(lambda a: knp.sum(knp.tanh(knp.exp(a))))(np.array([1000.0]))


def test_hidden_overflow_raises_also_when_numpy_errors_are_ignored():
    with np.errstate(all="ignore"):
        with pytest.raises(KinkgradError, match="exp"):
            grad(lambda a: knp.sum(knp.tanh(knp.exp(a))))(np.array([1000.0]))
        with pytest.raises(KinkgradError, match="div"):
            grad(lambda a: knp.sum(1.0 / a))(np.array([1e-300]))


# ------------------------------------------------------------------ tiny values
SUB64 = np.nextafter(0.0, 1.0)  # 5e-324, the smallest subnormal
SUB16 = np.float16(6e-8)        # 2^-24, the smallest float16 subnormal


@pytest.mark.parametrize("x", [SUB64, 1e-308, 2.2250738585072014e-308])
def test_relu_abs_leaky_at_tiny_inputs_are_smooth(x):
    assert x != 0  # not a kink: the smooth derivative applies
    for s in (0.0, 1.0):  # the kink policy must not matter
        with kinkgrad.kink_policy(relu=s, abs=s, leaky_relu=s):
            assert float(grad(knp.relu)(x)) == 1.0 and float(grad(knp.relu)(-x)) == 0.0
            assert float(grad(knp.abs)(x)) == 1.0 and float(grad(knp.abs)(-x)) == -1.0
            lr = grad(lambda a: knp.leaky_relu(a, 0.5))
            assert float(lr(x)) == 1.0 and float(lr(-x)) == 0.5


def test_relu_abs_at_float16_subnormals():
    x = np.array([SUB16, -SUB16], np.float16)
    assert x[0] != 0 and x[1] != 0
    g = grad(lambda a: knp.sum(knp.relu(a)))(x)
    assert g.dtype == np.float16 and g.tolist() == [1.0, 0.0]
    g = grad(lambda a: knp.sum(knp.abs(a)))(x)
    assert g.tolist() == [1.0, -1.0]
    _, _, rep = value_and_grad(lambda a: knp.sum(knp.relu(a)), report=True)(x)
    assert rep.total == 0  # no kink hit


@pytest.mark.parametrize("x,dtype,rtol", [
    ([SUB64, SUB64], np.float64, 1e-15),
    ([SUB64, -3 * SUB64, 4 * SUB64], np.float64, 1e-15),
    ([1e-308, 3e-308], np.float64, 1e-15),
    ([1e-200, 1e-200], np.float64, 1e-15),   # x^2 underflows to 0 in float64
    ([6e-8, 6e-8], np.float16, 1e-3),
    ([1e-40, -1e-40], np.float32, 1e-6),
])
def test_norm2_at_tiny_vectors_is_a_unit_vector(x, dtype, rtol):
    x = np.array(x, dtype)
    v, g = value_and_grad(knp.linalg.norm)(x)
    _, want_g = _mp_norm(x)
    assert float(v) > 0 and np.all(np.isfinite(g)) and g.dtype == dtype
    np.testing.assert_allclose(g.astype(np.float64), want_g, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(float(np.linalg.norm(g.astype(np.float64))), 1.0, rtol=rtol)


def test_division_by_tiny_numbers():
    # x / 1e-300: value 1e300, derivative 1e300 (representable)
    v, g = value_and_grad(lambda a: knp.sum(a / 1e-300))(np.array([1.0]))
    assert float(v) == 1.0 / 1e-300 and float(g[0]) == 1.0 / 1e-300
    # 1 / x at x = 2^-537: value 2^537, derivative -2^1074 overflows float64 -> a clear error
    with pytest.raises(KinkgradError, match="div"):
        grad(lambda a: knp.sum(1.0 / a))(np.array([2.0 ** -537]))
    # 1 / x at x = 2^-500: derivative -2^1000, representable and exact
    g = grad(lambda a: knp.sum(1.0 / a))(np.array([2.0 ** -500]))
    assert float(g[0]) == -(2.0 ** 1000)


def test_sigmoid_and_logsumexp_underflow_quietly_to_exact_limits():
    # exp(-800) underflows to 0 in float64: the derivative of sigmoid at +-800 is 0 exactly
    g = grad(lambda a: knp.sum(knp.sigmoid(a)))(np.array([-800.0, 800.0]))
    assert g.tolist() == [0.0, 0.0]
    g = grad(knp.logsumexp)(np.array([-1e300, 0.0]))
    assert g.tolist() == [0.0, 1.0]


# ------------------------------------------------------------------ the abs-normal layer
TINY = np.array([5e-324, -5e-324, 0.0])  # subnormal switching values, no kink hit


def test_set_valued_answers_at_subnormal_points_under_raise():
    # ||x|| at x != 0 is smooth: its gradient is the unit vector x / ||x|| = (1, -1, 0)/sqrt(2)
    # (the conftest's np.errstate(all="raise") made the norm's abs form raise a bare
    # FloatingPointError on the subnormal m * sqrt(2) before)
    f = knp.linalg.norm
    unit = np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)
    rep = kinkgrad.stationarity(f, TINY)
    assert rep.verdict == "not stationary" and rep.distance == pytest.approx(1.0, rel=1e-12)
    assert kinkgrad.in_clarke(f, TINY, unit)
    assert kinkgrad.certify(f, TINY).certified
    assert len(kinkgrad.subdifferential(f, TINY)) == 1


@pytest.mark.parametrize("f, top", [(knp.max, 0), (knp.min, 1)])
def test_abs_normal_form_at_subnormal_switching_values(f, top):
    form = kinkgrad.abs_normal_form(f, TINY)
    assert float(form.y[0]) == float(TINY[top]) and np.all(np.isfinite(form.cy))
    assert np.all(form.z != 0)  # 5e-324 is not 0: no kink is hit, one piece
    rep = kinkgrad.stationarity(f, TINY)
    assert rep.verdict == "not stationary" and rep.distance == 1.0  # gradient e_top


def test_abs_normal_form_whose_offsets_overflow_raises_naming_it():
    # relu(x) relu(1 - x) at x = 1e300: z = (1e300, 1 - 1e300), the product's derivative in
    # |z| is ~1e300, so c_y = y - Y |z| is ~1e600: not a float64
    def f(x):
        return knp.sum(knp.relu(x) * knp.relu(-x + 1.0))

    with pytest.raises(kinkgrad.errors.NonFiniteInputError, match="abs_normal_form.*rescale"):
        kinkgrad.abs_normal_form(f, np.full(3, 1e300))


def test_stationarity_with_gradients_too_large_to_square_is_decided_on_a_rescaling():
    # ||g||^2 of entries 1e300 overflows in the min-norm QP and the norms (a RuntimeWarning
    # and "undecided, inf" under NumPy's defaults, a bare FloatingPointError under raise;
    # then "undecided, rescale f"): f / 2^e is tested (exact). By hand: [-1, 1]^2 + 1e300
    # (1, 1) is at distance sqrt(2) (1e300 - 1) from 0; 1e300 B + (1, 1) holds 0
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.abs(x)) + knp.sum(x * 1e300),
                                np.zeros(2))
    assert rep.verdict == "not stationary" and "2^997" in rep.reason
    assert rep.distance == pytest.approx(np.sqrt(2.0) * 1e300, rel=1e-12)
    rep = kinkgrad.stationarity(lambda x: 1e300 * knp.linalg.norm(x) + knp.sum(x), np.zeros(2))
    assert rep.verdict == "stationary" and rep.distance <= 1e-8


def test_stationarity_at_large_but_squarable_gradients_is_exact():
    # entries 1e140: squares 1e280 fit; the distance is the smooth part's 1e140 sqrt(2)
    # less the abs terms' unit box, exactly as at moderate scale (times 1e140)
    rep = kinkgrad.stationarity(lambda x: knp.sum(knp.abs(x)) + knp.sum(x * 1e140), np.zeros(2))
    assert rep.verdict == "not stationary"
    assert rep.distance == pytest.approx(np.sqrt(2.0) * (1e140 - 1.0), rel=1e-12)
