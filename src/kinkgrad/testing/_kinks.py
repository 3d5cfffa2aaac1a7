"""The generic kink checks of one primitive (:func:`check_kinks`) and their truth: the
Jacobian a kink policy declares, from differences taken inside the smooth pieces it names.

A *piece oracle* maps (primitive, float64 arguments, params, policy) to a list of
(weight, [bump per argument]): the declared Jacobian is the weighted sum of central
differences at x + delta * bump, a point inside the piece. relu'(0) = s gives the pieces
x + delta (weight s) and x - delta (weight 1 - s); max ties under "first" the piece where the
first maximiser is raised; "split" every maximiser in turn; sort the orders of each tie group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core.primitive import Primitive
from .._core.tracer import bind
from ..errors import NotAbsSmoothError
from ..kinks import KinkPolicy, current_policy
from ..modes.api import trace, trace_call
from ..modes.sweeps import forward_sweep, reverse_sweep

__all__ = ["check_kinks", "declared_jacobian", "policy_options", "POLICY_OPTIONS",
           "KINK_ORACLES"]

#: Representative values of every kink-policy key (dyadic, so declared values are exact).
POLICY_OPTIONS: dict[str, tuple] = {
    "relu": (0.0, 0.25, 1.0), "leaky_relu": (0.0, 0.5, 1.0), "abs": (-1.0, 0.0, 0.5, 1.0),
    "max": ("first", "split"), "sort": ("first", "split"), "clip": (0.0, 0.5, 1.0),
    "norm": ("zero",),
}
_RTOL = {"float64": 1e-6, "float32": 2e-4, "float16": 3e-2}  # AD against differences
_EXACT = {"float64": 1e-12, "float32": 1e-6, "float16": 2e-3}  # rounding-level agreement
_DELTA, _H = 2.0 ** -8, 2.0 ** -16  # step into a piece, difference step inside it


def policy_options(base: KinkPolicy | None = None) -> list[KinkPolicy]:
    """The base policy and every policy differing from it in one key (one per option)."""
    base = base or KinkPolicy()
    out = [base]
    for key, values in POLICY_OPTIONS.items():
        out += [base.replace(**{key: v}) for v in values if v != getattr(base, key)]
    return out


def _fail(msg: str) -> None:
    raise AssertionError(msg)


def _dname(leaves: Sequence[Any]) -> str:
    names = {np.asarray(x).dtype.name for x in leaves}
    return next((n for n in ("float16", "float32") if n in names), "float64")


def _scale(a: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(a), initial=0.0)))


# ---------------------------------------------------------------------- piece oracles
def _side(w_plus: float, bump: np.ndarray) -> list:
    return [(w_plus, [bump]), (1.0 - w_plus, [-bump])]


def _at_zero(weight: Callable) -> Callable:
    """Oracle of relu, leaky_relu, abs: ``weight(policy)`` on the side x > 0 of a kink x = 0."""
    return lambda p, xs, prm, pol: _side(weight(pol), (xs[0] == 0) * 1.0)


_o_relu = _at_zero(lambda pol: pol.relu)
_o_leaky = _at_zero(lambda pol: pol.leaky_relu)
_o_abs = _at_zero(lambda pol: (1.0 + pol.abs) / 2)


def _o_clip(p, xs, prm, pol):
    x, lo, hi = xs[0], prm.get("lo"), prm.get("hi")
    inside = (x == lo) * 1.0 if lo is not None else np.zeros_like(x)  # direction into [lo, hi]
    if hi is not None:
        inside = inside - (x == hi)
    return _side(pol.clip_slope(), inside)


def _o_maxmin(p, xs, prm, pol):
    a, b = xs
    s = -1.0 if p.name == "minimum" else 1.0
    tie = np.equal(a, b)

    def to(x: np.ndarray) -> np.ndarray:  # +-1 where an entry of x takes part in a tie
        lead = tie.ndim - x.ndim
        t = tie.sum(axis=tuple(range(lead))) if lead else tie
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1 and t.shape[i] != 1)
        return s * (t.sum(axis=axes, keepdims=True) > 0)

    w = p.tie_weight(pol, prm)
    pieces = [(w, [to(a), np.zeros_like(b)]), (1.0 - w, [np.zeros_like(a), to(b)])]
    return [pc for pc in pieces if pc[0] > 0]


def _rows(x: np.ndarray, axis: tuple) -> tuple[np.ndarray, Callable]:
    """x with the (negative) axes moved last and flattened to rows, and the inverse map."""
    nd = x.ndim
    red = [nd + a for a in axis]
    perm = [i for i in range(nd) if i not in red] + red
    xt = np.transpose(x, perm)
    return xt.reshape(-1, math.prod(xt.shape[nd - len(red):])), \
        lambda r: np.transpose(r.reshape(xt.shape), np.argsort(perm))


def _winner_pieces(vals: np.ndarray, axis: tuple, split: bool) -> list:
    """Pieces where one maximiser of each row of ``vals`` wins: the first, or each in turn
    (uniform over the maximisers of every row), as (weight, bump) with bump 1 at winners."""
    rows, back = _rows(vals, axis)
    tied = [np.flatnonzero(r == r.max()) for r in rows]
    n = math.lcm(*[len(t) for t in tied]) if split else 1
    out = []
    for k in range(n):
        bump = np.zeros(rows.shape)
        for i, t in enumerate(tied):
            bump[i, t[k % len(t)]] = 1.0
        out.append((1.0 / n, back(bump)))
    return out


def _o_extremum(p, xs, prm, pol):
    s = -1.0 if p.name == "min" else 1.0
    return [(w, [s * b]) for w, b in _winner_pieces(s * xs[0], prm["axis"],
                                                      pol.max == "split")]


def _o_max_pool2d(p, xs, prm, pol):
    """The winner pieces of every window (entries located by an index image; -inf pads)."""
    from ..primitives.pool import window_stack

    x = xs[0]
    idx = window_stack(np.arange(x.size, dtype=np.float64).reshape(x.shape), prm, -1.0)
    vals = window_stack(x, prm, -np.inf).reshape(-1, idx.shape[-1])
    out = []
    for w, b in _winner_pieces(vals, (-1,), pol.max == "split"):
        bump = np.zeros(x.size)
        bump[idx.reshape(-1, idx.shape[-1])[b > 0].astype(int)] = 1.0
        out.append((w, [bump.reshape(x.shape)]))
    return out


def _o_sort(p, xs, prm, pol):
    x = np.moveaxis(xs[0], prm["axis"], -1)
    rows = x.reshape(-1, x.shape[-1])
    groups = []
    for r in rows:
        vals, inv = np.unique(r, return_inverse=True)
        groups += [np.flatnonzero(inv == g) for g in range(len(vals))]
    offsets = np.repeat(np.arange(len(rows)) * x.shape[-1], [len(np.unique(r)) for r in rows])
    split = pol.sort == "split"
    n = math.lcm(*[math.factorial(len(g)) for g in groups]) if split else 1
    out = []
    for k in range(n):
        bump = np.zeros(rows.size)
        for g, off in zip(groups, offsets):
            perms = list(itertools.permutations(g)) if split else [tuple(g)]
            for rank, j in enumerate(perms[k % len(perms)]):
                bump[off + j] = rank
        out.append((1.0 / n, [np.moveaxis(bump.reshape(x.shape), -1, prm["axis"])]))
    return out


def _o_norm(p, xs, prm, pol):
    x, o, axis = xs[0], prm["ord"], prm["axis"]
    if o == 1:
        return _o_abs(p, xs, prm, pol)
    if o == 2:  # zero rows: central differences of ||.|| at 0 give the zero vector exactly
        return [(1.0, [np.zeros_like(x)])]
    pieces = _winner_pieces(np.abs(x), axis, pol.max == "split")
    zero_wins = [i for i in range(x.size) if any(b.flat[i] for _, b in pieces)
                 and x.flat[i] == 0]
    out = []
    for signs in itertools.product((1.0, -1.0), repeat=len(zero_wins)):
        sgn = np.sign(x)
        w_sign = 1.0
        for i, s in zip(zero_wins, signs):
            sgn.flat[i] = s
            w_sign *= (1.0 + s * pol.abs) / 2
        out += [(w * w_sign, [sgn * b]) for w, b in pieces if w * w_sign]
    return out


def _o_svd_norm(p, xs, prm, pol):
    """Per matrix: the nuclear norm at rank r < k averages the pieces x +- c U_0 V_0^T
    (gradients U_1 V_1^T +- U_0 V_0^T); the spectral norm raises the chosen top pair (the
    first, or each tied one in turn under "split"), and at 0 averages +- c u v^T. The bumps
    move singular values by c = 64 delta, keeping singular vectors exact: the gradient there
    is the declared one exactly, and the differences stay accurate."""
    from ..primitives.spectral import first_pair

    x = xs[0]
    m, n = x.shape[-2:]
    flat, c = x.reshape(-1, m, n), 64.0
    slices = []
    for b in range(flat.shape[0]):
        U, s, Vt = np.linalg.svd(flat[b])
        k, tol = s.shape[0], max(m, n) * np.finfo(np.float64).eps * s[0]
        if prm["ord"] == "nuc":
            r1 = int(np.count_nonzero(s > tol))
            bump = c * U[:, r1:k] @ Vt[r1:k]
            slices.append([(1.0, bump * 0)] if r1 == k else [(0.5, bump), (0.5, -bump)])
            continue
        r = int(np.count_nonzero(s[0] - s <= tol))
        if s[0] == 0:
            bump = c * U[:, :1] @ Vt[:1]
            slices.append([(0.5, bump), (0.5, -bump)])
        elif r > 1 and pol.max == "split":
            slices.append([(1.0 / r, c * U[:, i:i + 1] @ Vt[i:i + 1]) for i in range(r)])
        else:
            slices.append([(1.0, c * first_pair(U[:, :r], Vt[:r].T))])
    out = []
    for combo in itertools.product(*slices):
        w = math.prod(wi for wi, _ in combo)
        out.append((w, [np.stack([bi for _, bi in combo]).reshape(x.shape)]))
    return out


#: Piece oracles by primitive name (fallback: by policy key for one-input elementwise ops).
#: Each maps (prim, float64 args, params, policy) to [(weight, [bump per argument])].
KINK_ORACLES: dict[str, Callable] = {
    "relu": _o_relu, "leaky_relu": _o_leaky, "abs": _o_abs, "clip": _o_clip,
    "maximum": _o_maxmin, "minimum": _o_maxmin, "max": _o_extremum, "min": _o_extremum,
    "sort": _o_sort, "norm": _o_norm, "svd_norm": _o_svd_norm, "max_pool2d": _o_max_pool2d,
}


def _by_switch_side(weight: Callable) -> Callable:
    """Oracle for a new one-input elementwise primitive: the policy weight goes to the side
    where its switch z > 0 (relu, leaky_relu) or (1 + s)/2 to it (abs)."""

    def oracle(p, xs, prm, pol):
        def z(y: np.ndarray) -> np.ndarray:
            return np.asarray(p.switch([y], p.impl(y, **prm), prm), np.float64)

        if len(xs) != 1:
            return None
        x = xs[0]
        rising = np.sign(z(x + _H) - z(x - _H))  # the direction in which z increases
        return _side(weight(pol), rising * (z(x) == 0))

    return oracle


_BY_KEY = {"relu": _by_switch_side(lambda pol: pol.relu),
           "leaky_relu": _by_switch_side(lambda pol: pol.leaky_relu),
           "abs": _by_switch_side(lambda pol: (1.0 + pol.abs) / 2)}


# ---------------------------------------------------------------------- the checks
class _Case:
    """A primitive at one sample point: floating-point array arguments are the inputs."""

    def __init__(self, prim: Primitive, args: Sequence[Any], params: dict) -> None:
        self.prim, self.args, self.params = prim, list(args), params
        self.pos = [i for i, a in enumerate(args)
                    if isinstance(a, (np.ndarray, np.floating)) and np.asarray(a).dtype.kind == "f"]
        self.xs = [np.asarray(args[i]) for i in self.pos]
        self.x64 = [x.astype(np.float64) for x in self.xs]
        self.sizes = [x.size for x in self.xs]
        self.n = sum(self.sizes)
        self.x0 = np.concatenate([x.ravel() for x in self.x64]) if self.xs else np.zeros(0)
        self.out = np.asarray(prim.impl(*self.args, **params))

    def merge(self, xs: Sequence[Any]) -> list:
        full = list(self.args)
        for i, x in zip(self.pos, xs):
            full[i] = x
        return full

    def f64(self, flat: np.ndarray) -> np.ndarray:
        """impl at a flat float64 input vector, as a flat float64 output."""
        parts = np.split(flat, np.cumsum(self.sizes)[:-1])
        xs = [q.reshape(x.shape) for q, x in zip(parts, self.xs)]
        return np.asarray(self.prim.impl(*self.merge(xs), **self.params), np.float64).ravel()

    def traced(self) -> Any:
        def f(*xs: Any) -> Any:
            return bind(self.prim, *self.merge(xs), **self.params)

        return trace_call(f, self.xs, {}, list(range(len(self.xs))), "testing")

    def fwd(self, tr: Any, dirs: np.ndarray, policy: KinkPolicy, mode: str = "policy"
            ) -> np.ndarray:
        """Tangents of the output for flat directions ``dirs`` (K, n): shape (K, m)."""
        parts = np.split(dirs, np.cumsum(self.sizes)[:-1], axis=1)
        tans = {v.index: p.reshape((len(dirs),) + x.shape).astype(x.dtype)
                for v, p, x in zip(tr.in_vars, parts, self.xs)}
        tan, _ = forward_sweep(tr.eqns, tr.vals, tans, policy, mode=mode)
        t = tan.get(tr.outs[0].index, np.zeros((len(dirs),) + self.out.shape))
        return np.asarray(t, np.float64).reshape(len(dirs), -1)

    def rev(self, tr: Any, policy: KinkPolicy) -> np.ndarray:
        """The Jacobian (m, n) by one batched reverse sweep with the m unit cotangents."""
        m = self.out.size
        seed = np.eye(m, dtype=self.out.dtype).reshape((m,) + self.out.shape)
        ct = reverse_sweep(tr.eqns, tr.vals, {tr.outs[0].index: seed}, policy)
        cols = [np.broadcast_to(ct.get(v.index, np.zeros(())), (m,) + x.shape).reshape(m, -1)
                for v, x in zip(tr.in_vars, self.xs)]
        return np.concatenate(cols, axis=1).astype(np.float64)

    def central(self, y: np.ndarray, dirs: np.ndarray, h: float = _H) -> np.ndarray:
        """Central differences of impl at y along each direction: (K, m)."""
        return np.stack([(self.f64(y + h * d) - self.f64(y - h * d)) / (2 * h) for d in dirs])

    def one_sided(self, dirs: np.ndarray, t: float) -> np.ndarray:
        f0 = self.f64(self.x0)
        return np.stack([(self.f64(self.x0 + t * d) - f0) / t for d in dirs])


def declared_jacobian(prim: Primitive, args: Sequence[Any], params: dict, policy: KinkPolicy,
                      oracle: Callable | None = None) -> np.ndarray | None:
    """The Jacobian (m, n) the policy declares at a point: the weighted sum, over the smooth
    pieces the policy names, of central differences taken inside each piece (float64).
    None when no piece oracle is known for the primitive."""
    fn = oracle or KINK_ORACLES.get(prim.name) or _BY_KEY.get(prim.policy_key or "")
    case = _Case(prim, args, params)
    pieces = None if fn is None else fn(prim, case.x64, params, policy)
    if pieces is None:
        return None
    jac = np.zeros((case.n, case.out.size))
    for w, bumps in pieces:
        if w:
            bump = np.concatenate([np.broadcast_to(b, x.shape).ravel()
                                   for b, x in zip(bumps, case.x64)])
            jac += w * case.central(case.x0 + _DELTA * bump, np.eye(case.n))
    return jac.T


def _close(got: np.ndarray, want: np.ndarray, tol: float, what: str) -> None:
    err = float(np.max(np.abs(got - want), initial=0.0))
    if err > tol * _scale(want):
        _fail(f"{what}: deviation {err:.3g}\n got\n{got}\n want\n{want}")


def _check_switch(case: _Case, where: str) -> None:
    """Switch zeros = the output (or input) entries where one-sided derivatives differ."""
    z = case.prim.switch(case.args, case.out, case.params)
    if z is None or not (np.asarray(z) == 0).any():
        _fail(f"{where}: no switching value is zero at this kink sample (switch: {z})")
    z, eye, t = np.asarray(z), np.eye(case.n), 2.0 ** -14
    plus = 2 * case.one_sided(eye, t) - case.one_sided(eye, 2 * t)
    minus = -(2 * case.one_sided(-eye, t) - case.one_sided(-eye, 2 * t))
    kink = np.abs(plus - minus) > 1e-6  # (n, m): direction i breaks output entry j
    kout, kin = kink.any(axis=0).reshape(case.out.shape), kink.any(axis=1)
    if z.shape == case.out.shape:
        ok, want = np.array_equal(z == 0, kout), kout
    elif len(case.xs) == 1 and z.shape == case.xs[0].shape:
        ok, want = np.array_equal(z == 0, kin.reshape(z.shape)), kin.reshape(z.shape)
    else:
        ok, want = bool((z == 0).any()) == bool(kout.any()), kout
    if not ok:
        _fail(f"{where}: switch zeros\n{z == 0}\ndo not match the nondifferentiable entries "
              f"found by one-sided differences\n{want}")


def _check_abs_form(case: _Case, where: str) -> None:
    try:
        plain = case.prim.abs_form(case.args, case.params)
        if plain is None:
            return
        prog = trace(lambda *xs: case.prim.abs_form(case.merge(xs), case.params), *case.xs,
                     argnums=tuple(range(len(case.xs))))
    except NotAbsSmoothError:
        return
    bad = [e.prim.name for e in prog.eqns if e.prim.nonsmooth and e.prim.name != "abs"]
    if bad:
        _fail(f"{where}: abs_form uses nonsmooth primitives {bad} (only abs is allowed)")
    rng = np.random.default_rng(1)
    tol = 1e-12 if case.out.dtype == np.float64 else _EXACT[case.out.dtype.name] * 8
    for k in range(3):
        xs = [x + (k > 0) * rng.uniform(-0.1, 0.1, x.shape).astype(x.dtype) for x in case.xs]
        want = np.asarray(case.prim.impl(*case.merge(xs), **case.params), np.float64)
        _close(np.asarray(prog(*xs), np.float64), want, tol, f"{where}: traced abs_form")
    _close(np.asarray(plain, np.float64), case.out.astype(np.float64), tol,
           f"{where}: abs_form on plain arrays")


def check_kinks(prim: Primitive, policies: Sequence[KinkPolicy] | None = None,
                dtype: Any = np.float64, seed: int = 0, oracle: Callable | None = None,
                samples: Sequence[tuple] | None = None) -> int:
    """Run the generic kink checks on ``prim`` at its ``kink_samples`` (or ``samples``).

    At each point: (1) ``switch`` is zero exactly at the entries where one-sided differences
    disagree; (2) the abs form evaluates to ``impl``; and for every policy (default
    :func:`policy_options`): (3) the JVP along +e_i and -e_i equals the declared Jacobian of
    :func:`declared_jacobian` (skipped when no oracle is known; pass ``oracle=``) and (4) the
    VJP gives its transpose; (5) ``mode="directional"`` along +-e_i and random directions
    equals the one-sided difference (f(x + t d) - f(x)) / t, exactly where f is linear on
    [x, x + 2t d]; (6) ``mode="lex"`` with tangents (e_1, m, e_1, ..., e_n), m generic, gives
    the derivatives of the one piece containing x + delta e_1 + delta^2 m. Returns the number
    of points checked.
    """
    rng = np.random.default_rng(seed)
    pts = prim.kink_samples(rng, dtype) if samples is None else samples
    if not pts and prim.nonsmooth:
        _fail(f"check_kinks: {prim.name} is nonsmooth but has no kink_samples")
    policies = policy_options(current_policy()) if policies is None else policies
    tol = _EXACT[np.dtype(dtype).name]
    for j, (args, params) in enumerate(pts):
        case = _Case(prim, args, params)
        where = f"check_kinks({prim.name}, kink sample {j}, {np.dtype(dtype).name})"
        _check_switch(case, where)
        _check_abs_form(case, where)
        if not prim.differentiable or not case.n:
            continue
        tr, eye = case.traced(), np.eye(case.n)
        dirs = np.concatenate([eye, -eye, rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (4, case.n))])
        d1, d2 = case.one_sided(dirs, 2.0 ** -16), case.one_sided(dirs, 2.0 ** -15)
        linear = np.all(d1 == d2, axis=1, keepdims=True)
        curved = (prim.name == "norm" and params.get("ord") == 2) or \
            prim.name == "svd_norm"  # not piecewise linear
        m = rng.choice([-1.0, 1.0], case.n) * (rng.permutation(case.n) + 1) / 32
        lex = np.concatenate([eye[:1], m[None], eye])
        lex_want = case.central(case.x0 + _DELTA * eye[0] + _DELTA ** 2 * m, lex, 2.0 ** -24)
        for pol in policies:
            at = f"{where} under {pol}"
            jf = case.fwd(tr, eye, pol)
            _close(case.fwd(tr, -eye, pol), -jf, 0.0, f"{at}: JVP along -e_i != -(JVP along e_i)")
            _close(case.rev(tr, pol), jf.T, tol, f"{at}: VJP disagrees with JVP (rows: e_i)")
            want = declared_jacobian(prim, case.args, params, pol, oracle)
            if want is not None:
                _close(jf, want.T, max(tol, 1e-8) if curved else tol,
                       f"{at}: JVP along e_i (rows) != the declared choice")
            got = case.fwd(tr, dirs, pol, mode="directional")
            _close(np.where(linear, got, 0), np.where(linear, d1, 0), tol,
                   f"{at}: directional mode != exact one-sided derivative")
            _close(got, 2 * d1 - d2, max(tol, 1e-7),
                   f"{at}: directional mode != one-sided derivative")
            if not curved:
                _close(case.fwd(tr, lex, pol, mode="lex"), lex_want, tol,
                       f"{at}: lex mode != the piece entered along (e_1, m)")
    return len(pts)
