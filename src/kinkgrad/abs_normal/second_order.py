"""Pieces that only a second-order curve realises (degenerate points, LIKQ failing).

A signature sigma of the active switches is realised when points with those signs
accumulate at x; its selection gradient g(sigma) is then a limiting gradient. To first
order this is an LP on the rows w_i of W(sigma) (:mod:`.lp`). At a degenerate point the
first-order cone {d : sigma_i w_i d >= 0} can be nonempty yet have no interior: some rows
(the set T) vanish on all of it. Along the curve

    x(t) = x + t d + t^2 e,     z_i(x(t)) = t w_i d + t^2 (w_i e + q_i(d) / 2) + O(t^3),

with d in the cone (w_i d = 0 for i in T, sigma_i w_i d > 0 otherwise) and q_i(d) = d^T
H_i d the second derivative of the selection function z_i^sigma along d, the signs are
sigma for all small t > 0 as soon as sigma_i (w_i e + q_i / 2) > 0 on T: one more LP, in e.
Strict inequalities survive perturbations of size o(t^2), so an open set of points with
signature sigma accumulates at x: sigma is realised and g(sigma) is a limiting gradient.

Example (the cusp): f = |x0| - |x0 + x1^2| at 0. Both switches have w = (1, 0), so sigma =
(-1, +1) is not realised to first order; with d = (0, 1) (q = (0, 2)) and e = (-1/2, 0) the
curve (-t^2/2, t) has z = (-t^2/2, t^2/2): realised, with gradient (-2, 0), a piece that
exists only in the cusp -x1^2 < x0 < 0.

q_i(d) is taken by central differences of the selection function (the abs-normal program
with |z_i| replaced by sigma_i z_i at the active switches), at two step sizes; the LP's
margin must exceed their disagreement. This module only ever *adds* pieces, each with a
curve as witness; it never proves that a piece is absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._flat import FlatSpec
from .active import ActiveModel
from .lp import MARGIN, margin, nonzero_rows, row_terms, solve_lp

__all__ = ["second_order_pieces"]

_IMPLICIT = 1e-10


class _Selection:
    """The abs-normal program with the active switches' |z| replaced by sigma z."""

    def __init__(self, model: ActiveModel, spec: FlatSpec) -> None:
        exp = model.exp
        self.exp, self.spec, self.model = exp, spec, model
        self.loc = [exp.locate(int(i)) for i in model.active]
        self.x = spec.join([exp.vals[v.index] for v in exp.traced.in_vars])
        z = exp.z()
        inactive = np.ones(exp.s, bool)
        inactive[model.active] = False
        self.inactive = np.flatnonzero(inactive & (z != 0))
        self.sign0 = np.sign(z[self.inactive])

    def z(self, x: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(active switches' values, inactive switches' signs) of the selection at x."""
        exp = self.exp
        vals = list(exp.vals)
        for v, leaf in zip(exp.traced.in_vars, self.spec.split(x)):
            vals[v.index] = leaf.astype(np.float64)
        override: dict[int, list] = {}
        for (j, e), s in zip(self.loc, sigma):
            override.setdefault(exp.abs_eqns[j], []).append((e, s))
        for k, eqn in enumerate(exp.eqns):
            args = eqn.args(vals)
            with np.errstate(all="ignore"):
                out = eqn.prim.impl(*args, **eqn.params)
            if k in override:
                flat = np.array(out, np.float64).reshape(-1)
                zin = np.asarray(args[0], np.float64).reshape(-1)
                for e, s in override[k]:
                    flat[e] = s * zin[e]
                out = flat.reshape(np.shape(out))
            vals[eqn.out.index] = out
        zs = np.array([np.asarray(vals[exp.z_slot(j)], np.float64).reshape(-1)[e]
                       for j, e in self.loc])
        allz = np.concatenate([np.asarray(vals[exp.z_slot(j)], np.float64).reshape(-1)
                               for j in range(len(exp.abs_eqns))]) if exp.abs_eqns else zs
        return zs, np.sign(allz[self.inactive])

    def curvature(self, d: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q_i(d), error estimate) by central differences at h and h/2 (Richardson)."""
        z0, _ = self.z(self.x, sigma)
        h = 1e-3 * (1.0 + float(np.max(np.abs(self.x), initial=0.0))) / float(
            np.max(np.abs(d)))
        for _ in range(30):
            qs = []
            ok = True
            for step in (h, h / 2):
                zp, sp = self.z(self.x + step * d, sigma)
                zm, sm = self.z(self.x - step * d, sigma)
                ok = ok and np.array_equal(sp, self.sign0) and np.array_equal(sm, self.sign0)
                qs.append((zp - 2 * z0 + zm) / step ** 2)
            if ok and np.all(np.isfinite(qs)):
                q = (4 * qs[1] - qs[0]) / 3
                return q, np.abs(qs[1] - qs[0]) + 1e-12 * (1 + np.abs(q))
            h /= 4  # an inactive switch changed sign: stay closer to x
        return np.full(len(sigma), np.nan), np.full(len(sigma), np.inf)


def _implicit(R: np.ndarray) -> np.ndarray:
    """Rows of R that vanish on the whole cone {d : R d >= 0, |d| <= 1} (one LP each)."""
    n = R.shape[1]
    unit = R / np.linalg.norm(R, axis=1, keepdims=True)
    out = np.zeros(len(R), bool)
    zero, inf, box = np.zeros(len(R)), np.full(len(R), np.inf), np.ones(n)
    for i in range(len(R)):
        res = solve_lp(-unit[i], unit, zero, inf, -box, box)  # max r_i . d on the cone
        out[i] = res is not None and -res[1] <= _IMPLICIT
    return out


def _null_project(d: np.ndarray, E: np.ndarray) -> np.ndarray:
    """d projected onto the null space of the rows E (exactly, up to rounding)."""
    if E.shape[0] == 0:
        return d
    _, sv, Vt = np.linalg.svd(E, full_matrices=True)
    rank = int(np.count_nonzero(sv > 1e-12 * max(float(sv[0]), 1e-300)))
    N = Vt[rank:]
    return N.T @ (N @ d)


def realise_second_order(sel: _Selection, sigma: np.ndarray) -> bool:
    """Whether a curve x + t d + t^2 e realises the signature sigma (see module doc)."""
    model = sel.model
    W = model.W(sigma)
    rows = nonzero_rows(W, row_terms(model.A, model.K, sigma, W))
    if not rows.any():
        return False
    R = sigma[rows, None] * W[rows]
    idx = np.flatnonzero(rows)
    T = _implicit(R)
    if not T.any():
        return False  # then first-order realisability decides (the caller's LP)
    t, d = margin(R[~T], R[T]) if (~T).any() else (1.0, None)
    if d is None or (~T).any() and t <= MARGIN:
        d = np.random.default_rng(0).standard_normal(model.spec.n)
    d = _null_project(np.asarray(d, np.float64), R[T])
    nd = float(np.linalg.norm(d))
    if nd == 0 or ((~T).any() and np.min(R[~T] @ d) <= MARGIN * nd):
        return False
    d = d / nd
    q, err = sel.curvature(d, sigma)
    if not np.all(np.isfinite(q)):
        return False
    # sigma_i (w_i e + q_i / 2) >= margin + err_i on T, as max t: rows r_i e >= t - c_i
    Ti = idx[T]
    s = sigma[Ti]
    rhs = -s * q[Ti] / 2 + err[Ti]
    n = model.spec.n
    A = np.hstack([s[:, None] * W[Ti], -np.ones((Ti.size, 1))])  # r_i . e - t >= rhs_i
    res = solve_lp(np.r_[np.zeros(n), -1.0], A, rhs, np.full(Ti.size, np.inf),
                   np.r_[np.full(n, -1e3), -np.inf], np.r_[np.full(n, 1e3), 1.0])
    return bool(res is not None and -res[1] > MARGIN)


def second_order_pieces(model: ActiveModel, spec: FlatSpec, sigmas: list[np.ndarray]
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The signatures among ``sigmas`` (of the reduced model's switches) that a second-order
    curve realises, with their selection gradients (limiting gradients at x)."""
    if not sigmas:
        return []
    # NOTE: switches set aside by ``reduced`` keep their true |z| in the evaluation, so the
    # curve is checked on f's own values; they cannot change g(sigma) (first order).
    sel = _Selection(model, spec)
    out: list[tuple[Any, Any]] = []
    for sg in sigmas:
        if realise_second_order(sel, np.asarray(sg, np.float64)):
            out.append((sg, model.gradient(sg)))
    return out
