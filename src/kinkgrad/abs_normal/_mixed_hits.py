"""Kinks the computed values put at x together that f has at no one point of the rounding
next to x.

A kink hit as computed (z = 0) counts as one at x where f has it within the rounding next
to x (:func:`._switch_slopes.next_to_x`'s box): the answers are then those at a point y of
the box where f has it (:mod:`._forward_rounding`). Checked one kink at a time, that left
configurations no point has:

* two kinks of one normal at 1 - c and 1 + c (c = 5e-17), both hit at x = 1 as computed:
  2 relu((x + c) - 1) - relu((x - c) - 1) has the slopes 0, 2 and 1, and the model's set
  {0, 1} is the set at no point; ``in_clarke`` called f's gradient 2 outside;
* one kink hit as computed and another at the same point of f off its kink as computed:
  relu((x + 1e-16) - 1) - relu((x - 1) + 1e-16) is 0 everywhere, and -1 was certified;
* a kink off it as computed that f has at x (its side flipped), beside one hit in both:
  relu(((x1 + x0) - x0) - 3/4) - relu(x1 - 3/4) at (2^53, 3/4), 0 everywhere, and (0, -1)
  was called a Clarke gradient.

So where a kink hit as computed is off it in f, or one off it as computed is on it or
beyond in f beside a kink hit as computed, a point y of the box is sought where f has every
kink hit as computed on its kink and every other switching entry strictly on its computed
side: to first order, the least-norm a with z_w + R a = 0 for the hits (R their slopes
along box directions: w_i e_i for n <= ``_DIRECT``, with |a_i| <= 1/2, else random ones, with
||a||_1 <= 1/2; z_w the wide replay's values), then, where f's switches replayed at that
point have an entry on its kink or beyond, linear programs (HiGHS: the least ||a||_1) that
also keep those entries on their computed sides beyond twice their margins; a point counts
once f's switches replayed there have every entry off its kink on its computed side (beyond
the error) and every hit at most half as far from its kink as at x. Where none is found, the
model is f's at no point of the box, and no answer resting on it is proven (both ways).
Where the program only adds, multiplies, moves and takes kinks (up to 4,096 values), f's
switching values are read exactly (Fractions) for this: the replay cannot tell offsets
1e-20 apart. Hits off their kinks in f must have rows independent of each other and of the
exact hits (one kink twice, the same row and offset to the bit, counts once), or whether
their kinks meet rests on offsets within the replay's error. Switching values with no sign
(a k-way max's gap, a sort's, a clip's distance to its nearer bound, a norm) are not linear
across their kinks: such a hit off its kink in f beside another hit leaves the model
unproven (alone: the box's own checks, as before); the search keeps such entries off their
kinks. More than ``_MOST_HITS`` hits leave the model unproven.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from scipy.optimize import linprog

from ..kinks import KinkPolicy
from ..modes._wide import as_float64, nonzero_float64, wide_values
from ..modes.sweeps import forward_sweep
from ..primitives.piecewise import _Elementwise, _MaxMin
from ._exact import _to_float, _to_frac
from ._switch_slopes import directional_slopes, next_to_x

__all__ = ["mixed_hits"]

_DIRECT = 256  # n up to which the box's own directions w_i e_i are the search's
_SUBSPACE = 32  # else this many random directions beyond 2 per hit
_MOST_HITS = 4096  # hits beyond which no point is sought (unproven)
_ROUNDS = 4  # linear programs, each keeping the entries the last one's point crossed


def _signed(e: Any) -> bool:
    """Whether e's switching value is a signed linear quantity (relu's, abs's argument,
    maximum's a - b): linear across its kink."""
    return isinstance(e.prim, (_Elementwise, _MaxMin))


_RATIONAL = {"add", "sub", "mul", "neg", "abs", "relu", "maximum", "minimum", "clip", "sum",
             "max", "min", "sort", "reshape", "transpose", "getitem", "concatenate", "stack",
             "broadcast_to", "cumsum"}
