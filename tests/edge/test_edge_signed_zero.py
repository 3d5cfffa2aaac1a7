"""-0.0 versus +0.0 at every kink: the selection must not depend on the sign bit.

paper B ("batches need consistency"): a tool that picks by the sign bit of -0.0
can leave the Clarke subdifferential. IEEE 754 says -0.0 == 0.0, so every kink test in
kinkgrad must treat both as the same point. Each expected number is the declared policy value
(kinkgrad/kinks.py) worked out by hand; the test runs the same call at +0.0 and at -0.0 and
asserts identical results.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import grad, kink_policy

ZEROS = [0.0, -0.0]


def _same(a, b):
    """Equal as numbers (-0.0 == 0.0 is allowed: a derivative of -0.0 is the value 0)."""
    np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


@pytest.mark.parametrize("z", ZEROS)
@pytest.mark.parametrize("s", [0.0, 0.25, 1.0])
def test_relu_at_signed_zero_takes_the_policy_slope(z, s):
    assert np.signbit(np.float64(-0.0))  # the input really carries the sign bit
    assert float(grad(knp.relu, policy=kink_policy(relu=s))(z)) == s


@pytest.mark.parametrize("z", ZEROS)
@pytest.mark.parametrize("s", [-1.0, -0.5, 0.0, 0.5, 1.0])
def test_abs_at_signed_zero_takes_the_policy_value(z, s):
    # np.sign(-0.0) is -0.0: a rule reading the sign bit would give -1 or -s; Clarke says s
    assert float(grad(knp.abs, policy=kink_policy(abs=s))(z)) == s


@pytest.mark.parametrize("z", ZEROS)
@pytest.mark.parametrize("s", [0.0, 0.5, 1.0])
def test_leaky_relu_at_signed_zero(z, s):
    alpha = 0.125
    want = alpha + s * (1 - alpha)  # the declared slope alpha + s (1 - alpha)
    assert float(grad(lambda x: knp.leaky_relu(x, alpha), policy=kink_policy(leaky_relu=s))(z)) \
        == want


@pytest.mark.parametrize("prim", [knp.maximum, knp.minimum])
@pytest.mark.parametrize("a,b", [(0.0, -0.0), (-0.0, 0.0), (-0.0, -0.0)])
def test_maximum_minimum_tie_between_signed_zeros(prim, a, b):
    f = grad(lambda x, y: prim(x, y), argnums=(0, 1))
    assert tuple(float(v) for v in f(a, b)) == (1.0, 0.0)  # "first": the first operand
    fs = grad(lambda x, y: prim(x, y), argnums=(0, 1), policy=kink_policy(max="split"))
    assert tuple(float(v) for v in fs(a, b)) == (0.5, 0.5)


@pytest.mark.parametrize("lo", [0.0, -0.0])
@pytest.mark.parametrize("x", ZEROS)
@pytest.mark.parametrize("s", [0.0, 0.5, 1.0])
def test_clip_at_a_signed_zero_bound(lo, x, s):
    f = lambda v: knp.clip(v, lo, 1.0)  # noqa: E731
    assert float(grad(f, policy=kink_policy(clip=s))(x)) == s
    g = lambda v: knp.clip(v, -1.0, -lo)  # noqa: E731  (upper bound at a signed zero)
    assert float(grad(g, policy=kink_policy(clip=s))(x)) == s


@pytest.mark.parametrize("x", [[0.0, -0.0], [-0.0, 0.0]])
def test_max_and_min_ties_between_signed_zeros(x):
    x = np.array(x)
    assert grad(knp.max)(x).tolist() == [1.0, 0.0]  # the first maximiser, whatever its sign
    assert grad(knp.min)(x).tolist() == [1.0, 0.0]
    with kink_policy(max="split"):
        assert grad(knp.max)(x).tolist() == [0.5, 0.5]


@pytest.mark.parametrize("x", [[0.0, -0.0, 1.0], [-0.0, 0.0, 1.0]])
def test_sort_ties_between_signed_zeros(x):
    x = np.array(x)
    w = np.array([1.0, 2.0, 3.0])
    f = lambda v: knp.sum(knp.sort(v) * w)  # noqa: E731
    # stable order keeps the two zeros in input order: x[0] -> 1, x[1] -> 2, x[2] -> 3
    assert grad(f)(x).tolist() == [1.0, 2.0, 3.0]
    assert grad(f, policy=kink_policy(sort="split"))(x).tolist() == [1.5, 1.5, 3.0]


@pytest.mark.parametrize("z", ZEROS)
def test_norms_at_signed_zero_entries(z):
    x = np.array([z, 3.0, -4.0])
    # ord 1: abs policy at the zero entry
    assert grad(lambda v: knp.linalg.norm(v, 1), policy=kink_policy(abs=0.5))(x).tolist() == \
        [0.5, 1.0, -1.0]
    # ord 2: smooth here, gradient x / 5
    np.testing.assert_allclose(grad(knp.linalg.norm)(x), [0.0, 0.6, -0.8], rtol=1e-15)
    # ord 2 at the all-(signed)-zero vector: the policy's zero vector, never NaN
    _same(grad(knp.linalg.norm)(np.array([z, -z, z])), [0.0, 0.0, 0.0])


def test_relu_difference_at_signed_zero_is_the_same_vector():
    # relu(x) - relu(-x) = x: AD with relu'(0) = 0 returns 0 at +0.0 and at -0.0 alike
    f = lambda x: knp.sum(knp.relu(x) - knp.relu(-x))  # noqa: E731
    _same(grad(f)(np.array([0.0, -0.0])), [0.0, 0.0])
    _same(grad(f, policy=kink_policy(relu=1.0))(np.array([0.0, -0.0])), [2.0, 2.0])


@pytest.mark.parametrize("mode", ["directional", "lex"])
def test_directional_resolution_ignores_the_sign_bit(mode):
    # the exact one-sided derivative of relu at 0 along d is max(d, 0) at +0.0 and at -0.0
    from kinkgrad.modes.api import trace_call
    from kinkgrad.modes.sweeps import forward_sweep

    for z in ZEROS:
        tr = trace_call(knp.relu, (np.array([z, z]),), {}, [0], "test")
        d = np.array([[1.0, -1.0]])
        tan, _ = forward_sweep(tr.eqns, tr.vals, {tr.in_vars[0].index: d},
                               kinkgrad.kink_policy(), mode=mode)
        assert tan[tr.outs[0].index].tolist() == [[1.0, 0.0]]


def test_kink_report_counts_signed_zeros_as_kinks():
    x = np.array([0.0, -0.0, 1e-300, -5e-324])
    _, _, rep = kinkgrad.value_and_grad(lambda v: knp.sum(knp.abs(v)), report=True)(x)
    # exactly the two zeros (independent count: IEEE equality with 0)
    assert rep.total == int(np.count_nonzero(x == 0)) == 2
