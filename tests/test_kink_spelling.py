"""The same kink written different ways gets the same derivative (kinks.py, "Spelling").

Truth: each family is one function of x written several ways; under a policy the derivative
at the kink must be the one declared for the family (the relu choice s for one-sided kinks),
whatever the spelling. The last tests show, by the two identities in kinks.py, that no policy
can make every spelling of every function agree, which is why compositions are answered by
``clarke_grad`` (spelling-independent: it returns the derivative of a piece).
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.primitive import registry

X = np.array([0.0, -1.5, 0.0, 2.0, 0.0])

RELU_SPELLINGS = {
    "relu": knp.relu,
    "maximum(x, 0)": lambda x: knp.maximum(x, 0.0),
    "maximum(0, x)": lambda x: knp.maximum(0.0, x),
    "-minimum(-x, 0)": lambda x: -knp.minimum(-x, 0.0),
    "-minimum(0, -x)": lambda x: -knp.minimum(0.0, -x),
    "clip(x, 0, None)": lambda x: knp.clip(x, 0.0, None),
    "x.clip(0)": lambda x: x.clip(0.0),
}
WHERE_SPELLINGS = {  # a where follows its condition: x > 0 selects the constant branch at 0
    "where(x > 0, x, 0)": lambda x: knp.where(x > 0, x, 0.0),
    "x * (x > 0)": lambda x: x * (x > 0),
}


def _slopes(f, policy) -> np.ndarray:  # noqa: ANN001
    return kinkgrad.grad(lambda x: knp.sum(f(x)), policy=policy)(X)


def _relu_truth(s: float) -> np.ndarray:
    return np.where(X > 0, 1.0, np.where(X == 0, s, 0.0))


@pytest.mark.parametrize("s", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("name", sorted(RELU_SPELLINGS))
def test_every_spelling_of_relu_takes_the_relu_choice(name: str, s: float) -> None:
    got = _slopes(RELU_SPELLINGS[name], kinkgrad.kink_policy("default", relu=s))
    np.testing.assert_array_equal(got, _relu_truth(s))


@pytest.mark.parametrize("name", sorted(WHERE_SPELLINGS))
def test_where_spellings_agree_with_the_default_relu(name: str) -> None:
    np.testing.assert_array_equal(_slopes(WHERE_SPELLINGS[name], kinkgrad.KinkPolicy()),
                                  _relu_truth(0.0))


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0])
def test_clip_agrees_with_its_maximum_minimum_spelling(s: float) -> None:
    x = np.array([-1.0, -0.5, 1.0, 2.0, 1.0])
    pol = kinkgrad.kink_policy("default", relu=s)
    a = kinkgrad.grad(lambda v: knp.sum(knp.clip(v, -1.0, 1.0)), policy=pol)(x)
    b = kinkgrad.grad(lambda v: knp.sum(knp.minimum(knp.maximum(v, -1.0), 1.0)), policy=pol)(x)
    np.testing.assert_array_equal(a, b)
    # at the lower bound clip(x, lo, .) = lo + relu(x - lo): s; at the upper bound
    # clip(x, ., hi) = hi - relu(hi - x): s as well
    np.testing.assert_array_equal(a, [s, 1.0, s, 0.0, s])


@pytest.mark.parametrize("c", [0.5, -2.0])
@pytest.mark.parametrize("s", [0.0, 1.0])
def test_shifted_maximum_and_minimum_follow_relu(c: float, s: float) -> None:
    x = np.array([c, c + 1.0, c - 1.0])
    pol = kinkgrad.kink_policy("default", relu=s)
    for f, g in ((lambda v: knp.maximum(v, c), lambda v: c + knp.relu(v - c)),
                 (lambda v: knp.minimum(c, v), lambda v: c - knp.relu(c - v))):
        np.testing.assert_array_equal(kinkgrad.grad(lambda v, f=f: knp.sum(f(v)), policy=pol)(x),
                                      kinkgrad.grad(lambda v, g=g: knp.sum(g(v)), policy=pol)(x))


def test_abs_and_its_maximum_spelling_agree_when_ties_split() -> None:
    x = np.array([0.0, 1.0, -3.0])
    pol = kinkgrad.kink_policy("default", maximum="split")
    np.testing.assert_array_equal(
        kinkgrad.grad(lambda v: knp.sum(knp.maximum(v, -v)), policy=pol)(x),
        kinkgrad.grad(lambda v: knp.sum(knp.abs(v)), policy=pol)(x))


def test_every_kink_policy_key_has_a_spelling_family_here() -> None:
    keys = {p.policy_key for p in registry().values() if p.policy_key}
    covered = {"relu", "max", "clip"}  # families above (maximum/minimum carry the max key)
    documented = {"abs", "leaky_relu", "sort", "norm"}  # one spelling each (no alias)
    assert keys <= covered | documented, keys - covered - documented


def test_no_policy_makes_every_spelling_agree() -> None:
    # relu(x) = x + relu(-x) and relu(x) = relu(relu(x)) as functions; their derivatives at 0
    # under relu'(0) = s are s, 1 - s and s**2: equal for no s in [0, 1]
    zero = np.float64(0.0)
    for s in np.linspace(0.0, 1.0, 11):
        pol = kinkgrad.kink_policy("default", relu=float(s))
        d = [float(kinkgrad.grad(f, policy=pol)(zero)) for f in
             (knp.relu, lambda x: x + knp.relu(-x), lambda x: knp.relu(knp.relu(x)))]
        assert not (d[0] == d[1] == d[2]), (s, d)
    # clarke_grad is spelling-independent: each spelling gets a limiting gradient, 0 or 1
    for f in (knp.relu, lambda x: x + knp.relu(-x), lambda x: knp.relu(knp.relu(x))):
        g, _ = kinkgrad.clarke_grad(f, np.array(0.0), seed=0)
        assert float(g) in (0.0, 1.0)