_RATIONAL_ENTRIES = 4096  # most values of a program replayed in Fractions


def _rational(tr: Any, upto: int, point: list | None = None) -> list | None:
    """f's values up to equation ``upto`` in exact rational arithmetic (Fractions) at x, or
    at ``point`` (the flat inputs' leaves as object arrays of Fractions); None where the
    program does more than add, multiply, move and take kinks, holds more than
    ``_RATIONAL_ENTRIES`` values, or an operation refuses Fractions."""
    eqns = tr.eqns[:upto]
    if any(e.prim.name not in _RATIONAL for e in eqns) or sum(
            int(np.size(tr.vals[e.out.index])) for e in eqns) > _RATIONAL_ENTRIES:
        return None
    exact = list(tr.vals)
    for k, v in enumerate(tr.in_vars):
        exact[v.index] = point[k] if point is not None else _to_frac(
            np.asarray(tr.vals[v.index], np.float64))
    try:
        with np.errstate(all="ignore"):
            for e in eqns:
                args = [_to_frac(a) if np.asarray(a).dtype.kind == "f" else a
                        for a in e.args(exact)]
                exact[e.out.index] = np.asarray(e.prim.impl(*args, **e.params), dtype=object)
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return None
    return exact


def _switch_values(e: Any, vals: list) -> np.ndarray:
    """e's switching values from ``vals``; float constants as Fractions where ``vals`` are
    (a Fraction minus the float 1.0 is a float: maximum(x + 1e-20, 1)'s z came out 0)."""
    args = e.args(vals)
    if any(np.asarray(a).dtype == object for a in args):
        args = [_to_frac(a) if np.asarray(a).dtype.kind == "f" else a for a in args]
        if isinstance(e.prim, _MaxMin):  # NOTE: its float sign would round a Fraction
            a, b = (np.asarray(v, dtype=object) for v in args)
            return np.asarray((a - b) if e.prim.sign > 0 else (b - a), dtype=object)
    return np.asarray(e.prim.switch(args, vals[e.out.index], e.params), dtype=object)


def _exact_sides(tr: Any, sides: list[tuple]) -> tuple[list[tuple], dict | None]:
    """(``sides`` with f's switching values exact, rounded once to float64 and with no
    replay error, and those values as Fractions by equation) where :func:`_rational` runs
    (then the search's points are checked in Fractions too); else (``sides``, None). The
    replay cannot tell offsets apart below its precision: 2 relu((x + 1e-20) - 1) -
    relu((x - 1e-20) - 1) at 1 has both kinks 0 in long double too, and in_clarke called f's
    gradient 2 outside."""
    last = max(tr.eqns.index(e) for e, *_ in sides)
    exact = _rational(tr, last + 1)
    if exact is None:
        return sides, None
    out, values = [], {}
    try:
        with np.errstate(all="ignore"):
            for e, z, _, flipped, winners, _ in sides:
                z_x = _switch_values(e, exact).reshape(np.shape(z))
                z_f = nonzero_float64(z_x) if z_x.size else np.zeros(np.shape(z))
                out.append((e, z, z_f, flipped, winners, 0.0))
                values[id(e)] = z_x
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return sides, None
    return out, values


