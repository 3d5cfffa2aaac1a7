"""An exact rescaling of f by a power of two for the set-valued tests.

The sets of :func:`~.stationarity.stationarity` and :func:`~.minimality.minimality` are
made of f's gradients. Where their entries are far from 1 the tests' arithmetic fails them:
below about 1e-154 a squared norm underflows (s (|x0| + 3 x0 + x1) at 0 with s = 1e-200 was
"stationary" at tol = 1e-208: its set's norm 2.2e-200 computed as 0), above about 1e150 it
overflows (the tests said "undecided; rescale f"), and the solvers' absolute floors mean
nothing at either end.

The gradients of f / 2^e are those of f divided by 2^e exactly (a product by a power of two
is exact in floating point, away from subnormals and overflow), so every verdict of
f / 2^e at tol / 2^e is f's at tol, and its numbers are f's divided by 2^e. The tests run on
f / 2^e, with 2^e the size of the largest entry, where that size is beyond 2^64 or below
2^-64, and scale the report back (its ``reason`` says so: the numbers in it are f / 2^e's).
Within [2^-64, 2^64] nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import pytree

__all__ = ["LIMIT", "exponent", "gradient_size", "rescaled_result", "scaled_callback", "scaled_f",
           "scale_back", "scaled_tol"]

LIMIT = 2.0 ** 64


def exponent(big: float, limit: float = LIMIT) -> int | None:
    """e with big / 2^e in [1/2, 1) where ``big`` (the largest entry in size) is beyond
    ``limit`` or below 1 / ``limit`` (and finite, > 0), e within [-1000, 1000] (so that
    2^-e is a float64: gradients of 1e-320, subnormal, overflowed math.ldexp(1, 1062));
    None otherwise."""
    if not 0.0 < big < math.inf or 1.0 / limit <= big <= limit:
        return None
    return max(-1000, min(1000, math.frexp(big)[1]))


def gradient_size(red: Any, balls: Any) -> float:
    """The size of an abs-normal model's gradients (``red``: an ActiveModel, ``balls``:
    its zero norms or None): max(|g0|, |bhat| |A|, |lam| |rows|), max norms."""
    def top(v: np.ndarray) -> float:
        return float(np.max(np.abs(v), initial=0.0))

    sizes = [top(red.g0), top(red.bhat) * top(red.A_sparse.data)]
    if balls is not None:
        sizes.append(top(balls.lam) * top(balls.rows.data))
    return max(sizes)


def scaled_tol(tol: float, e: int) -> float:
    """tol / 2^e, at most 1e300 (a tol beyond every norm of f / 2^e's set says the same)."""
    return math.ldexp(tol, -e) if math.log2(tol) - e < 996 else 1e300


def scaled_f(f: Callable, e: int) -> Callable:
    """x -> f(x) / 2^e (exact), in float64 (a float32 f times 2^600 overflowed)."""
    factor = np.asarray(math.ldexp(1.0, -e))  # NOTE: a float64 array: promotes float32

    def scaled(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs) * factor

    return scaled


def _times(v: Any, factor: float) -> Any:
    if v is None:
        return None
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(b, float) for b in v):
        return (v[0] * factor, v[1] * factor)
    leaves, td = pytree.flatten(v)
    return pytree.unflatten(td, [np.asarray(x) * factor for x in leaves])


def scale_back(rep: Any, e: int, tol: float, fields: tuple[str, ...]) -> Any:
    """The report of f / 2^e at tol / 2^e as f's: ``fields`` (numbers, pairs of bounds,
    arrays or pytrees) multiplied by 2^e, ``tol`` restored, ``reason`` prefixed."""
    factor = math.ldexp(1.0, e)
    for name in fields:
        v = getattr(rep, name)
        setattr(rep, name, v * factor if isinstance(v, float) else _times(v, factor))
    rep.tol = tol
    rep.reason = (f"(computed for f / 2^{e}, an exact rescaling: f's gradients have entries "
                  f"near 2^{e}; the numbers that follow are f / 2^{e}'s) {rep.reason}")
    return rep


def scaled_callback(callback: Callable | None, e: int) -> Callable | None:
    """A ``minimize`` callback of f / 2^e's run that shows the caller f's values."""
    if callback is None:
        return None
    factor = math.ldexp(1.0, e)

    def shown(res: Any) -> Any:
        res.fun = float(res.fun) * factor
        return callback(res)

    return shown


def rescaled_result(e: int, tol: float, fun: float, history: dict, rep: Any, minimal: Any,
                    message: str) -> tuple[float, Any, Any, str]:
    """``minimize``'s run on f / 2^e told as f's: its value, history (in place), reports and
    message."""
    factor = math.ldexp(1.0, e)
    history["fun"] = [v * factor for v in history["fun"]]
    rep = scale_back(rep, e, tol, ("distance", "min_norm", "bounds", "slope"))
    if minimal is not None:
        minimal = scale_back(minimal, e, tol, ("bounds", "slope", "multipliers"))
    message = (f"(f's terms are near 2^{e}: f / 2^{e} was minimized, an exact rescaling, at "
               f"tol / 2^{e}; the numbers in this message are its) {message}")
    return float(fun) * factor, rep, minimal, message
