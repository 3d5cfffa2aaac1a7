"""The overhead benchmark's reference tape (benchmarks/minimal_tape.py) computes the right
gradient, so that timing it against kinkgrad compares equal work.

Truth: central differences of the benchmark's hand-written NumPy loss, in float64."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np

_BENCH = pathlib.Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    path = list(sys.path)  # overhead.py puts its own folder first: leave sys.path as it was
    spec = importlib.util.spec_from_file_location(name, _BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
    finally:
        sys.path[:] = path
    return mod


minimal_tape = _load("minimal_tape")
_loss_value = _load("overhead").np_value  # the hand-written loss (3 layers, any widths)


def _loss(params: dict, x: np.ndarray, y: np.ndarray, n: int) -> float:
    assert n == 3
    return _loss_value(params, x, y)


def test_minimal_tape_gradient_matches_central_differences():
    rng = np.random.default_rng(3)
    sizes, n = (5, 4, 4, 3), 3
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"W{i}"] = rng.standard_normal((a, b))
        params[f"b{i}"] = rng.standard_normal(b) * 0.1
    x, y = rng.standard_normal((6, sizes[0])), rng.integers(0, sizes[-1], 6)
    value, grads = minimal_tape.value_and_grad(params, x, y, n)
    assert abs(value - _loss(params, x, y, n)) < 1e-12
    h = 1e-6
    for k, p in params.items():
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = _loss(params, x, y, n)
            p[i] = old - h
            down = _loss(params, x, y, n)
            p[i] = old
            fd[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-8, err_msg=k)
