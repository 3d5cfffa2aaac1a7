"""The ball's local model: the switches near-active within a radius (moved onto their
kinks) and Euclidean norms at zero, shared by :mod:`.stationarity` and :mod:`.minimality`
(the set it describes is in :mod:`.stationarity`'s docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import NotAbsSmoothError
from ..kinks import KinkPolicy
from ..modes.sparse_rows import reverse_rows
from ._flat import FlatSpec, scalar_output, trace_at
from .active import ActiveModel
from .expand import Expanded, expand
from .zero_norms import split_zero_norms, switch_origins

__all__ = ["ball_model", "near_active"]

_ABS0 = KinkPolicy(abs=0.0)
# More candidate switches than this: a random forward probe filters them before their
# gradient norms are computed by reverse sweeps (MXHILB, n = 1000: ~2,000 dense rows per
# stationarity test in the bundle method, 35 -> 24 s a run; was 4096)
_PROBE_ABOVE = 256


def near_active(exp: Expanded, spec: FlatSpec, radius: float) -> np.ndarray:
    """Mask of the switches with |z_i| <= radius ||grad z_i|| (grad on the piece of x)."""
    z = exp.z()
    mask = z == 0
    if radius <= 0 or exp.s == 0:
        return mask
    cand = np.flatnonzero(~mask)
    if cand.size > _PROBE_ABOVE:
        cand = cand[np.abs(z[cand]) <= 10 * radius * _probe_norms(exp, spec)[cand]]
    norms = np.zeros(exp.s)
    if cand.size:
        slots, ents = exp.z_seeds(cand)
        x_slots = [v.index for v in exp.traced.in_vars]
        mats, _ = reverse_rows(exp.eqns, exp.vals, slots, ents, x_slots, _ABS0)
        sq = sum((np.asarray(M.multiply(M).sum(axis=1)).reshape(-1) for M in mats),
                 np.zeros(cand.size))
        norms[cand] = np.sqrt(sq)
    return mask | (np.abs(z) <= radius * norms)


def _probe_norms(exp: Expanded, spec: FlatSpec) -> np.ndarray:
    """Estimates of ||grad z_i|| for every switch from one forward sweep with k = 16 Gaussian
    directions: mean((grad z_i . u)^2) = ||grad z_i||^2, and the estimate falls below a tenth
    of the truth with probability P(chi2_16 < 0.16) < 1e-13 per switch; so with the factor 10
    of the caller's filter a near-active switch is missed with probability below 1e-13."""
    from ._flat import probe_tangents

    k = 16
    tan = probe_tangents(exp.eqns, exp.vals, [v.index for v in exp.traced.in_vars], spec, k)
    est = np.zeros(exp.s)
    for j in range(len(exp.abs_eqns)):
        t = tan.get(exp.z_slot(j))
        if t is not None:
            lo, hi = exp.offsets[j], exp.offsets[j + 1]
            T = np.asarray(t, np.float64).reshape(k, -1)
            est[lo:hi] = np.sqrt(np.mean(T * T, axis=0))
    return est


def ball_model(f: Callable, x: Any, radius: float, where: str) -> tuple:
    """(trace, spec, output Var, zero norms or None, ActiveModel) of f at x with the
    switches near-active within ``radius`` moved onto their kinks (module docstring), or
    (the reason no such model is described, number of active switches)."""
    try:
        tr = trace_at(f, x, where)
        out, _ = scalar_output(tr, where)
        spec = FlatSpec(tr)
        tr0, balls = split_zero_norms(tr, spec, out, radius)  # Euclidean norms at 0
        exp = expand(tr0)
    except NotAbsSmoothError as exc:
        return f"not abs-smooth at x: {exc}", 0
    model = ActiveModel(exp, spec, out, active=near_active(exp, spec, radius))
    if balls is not None and balls.coupled(switch_origins(exp, model.active)):
        return (f"{balls.q} Euclidean norm(s) at zero are fed or read by active kinks or by "
                "each other; the set is described only for norms isolated from them "
                "(kinkgrad.abs_normal.zero_norms)", model.m + balls.q)
    return tr, spec, out, balls, model
