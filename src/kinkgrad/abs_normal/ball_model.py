"""The ball's local model: the switches near-active within a radius (moved onto their
kinks) and Euclidean norms at zero, shared by :mod:`.stationarity` and :mod:`.minimality`
(the set it describes is in :mod:`.stationarity`'s docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._core.program import Var
from ..errors import NotAbsSmoothError, ValueReadError
from ..kinks import KinkPolicy
from ..modes.sparse_rows import reverse_rows
from ..modes.sweeps import forward_sweep
from ._flat import FlatSpec, probe_tangents, scalar_output, trace_at
from .active import ActiveModel, moved_selections
from .expand import Expanded, expand
from .zero_norms import split_zero_norms, switch_origins

__all__ = ["ball_model", "moved_switches", "near_active", "near_masks", "nested_reason",
           "wide_ball"]

_ABS0 = KinkPolicy(abs=0.0)
# More candidate switches than this: a random forward probe filters them before their
# gradient norms are computed by reverse sweeps (MXHILB, n = 1000: ~2,000 dense rows per
# stationarity test in the bundle method, 35 -> 24 s a run; was 4096)
_PROBE_ABOVE = 256
# Most switches (near-active ones and those downstream of them) whose reach through the
# near-active ones is tested (one batched reverse sweep of that many rows per round), and
# rounds of that test (a switch it adds may be read by others)
_NESTED_LIMIT, _ROUNDS = 4096, 3
# Above it, rows of the candidates and of the near-active switches they read (directly or
# through others) alone, up to this many; beyond, the candidates may be reached (undecided)
_NESTED_ROWS = 32768
_EXACT_CAPS = 4096  # inputs of a tie up to this size: their gradients' norms, exactly


def near_active(exp: Expanded, spec: FlatSpec, radius: float) -> np.ndarray:
    """Mask of the switches with |z_i| <= radius ||grad z_i|| (grad on the piece of x)."""
    return near_masks(exp, spec, radius, [exp.z()])[0][0]


def near_masks(exp: Expanded, spec: FlatSpec, radius: float, zs: list[np.ndarray]
               ) -> tuple[list[np.ndarray], int]:
    """(:func:`near_active`'s mask for each vector of switching values in ``zs``, the
    computed ones and the wide replay's (:func:`wide_ball`), with the norms computed once;
    the switches a nested reach adds to the first, :func:`nested_reason`)."""
    masks = [z == 0 for z in zs]
    if radius <= 0 or exp.s == 0:
        return masks, 0
    cand = np.flatnonzero(np.any([z != 0 for z in zs], axis=0))
    if cand.size > _PROBE_ABOVE:
        probe = 10 * radius * _probe_norms(exp, spec)[cand]
        cand = cand[np.any([np.abs(z[cand]) <= probe for z in zs], axis=0)]
    norms = np.zeros(exp.s)
    if cand.size:
        slots, ents = exp.z_seeds(cand)
        x_slots = [v.index for v in exp.traced.in_vars]
        mats, _ = reverse_rows(exp.eqns, exp.vals, slots, ents, x_slots, _ABS0)
        sq = sum((np.asarray(M.multiply(M).sum(axis=1)).reshape(-1) for M in mats),
                 np.zeros(cand.size))
        norms[cand] = np.sqrt(sq)
    nested = 0
    for first, (z, mask) in enumerate(zip(zs, masks)):
        mask |= np.abs(z) <= radius * norms
        for last in range(_ROUNDS + 1):  # NOTE: each round may add switches read by the new
            grown, deeper = _reached_through(exp, radius, mask, z, nested=first == 0)
            if first == 0:  # NOTE: what a nested reach adds: the set may miss those pieces
                nested = 0 if deeper is None else int(np.count_nonzero(deeper & ~mask))
            if grown is None or last == _ROUNDS:
                break
            mask |= grown
    return masks, nested


def wide_ball(exp: Expanded, spec: FlatSpec, radius: float) -> tuple[np.ndarray, int, int]:
    """(:func:`near_active`'s mask, the number of switches the ball treats otherwise in the
    wide replay, :meth:`.expand.Expanded.z_wide`: near-active in one and not the other, or
    off their kinks on other sides, the number a nested reach adds: :func:`near_masks`).
    The expanded program's switches include every candidate of a k-way max, whose gap to
    the winner the primitive's own switch (the top two's) does not show: max(x0, 0.6,
    -50 x0 + ((x1 + 1e16) - 1e16) + 49.75) at (1, 0.75) has its third candidate 1/2 below
    the winner in f and 5/4 as computed, and a ball of radius 0.012 reaches it in f only.
    The gradients are read at the computed values."""
    if radius <= 0 or exp.s == 0:
        return near_active(exp, spec, radius), 0, 0
    z, z_w = exp.z(), exp.z_wide()
    (mask, mask_w), nested = near_masks(exp, spec, radius, [z, z_w])
    differ = (mask != mask_w) | (~mask & ~mask_w & (np.sign(z) != np.sign(z_w)))
    return mask, int(np.count_nonzero(differ)), nested


def _downstream(exp: Expanded, mask: np.ndarray) -> np.ndarray:
    """Mask of the switches outside ``mask`` whose z reads (through the program) the |z_q|
    of a switch q in ``mask``: one forward sweep of NaN tangents seeded (and held) at those
    |z_q| entries (NaN spreads through every sum and product, zero weights included: a
    superset of the entries that read them)."""
    js, ents = exp.locate_many(np.flatnonzero(mask))
    seeds, pinned = {}, {}
    for j in np.unique(js):
        u = exp.u_slot(int(j))
        shape = np.shape(exp.vals[u])
        hold = np.zeros(int(np.prod(shape, dtype=np.int64)), bool)
        hold[ents[js == j]] = True
        hold = hold.reshape((1,) + shape)
        seeds[u], pinned[u] = np.where(hold, np.nan, 0.0), hold
    with np.errstate(invalid="ignore"):
        tan, _ = forward_sweep(exp.eqns, exp.vals, seeds, _ABS0, pinned=pinned)
    down = np.zeros(exp.s, bool)
    for j in range(len(exp.abs_eqns)):
        t = tan.get(exp.z_slot(j))
        if t is not None:
            down[exp.offsets[j]:exp.offsets[j + 1]] = np.isnan(np.asarray(t)).reshape(-1)
    return down & ~mask


def _reached_through(exp: Expanded, radius: float, mask: np.ndarray, z: np.ndarray,
                     nested: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The switches downstream of the near-active ones (``mask``) that the ball reaches in
    the model where the near-active switches sit on their kinks, None when there are none;
    (those the nested reach puts within the ball, the same), with ``nested`` (the computed
    values'): the set grows by them. Beyond ``_NESTED_ROWS`` rows, (None, every candidate).

    In that model (the near-active switches M moved onto their kinks, the others at their
    signs) z_p = z~_p + g_p . d + sum_{q in M} K_pq |z_q(d)|, with g_p the gradient of z_p with
    the |z_q| frozen, K_pq = d z_p / d |z_q| (both from one reverse sweep per batch of rows,
    abs' = 0 at M), z~_p = z_p - sum_q K_pq |z_q| (|z_q| -> 0) and |z_q(d)| in [0, r ||g_q||]
    over the ball. Switch p counts when that interval, widened by r ||g_p||, holds 0.

    # NOTE: the gradient on x's piece alone missed them: min(2x + 1e-9, -x, 2x) at x = -0.0026,
    # radius 0.01: the tie of 2x + 1e-9 and 2x (gradient 0 on x's piece) reads the near-active
    # comparison with -x, across which its gradient is -3: the ball's set was {2} ("not
    # stationary") instead of {2, -1}. The recursive bound r ||A_p|| + sum |K_pq| reach_q
    # alone compounded over a sorting network's depth (a 60-entry sort: 1,159 of its
    # switches); capped by the primitives' switch_lipschitz it does not."""
    cand = np.flatnonzero(_downstream(exp, mask)) if mask.any() else np.zeros(0, np.intp)
    if not cand.size:
        return None, None
    near = np.flatnonzero(mask)  # NOTE: sorted: the columns of K, equation by equation
    rows = _Rows(exp, radius, mask, z, near)
    if cand.size + near.size <= _NESTED_LIMIT:  # NOTE: one batched sweep of all their rows
        g_all, K_all = rows(np.concatenate([cand, near]))
        g_c, K, own, K_mm = g_all[:cand.size], K_all[:cand.size], g_all[cand.size:], K_all[
            cand.size:]
    else:  # NOTE: only the near-active switches the candidates read, directly or through
        # others (|x_i| at 0 for 5,000 i beside one 3-way min reading a near-active
        # comparator: every row was skipped and the ball's set, missing the min's far piece,
        # was "not stationary, described exactly"; the truth is stationary)
        got = _upstream(rows, cand)
        if got is None:  # NOTE: too many to test: any candidate may be reached
            unsure = np.zeros(exp.s, bool)
            unsure[cand] = True
            return None, unsure
        g_c, K, own, K_mm = got
    abs_m = np.abs(z[near])
    zt = z[cand] - K @ abs_m
    Kp, Kn = _clipped(K, np.maximum), _clipped(K, np.minimum)
    depth = np.unique(rows.js).size

    def reached(reach_m: np.ndarray) -> np.ndarray | None:
        # NOTE: over the ball |z_q(d)| lies in [max(0, |z_q| - reach_q), |z_q| + reach_q],
        # not [0, reach_q]: x - relu(relu(|x + 1/4| - 3/8) - 1/8) at 0, radius 0.26,
        # reaches its outer kink (x = 1/4) only with |x + 1/4|'s own 1/4
        top, bottom = abs_m + reach_m, np.maximum(abs_m - reach_m, 0.0)
        lo = zt - g_c + Kn @ top + Kp @ bottom
        hi = zt + g_c + Kp @ top + Kn @ bottom
        hit = (lo <= 0.0) & (hi >= 0.0)
        if not hit.any():
            return None
        grown = np.zeros(exp.s, bool)
        grown[cand[hit]] = True
        return grown

    deeper = None
    if nested:  # NOTE: a near-active switch reaches through the |z| it reads (clip(|x|, 0,
        # 1/2)'s lower one at 0 has no gradient of its own; a 3-way tie's second comparator
        # reads the first's): the sum r ||g|| + sum |K| reach, capped where the switch's
        # primitive bounds its move (:func:`_lipschitz_caps`: the sum alone compounded over
        # a sorting network's depth, 25 of a 60-entry sort)
        K_mm = abs(K_mm)
        zero = _nested(own, K_mm, np.where(own == 0, np.inf, own), depth)
        deeper = reached(zero)  # NOTE: those with no gradient of their own: a guard
        caps = np.full(exp.s, np.inf)
        if np.any(K_mm @ own):  # NOTE: else the sum is r ||g|| alone, and no cap is needed
            caps = _lipschitz_caps(exp, radius, mask)
        nest = reached(_nested(own, K_mm, caps[near], depth))
        if nest is not None:  # NOTE: the set grows by them (|sort(v)[2] - 1/4| reads a
            # 3-way tie; a tournament's last comparator reads a tie one level down, and
            # max(0, 1/32 - 3x, 1/32, -1, 1/16) + x at 0, radius 0.011, was "not stationary";
            # it costs MaxQ's bundle runs their certificates, whose true sets near 0 are large)
            nest &= ~(np.abs(z) > caps)
            grown = reached(own)
            deeper = nest if deeper is None else deeper | nest
            return nest if grown is None else grown | nest, deeper
    return reached(own), deeper