def mixed_hits(tr: Any, sides: list[tuple], spec: Any, vals: list) -> int:
    """Number of switching entries hit as computed (or flipped) in a configuration no point
    of the box has (module docstring), 0 where a point is found or none is needed.
    ``sides``: :func:`._forward_rounding.switch_sides`; slopes read at ``vals`` (the wide
    replay's values, in float64)."""
    if not any(np.any(z == 0) for _, z, *_ in sides):
        return 0  # NOTE: no kink hit as computed (a flipped one alone: kinks() as before)
    sides, exact = _exact_sides(tr, sides)
    hits = signed = unsigned = flips = 0
    for e, z, z_w, flipped, _, _ in sides:
        hit = z == 0
        if _signed(e):  # NOTE: 0 in both precisions: as before (a known gap)
            signed += int(np.count_nonzero(hit & (z_w != 0)))
        else:
            unsigned += int(np.count_nonzero(hit & (z_w != 0)))
        hits += int(np.count_nonzero(hit))
        flips += int(np.count_nonzero(flipped))
    if unsigned and hits + flips >= 2:  # NOTE: not placed by the search (max(2 relu(..),
        return hits + flips  # ...) beside its twin called f's gradient 2 outside)
    if not signed and not (flips and hits):
        return 0
    if hits > _MOST_HITS:
        return hits + flips
    return 0 if _Search(tr, sides, spec, vals, exact).found() else hits + flips


