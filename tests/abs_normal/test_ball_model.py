"""The switches near-active within a radius (:func:`kinkgrad.abs_normal.ball_model.
near_active`): |z_i| <= radius ||grad z_i||. Beyond a few hundred switches a random forward
probe filters the candidates before their exact gradient norms are computed; the mask must
be the exact one, whose truth here is NumPy's |A_i x - b_i| <= radius ||A_i|| for rows A_i
of scales 1e-6 .. 1e6 placed at chosen distances from their kinks."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad.abs_normal.ball_model as ball_model_module
import kinkgrad.numpy as knp
from kinkgrad.abs_normal._flat import FlatSpec, trace_at
from kinkgrad.abs_normal.ball_model import near_active
from kinkgrad.abs_normal.expand import expand


def _rows_at_distances(rng: np.random.Generator, m: int, n: int, radius: float):
    """(A, b, x, the true mask): z_i = A_i x - b_i at +-(1 -+ 1e-6), 1e-3 or 1e3 times
    radius ||A_i|| (inside, just outside, well inside, far), or exactly 0."""
    A = rng.standard_normal((m, n)) * 10.0 ** rng.uniform(-6, 6, (m, 1))
    A[rng.random(m) < 0.1, 1:] = 0.0  # rows of one entry: the probe sees them in one column
    x = rng.standard_normal(n)
    scale = rng.choice([1 - 1e-6, 1 + 1e-6, 1e-3, 1e3, 0.0], m)
    z = scale * radius * np.linalg.norm(A, axis=1) * rng.choice([-1.0, 1.0], m)
    b = A @ x - z
    truth = np.abs(A @ x - b) <= radius * np.linalg.norm(A, axis=1)
    return A, b, x, truth


@pytest.mark.parametrize("m", [40, 600])
def test_near_active_mask_is_exact_with_and_without_the_probe(m):
    rng = np.random.default_rng(m)
    n, radius = 30, 1e-6
    A, b, x, truth = _rows_at_distances(rng, m, n, radius)
    tr = trace_at(lambda v: knp.sum(knp.abs(A @ v - b)), x, "test")
    exp, spec = expand(tr), FlatSpec(tr)
    z = exp.z()
    clear = np.abs(np.abs(z) / (radius * np.linalg.norm(A, axis=1)) - 1) > 1e-9
    mask = near_active(exp, spec, radius)
    # rows whose |z| sits within rounding of the radius can go either way
    assert np.array_equal(mask[clear], truth[clear])
    assert np.all(mask[z == 0])
    probed = m > ball_model_module._PROBE_ABOVE
    assert probed == (m == 600)