class _Rows:
    """Rows of switches for :func:`_reached_through`, in the model where the near-active
    switches (``near``, sorted) sit on their kinks: r ||g_p|| (the gradient with the |z_q|
    frozen) and the sparse K_pq = d z_p / d |z_q| over the near-active q, from one batched
    reverse sweep per call."""

    def __init__(self, exp: Expanded, radius: float, mask: np.ndarray, z: np.ndarray,
                 near: np.ndarray) -> None:
        self.exp, self.radius = exp, radius
        self.js, ents_m = exp.locate_many(near)
        eqs = np.unique(self.js)
        self.x_slots = [v.index for v in exp.traced.in_vars]
        self.keep = self.x_slots + [exp.u_slot(int(j)) for j in eqs]
        self.columns = [None] * len(self.x_slots) + [ents_m[self.js == j] for j in eqs]
        self.selections = moved_selections(exp, mask & (z != 0)) or None
        self.near = near

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        exp, nx = self.exp, len(self.x_slots)
        slots, ents = exp.z_seeds(ids)
        mats, _ = reverse_rows(exp.eqns, exp.vals, slots, ents, self.keep, _ABS0,
                               selections=self.selections, columns=self.columns)
        G = sp.hstack(mats[:nx], format="csr") if nx else sp.csr_matrix((ids.size, 0))
        g = self.radius * np.sqrt(np.asarray(G.multiply(G).sum(axis=1)).reshape(-1))
        K = sp.hstack(mats[nx:], format="csr")
        K.eliminate_zeros()
        return g, K