class _Search:
    """The search of the module docstring for a point of the box."""

    def __init__(self, tr: Any, sides: list[tuple], spec: Any, vals: list,
                 exact: dict | None = None) -> None:
        self.exact = exact  # NOTE: f's switching values in Fractions (a rational program)
        # NOTE: slopes in float64 at f's values (float16 tangents: 6x slower, 3 digits)
        self.vals = [as_float64(v) for v in vals]
        self.tr, self.sides, self.spec = tr, sides, spec
        self.w = next_to_x(tr, spec)
        n, m = spec.n, sum(int(np.count_nonzero(z == 0)) for _, z, *_ in sides)
        if n <= max(_DIRECT, 2 * m + _SUBSPACE):
            self.D, self.box = np.diag(self.w), "each"
        else:
            U = np.random.default_rng(0).standard_normal((min(n, 2 * m + _SUBSPACE), n))
            self.D, self.box = U * self.w / np.max(np.abs(U), axis=1, keepdims=True), "l1"
        self.last = max(tr.eqns.index(e) for e, *_ in sides)
        self.tan: dict | None = None
        self._slopes: dict[int, np.ndarray] = {}
        self._margins: dict[int, np.ndarray] | None = None

    def found(self) -> bool:
        R, c = self._rows(lambda e, z: z == 0)
        if not self._independent(R):
            return False
        a = _least_norm(R, c)
        if a is not None and self._inside(a):
            bad = self._crossed(a)
            if bad is None:
                return True
        else:
            bad = None
        # NOTE: a linear program keeping the entries the least-norm point crossed (or, where
        # it failed, the flipped ones) on their computed sides, and those its own point
        # crosses, for a few rounds
        keep = bad if bad is not None else {id(e): flipped for e, _, _, flipped, *_ in
                                            self.sides}
        for _ in range(_ROUNDS):
            a = self._program(keep)
            if a is None:
                return False
            bad = self._crossed(a)
            if bad is None:
                return True
            grown = {i: np.asarray(keep.get(i, False)) | m for i, m in bad.items()}
            if all(np.array_equal(np.asarray(keep.get(i, False)), m) for i, m in grown.items()):
                return False  # NOTE: crossed again though kept: first order fails there
            keep = {**keep, **grown}
        return False

    def _independent(self, R: np.ndarray) -> bool:
        """Whether the rows of the hits off their kinks in the replay (z_w != 0) are
        independent of each other and of the exact ones: else whether their kinks meet rests
        on offsets the replay cannot resolve (2 relu((x + 3e-17) - 1) - relu((x + 3e-17 +
        2^-60) - 1) at 1: offsets 8.7e-19 apart, within the replay's error; f is smooth at x)."""
        exact = np.concatenate([np.zeros(0, bool)] + [
            (z_w == 0)[z == 0] for e, z, z_w, _, _, _ in self.sides if _signed(e)])
        if np.all(exact):
            return True
        scale = np.maximum(np.max(np.abs(R), axis=1), 1e-300)
        scaled = R / scale[:, None]
        # NOTE: one kink twice (a duplicated sample's: the same row and place, to the bit of
        # the replay, or exactly in a rational program) is one; places compared scaled (4
        # relu((x/2 - 1e-22) - 1/2) - relu((x - 1e-22) - 1): one offset, two places)
        places = self._offsets() / scale if self.exact is None else [
            q / Fraction(float(h)) for q, h in zip(self._offsets(), scale)]
        seen, unsure = set(), []
        for i in np.flatnonzero(~exact):
            key = (tuple(np.round(scaled[i], 12)), places[i])
            if key not in seen:
                seen.add(key)
                unsure.append(scaled[i])
        unsure_rows = np.array(unsure).reshape(-1, R.shape[1])
        return _rank(np.vstack([scaled[exact], unsure_rows])) - _rank(scaled[exact]) == len(
            unsure)

    def _offsets(self) -> Any:
        """The hits' offsets (f's switching values at x), exact where known (Fractions)."""
        if self.exact is None:
            return self._rows(lambda e, z: z == 0)[1]
        return [q for e, z, *_ in self.sides if _signed(e)
                for q in np.asarray(self.exact[id(e)]).reshape(-1)[np.flatnonzero(
                    np.asarray(z).reshape(-1) == 0)]]

    def _rows(self, pick: Any) -> tuple[np.ndarray, np.ndarray]:
        """(slopes (entries, k) along the directions, the wide replay's values) of the
        entries ``pick(e, z)`` selects, equation by equation (signed switches only)."""
        if self.tan is None:
            with np.errstate(all="ignore"):
                sp, k = self.spec, self.D.shape[0]
                seeds = {slot: self.D[:, a:b].reshape((k,) + shape) for slot, a, b, shape in
                         zip(sp.slots, sp.offsets[:-1], sp.offsets[1:], sp.shapes)}
                self.tan, _ = forward_sweep(self.tr.eqns[:self.last + 1], self.vals, seeds,
                                            KinkPolicy(abs=0.0))
        k = self.D.shape[0]
        rows, offs = [np.zeros((0, k))], [np.zeros(0)]
        for e, z, z_w, _, _, _ in self.sides:
            if not _signed(e):
                continue
            idx = np.flatnonzero(np.asarray(pick(e, z)).reshape(-1))
            if idx.size:
                rows.append(self.slopes(e)[:, idx].T)
                offs.append(np.asarray(z_w, np.float64).reshape(-1)[idx])
        return np.concatenate(rows), np.concatenate(offs)

    def slopes(self, e: Any) -> np.ndarray:
        """(k, entries) slopes of e's switching values along the directions (once)."""
        if id(e) not in self._slopes:
            q, reach = directional_slopes(e, self.vals, self.tan, self.D.shape[0])
            self._slopes[id(e)] = (q * reach).reshape(q.shape[0], -1)
        return self._slopes[id(e)]

    def margins(self) -> dict[int, np.ndarray]:
        """Per equation (flat), how far beyond its kink an entry must be, on its computed side,
        to be known there: the replay's error (``_TRUSTED`` estimated errors) and the move the
        hits' own errors give the point (|R_e R_H^+| err_H: the hits' kinks are known to
        their error; relu((x + 1e-16) - 1) - relu((x - 1) + 1e-16) at 1 is 0 everywhere, and in
        the replay the second kink lay 3.7e-20 beside the first, whose error is 8.7e-19)."""
        if self._margins is None:
            R, _ = self._rows(lambda e, z: z == 0)
            err_h = np.concatenate([np.zeros(0)] + [
                np.broadcast_to(np.asarray(err, np.float64), np.shape(z))[z == 0]
                for e, z, _, _, _, err in self.sides if _signed(e)])
            P = np.linalg.pinv(R) if R.size else np.zeros((self.D.shape[0], 0))
            self._margins = {}
            for e, z, _, _, _, err in self.sides:
                own = np.broadcast_to(np.asarray(err, np.float64), np.shape(z)).reshape(-1)
                with np.errstate(all="ignore"):
                    move = np.abs(self.slopes(e).T @ P) @ err_h if err_h.size else 0.0
                self._margins[id(e)] = own + move
        return self._margins

    def _inside(self, a: np.ndarray) -> bool:
        if self.box == "each":
            return bool(np.max(np.abs(a), initial=0.0) <= 0.5)
        return bool(np.sum(np.abs(a)) <= 0.5)

    def _crossed(self, a: np.ndarray) -> dict | None:
        """None where f's switches replayed at x + D^T a (in Fractions for a rational
        program) keep every entry off its kink on its computed side beyond the replay's
        error, and bring every hit at least halfway to its kink (a thousandth of the way, in
        Fractions: kinks 2^-26 from parallel met 1.5 box widths away, and halfway passed);
        else the masks (by equation) of the non-hit entries that did not ({} where the
        exact replay fails)."""
        spec, tr = self.spec, self.tr
        if self.exact is not None:  # NOTE: a rational program: f's switches at y exactly
            y = _to_frac(np.asarray(spec.point(tr), np.float64)) + _to_frac(self.D.T @ a)
            wide = _rational(tr, self.last + 1, [y[lo:hi].reshape(shape) for lo, hi, shape
                                                 in zip(spec.offsets[:-1], spec.offsets[1:],
                                                        spec.shapes)])
            if wide is None:
                return {}
            near = (1e-3, 1e-9)  # NOTE: a hit this close to its kink, relative to its offset
            # and to the terms' size (the point is rounded to float64 before it is exact)
        else:
            x = np.asarray(spec.point(tr), np.longdouble) + (self.D.T @ a).astype(np.longdouble)
            at = {v.index: x[lo:hi].reshape(shape).astype(
                      np.longdouble if dt == np.float64 else np.float64)
                  for v, lo, hi, shape, dt in zip(tr.in_vars, spec.offsets[:-1],
                                                  spec.offsets[1:], spec.shapes, spec.dtypes)}
            wide = wide_values(tr, at=at, upto=self.last + 1)
            near = (0.5, 1e-6)
        R, _ = self._rows(lambda e, z: z == 0)
        moves = iter(np.abs(R) @ np.abs(a))  # NOTE: the terms' size, for the hits' rounding
        bad, ok = {}, True
        with np.errstate(all="ignore"):
            for e, z, z_w, _, _, err in self.sides:
                zy = _to_float(_switch_values(e, wide)).reshape(
                    np.shape(z)) if np.size(z) else np.zeros(np.shape(z))
                hit = z == 0
                placed = hit if _signed(e) else np.zeros(np.shape(z), bool)
                room = np.zeros(np.shape(z))
                room[placed] = [next(moves) for _ in range(int(np.count_nonzero(placed)))]
                far = placed & ~(np.abs(zy) <= near[0] * np.abs(z_w) + np.asarray(err)
                                 + near[1] * room)
                margin = self.margins()[id(e)].reshape(np.shape(z))
                if self.exact is not None and _signed(e):  # NOTE: beyond the point's own
                    # rounding, 1000 times a hit's: a kink at a hit's own place (a maximum's
                    # and a minimum's that cancel) is on it, not beside it
                    margin = margin + 1e-6 * (np.abs(self.slopes(e)).T @ np.abs(a)).reshape(
                        np.shape(z))
                crossed = ~hit & ~(np.sign(zy) * np.sign(z) * np.abs(zy) > margin)
                if np.any(far):
                    ok = False
                if np.any(crossed):
                    bad[id(e)], ok = crossed, False
        return None if ok else bad

    def _program(self, keep: dict) -> np.ndarray | None:
        """The LP of the module docstring: the least move (:func:`_least_move`) with the
        hits on their kinks and the kept entries beyond twice their margins
        (:meth:`margins`) on their computed sides."""
        chosen = {id(e): np.asarray(keep[id(e)]).reshape(np.shape(z)) & (z != 0)
                  for e, z, *_ in self.sides if id(e) in keep and _signed(e)}
        R, c = self._rows(lambda e, z: z == 0)
        Rk, ck = self._rows(lambda e, z: chosen.get(id(e), np.zeros(np.shape(z), bool)))
        s, er = [np.zeros(0)], [np.zeros(0)]
        for e, z, *_ in self.sides:
            if id(e) in chosen:
                s.append(np.sign(np.asarray(z, np.float64))[chosen[id(e)]])
                er.append(self.margins()[id(e)].reshape(np.shape(z))[chosen[id(e)]])
        sk, ek = np.concatenate(s), np.concatenate(er)
        return _least_move(R, c, sk[:, None] * Rk, 2.0 * ek - sk * ck, self.box)


