"""The one finiteness test of the engine: are all entries of an array finite?

Written against the module-level ``np``, which the array backends rebind (a torch-backed
array is tested with torch's operations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..primitives._tensors import tensor_of

# the real NumPy (``np`` is rebound to torch's namespace while the rules run on tensors)
_ndarray, _dot = np.ndarray, np.dot
_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DOUBLE_OR_NARROWER = (np.dtype(np.float16), *_BLAS_FLOATS)
_FLOAT_SCALARS = frozenset({np.float16, np.float32, np.float64})
_errstate = np.errstate


def _quiet() -> Any:
    """The sum of squares may overflow or underflow with finite entries: no warning, no
    FloatingPointError (about 1 us; the entrywise test then decides)."""
    return _errstate(over="ignore", under="ignore")


__all__ = ["finite"]


def finite(c: Any) -> bool:
    """All entries finite.

    # NOTE: a contiguous NumPy float array (32 entries or more; below that the call costs
    # more than the entries) is tested with one BLAS dot product c . c,
    # which reads it once and allocates nothing: a NaN or inf entry makes it NaN or inf, and
    # finite entries give a finite sum of squares unless it overflows, in which case the
    # entrywise test decides. That is about half the time of isfinite(c).all() (a boolean
    # temporary and a second pass), which checks every gradient on every call. Its overflow
    # and underflow are silenced: they say nothing about the entries.
    """
    if type(c) is _ndarray or type(c) in _FLOAT_SCALARS:
        if c.size == 1 and c.dtype in _DOUBLE_OR_NARROWER:  # a loss: no array temporaries
            return math.isfinite(c.item())  # exact: a Python float holds these values
        if c.dtype in _BLAS_FLOATS and c.size >= 32 and c.flags.c_contiguous:
            flat = c.reshape(-1)
            with _quiet():  # NOTE: finite entries whose squares overflow (float32 ~1e19 and up)
                if math.isfinite(_dot(flat, flat)):  # warned, or raised under -W error
                    return True
    elif _dot_of_tensor_is_finite(c):  # the same test on a torch-backed array
        return True
    return bool(np.isfinite(c).all())


def _dot_of_tensor_is_finite(c: Any) -> bool:
    """``t . t`` is finite for the float32/float64 contiguous tensor of a torch-backed array
    of 32 entries or more (False otherwise: the caller then tests entrywise)."""
    t = tensor_of(c)
    if t is None or t.numel() < 32:
        return False
    import torch

    if t.dtype not in (torch.float32, torch.float64) or not t.is_contiguous():
        return False
    flat = t.reshape(-1)
    return math.isfinite(float(torch.dot(flat, flat)))