def _upstream(rows: _Rows, cand: np.ndarray) -> tuple | None:
    """(g, K of the candidates; own g and K among the near-active switches, zero but for
    those the candidates read, directly or through others), one sweep per level of reading;
    None when that takes more than ``_NESTED_ROWS`` rows."""
    g_c, K = rows(cand)
    m = rows.near.size
    own, used = np.zeros(m), np.zeros(m, bool)
    blocks: list[tuple[np.ndarray, sp.csr_matrix]] = []
    frontier = np.unique(K.indices)
    while frontier.size:
        used[frontier] = True
        if cand.size + np.count_nonzero(used) > _NESTED_ROWS:
            return None
        own[frontier], K_f = rows(rows.near[frontier])
        blocks.append((frontier, K_f))
        frontier = np.setdiff1d(np.unique(K_f.indices), np.flatnonzero(used))
    K_mm = sp.lil_matrix((m, m))
    for ids, K_f in blocks:
        K_mm[ids] = K_f
    return g_c, K, own, K_mm.tocsr()


def _clipped(K: sp.csr_matrix, clip: Callable) -> sp.csr_matrix:
    """``clip(K, 0)`` entrywise (np.maximum: the positive part; np.minimum: the negative)."""
    out = K.copy()
    out.data = clip(out.data, 0.0)
    return out


