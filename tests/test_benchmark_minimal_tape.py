"""The overhead benchmark's reference tape (benchmarks/minimal_tape.py) computes the right
gradient, so that timing it against kinkgrad compares equal work.

Truth: central differences of the loss written in plain NumPy, in float64."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

_PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "minimal_tape.py"
_spec = importlib.util.spec_from_file_location("minimal_tape", _PATH)
minimal_tape = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(minimal_tape)  # type: ignore[union-attr]


def _loss(params: dict, x: np.ndarray, y: np.ndarray, n: int) -> float:
    h = x
    for i in range(n):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if i < n - 1:
            h = np.maximum(h, 0)
    m = h.max(axis=1, keepdims=True)
    lse = np.log(np.exp(h - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - h[np.arange(h.shape[0]), y]))


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
