"""Euclidean norms at zero in the stationarity test: the sets of group lasso, Fermat-Weber
and isotropic total variation at their kinks.

``||w||_2`` at w = 0 is not abs-smooth (its directional derivative ||w'(x; d)|| is not
piecewise linear), so the abs-normal form cannot describe it. But where such a norm is
*isolated* from the active kinks, the set still has a closed form. Write, near x,

    f(y) = phi(y, |z(y)|, n(y)),     n_k(y) = ||w_k(y)||_2,  w_k(x) = 0  (k = 1..q),

phi smooth, w_k smooth near x (no active switch feeds w_k) and no active switch reading n_k,
and let f0(y) = phi(y, |z(y)|, 0) be f with the zero norms frozen at 0: an abs-smooth
program, whose set the rest of this package describes. With lambda_k = d phi / d n_k at x
(unique: no active switch lies between n_k and the output) and J_k = w_k'(x):

* f - f0 = sum_k lambda_k(y) n_k(y) + O(||n||^2), and lambda_k(y) n_k(y) = lambda_k n_k(y) +
  a strictly differentiable term with derivative 0 at x (n_k(x) = 0); by Clarke's sum and
  chain rules

      del f(x)  subset  del f0(x) + sum_k |lambda_k| J_k^T B_k        (the outer set)

  with B_k the unit ball of R^{d_k}: always.
* Equality (inner = outer) holds (1) when every lambda_k >= 0 and f0's local piece is
  convex (each block convex) and described exactly: then f0 and lambda_k n_k are regular
  and the sum rule is exact (Clarke, Optimization and Nonsmooth Analysis, 2.3.3, 2.3.10,
  2.3.13); or (2) when the rows of the active switches and of all J_k are linearly
  independent: along y = x + t d the limiting gradient is the piece of f0 that d enters plus
  sum_k lambda_k J_k^T (J_k d / ||J_k d||), and independence lets d pick the piece and every
  unit vector J_k d / ||J_k d|| at once, so the hull of those limits is the inner set of f0
  plus the balls. Otherwise only the outer set is known: "not stationary" stays provable,
  "stationary" is "undecided".

At a radius r > 0 a norm counts as at zero when ||w_k(x)|| <= r ||J_k||_2 (the ball reaches
its kink to first order, as a switch's |z_i| <= r ||grad z_i||), with its smooth
contribution lambda_k J_k^T w_k / ||w_k|| replaced by the ball. f0 is built as a rewritten
trace (:func:`split_zero_norms`): each such group of the norm's input is replaced by ones
and its output by its value as a constant, so values stay those of f and only the
derivative through the group is cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .._core.program import Var, _var_name, value_of
from .._core.tracer import Trace, Tracer, bind
from ..errors import NotAbsSmoothError
from ..kinks import KinkPolicy
from ..modes.api import Traced
from ..modes.sparse_rows import reverse_rows
from ..modes.sweeps import reverse_sweep
from ..primitives.arith import Add, Multiply, Subtract
from ..primitives.reduce import Sum
from ..primitives.select import Where
from ._flat import FlatSpec, probe_tangents, rebuilt
from .minnorm_balls import min_norm_balls

if TYPE_CHECKING:
    from .expand import Expanded
    from .localset import LocalSet

__all__ = ["Balls", "Linearized", "ball_bounds", "expand_flat_norms", "freeze",
           "group_values", "split_zero_norms", "switch_origins"]

_POLICY = KinkPolicy(abs=0.0)
_PROBE = 16  # random directions estimating ||J_k|| before the rows are formed (radius > 0)


@dataclass
class Balls:
    """The zero norms of a trace (module docstring): one entry per group k.

    Attributes:
        lam: (q,) d phi / d n_k at x.
        rows: (sum d_k, n) CSR: the Jacobians J_k of the groups w_k, stacked.
        dims: (q,) the groups' sizes d_k.
        names: ``d[3] (norm 2)``: the norm's node and the group's flat output entry.
        chosen: per norm equation of the trace, the groups (output entries) frozen.
        up, down: equation indices of the rewritten trace that feed some w_k (through
            which an active switch would make J_k set-valued) and that read some n_k.
    """

    lam: np.ndarray
    rows: sp.csr_matrix
    dims: np.ndarray
    names: list[str]
    chosen: dict[int, np.ndarray] = field(default_factory=dict)
    up: set[int] = field(default_factory=set)
    down: set[int] = field(default_factory=set)

    @property
    def q(self) -> int:
        return len(self.dims)

    def subset(self, keep: np.ndarray) -> Balls:
        """The groups where ``keep`` (q,) is True, in the same order (up and down, which
        describe the full rewrite, are not carried)."""
        chosen, i = {}, 0
        for k, groups in self.chosen.items():
            sel = keep[i:i + groups.size]
            if sel.any():
                chosen[k] = groups[sel]
            i += groups.size
        return Balls(self.lam[keep], self.rows[np.repeat(keep, self.dims)], self.dims[keep],
                     [nm for nm, kp in zip(self.names, keep) if kp], chosen)

    def terms(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The ellipsoids' matrices M_k = |lambda_k| J_k^T side by side (n x sum d_k), and
        the d_k."""
        scale = sp.diags(np.repeat(np.abs(self.lam), self.dims))
        return (scale @ self.rows).T.tocsr(), self.dims

    def coupled(self, origins: set[int]) -> bool:
        """Whether an active switch (its equation in the rewritten trace) feeds or reads a
        zero norm, or a zero norm feeds another's group (an equation both reads some n_j
        and feeds some w_k: ||(||x||)|| at 0, where w_k is not smooth and cutting n_j's
        derivative leaves J_k = 0): then the closed form does not apply."""
        return bool(origins & (self.up | self.down)) or bool(self.up & self.down)

    def independent(self, A: sp.csr_matrix) -> bool:
        """The rows of A (the active switches') and of every J_k are linearly independent."""
        R = sp.vstack([A, self.rows], format="csr")
        if R.shape[0] > R.shape[1]:
            return False
        if R.shape[0] * R.shape[1] <= 4_000_000:
            return bool(np.linalg.matrix_rank(R.toarray()) == R.shape[0])
        from ._sparse_rank import sparse_rank

        rank, exact, _ = sparse_rank(R)
        return exact and rank == R.shape[0]


