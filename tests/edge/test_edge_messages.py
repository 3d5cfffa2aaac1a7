"""Error messages a new user meets: each names the operation and a fix that can be followed,
never an internal class name or a function that does not exist."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError, TracerBoolConversionError, UnsupportedOperationError

X = np.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("call,name,kw", [
    (lambda x: knp.sum(knp.sort(x, order="a")), "sort", "order="),
    (lambda x: knp.max(x, initial=0.0), "max", "initial="),
    (lambda x: knp.min(x, initial=0.0), "min", "initial="),
    (lambda x: knp.sum(x, where=x > 0), "sum", "where="),
    (lambda x: np.max(x, initial=3.0), "max", "initial="),     # NumPy dispatch
    (lambda x: np.sum(np.sort(x, order="a")), "sort", "order="),
    (lambda x: np.mean(x, dtype=np.float32), "mean", "dtype="),  # a composite
])
def test_unsupported_numpy_keywords_name_the_function_and_what_it_takes(call, name, kw):
    with pytest.raises(UnsupportedOperationError) as info:
        kinkgrad.grad(call)(X)
    msg = str(info.value)
    assert msg.startswith(f"knp.{name}: the keyword argument {kw}") and "it takes (x, axis=" in msg
    assert "__call__" not in msg and "_Extremum" not in msg
    assert isinstance(info.value, TypeError)  # still a TypeError for code catching that


def test_too_many_positional_arguments_and_errors_from_inside_are_kept():
    with pytest.raises(UnsupportedOperationError, match=r"knp\.sum: too many positional"):
        knp.sum(X, 0, False, 3)
    # a TypeError raised inside a primitive (not about its arguments) is not rewritten
    with pytest.raises(UnsupportedOperationError, match="np.asarray"):
        kinkgrad.grad(lambda x: knp.sum(np.asarray(x)))(X)


def test_item_on_a_traced_value_explains_what_to_do():
    with pytest.raises(TracerBoolConversionError) as info:
        kinkgrad.grad(lambda x: x.sum().item())(X)
    msg = str(info.value)
    assert "not concrete numbers" in msg and "knp.item" not in msg and "debug_print" in msg
    with pytest.raises(TracerBoolConversionError):
        kinkgrad.grad(lambda x: knp.sum(np.array(x.tolist())))(X)


def test_keyword_arguments_are_not_differentiated():
    f = lambda x, y: knp.sum(x * y)  # noqa: E731
    with pytest.raises(KinkgradError, match=r"keyword arguments are not differentiated.*"
                                            r"positionally") as info:
        kinkgrad.grad(f)(x=X, y=X)
    assert "out of range for 0" not in str(info.value)
    # positional differentiation with a keyword constant still works (truth: d/dx sum(x*y) = y)
    np.testing.assert_array_equal(kinkgrad.grad(f)(X, y=2 * X), 2 * X)
    with pytest.raises(KinkgradError, match=r"argnums 3 is out of range for 2 positional"):
        kinkgrad.grad(f, argnums=3)(X, X)


A2 = np.eye(2)
X2 = np.array([1.0, -1.0])


def _two(x, A):
    return knp.sum(knp.abs(A @ x))


@pytest.mark.parametrize("call", [
    lambda: kinkgrad.certify(_two, X2, A2),
    lambda: kinkgrad.clarke_grad(_two, X2, A2),
    lambda: kinkgrad.directional(_two, X2, np.ones(2), A2),
    lambda: kinkgrad.ld_derivative(_two, X2, np.eye(2), A2),
    lambda: kinkgrad.subdifferential(_two, X2, A2),
    lambda: kinkgrad.in_clarke(_two, X2, A2),
    lambda: kinkgrad.abs_normal_form(_two, X2, A2),
    lambda: kinkgrad.stationarity(_two, X2, A2),
    lambda: kinkgrad.minimize(_two, X2, A2),
    lambda: kinkgrad.certify(_two, X2),
])
def test_other_arguments_of_f_say_close_over_them(call):
    with pytest.raises(KinkgradError, match=r"close over the other|close over the others") as e:
        call()
    assert "array(" not in str(e.value) and "unhashable" not in str(e.value)


def test_empty_point_has_the_empty_gradient_as_its_subdifferential():
    f = lambda x: knp.sum(knp.abs(x))  # noqa: E731
    sd = kinkgrad.subdifferential(f, np.zeros(0))
    assert len(sd.gradients) == 1 and sd.gradients[0].shape == (0,) and not sd.partial
    assert kinkgrad.in_clarke(f, np.zeros(0), np.zeros(0)) is True


def test_missing_methods_suggest_only_knp_functions_that_exist():
    from kinkgrad.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"\.nanmax; kinkgrad\.numpy has no such") as e:
        kinkgrad.grad(lambda x: x.nanmax())(X)
    assert "knp.nanmax" not in str(e.value) and not hasattr(knp, "nanmax")
    with pytest.raises(UnknownNameError, match=r"knp\.logsumexp\(x, \.\.\.\)"):
        kinkgrad.grad(lambda x: x.logsumexp())(X)
