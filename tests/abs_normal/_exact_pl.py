"""Exact limiting gradients of the random piecewise-linear programs of ``_abs_programs``.

A ``Prog`` is piecewise linear and its point x, coefficients and kinks lie on a dyadic grid,
so every value at x is an exact ``Fraction``. Near x, f(x + d) = f(x) + phi(d) with
phi(d) = f'(x; d) positively homogeneous and piecewise linear. ``cells`` walks the ops in
program order keeping open polyhedral cones {d : a.d > 0 for every row a}, each with every
node's exact value at x and its derivative as a linear form in d. An op off its kinks takes
the branch given by its value at x; an op at a kink (a tie among the maximisers of a max
form: relu, abs, leaky, hinge, clip at +-1/2, maximum/minimum/max3/min3/norm inf, a tied
group of sort, a zero entry of norm 1) splits the cell by the order of the tied derivatives,
and only children with nonempty interior are kept (an LP on max slack, HiGHS, confirmed
exactly on a rational interior point). phi is linear on each surviving cell and the cells
cover R^n, so their gradients are exactly the limiting gradients (the vertices' superset of
the Clarke subdifferential). No part of kinkgrad's abs-normal machinery is used.

Public: ``evaluate`` (exact f(y)), ``pieces`` (an op's branches), ``cells``,
``limiting_gradients``, ``phi`` (exact f'(x; d) by a lexicographic forward walk).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction as Q
from typing import Any

import numpy as np
from scipy.optimize import linprog

Vec = tuple[Q, ...]
Piece = tuple[list[Vec], Q, Vec]  # rows (> 0 on the piece), value at x, derivative form
HALF = Q(1, 2)
SORT_W = (Q(1), Q(-2), HALF)


def _lin(a: Vec, b: Vec, ca: Q = Q(1), cb: Q = Q(1)) -> Vec:
    return tuple(ca * p + cb * q for p, q in zip(a, b))


def _dot(a: Vec, d: Sequence[Q]) -> Q:
    return sum((p * q for p, q in zip(a, d)), Q(0))


def _max_pieces(cands: list[tuple[Q, Vec]]) -> list[Piece]:
    """Branches of max_k (value_k + form_k . d): one per tied maximiser k, on the cone where
    its form exceeds the other tied forms (identical forms give no row)."""
    top = max(v for v, _ in cands)
    tied = [f for v, f in cands if v == top]
    out: list[Piece] = []
    for i, fi in enumerate(tied):
        rows = [_lin(fi, fj, cb=Q(-1)) for j, fj in enumerate(tied) if j != i]
        out.append(([r for r in rows if any(r)], top, fi))
    return out


def _combine(parts: list[list[Piece]], sign: Q = Q(1)) -> list[Piece]:
    """Branches of sign * (sum of independent ops), one per combination of their branches."""
    out: list[Piece] = []
    for combo in itertools.product(*parts):
        rows = [r for p in combo for r in p[0]]
        val, form = Q(0), tuple(Q(0) for _ in combo[0][2])
        for _, v, f in combo:
            val, form = val + v, _lin(form, f)
        out.append((rows, sign * val, _lin(form, form, sign, Q(0))))
    return out


def pieces(kind: str, args: list[tuple[Q, Vec]], c: Sequence[Q]) -> list[Piece]:
    """Branches of one op of ``_abs_programs._apply`` at x given its arguments' values/forms."""
    zero = tuple(Q(0) for _ in args[0][1])
    t = [(c[k] * args[k][0], _lin(args[k][1], zero, c[k])) for k in range(3)]
    u = (t[0][0] + t[1][0], _lin(t[0][1], t[1][1]))
    neg = lambda p: (-p[0], _lin(p[1], zero, Q(-1)))  # noqa: E731
    if kind == "lin":
        return [([], u[0], u[1])]
    if kind == "relu":
        return _max_pieces([u, (Q(0), zero)])
    if kind == "abs":
        return _max_pieces([u, neg(u)])
    if kind == "leaky":
        return _max_pieces([u, (u[0] / 4, _lin(u[1], zero, Q(1, 4)))])
    if kind == "hinge":
        return _max_pieces([(HALF - u[0], _lin(u[1], zero, Q(-1))), (Q(0), zero)])
    if kind in ("maximum", "max3"):
        return _max_pieces(t[:2] if kind == "maximum" else t)
    if kind in ("minimum", "min3"):
        return _combine([_max_pieces([neg(p) for p in (t[:2] if kind == "minimum" else t)])],
                        Q(-1))
    if kind == "clip":  # max(-1/2, min(u, 1/2))
        out: list[Piece] = []
        for rows, v, f in _combine([_max_pieces([neg(u), (-HALF, zero)])], Q(-1)):
            out += [(rows + r2, v2, f2) for r2, v2, f2 in _max_pieces([(v, f), (-HALF, zero)])]
        return out
    if kind == "norm1":
        return _combine([_max_pieces([p, neg(p)]) for p in t])
    if kind == "norminf":
        return _max_pieces(t + [neg(p) for p in t])
    if kind == "sort":  # ascending order; tied values ordered by their forms
        out, seen = [], set()
        for perm in itertools.permutations(range(3)):
            if any(t[perm[k]][0] > t[perm[k + 1]][0] for k in range(2)) or perm in seen:
                continue
            rows = [_lin(t[perm[k + 1]][1], t[perm[k]][1], cb=Q(-1)) for k in range(2)
                    if t[perm[k]][0] == t[perm[k + 1]][0]]
            val = sum((w * t[p][0] for w, p in zip(SORT_W, perm)), Q(0))
            form = zero
            for w, p in zip(SORT_W, perm):
                form = _lin(form, t[p][1], cb=w)
            out.append(([r for r in rows if any(r)], val, form))
        return out
    raise ValueError(kind)