def split_zero_norms(tr: Traced, spec: FlatSpec, out: Var | None, radius: float
                     ) -> tuple[Traced, Balls | None]:
    """(f0's trace, the zero norms) when some 2-norm of ``tr`` is at zero (or within the
    radius of it, module docstring); (tr, None) otherwise. radius = inf takes every
    group of every such norm (the proximal model of :mod:`kinkgrad.optimize._norm_prox`)."""
    found = _norms(tr)
    if not found:
        return tr, None
    every = radius == np.inf
    est = _probe(tr, spec, found) if 0 < radius < np.inf else None
    chosen: dict[int, np.ndarray] = {}
    parts: list[sp.csr_matrix] = []
    dims: list[int] = []
    for k, (eqn_k, groups, sizes) in enumerate(found):
        cand = (sizes == 0) | every
        if est is not None:
            cand |= sizes <= 10.0 * radius * est[k]
        idx = np.flatnonzero(cand)
        if not idx.size:
            continue
        d = groups.shape[1]
        X = _rows(tr, spec, tr.eqns[eqn_k].inputs[0].index, groups[idx])
        keep = (sizes[idx] == 0) | every
        if not every and radius > 0:
            keep |= sizes[idx] <= radius * _spectral(X, d)
        if keep.any():
            chosen[eqn_k] = idx[keep]
            parts.append(X[np.repeat(keep, d)])
            dims.extend([d] * int(keep.sum()))
    if not chosen:
        return tr, None
    lam, names = _lambdas(tr, out, chosen)
    tr0, up, down = _rewrite(tr, chosen, {k: g for k, g, _ in found})
    return tr0, Balls(lam, sp.vstack(parts, format="csr"), np.array(dims, np.intp), names,
                      chosen, up, down)


