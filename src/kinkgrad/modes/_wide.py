"""f's forward values replayed in a wider precision: the truth its computed values are
checked against (:func:`kinkgrad.rounding_error`'s measured error, and the set-valued tests'
checks in :mod:`kinkgrad.abs_normal._forward_rounding`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._traced import Traced

__all__ = ["wide_values"]

_WIDER = {np.dtype(np.float16): np.dtype(np.float64), np.dtype(np.float32): np.dtype(np.float64),
          np.dtype(np.float64): np.dtype(np.longdouble)}
_HEAVY = 2_000_000  # operations of one step above which it is replayed in float64 (BLAS)


def _wide_step(e: Any, args: list, v0: Any) -> Any:
    """One step of :func:`wide_values`: the primitive on the wide arguments, or (a step
    without a wide rule, such as scipy's special functions, or a heavy product of matrices
    that long double would run without BLAS) on them rounded to float64, then widened."""
    wide = _WIDER.get(np.dtype(np.result_type(v0)), np.dtype(np.float64))
    heavy = e.prim.cost([np.shape(a) for a in args], np.shape(v0), e.params) > _HEAVY
    if wide != np.float64 and not heavy:
        try:
            v = np.asarray(e.prim.impl(*args, **e.params))
            if v.dtype == wide:
                return v
        except (TypeError, ValueError, NotImplementedError):
            pass
    narrow = [np.asarray(a, np.float64) if np.result_type(a).kind == "f" else a for a in args]
    return np.asarray(e.prim.impl(*narrow, **e.params)).astype(wide)


def wide_values(tr: Traced) -> list:
    """f's forward values recomputed from the same inputs in a wider precision (float16 and
    float32 steps in float64, float64 steps in long double where it is wider), comparisons
    and indices kept as computed (the same branches): the truth the computed values are
    checked against. Long double is float64 on some platforms (arm64): float64 programs are
    then checked against themselves."""
    vals = tr.vals
    wide = list(vals)
    for v in tr.in_vars:
        x = vals[v.index]
        if np.result_type(x).kind == "f":
            wide[v.index] = np.asarray(x).astype(_WIDER.get(np.dtype(np.result_type(x)),
                                                            np.dtype(np.float64)))
    with np.errstate(all="ignore"):  # NOTE: as the program's own values did, or inf
        for e in tr.eqns:
            v0 = vals[e.out.index]
            if np.result_type(v0).kind == "f":
                wide[e.out.index] = _wide_step(e, e.args(wide), v0)
    return wide
