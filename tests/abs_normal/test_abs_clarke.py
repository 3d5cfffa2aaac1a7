"""clarke_grad's tie handling and cost, batched directional derivatives, dtypes."""

from __future__ import annotations

import numpy as np

import kinkgrad.numpy as knp
from kinkgrad.abs_normal import clarke_grad, directional, subdifferential


def test_a_switch_identically_zero_does_not_need_more_directions():
    # relu(x0 - x0) is a kink whose switching variable is 0 on every piece: no direction
    # resolves it and its choice cannot change the gradient
    f = lambda x: knp.relu(x[0] - x[0]) + knp.abs(x[1]) + knp.maximum(x[0], x[0])  # noqa
    g, info = clarke_grad(f, np.zeros(2), seed=0)
    assert info.kinks == 3 and info.ties == 2 and info.unresolved == 2
    assert info.sweeps == 2  # one more direction was tried and resolved nothing
    assert info.num_directions == 1 and info.directions.shape == (2, 1)
    assert any(np.allclose(g, s) for s in subdifferential(f, np.zeros(2)).matrix)


def test_sort_with_duplicated_entries():
    f = lambda x: knp.sum(knp.sort(knp.concatenate([x, x])) * np.arange(4.0))  # noqa: E731
    g, info = clarke_grad(f, np.zeros(2), seed=5)
    assert info.ties == 2 and sorted(g.tolist()) == [1.0, 5.0]


def _net(width: int):
    rng = np.random.default_rng(width)  # dyadic entries: exact sums, exact zeros
    X = rng.integers(-2, 3, size=(16, 8)).astype(float)
    W1 = rng.integers(-4, 5, size=(8, width)) / 4.0
    w2 = rng.normal(size=width)

    def loss(b):
        return knp.mean((knp.relu(X @ W1 + b) @ w2) ** 2)

    b = -(X[0] @ W1)  # every unit of sample 0 exactly at its kink
    return loss, b


def test_cost_ratio_is_small_and_flat_in_the_dimension():
    ratios = []
    for width in (4, 16, 64, 256):
        loss, b = _net(width)
        _, info = clarke_grad(loss, b, seed=0)
        assert info.kinks >= width and info.ties == 0
        ratios.append(info.cost_ratio)
    assert max(ratios) < 3.0 and max(ratios) - min(ratios) < 0.2


def test_batched_directions_equal_separate_passes():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 3))
    f = lambda x: knp.relu(A @ x) - knp.abs(x[0]) + knp.max(knp.stack([x[1], x[2]]))  # noqa
    x = np.array([0.0, 1.0, 1.0])
    D = rng.normal(size=(3, 6))
    batched = directional(f, x, D)
    assert batched.shape == (5, 6)
    for j in range(6):
        np.testing.assert_allclose(batched[:, j], directional(f, x, D[:, j]), atol=1e-14)
    # many directions at once contain a matrix product: relu(Ax)'(0; B) - relu(Ax)'(0; -B)
    g = lambda v: knp.relu(A @ v)  # noqa: E731
    np.testing.assert_allclose(directional(g, np.zeros(3), D) - directional(g, np.zeros(3), -D),
                               A @ D, atol=1e-12)


def test_float32_points_keep_their_dtype():
    x = np.zeros(3, np.float32)
    g, _ = clarke_grad(lambda v: knp.sum(knp.abs(v)), x, seed=0)
    assert g.dtype == np.float32 and set(np.abs(g).tolist()) == {1.0}


def test_clarke_grad_refuses_an_array_as_seed() -> None:
    import pytest

    import kinkgrad
    import kinkgrad.numpy as knp

    with pytest.raises(kinkgrad.KinkgradError, match="close over the others"):
        kinkgrad.clarke_grad(lambda x, y: knp.sum(x * y), np.ones(2), np.ones(2))


def test_clarke_grad_refuses_a_negative_seed() -> None:
    import pytest

    import kinkgrad
    import kinkgrad.numpy as knp

    # NumPy's ValueError ("expected non-negative integer") came through before
    with pytest.raises(kinkgrad.KinkgradError, match="seed=-1"):
        kinkgrad.clarke_grad(lambda x: knp.sum(knp.abs(x)), np.zeros(2), seed=-1)