def _rank(M: np.ndarray) -> int:
    """Numerical rank (singular values beyond 1e-9 of the largest)."""
    if not M.size:
        return 0
    sv = np.linalg.svd(M, compute_uv=False)
    return int(np.count_nonzero(sv > 1e-9 * sv[0])) if sv.size and sv[0] > 0 else 0


def _least_norm(R: np.ndarray, c: np.ndarray) -> np.ndarray | None:
    """The least-norm a with c + R a = 0 (rows scaled to unit size), None where the rows
    do not reach it (a residual beyond 1e-9 of the scaled offsets)."""
    if not R.shape[0]:
        return np.zeros(R.shape[1])
    scale = np.max(np.abs(R), axis=1)
    if np.any(scale == 0):
        return None if np.any(c[scale == 0] != 0) else _least_norm(R[scale > 0], c[scale > 0])
    Rn, cn = R / scale[:, None], c / scale
    a = np.linalg.lstsq(Rn, -cn, rcond=None)[0]
    if not np.all(np.abs(Rn @ a + cn) <= 1e-9 * np.maximum(np.abs(cn), 1e-300)):
        return None
    return a


def _least_move(R: np.ndarray, c: np.ndarray, S: np.ndarray, need: np.ndarray, box: str
                ) -> np.ndarray | None:
    """The least ||a||_1 with c + R a = 0 and S a >= need (rows scaled to unit size, and
    1e-9 beyond), in the box: the least move, where first order holds best (a margin pushed
    to its largest moved a float16 network's weights by 3%, and its products left first
    order behind); None if none."""
    k = R.shape[1]
    moves = np.max(np.abs(R), axis=1) > 0 if R.shape[0] else np.zeros(0, bool)
    if R.shape[0] and np.any(~moves & (c != 0)):
        return None
    R, c = R[moves], c[moves]
    sr = np.max(np.abs(R), axis=1) if R.shape[0] else np.zeros(0)
    ss = np.max(np.abs(S), axis=1) if S.shape[0] else np.zeros(0)
    ss = np.where(ss == 0, 1.0, ss)
    Rn, cn, Sn = R / sr[:, None], c / sr, S / ss[:, None]
    A_eq = np.hstack([Rn, -Rn])
    ub_rows, ub_rhs = np.hstack([-Sn, Sn]), -(need / ss + 1e-9)
    if box == "l1":
        ub_rows = np.vstack([ub_rows, np.ones((1, 2 * k))])
        ub_rhs = np.concatenate([ub_rhs, [0.5]])
    res = linprog(np.ones(2 * k), A_ub=ub_rows if ub_rows.shape[0] else None,
                  b_ub=ub_rhs if ub_rows.shape[0] else None,
                  A_eq=A_eq if A_eq.shape[0] else None, b_eq=-cn if A_eq.shape[0] else None,
                  bounds=[(0.0, 0.5)] * (2 * k), method="highs")
    return None if res.status != 0 else res.x[:k] - res.x[k:]