def _nested(own: np.ndarray, K_mm: Any, cap: np.ndarray, depth: int) -> np.ndarray:
    """The near-active switches' reach: own + K_mm reach, at most ``cap``, iterated to its
    fixed point (nilpotent in the equations' order: at most ``depth`` rounds)."""
    reach = np.minimum(own, cap)
    for _ in range(depth):
        step = np.minimum(own + K_mm @ reach, cap)
        if np.array_equal(step, reach):
            break
        reach = step
    return reach


def _lipschitz_caps(exp: Expanded, radius: float, mask: np.ndarray) -> np.ndarray:
    """Per switch, a bound on how far its value moves in the ball, inf where none: L R for a
    switch whose primitive declares ``switch_lipschitz`` L (its switching values are
    L-Lipschitz in the largest move of its inputs' entries: a k-way tie's comparators) and
    whose inputs read no near-active switch (``mask``), R = r max ||grad input entry||
    (exactly, by reverse rows, for inputs of up to ``_EXACT_CAPS`` entries; else 10 times
    16 Gaussian probes' estimate, below a tenth of the truth with probability < 1e-8, as
    :func:`_probe_norms`; first order, as the model)."""
    caps = np.full(exp.s, np.inf)
    orig = exp.original
    near_origins = switch_origins(exp, np.flatnonzero(mask))
    dirty: set[int] = set()
    for k, e in enumerate(orig.eqns):
        if k in near_origins or any(type(i) is Var and i.index in dirty for i in e.inputs):
            dirty.add(e.out.index)
    clean = {}
    for j in range(len(exp.abs_eqns)):
        o = exp.switch_meta(j).origin
        e = orig.eqns[o]
        if e.prim.switch_lipschitz and not any(type(i) is Var and i.index in dirty
                                               for i in e.inputs if i is not None):
            clean[j] = e
    if not clean:
        return caps
    x_slots = [v.index for v in orig.in_vars]
    inputs = sorted({i.index for e in clean.values() for i in e.inputs if type(i) is Var})
    sizes: dict[int, float] = {}
    exact = [i for i in inputs if np.size(orig.vals[i]) <= _EXACT_CAPS]
    if exact:  # NOTE: their gradients' norms, exactly (one batched reverse sweep)
        seeds = np.concatenate([np.full(np.size(orig.vals[i]), i) for i in exact])
        ents = np.concatenate([np.arange(np.size(orig.vals[i])) for i in exact])
        mats, _ = reverse_rows(orig.eqns, orig.vals, seeds, ents, x_slots, _ABS0)
        sq = sum((np.asarray(M.multiply(M).sum(axis=1)).reshape(-1) for M in mats),
                 np.zeros(seeds.size))
        for i in exact:
            sizes[i] = float(np.sqrt(np.max(sq[seeds == i], initial=0.0)))
    if len(exact) < len(inputs):  # NOTE: 16 probes: below a tenth w.p. < 1e-8, times 10
        t = probe_tangents(orig.eqns, orig.vals, x_slots, FlatSpec(orig), 16)
        for i in inputs:
            if i not in sizes:
                sizes[i] = 10.0 * float(np.max(np.sqrt(np.mean(
                    np.asarray(t[i], np.float64) ** 2, axis=0)), initial=0.0)) if i in t else 0.0
    for j, e in clean.items():
        top = max([sizes[i.index] for i in e.inputs if type(i) is Var], default=0.0)
        caps[exp.offsets[j]:exp.offsets[j + 1]] = e.prim.switch_lipschitz * radius * top
    return caps


