"""How far rounding in f's forward values moved f's gradients (:func:`rounding_sensitivity`,
read by :class:`._forward_rounding.ForwardRounding`): the smooth steps' derivatives read at
the computed values against those read at a wider replay's, at the kinks' choices."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.program import Var
from ..modes._wide import wide_values
from ..modes.api import Traced
from ._flat import full_slopes, low_slopes

__all__ = ["moved_unit", "replayed", "rounding_sensitivity"]


def replayed(tr: Traced, wide: list) -> list:
    """The wide replay's values rounded to float64 (the program's where it is narrower):
    where the switches' slopes are read, since a value that lost its digits to cancellation
    moves them as it moves the gradients (w = ((x 2^79 + 2^80) - 2^80) - x 2^79 is 2^27 as
    computed at x = 1 + 3 2^-52 and 0 in f, and w x1 + x2 had the slope 1.3e8 for f's 1)."""
    return [np.asarray(w).astype(np.result_type(v), copy=False)
            if w is not v and np.result_type(v).kind == "f" else v
            for w, v in zip(wide, tr.vals)]


def rounding_sensitivity(tr: Traced, out: Var | None, wide: list | None = None,
                         base: dict | None = None, mixes: int = 3) -> np.ndarray:
    """How far rounding in f's forward values moved f's gradients: the change (flat, float64)
    of the inputs' cotangents of :func:`gradient_unit`'s sweep (every kink's full slope, the
    kinks' selections at the computed values kept) when the values are those of
    :func:`wide_values`, rounded to the program's dtypes.

    The partial derivatives of the smooth steps are read at computed values, so a value that
    lost its digits to cancellation moves the vectors by far more than their own rounding:
    x0 ((1e12 + x2) - 1e12) has df/dx0 = x2 exactly and x2 + 7e-5 as computed at x2 = 0.3,
    which :func:`gradient_unit` (1 there) does not see; this gives 7e-5 there. Exact steps move
    nothing (1 + 0 is 1 in every precision; equal values computed alike stay equal). Not a
    bound: the wide values err too (cancellation beyond long double's 19 digits: 1e19), and
    heavy products of matrices are replayed in float64. inf entries when a sweep overflows;
    empty without an output. ``base``: the sweep at the computed values, when known.

    The kinks' pieces move apart: x0/2 + relu(x0) lost(x1) + relu(-x0) lost(x2) at (0, 3/4,
    3/4), lost(t) = (t + 1e16) - 1e16, has the pieces 5/4 and -1/4 in f and 1/2 as computed,
    while the full slopes' sweep moves by 3/4 - 3/4 = 0; so where kinks are hit, more
    sweeps take each kink entry's two extreme choices (relu' 0 and 1, abs' -1 and 1, a tie's
    first candidate and its split): every combination for up to ``_VERTICES`` such entries
    (relu(min(a, 0) + x2), a = lost(x3) x0 + x1, moves at inner 0 and outer 1 only), else
    both uniform ones and ``mixes`` random ones, and the move is the largest (the move of a
    piece is multilinear in the choices: its largest is at a vertex; sampled, an
    estimate)."""
    from ..modes.sweeps import reverse_sweep

    if out is None:
        return np.zeros(0)
    full = full_slopes()
    eqns, vals = tr.eqns, tr.vals
    # NOTE: the kinks' choices only: a smooth primitive's selection is its derivative, read
    # at the values (exp's is exp(x)), which is what moves
    kinked = [(k, e, e.args(vals), vals[e.out.index]) for k, e in enumerate(eqns)
              if e.prim.selects and e.prim.nonsmooth]
    sels = highs = {k: e.prim.selection(full, a, v, e.params) for k, e, a, v in kinked}
    low = low_slopes()
    lows = {k: e.prim.selection(low, a, v, e.params) for k, e, a, v in kinked}
    seed = {out.index: np.ones((), out.dtype)}
    rng = np.random.default_rng(0)
    moved = np.zeros(sum(int(np.prod(v.shape, dtype=np.int64)) for v in tr.in_vars))
    hit = {k: _differ(lows[k], highs[k]) for k in highs}
    count = sum(int(np.count_nonzero(h)) for h in hit.values() if h is not None)
    draws = 1 if not count else 2 ** count if count <= _VERTICES else 2 + mixes
    with np.errstate(all="ignore"):  # NOTE: a size; an overflow makes it inf
        values = replayed(tr, wide if wide is not None else wide_values(tr))
        for draw in range(draws):
            if draw:
                sels = _vertex(lows, highs, hit, draw, count, rng)
                base = None
            if base is None:
                base = reverse_sweep(eqns, vals, seed, full, selections=sels)
            ct = reverse_sweep(eqns, values, seed, full, selections=sels)
            moved = np.maximum(moved, _cotangent_move(tr, base, ct))
    return moved


_VERTICES = 6  # kink entries up to which every combination of their choices is swept


def _differ(low: Any, high: Any) -> np.ndarray | None:
    """The entries where two selections of one kink differ (masks or weights of one shape;
    None for others: a permutation, a tuple, which keep ``high``)."""
    if not all(isinstance(s, (np.ndarray, np.bool_, np.floating)) and np.result_type(s).kind
               in "bf" for s in (low, high)) or np.shape(low) != np.shape(high):
        return None
    return np.asarray(np.asarray(low, np.float64) != np.asarray(high, np.float64))


def _vertex(lows: dict, highs: dict, hit: dict, draw: int, count: int,
            rng: np.random.Generator) -> dict:
    """Selections taking at each differing entry its low or high choice: the bits of
    ``draw`` in order (``count`` <= ``_VERTICES``), else all low (draw 1) or at random."""
    sels, bit = {}, 0
    for k, high in highs.items():
        h = hit[k]
        if h is None or not h.any():
            sels[k] = high
            continue
        n = int(np.count_nonzero(h))
        if count <= _VERTICES:
            take = ((draw >> np.arange(bit, bit + n)) & 1).astype(bool)
        else:
            take = np.ones(n, bool) if draw == 1 else rng.random(n) < 0.5
        bit += n
        hi = np.array(high, dtype=np.result_type(high), copy=True)
        low = np.asarray(np.asarray(lows[k]), hi.dtype)
        idx = np.flatnonzero(h)[take]
        hi.reshape(-1)[idx] = np.broadcast_to(low, hi.shape).reshape(-1)[idx]
        sels[k] = hi
    return sels


def _cotangent_move(tr: Traced, base: dict, ct: dict) -> np.ndarray:
    parts = []
    for v in tr.in_vars:
        size = int(np.prod(v.shape, dtype=np.int64))
        if v.index in base and v.index in ct:
            d = np.abs(np.asarray(ct[v.index], np.float64)
                       - np.asarray(base[v.index], np.float64)).reshape(-1)
            parts.append(np.where(np.isnan(d), np.inf, d))
        else:
            parts.append(np.zeros(size))
    return np.concatenate(parts) if parts else np.zeros(0)


def moved_unit(moved: np.ndarray, rtol: float = 1e-7) -> float:
    """The ``unit`` of :func:`.lp.hull_tolerance` beyond which "outside" is proven when f's
    vectors moved by ``moved`` under the forward values' rounding
    (:func:`rounding_sensitivity`): a tolerance of twice its l1 norm."""
    return 2.0 * float(np.sum(moved)) / (rtol * max(moved.size, 1))