def expand_flat_norms(tr: Traced) -> Expanded:
    """The abs-normal program of ``tr`` (:func:`.expand.expand`) where a Euclidean norm at
    0 whose group has Jacobian J_k = 0 is frozen at its value: with w_k smooth near x,
    ||w_k(y)|| <= sup ||w_k'|| ||y - x|| over [x, y] is o(||y - x||), so the norm is
    strictly differentiable at x with derivative 0 (a norm of a constant zero vector, as
    zero padding gives, or of a map whose derivative vanishes there). Smooth means no
    active kink feeds w_k; where one does, or J_k != 0, NotAbsSmoothError as before."""
    from .expand import expand

    flat: dict[int, np.ndarray] = {}
    found = [item for item in _norms(tr) if np.any(item[2] == 0)]
    spec = FlatSpec(tr) if found else None
    for k, groups, sizes in found:
        idx = np.flatnonzero(sizes == 0)
        X = _rows(tr, spec, tr.eqns[k].inputs[0].index, groups[idx])
        rows_zero = np.asarray(abs(X).sum(axis=1)).ravel() == 0
        zero = rows_zero.reshape(idx.size, groups.shape[1]).all(axis=1)
        if zero.any():
            flat[k] = idx[zero]
    if not flat:
        return expand(tr)
    tr0, up, _ = _rewrite(tr, flat, {k: g for k, g, _ in _norms(tr)})
    exp = expand(tr0)
    if switch_origins(exp, np.flatnonzero(exp.z() == 0)) & up:
        raise NotAbsSmoothError(
            "linalg.norm: a Euclidean norm at the zero vector whose input an active kink "
            "feeds is not abs-smooth (its Jacobian is set-valued there); evaluate away from "
            "the kink or use ord=1 or ord=inf.")
    return exp


class Linearized(dict):
    """Groups to freeze (norm equation -> output entries, as ``Balls.chosen``) whose norms
    n_k = ||w_k|| are replaced by n_k(x) + d_k . (w_k(y) - w_k(x)) instead of the constant
    n_k(x): ``directions`` maps each equation to its groups' d_k ((groups, d) arrays in
    the same order). The frozen program's Hessian is then the SQP Lagrangian's of
    f = phi(y, n(y)) with multipliers lambda_k d_k: it holds lambda_k d_k^T grad^2 w_k (a
    nonlinear kink input: crescent) and the cross terms d^2 phi / dy dn_k d_k^T J_k (phi
    not linear in n_k: a ReLU network's |z| times its next weights), which freezing at
    n_k(x) drops. d_k = w_k / ||w_k|| at a free group (its norm's gradient direction), the
    multiplier direction mu_k / lambda_k at a zero one."""

    def __init__(self, chosen: dict[int, np.ndarray], directions: dict[int, np.ndarray]):
        super().__init__(chosen)
        self.directions = directions


def freeze(tr: Traced, chosen: dict[int, np.ndarray]) -> Traced:
    """The trace of another point of the same program with the same groups frozen (f0
    there: the value of f, no derivative through those groups), or linearized where
    ``chosen`` is :class:`Linearized`."""
    return _rewrite(tr, chosen, {k: g for k, g, _ in _norms(tr)})[0]


def group_values(tr: Traced, chosen: dict[int, np.ndarray]) -> np.ndarray:
    """The chosen groups' inputs w_k (stacked, float64) in another trace of the program."""
    vals = [np.asarray(tr.vals[tr.eqns[k].inputs[0].index], np.float64).reshape(-1)[
        groups[chosen[k]]].reshape(-1) for k, groups, _ in _norms(tr) if k in chosen]
    return np.concatenate(vals) if vals else np.zeros(0)


