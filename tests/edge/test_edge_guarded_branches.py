"""A NaN or inf that a ``where`` discards is not an error (modes/_discard.py); one that reaches
the result is, and the message names the node, its domain and whether it sits in a branch.

Truth: the derivative of the selected branch by hand, and central differences of the same
function in plain NumPy (evaluated under np.errstate, where NumPy computes the discarded
branch too).
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import NonFiniteInputError, NotAbsSmoothError

LOG_X = np.array([-1.0, 2.0])
SINC_X = np.array([0.0, 1.0])


def guarded_log(x, np_=knp):  # noqa: ANN001, ANN201
    return np_.sum(np_.where(x > 0, np_.log(x), 0.0))


def guarded_sinc(x, np_=knp):  # noqa: ANN001, ANN201
    return np_.sum(np_.where(np_.abs(x) > 1e-3, np_.sin(x) / x, 1.0))


def _fd(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:  # noqa: ANN001
    g = np.zeros_like(x)
    with np.errstate(all="ignore"):
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = (f(x + e, np) - f(x - e, np)) / (2 * h)
    return g


CASES = [(guarded_log, LOG_X, np.array([0.0, 0.5])),
         (guarded_sinc, SINC_X, np.array([0.0, np.cos(1.0) - np.sin(1.0)]))]


@pytest.fixture(autouse=True)
def _quiet():  # NumPy warns for the discarded branch's log(-1) and 0/0, as it does in NumPy
    with np.errstate(all="ignore"):
        yield


@pytest.mark.parametrize("f,x,want", CASES)
def test_every_entry_point_ignores_what_a_where_discards(f, x, want) -> None:  # noqa: ANN001
    np.testing.assert_allclose(_fd(f, x), want, atol=1e-8)  # the hand value is right
    d = np.array([0.3, -0.7])
    results = {
        "grad": kinkgrad.grad(f)(x),
        "value_and_grad": kinkgrad.value_and_grad(f)(x)[1],
        "vjp": kinkgrad.vjp(f, x)[1](np.float64(1.0))[0],
        "jacobian rev": kinkgrad.jacobian(f)(x),
        "jacobian fwd": kinkgrad.jacobian(f, mode="fwd")(x),
        "clarke_grad": kinkgrad.clarke_grad(f, x)[0],
    }
    for name, g in results.items():
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15, err_msg=name)
    for name, t in {"jvp": kinkgrad.jvp(f, (x,), (d,))[1],
                    "directional": kinkgrad.directional(f, x, d),
                    "ld_derivative": kinkgrad.ld_derivative(f, x, np.eye(2))[0]}.items():
        expect = want @ d if name != "ld_derivative" else want[0]
        np.testing.assert_allclose(t, expect, rtol=1e-12, atol=1e-15, err_msg=name)


def test_abs_smooth_layer_accepts_guarded_branches() -> None:
    f = lambda x: guarded_log(x) + knp.sum(knp.abs(x - 2.0))  # noqa: E731 - kink at x1 = 2
    rep = kinkgrad.certify(f, LOG_X)
    assert rep.certified
    sub = kinkgrad.subdifferential(f, LOG_X)
    # the Clarke set: (0 - 1, 0.5 + s), s in [-1, 1]: endpoints (-1, -0.5) and (-1, 1.5)
    pts = sorted(np.round(sub.matrix[:, 1], 12))
    assert pts == [-0.5, 1.5] and np.all(sub.matrix[:, 0] == -1.0)
    rep = kinkgrad.stationarity(f, LOG_X)  # min-norm element (-1, 0): distance 1
    assert rep.verdict == "not stationary"
    np.testing.assert_allclose(rep.distance, 1.0, rtol=1e-9)


def test_a_zero_under_a_guard_is_fine_and_a_jump_at_the_guard_is_refused() -> None:
    x = np.array([0.0, 2.0])  # where(x > 0, log x, 0) at x = 0: branch values -inf and 0
    np.testing.assert_allclose(kinkgrad.grad(guarded_log)(x), [0.0, 0.5])
    with pytest.raises(NotAbsSmoothError, match="tied"):
        kinkgrad.clarke_grad(guarded_log, x)


def test_guarded_fractional_power_and_traced_exponent() -> None:
    g = kinkgrad.grad(lambda x: knp.sum(knp.where(x > 0, x ** 0.5, 0.0)))(np.array([0.0, 4.0]))
    np.testing.assert_allclose(g, [0.0, 0.25])

    def h(a, b):  # noqa: ANN001, ANN202 - a**b only where a > 0
        return knp.sum(knp.where(a > 0, a ** b, 0.0))

    a, b = np.array([-2.0, 3.0]), np.array([0.5, 2.0])
    ga, gb = kinkgrad.grad(h, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, [0.0, 6.0])
    np.testing.assert_allclose(gb, [0.0, 9.0 * np.log(3.0)])


def test_a_selected_bad_entry_is_reported_at_its_node_and_branch() -> None:
    with pytest.raises(NonFiniteInputError, match=r"log: the argument has entries <= 0.*"
                                                   r"`log` node .*branch of a `where`"):
        kinkgrad.grad(lambda x: knp.sum(knp.where(x > 1, 0.0, knp.log(x))))(np.array([0.0, 2.0]))
    with pytest.raises(NonFiniteInputError, match=r"sqrt: derivative at 0 is infinite") as err:
        kinkgrad.grad(lambda x: knp.sum(knp.sqrt(x)))(np.array([0.0, 4.0]))
    assert "branch" not in str(err.value)


@pytest.mark.parametrize("entry", ["directional", "ld_derivative", "certify", "subdifferential",
                                   "stationarity", "clarke_grad", "jvp", "vjp", "jacobian"])
def test_no_entry_point_returns_nan_or_inf_for_a_used_bad_entry(entry: str) -> None:
    x = np.array([0.5, 0.0, 2.0])
    f = lambda v: knp.sum(knp.sqrt(v))  # noqa: E731 - infinite derivative at the 0
    calls = {
        "directional": lambda: kinkgrad.directional(f, x, np.ones(3)),
        "ld_derivative": lambda: kinkgrad.ld_derivative(f, x, np.eye(3)),
        "certify": lambda: kinkgrad.certify(f, x),
        "subdifferential": lambda: kinkgrad.subdifferential(f, x),
        "stationarity": lambda: kinkgrad.stationarity(f, x),
        "clarke_grad": lambda: kinkgrad.clarke_grad(f, x),
        "jvp": lambda: kinkgrad.jvp(knp.sqrt, (x,), (np.ones(3),)),
        "vjp": lambda: kinkgrad.vjp(knp.sqrt, x)[1](np.ones(3)),
        "jacobian": lambda: kinkgrad.jacobian(knp.sqrt)(x),
    }
    with pytest.raises(NonFiniteInputError, match=rf"{entry}: sqrt: derivative at 0"):
        calls[entry]()
    with pytest.raises(NonFiniteInputError, match=r"log: the argument has entries <= 0"):
        kinkgrad.certify(lambda v: knp.sum(knp.log(v)), np.array([1.0, -1.0]))
