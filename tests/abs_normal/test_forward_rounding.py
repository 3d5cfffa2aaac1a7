"""Membership answers when f's forward values lost digits to cancellation.

The partial derivatives of the smooth steps are read at computed values, so a value computed
as (c + y) - c moves the gradients it enters by u c, far beyond the rounding of the gradients'
own sums. The truth here is the program read in real arithmetic: f(x) = |x1| + x0 ((c + x2) - c)
has the Clarke subdifferential {(x2, s, x0) : s in [-1, 1]} at x1 = 0, whatever c is.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal._membership import UndecidedError


def _cancelling(c: float):
    return lambda x: knp.abs(x[1]) + x[0] * ((c + x[2]) - c)


@pytest.mark.parametrize("c", [1e8, 1e10, 1e12, 1e14, 1e15])
@pytest.mark.parametrize("s", [-1.0, 0.25, 1.0])
def test_an_exact_clarke_gradient_is_never_called_outside(c, s):
    # at c = 1e12 the computed df/dx0 is 0.2999267578125, 7e-5 from the exact 0.3, and
    # in_clarke called the exact gradient "not a Clarke gradient" (proven False)
    x = np.array([1.0, 0.0, 0.3])
    exact = np.array([0.3, s, 1.0])
    try:
        assert kinkgrad.in_clarke(_cancelling(c), x, exact)
    except UndecidedError:
        pass


@pytest.mark.parametrize("c", [1.0, 1e8, 1e12])
def test_a_vector_far_outside_is_still_proven_outside(c):
    x = np.array([1.0, 0.0, 0.3])
    assert kinkgrad.in_clarke(_cancelling(c), x, np.array([0.3, 2.0, 1.0])) is False
    assert kinkgrad.in_clarke(_cancelling(c), x, np.array([1.3, 0.0, 1.0])) is False


def test_without_cancellation_the_exact_gradient_is_inside():
    x = np.array([1.0, 0.0, 0.3])
    assert kinkgrad.in_clarke(_cancelling(1.0), x, np.array([0.3, -0.5, 1.0]))