def nested_reason(model: ActiveModel) -> str | None:
    """Why the ball's set may miss pieces: switches reading near-active kinks that the
    nested reach (:func:`_reached_through`: every near-active switch reaches through the
    |z| it reads, r ||g|| + sum |K| reach, capped by :func:`_lipschitz_caps`) still puts
    within the ball after the rounds of growing the set (clip(|x|, 0, 1/2) at 0: its upper
    kink reads |x| through its lower one); None where there are none."""
    n = model.nested_missed
    return None if not n else (
        f"{n} switch(es) reading near-active kinks may be reached within the ball through "
        "them (a nested reach) and are not in the set, which may miss the pieces beyond")


def moved_switches(model: ActiveModel, radius: float) -> int:
    """Number of the model's switches moved onto their kinks (near-active, z != 0)."""
    if radius <= 0 or not model.m:
        return 0
    return int(np.count_nonzero(np.asarray(model.exp.z())[model.active]))


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
        tr = trace_at(f, x, where, radius)
        out, _ = scalar_output(tr, where)
        spec = FlatSpec(tr)
        tr0, balls = split_zero_norms(tr, spec, out, radius)  # Euclidean norms at 0
        exp = expand(tr0)
    except ValueReadError as exc:  # NOTE: f may be abs-smooth; its trace is not f near x
        return str(exc), 0
    except NotAbsSmoothError as exc:
        return f"not abs-smooth at x: {exc}", 0
    active, differs, nested = wide_ball(exp, spec, radius)
    model = ActiveModel(exp, spec, out, active=active)
    model.ball_differs, model.nested_missed = differs, nested
    if balls is not None and balls.coupled(switch_origins(exp, model.active)):
        return (f"{balls.q} Euclidean norm(s) at zero are fed or read by active kinks or by "
                "each other; the set is described only for norms isolated from them "
                "(kinkgrad.abs_normal.zero_norms)", model.m + balls.q)
    return tr, spec, out, balls, model
