"""certify's block condition: a k-way max counted as one block of its tied entries."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp


@pytest.mark.parametrize("choice", ["split", "first"])
def test_three_way_tie_in_one_dimension(choice):
    # max(x, 2x, -x) at 0: the three rows are dependent (LIKQ fails); its Clarke set is
    # the hull [-1, 2] of the three slopes, by hand. split gives (1 + 2 - 1) / 3 = 2/3.
    f = lambda x: knp.max(knp.stack([x[0], 2 * x[0], -x[0]]))  # noqa: E731
    with kinkgrad.kink_policy(max=choice):
        rep = kinkgrad.certify(f, np.zeros(1))
        g = float(kinkgrad.grad(f)(np.zeros(1))[0])
    assert rep.certified and rep.condition == "blocks"
    assert g == pytest.approx(2 / 3 if choice == "split" else 1.0)
    assert -1.0 <= g <= 2.0


def test_blocks_do_not_certify_outside_the_clarke_set():
    # relu(x) - relu(-x) = x: plain AD's 0 is not the Clarke gradient 1, blocks or not
    rep = kinkgrad.certify(lambda x: knp.relu(x[0]) - knp.relu(-x[0]), np.zeros(1))
    assert not rep.certified


def test_maxq_ties_certified():
    x = np.array([0.5, -0.5, 0.5, 0.1, 0.5])  # four tied squares
    f = lambda v: knp.max(v ** 2) + 0.0 * knp.sum(knp.abs(v - v))  # noqa: E731
    rep = kinkgrad.certify(f, x)
    assert rep.certified
    g = kinkgrad.grad(f)(x)
    assert kinkgrad.in_clarke(f, x, g)
