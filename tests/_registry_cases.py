"""Every registered primitive at its sample points, as a scalar function of its
differentiable inputs: shared by the backend tests (torch, emulated device, CuPy names)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import kinkgrad.numpy as knp
from kinkgrad._core.primitive import registry
from kinkgrad._core.tracer import bind

CASES = [(name, i) for name, prim in sorted(registry().items()) if prim.differentiable
         for i in range(len(prim.samples(np.random.default_rng(0))))]


def sample(name: str, index: int) -> tuple:
    """``(prim, args, params, pos)``: the sample point and the positions of its
    floating-point (differentiable) arguments."""
    prim = registry()[name]
    args, params = prim.samples(np.random.default_rng(0))[index]
    pos = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return prim, args, params, pos


def weighted_output(prim: object, args: tuple, params: dict, pos: list, weights: object
                    ) -> Callable:
    """``f(*diff) = sum(prim(args with diff at pos) * weights)``."""
    def f(*diff: object) -> object:
        full = list(args)
        for p, d in zip(pos, diff):
            full[p] = d
        return knp.sum(bind(prim, *full, **params) * weights)

    return f


def output_weights(prim: object, args: tuple, params: dict) -> np.ndarray:
    return np.random.default_rng(1).normal(size=np.shape(prim.impl(*args, **params)))