def _norms(tr: Traced) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(equation, groups (output entries x members, flat input entries), ||w_k||) of every
    Euclidean norm of a traced input."""
    out = []
    for k, eqn in enumerate(tr.eqns):
        if eqn.prim.name != "norm" or eqn.params["ord"] != 2 or type(eqn.inputs[0]) is not Var:
            continue
        w = np.asarray(tr.vals[eqn.inputs[0].index])
        axes = tuple(a % w.ndim for a in eqn.params["axis"]) if w.ndim else ()
        if any(w.shape[a] == 0 for a in axes):  # the norm of an empty vector: constant 0
            continue
        idx = np.arange(w.size).reshape(w.shape)
        rest = [a for a in range(w.ndim) if a not in axes]
        groups = np.transpose(idx, rest + list(axes)).reshape(-1, max(1, int(
            np.prod([w.shape[a] for a in axes], dtype=np.int64))))
        # NOTE: the norm's own (scaled) value: squaring subnormal entries would give 0
        sizes = np.abs(np.asarray(tr.vals[eqn.out.index], np.float64).reshape(-1))
        out.append((k, groups, sizes))
    return out


def _probe(tr: Traced, spec: FlatSpec, found: list) -> list[np.ndarray]:
    """Estimates of ||J_k||_F per group from one forward sweep with 16 Gaussian directions
    (as :func:`.ball_model._probe_norms` for switches: below a tenth of the truth with
    probability < 1e-13, against the caller's factor 10)."""
    tan = probe_tangents(tr.eqns, tr.vals, spec.slots, spec, _PROBE)
    est = []
    for k, groups, _ in found:
        t = tan.get(tr.eqns[k].inputs[0].index)
        if t is None:
            est.append(np.zeros(groups.shape[0]))
            continue
        T = np.asarray(t, np.float64).reshape(_PROBE, -1)[:, groups]
        est.append(np.sqrt(np.mean(np.sum(T * T, axis=2), axis=0)))
    return est


def _rows(tr: Traced, spec: FlatSpec, slot: int, groups: np.ndarray) -> sp.csr_matrix:
    """The rows of J_k = w_k'(x) for the given groups of the input slot, stacked group by
    group, by reverse sweeps."""
    ents = groups.reshape(-1)
    mats, _ = reverse_rows(tr.eqns, tr.vals, np.full(ents.size, slot), ents, spec.slots,
                           _POLICY)
    return sp.hstack(mats, format="csr") if mats else sp.csr_matrix((ents.size, spec.n))


def _spectral(X: sp.csr_matrix, d: int) -> np.ndarray:
    """||J_j||_2 of every group J_j = X[j d:(j + 1) d] (X stacked group by group), from
    the groups' d x d Gram matrices (pairwise products of their rows, batched eigvalsh);
    ||J_j||_F (>= it, admitting more) for groups larger than 16 rows."""
    q = X.shape[0] // d
    if d == 1 or d > 16:
        return np.sqrt(np.add.reduceat(np.asarray(X.multiply(X).sum(axis=1)).ravel(),
                                       np.arange(0, q * d, d))) if q else np.zeros(0)
    X = sp.csr_matrix(X)
    gram = np.empty((q, d, d))
    for a in range(d):
        for b in range(a, d):
            gram[:, a, b] = gram[:, b, a] = np.asarray(
                X[a::d].multiply(X[b::d]).sum(axis=1)).ravel()
    return np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))


def _lambdas(tr: Traced, out: Var | None, chosen: dict[int, np.ndarray]
             ) -> tuple[np.ndarray, list[str]]:
    slots = {tr.eqns[k].out.index for k in chosen}
    ct: dict = {}
    if out is not None:
        seed = np.ones(out.shape, np.result_type(tr.vals[out.index]))
        ct = reverse_sweep(tr.eqns, tr.vals, {out.index: seed}, _POLICY, keep=slots)
    lam, names = [], []
    for k, groups in chosen.items():
        o = tr.eqns[k].out.index
        c = ct.get(o)
        flat = np.zeros(groups.size) if c is None else \
            np.asarray(c, np.float64).reshape(-1)[groups]
        lam.extend(flat)
        names.extend(f"{_var_name(o)}[{int(g)}] (norm 2)" for g in groups)
    return np.asarray(lam, np.float64), names


def _rewrite(tr: Traced, chosen: dict[int, np.ndarray], groups_of: dict[int, np.ndarray]
             ) -> tuple[Traced, set[int], set[int]]:
    """f0's trace: the chosen groups' inputs replaced by ones and their outputs by their
    values (constants; linearized where ``chosen`` is :class:`Linearized`); and the
    equations feeding those inputs (up) and reading those outputs (down), as indices of
    the new trace."""
    directions = getattr(chosen, "directions", {})
    new = Trace()
    env: dict = {v.index: new.new_input(tr.vals[v.index]) for v in tr.in_vars}
    w_slots, n_slots = set(), set()
    try:
        for k, eqn in enumerate(tr.eqns):
            args = eqn.args(env)
            if k not in chosen:
                env[eqn.out.index] = bind(eqn.prim, *args, **eqn.params)
                continue
            w, v = args[0], np.asarray(tr.vals[eqn.out.index])
            wv = np.asarray(value_of(eqn.inputs[0], tr.vals))
            members = np.zeros(wv.size, bool)
            members[groups_of[k][chosen[k]].reshape(-1)] = True
            if type(w) is Tracer:
                w_slots.add(w.var.index)
            w1 = Where.instance(members.reshape(wv.shape),  # type: ignore[attr-defined]
                                np.ones(wv.shape, wv.dtype), w)
            n1 = bind(eqn.prim, w1, **eqn.params)
            outs = np.zeros(v.size, bool)
            outs[chosen[k]] = True
            frozen = v
            if k in directions and type(w) is Tracer:
                frozen = _linear_part(eqn.params, w, wv, v, groups_of[k][chosen[k]],
                                      directions[k])
            res = Where.instance(outs.reshape(v.shape), frozen, n1)  # type: ignore[attr-defined]
            env[eqn.out.index] = res
            if type(res) is Tracer:
                n_slots.add(res.var.index)
    finally:
        new.active = False
    tr0 = rebuilt(new, env, tr)
    return tr0, _closure(tr0, w_slots, up=True), _closure(tr0, n_slots, up=False)