def interior_point(rows: list[Vec], n: int) -> tuple[Vec, float] | None:
    """A rational d with a.d > 0 for every row (and the LP's normalised slack), or None when
    the open cone is empty (slack <= 1e-9 within the box |d_i| <= 1)."""
    if not rows:
        return tuple(Q(0) for _ in range(n)), 1.0
    A = np.array([[float(v) for v in r] for r in rows])
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.c_[-A, np.ones(len(A))],
                  b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * n + [(None, 1)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    if -res.fun <= 1e-9:
        return None
    d = tuple(Q(float(v)) for v in res.x[:n])
    if not all(_dot(r, d) > 0 for r in rows):
        raise RuntimeError("LP interior point fails the exact check")
    return d, float(-res.fun)


@dataclass
class Cell:
    rows: list[Vec]  # open cone {d : a.d > 0}
    vals: list[Q]  # every node's value at x
    forms: list[Vec]  # every node's derivative, a linear form in d
    point: Vec  # a rational interior point
    slack: float  # the LP's normalised slack at creation


def _inputs(prog: Any) -> tuple[list[Q], list[Vec]]:
    n = prog.n
    eye = [tuple(Q(int(i == j)) for j in range(n)) for i in range(n)]
    return [Q(float(v)) for v in np.ravel(prog.x)], eye


def cells(prog: Any) -> list[Cell]:
    """The full-dimensional cones of linearity of phi (with their nodes) at prog.x."""
    vals, forms = _inputs(prog)
    live = [Cell([], vals, forms, tuple(Q(0) for _ in range(prog.n)), 1.0)]
    for kind, a, c in prog.ops:
        nxt: list[Cell] = []
        for cell in live:
            args = [(cell.vals[i], cell.forms[i]) for i in a]
            for rows, v, f in pieces(kind, args, [Q(float(x)) for x in c]):
                new_rows = cell.rows + [r for r in rows if r not in cell.rows]
                ip = (cell.point, cell.slack) if len(new_rows) == len(cell.rows) else \
                    interior_point(new_rows, prog.n)
                if ip is not None:
                    nxt.append(Cell(new_rows, cell.vals + [v], cell.forms + [f], *ip))
        live = nxt
    return live


def output_form(prog: Any, cell: Cell) -> Vec:
    g = tuple(Q(0) for _ in range(prog.n))
    for w, f in zip(prog.weights, cell.forms[prog.n:]):
        g = _lin(g, f, cb=Q(float(w)))
    return g


def limiting_gradients(prog: Any) -> list[Vec]:
    """The distinct limiting gradients of prog at prog.x, exact."""
    return sorted({output_form(prog, cell) for cell in cells(prog)})


def phi(prog: Any, d: Sequence[Any]) -> Q:
    """f'(x; d) exactly, by a forward walk taking at each op a branch whose rows are >= 0 at d
    (every such branch gives the same value: the max form)."""
    dq = [Q(float(v)) for v in d]
    vals, forms = _inputs(prog)
    vals, forms = list(vals), list(forms)
    out = Q(0)
    for (kind, a, c), w in zip(prog.ops, prog.weights):
        ps = pieces(kind, [(vals[i], forms[i]) for i in a], [Q(float(x)) for x in c])
        _, v, f = next(p for p in ps if all(_dot(r, dq) >= 0 for r in p[0]))
        vals.append(v)
        forms.append(f)
        out += Q(float(w)) * _dot(f, dq)
    return out


def _value(kind: str, t: list[Q]) -> Q:
    """One op of ``_abs_programs._apply`` on exact scaled arguments t (c_k a_k)."""
    u = t[0] + t[1]
    if kind in ("lin", "relu", "abs", "leaky", "clip", "hinge"):
        return {"lin": u, "relu": max(u, Q(0)), "abs": abs(u), "leaky": u if u > 0 else u / 4,
                "clip": min(max(u, -HALF), HALF), "hinge": max(HALF - u, Q(0))}[kind]
    if kind in ("maximum", "minimum"):
        return max(t[:2]) if kind == "maximum" else min(t[:2])
    if kind in ("max3", "min3"):
        return max(t) if kind == "max3" else min(t)
    if kind == "sort":
        return sum((p * q for p, q in zip(SORT_W, sorted(t))), Q(0))
    if kind == "norm1":
        return sum((abs(p) for p in t), Q(0))
    if kind == "norminf":
        return max(abs(p) for p in t)
    raise ValueError(kind)


def evaluate(prog: Any, y: Sequence[Any]) -> Q:
    """f(y) exactly in rationals, written directly (independent of ``pieces``)."""
    v: list[Q] = [Q(float(t)) if not isinstance(t, Q) else t for t in y]
    out = Q(0)
    for (kind, a, c), w in zip(prog.ops, prog.weights):
        r = _value(kind, [Q(float(c[k])) * v[a[k]] for k in range(3)])
        v.append(r)
        out += Q(float(w)) * r
    return out
