"""One rule for NaN and inf inputs at every entry point: refused with a NonFiniteInputError
that names the entry point (never a NaN result, never an error from inside NumPy or SciPy).
The same holds for the other vector arguments: tangents, cotangents, directions, direction
matrices and the candidate vector of in_clarke."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import NonFiniteInputError


def f(x):
    return knp.sum(knp.abs(x)) + knp.max(x)


def fv(x):
    return knp.relu(x) * 2.0


ENTRY = {
    "grad": lambda x: kinkgrad.grad(f)(x),
    "value_and_grad": lambda x: kinkgrad.value_and_grad(f)(x),
    "jvp": lambda x: kinkgrad.jvp(fv, (x,), (np.ones(2),)),
    "vjp": lambda x: kinkgrad.vjp(fv, x),
    "jacobian": lambda x: kinkgrad.jacobian(fv)(x),
    "clarke_grad": lambda x: kinkgrad.clarke_grad(f, x),
    "directional": lambda x: kinkgrad.directional(f, x, np.ones(2)),
    "ld_derivative": lambda x: kinkgrad.ld_derivative(f, x, np.eye(2)),
    "subdifferential": lambda x: kinkgrad.subdifferential(f, x),
    "in_clarke": lambda x: kinkgrad.in_clarke(f, x, np.ones(2)),
    "certify": lambda x: kinkgrad.certify(f, x),
    "abs_normal_form": lambda x: kinkgrad.abs_normal_form(f, x),
    "stationarity": lambda x: kinkgrad.stationarity(f, x),
    "minimize": lambda x: kinkgrad.minimize(f, x),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(ENTRY))
def test_non_finite_points_are_refused_naming_the_entry_point(name, bad):
    x = np.array([0.5, bad])
    with pytest.raises(NonFiniteInputError, match="NaN or inf") as info:
        ENTRY[name](x)
    where = str(info.value).split(":")[0]
    assert where in (name, "grad"), str(info.value)  # value_and_grad reports as grad
    # the same call at a finite point works (the rule is about the input only)
    ENTRY[name](np.array([0.5, 0.0]))


OTHER = {
    "jvp": lambda v: kinkgrad.jvp(fv, (np.ones(2),), (v,)),
    "vjp_fn": lambda v: kinkgrad.vjp(fv, np.ones(2))[1](v),
    "directional": lambda v: kinkgrad.directional(f, np.zeros(2), v),
    "ld_derivative": lambda v: kinkgrad.ld_derivative(f, np.zeros(2), np.stack([v, [0.0, 1.0]],
                                                                               axis=-1)),
    "in_clarke": lambda v: kinkgrad.in_clarke(f, np.zeros(2), v),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", sorted(OTHER))
def test_non_finite_directions_tangents_and_cotangents_are_refused(name, bad):
    with pytest.raises(NonFiniteInputError, match=rf"^{name}: .* contains NaN or inf"):
        OTHER[name](np.array([bad, 1.0]))