def _linear_part(params: dict, w: Tracer, wv: np.ndarray, v: np.ndarray, members: np.ndarray,
                 d: np.ndarray) -> Tracer:
    """v + sum over the norm's axes of D * (w - w(x)), D holding each group's d_k at its
    members' entries (zeros elsewhere): the linearized norms of :class:`Linearized`."""
    D = np.zeros(wv.size, wv.dtype)
    D[members.reshape(-1)] = np.asarray(d, np.float64).reshape(-1)
    lin = Sum.instance(Multiply.instance(D.reshape(wv.shape), Subtract.instance(w, wv)),  # type: ignore[attr-defined]
                       axis=params["axis"], keepdims=params["keepdims"])
    return Add.instance(v, lin)  # type: ignore[attr-defined]


def _closure(tr: Traced, slots: set[int], up: bool) -> set[int]:
    """Equations that the slots depend on (up) or that depend on them (down)."""
    reach, eqns = set(slots), set()
    order = range(len(tr.eqns) - 1, -1, -1) if up else range(len(tr.eqns))
    for k in order:
        eqn = tr.eqns[k]
        ins = {i.index for i in eqn.inputs if type(i) is Var}
        if up and eqn.out.index in reach:
            eqns.add(k)
            reach |= ins
        elif not up and ins & reach:
            eqns.add(k)
            reach.add(eqn.out.index)
    return eqns


def switch_origins(exp: Expanded, active: np.ndarray) -> set[int]:
    """The equations (of the trace ``exp`` expands) whose abs forms hold the switches."""
    if not len(active):
        return set()
    js, _ = exp.locate_many(active)
    return {exp.switch_meta(int(j)).origin for j in np.unique(js)}


def ball_bounds(ls: LocalSet, balls: Balls, shift: np.ndarray | None = None,
                tol: float | None = None) -> tuple:
    """(outer MinNorm or None, a proven point, its norm, exact, why) of the local set of f0
    plus the balls (module docstring: the outer set always, the inner one under (1) or
    (2)), shifted by -``shift`` (in_clarke's distance from g to the set); bounds that
    straddle ``tol`` are solved again (:func:`.minnorm_balls.min_norm_balls`)."""
    zero = np.zeros(ls.g0.size)
    g0 = ls.g0 if shift is None else ls.g0 - shift
    head = f"{balls.q} Euclidean norm(s) at zero, isolated from the active kinks"
    if not ls.has_outer:
        return None, zero, np.inf, False, head + "; a block is too large to bound the set"
    terms = balls.terms()
    low = min_norm_balls(g0, ls.outer_blocks(), *terms, tol=tol)
    convex = bool(np.all(balls.lam >= 0)) and all(b.convex for b in ls.blocks) and ls.exact
    listed = (ls.exact or ls.inner_exact) and all(b.inner.shape[0] for b in ls.blocks)
    if convex:
        return low, low.point, low.upper, True, head + (
            "; f'(x; .) is convex there (norms with d f / d ||w|| >= 0, convex blocks): the "
            "set is described exactly")
    independent = (ls.exact or listed) and balls.independent(ls.model.A_sparse)
    if independent and ls.exact:
        return low, low.point, low.upper, True, head + (
            "; their Jacobians' and the active switches' rows are independent: the set is "
            "described exactly")
    if independent:
        inner = min_norm_balls(g0, ls.inner_blocks(), *terms, tol=tol)
        return low, inner.point, inner.upper, False, head + (
            "; rows independent, but some block's pieces are not proven complete")
    return low, zero, np.inf, False, head + (
        "; a norm decreases f (d f / d ||w|| < 0) or a block is not convex, and their rows "
        "are dependent: only the outer set is known")
