"""Generic rule tests: every registered primitive x dtype x the primitive's own samples.

One parameter family (``CASES``: registry x {float64, float32, float16}) drives every check of
style.md 8.5; each check loops over the primitive's ``samples()`` (smooth points with a margin
from every kink) and ``kink_samples()`` (points with entries exactly at a kink). The truths are
NumPy/SciPy (values), central and one-sided differences (derivatives), differences inside the
pieces a kink policy names (declared kink values, see ``kinkgrad.testing``) and hand counts
(cost model).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.special

import kinkgrad
from _conv_ref import conv2d_ref
from _pool_ref import max_pool2d_ref
from kinkgrad._core.primitive import registry
from kinkgrad._core.tracer import bind
from kinkgrad.errors import NotAbsSmoothError
from kinkgrad.kinks import KinkPolicy
from kinkgrad.modes.api import trace_call
from kinkgrad.modes.sweeps import forward_sweep, reverse_sweep
from kinkgrad.testing import KINK_ORACLES, check_kinks, check_transpose, policy_options

PRIMS = registry()
DTYPES = (np.float64, np.float32, np.float16)
CASES = [pytest.param(n, d, id=f"{n}-{np.dtype(d).name}") for n in sorted(PRIMS) for d in DTYPES]
# rounding-level tolerances: values (impl vs NumPy), transposition, low precision vs float64
VAL_TOL = {"float64": 1e-13, "float32": 1e-5, "float16": 4e-3}
DOT_TOL = {"float64": 1e-12, "float32": 1e-5, "float16": 5e-3}


def _norm_ref(x, ord, axis, keepdims):
    return np.linalg.norm(x, ord=ord if len(axis) == 1 else None, axis=axis, keepdims=keepdims)


NUMPY_REF = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "neg": np.negative, "pow": np.power, "abs": np.abs, "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x, alpha: np.where(x > 0, x, alpha * x), "maximum": np.maximum,
    "minimum": np.minimum, "clip": lambda x, lo, hi: np.clip(x, lo, hi), "sum": np.sum,
    "max": np.max, "min": np.min, "sort": lambda x, axis: np.sort(x, axis=axis),
    "matmul": np.matmul, "norm": _norm_ref, "exp": np.exp, "log": np.log, "log1p": np.log1p,
    "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
    "sigmoid": scipy.special.expit, "prod": np.prod,
    "cumsum": lambda x, axis: np.cumsum(x, axis=axis),
    "softplus": lambda x: np.logaddexp(0, x), "logsumexp": scipy.special.logsumexp,
    "greater": np.greater, "greater_equal": np.greater_equal, "less": np.less,
    "less_equal": np.less_equal, "equal": np.equal, "not_equal": np.not_equal,
    "where": np.where, "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, axes: np.transpose(x, axes),
    "getitem": lambda x, idx, advanced: x[idx],
    "concatenate": lambda *a, axis: np.concatenate(a, axis=axis),
    "stack": lambda *a, axis: np.stack(a, axis=axis),
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
    "conv2d": conv2d_ref,
    "max_pool2d": max_pool2d_ref,
    "erf": scipy.special.erf, "logaddexp": np.logaddexp,
    "einsum": lambda *a, specs, out: np.einsum(",".join(specs) + "->" + out, *a),
    "svd_norm": lambda x, ord: np.linalg.norm(x, ord, axis=(-2, -1)),
}


# ---------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _float16_subnormals(request):
    """float16 values near 0 legitimately underflow to subnormals (e.g. 1 - tanh^2 at a small
    input); NaN, inf, overflow and invalid operations still raise (tests/conftest.py)."""
    spec = getattr(request.node, "callspec", None)
    if spec is not None and spec.params.get("dtype") is np.float16:
        with np.errstate(under="ignore"):
            yield
    else:
        yield


def _is_input(a) -> bool:
    return isinstance(a, (np.ndarray, np.floating)) and np.asarray(a).dtype.kind == "f"


def points(name: str, dtype, kinds=("smooth", "kink")) -> list:
    """(label, args, params) for the primitive's own samples, drawn with a per-name seed."""
    prim, out = PRIMS[name], []
    for kind in kinds:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        pts = prim.samples(rng, dtype) if kind == "smooth" else prim.kink_samples(rng, dtype)
        out += [(f"{name} {kind} sample {j}", a, p) for j, (a, p) in enumerate(pts)]
    return out


class Point:
    """A primitive applied at one sample; its floating-point arrays are the inputs."""

    def __init__(self, name: str, args, params) -> None:
        self.prim, self.args, self.params = PRIMS[name], list(args), params
        self.pos = [i for i, a in enumerate(args) if _is_input(a)]
        self.xs = [np.asarray(args[i]) for i in self.pos]
        self.n = sum(x.size for x in self.xs)

    def merge(self, xs) -> list:
        full = list(self.args)
        for i, x in zip(self.pos, xs):
            full[i] = x
        return full

    def f(self, *xs):
        return bind(self.prim, *self.merge(xs), **self.params)

    def impl64(self, flat: np.ndarray) -> np.ndarray:
        parts = np.split(flat, np.cumsum([x.size for x in self.xs])[:-1])
        xs = [q.reshape(x.shape) for q, x in zip(parts, self.xs)]
        return np.asarray(self.prim.impl(*self.merge(xs), **self.params), np.float64).ravel()

    def flat64(self) -> np.ndarray:
        return np.concatenate([x.astype(np.float64).ravel() for x in self.xs])

    def trace(self):
        return trace_call(self.f, self.xs, {}, list(range(len(self.xs))), "test")

    def forward(self, tr, dirs: np.ndarray, policy: KinkPolicy) -> np.ndarray:
        """Output tangents (K, *out) for flat directions (K, n), K as one leading batch."""
        parts = np.split(dirs, np.cumsum([x.size for x in self.xs])[:-1], axis=1)
        seeds = {v.index: p.reshape((len(dirs),) + x.shape).astype(x.dtype)
                 for v, p, x in zip(tr.in_vars, parts, self.xs)}
        tan, _ = forward_sweep(tr.eqns, tr.vals, seeds, policy)
        out = tr.outs[0]
        return tan.get(out.index, np.zeros((len(dirs),) + tuple(out.shape), self.xs[0].dtype))

    def reverse(self, tr, seed: np.ndarray, policy: KinkPolicy) -> np.ndarray:
        """Flat input cotangents (*batch, n) for an output cotangent (*batch, *out)."""
        ct = reverse_sweep(tr.eqns, tr.vals, {tr.outs[0].index: seed}, policy)
        batch = seed.shape[: seed.ndim - len(tr.outs[0].shape)]
        cols = []
        for v, x in zip(tr.in_vars, self.xs):
            c = ct.get(v.index)
            c = np.zeros(batch + x.shape, x.dtype) if c is None else c
            assert np.asarray(c).dtype == x.dtype, f"cotangent dtype {np.asarray(c).dtype}"
            cols.append(np.broadcast_to(c, batch + x.shape).reshape(batch + (-1,)))
        return np.concatenate(cols, axis=-1)


def _scale(*arrays) -> float:
    return max([1.0] + [float(np.max(np.abs(np.asarray(a, np.float64)), initial=0))
                        for a in arrays])


# ---------------------------------------------------------------------- (1) values
@pytest.mark.parametrize("name,dtype", CASES)
def test_impl_equals_numpy(name, dtype):
    assert name in NUMPY_REF, f"add a NumPy reference for primitive {name!r} to NUMPY_REF"
    dname = np.dtype(dtype).name
    for label, args, params in points(name, dtype):
        got = np.asarray(PRIMS[name].impl(*args, **params))
        ref = NUMPY_REF[name](*[np.asarray(a, np.float64) if _is_input(a) else a for a in args],
                              **params)
        if got.dtype != bool:
            assert got.dtype == dtype, f"{label}: impl returned {got.dtype} for {dname} inputs"
        np.testing.assert_allclose(got.astype(np.float64), np.asarray(ref, np.float64),
                                   rtol=VAL_TOL[dname], atol=VAL_TOL[dname] * _scale(ref),
                                   err_msg=label)


# ---------------------------------------------------------------------- (2) JVP vs differences
@pytest.mark.parametrize("name,dtype", CASES)
def test_jvp_matches_central_differences(name, dtype):
    for label, args, params in points(name, dtype, ("smooth",)):
        pt = Point(name, args, params)
        if not pt.n:
            continue
        pol = KinkPolicy()
        jac = pt.forward(pt.trace(), np.eye(pt.n), pol).reshape(pt.n, -1)
        assert jac.dtype == dtype or not PRIMS[name].differentiable, label
        if dtype == np.float64:
            x, eps = pt.flat64(), 1e-6
            fd = np.stack([(pt.impl64(x + eps * e) - pt.impl64(x - eps * e)) / (2 * eps)
                           for e in np.eye(pt.n)])
            np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-6 * _scale(fd),
                                       err_msg=f"{label}: JVP != central differences")
        else:  # value check: the low-precision JVP against the float64 JVP at the same point
            p64 = Point(name, [a.astype(np.float64) if _is_input(a) else a for a in args],
                        params)
            ref = p64.forward(p64.trace(), np.eye(pt.n), pol).reshape(pt.n, -1)
            tol = 1e-5 if dtype == np.float32 else 1e-2
            np.testing.assert_allclose(jac.astype(np.float64), ref, rtol=tol,
                                       atol=tol * _scale(ref), err_msg=label)


# ---------------------------------------------------------------------- (3) transposition
@pytest.mark.parametrize("name,dtype", CASES)
def test_transposition_single_and_batched(name, dtype):
    dname, k = np.dtype(dtype).name, 3
    rng = np.random.default_rng(7)
    for label, args, params in points(name, dtype):
        pt = Point(name, args, params)
        if not pt.n:
            continue
        tr = pt.trace()
        out_shape = tuple(tr.outs[0].shape)
        if not PRIMS[name].differentiable:  # a comparison: derivative zero both ways
            assert not np.any(pt.forward(tr, np.ones((1, pt.n)), KinkPolicy())), label
            assert not np.any(pt.reverse(tr, np.ones(out_shape, dtype), KinkPolicy())), label
            continue
        kink = "kink" in label
        for pol in policy_options() if kink else [KinkPolicy()]:
            u = rng.standard_normal((k, pt.n)).astype(dtype)
            v = rng.standard_normal((k,) + out_shape).astype(dtype)
            tb = pt.forward(tr, u, pol)                     # K tangents, one sweep
            cb = pt.reverse(tr, v, pol)                     # K cotangents, one sweep
            for i in range(k):
                lhs = np.asarray(v[i], np.float64) * np.asarray(tb[i], np.float64)
                rhs = np.asarray(cb[i], np.float64) * np.asarray(u[i], np.float64)
                gap = abs(lhs.sum() - rhs.sum())
                assert gap <= DOT_TOL[dname] * max(np.abs(lhs).sum() + np.abs(rhs).sum(),
                                                   1e-300), f"{label} {pol}: <v,Ju> != <J^Tv,u>"
                one_t = pt.forward(tr, u[i:i + 1], pol)[0]
                one_c = pt.reverse(tr, v[i], pol)
                tol = DOT_TOL[dname]
                np.testing.assert_allclose(np.asarray(tb[i], np.float64), one_t.astype(float),
                                           rtol=tol, atol=tol * _scale(one_t), err_msg=label)
                np.testing.assert_allclose(np.asarray(cb[i], np.float64), one_c.astype(float),
                                           rtol=tol, atol=tol * _scale(one_c), err_msg=label)
            check_transpose(pt.f, *pt.xs, policy=pol)  # the public API (trailing batch axis)


# ---------------------------------------------------------------------- (4) kink policies
@pytest.mark.parametrize("name,dtype", CASES)
def test_kink_choices_declared_and_directional(name, dtype):
    prim = PRIMS[name]
    if not prim.nonsmooth:
        assert prim.kink_samples(np.random.default_rng(0), dtype) == []
        assert prim.switch(*_first_point(name, dtype)) is None
        return
    if prim.differentiable:
        assert name in KINK_ORACLES, f"no declared-choice oracle for {name}"
    assert check_kinks(prim, dtype=dtype) > 0


@pytest.mark.parametrize("name,dtype", [c for c in CASES if c.values[1] == np.float64])
def test_reverse_with_directional_selections_gives_the_piece_gradient(name, dtype):
    """A forward sweep in mode "directional" along a generic m, kept, then a reverse sweep
    with those selections: v^T J_piece for the piece entered along m (clarke_grad's path)."""
    prim = PRIMS[name]
    if not (prim.nonsmooth and prim.differentiable):
        return
    rng = np.random.default_rng(5)
    for label, args, params in points(name, dtype, ("kink",)):
        pt = Point(name, args, params)
        tr = pt.trace()
        m = rng.choice([-1.0, 1.0], pt.n) * (rng.permutation(pt.n) + 1) / 32
        parts = np.split(m[None], np.cumsum([x.size for x in pt.xs])[:-1], axis=1)
        seeds = {v.index: q.reshape((1,) + x.shape) for v, q, x in zip(tr.in_vars, parts, pt.xs)}
        _, sels = forward_sweep(tr.eqns, tr.vals, seeds, KinkPolicy(), mode="directional",
                                keep_selections=True)
        v = rng.normal(size=tuple(tr.outs[0].shape))
        ct = reverse_sweep(tr.eqns, tr.vals, {tr.outs[0].index: v}, KinkPolicy(),
                           selections=sels)
        got = np.concatenate([np.reshape(ct.get(i.index, np.zeros(x.shape)), -1)
                              for i, x in zip(tr.in_vars, pt.xs)])
        y, h = pt.flat64() + 2.0 ** -8 * m, 2.0 ** -20  # a point inside the piece
        want = [v.ravel() @ (pt.impl64(y + h * e) - pt.impl64(y - h * e)) / (2 * h)
                for e in np.eye(pt.n)]
        curved = name == "norm" and params["ord"] == 2  # smooth rows change along m
        curved = curved or name == "svd_norm"  # singular vectors turn along m as well
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-2 if curved else 1e-12,
                                   err_msg=label)


def _first_point(name, dtype):
    _, args, params = points(name, dtype, ("smooth",))[0]
    return args, PRIMS[name].impl(*args, **params), params


# ---------------------------------------------------------------------- (5) switches
@pytest.mark.parametrize("name,dtype", CASES)
def test_switch_zero_exactly_at_generated_kinks(name, dtype):
    prim = PRIMS[name]
    for label, args, params in points(name, dtype):
        z = prim.switch(args, prim.impl(*args, **params), params)
        if not prim.nonsmooth:
            assert z is None, f"{label}: a smooth primitive has no switching values"
            continue
        z = np.asarray(z)
        if "kink" in label:
            assert np.any(z == 0), f"{label}: a generated kink sample has no zero switch"
        else:  # smooth samples keep a margin from every kink
            assert np.min(np.abs(z), initial=np.inf) >= 1e-2, f"{label}: switch {z} near 0"


# ---------------------------------------------------------------------- (6) abs forms
@pytest.mark.parametrize("name,dtype", CASES)
def test_abs_form_traced_then_evaluated_equals_impl(name, dtype):
    prim = PRIMS[name]
    if not prim.nonsmooth:
        assert prim.abs_form(list(_first_point(name, dtype)[0]), {}) is None
        return
    rng = np.random.default_rng(3)
    tol = 1e-12 if dtype == np.float64 else 30 * VAL_TOL[np.dtype(dtype).name]
    for label, args, params in points(name, dtype):
        pt = Point(name, args, params)
        val = prim.impl(*args, **params)
        tied = prim.is_switch and np.any(np.asarray(prim.switch(args, val, params)) == 0)
        zero_norm = name == "norm" and params["ord"] == 2 and np.any(np.asarray(val) == 0)
        zero_norm = zero_norm or name == "svd_norm" and "kink" in label  # nuc/spectral kink
        if tied or zero_norm:  # a jump (where on a tie) or ||.||_2 at 0: not abs-smooth
            with pytest.raises(NotAbsSmoothError, match="norm" if zero_norm else "tied"):
                prim.abs_form(args, params)
            continue
        form = prim.abs_form(args, params)
        if prim.is_switch or name in ("abs", "norm", "svd_norm") and params.get("ord") in (
                None, 2, "nuc"):
            assert form is None, label  # abs itself, smooth norm, untied comparison
            continue
        assert form is not None, f"{label}: a nonsmooth primitive needs an abs form"
        prog = kinkgrad.trace(lambda *xs, pt=pt, prm=params: prim.abs_form(pt.merge(xs), prm),
                              *pt.xs)
        used = {e.prim.name for e in prog.eqns if e.prim.nonsmooth}
        assert used <= {"abs"}, f"{label}: abs form uses {used}"
        for step in (0.0, 0.05, 0.3):
            xs = [x + step * rng.uniform(-1, 1, x.shape).astype(dtype) for x in pt.xs]
            want = np.asarray(prim.impl(*pt.merge(xs), **params), np.float64)
            np.testing.assert_allclose(np.asarray(prog(*xs), np.float64), want, rtol=tol,
                                       atol=tol * _scale(want), err_msg=f"{label} step {step}")


# ---------------------------------------------------------------------- (7) cost model
def _costs(prim, in_shapes, out_shape, params, needs):
    return (prim.cost(in_shapes, out_shape, params),
            prim.jvp_cost(in_shapes, out_shape, params, needs),
            prim.vjp_cost(in_shapes, out_shape, params, needs))


def _random_instance(name, args, params, rng):
    """The sample with every dimension d > 1 grown to a random size >= d (consistently)."""
    if name == "reshape":
        a, b, c = (int(s) for s in rng.integers(1, 7, 3))
        return [np.ones((a * b, c))], {"shape": (a, b * c)}
    if name == "broadcast_to":
        a, b, c = (int(s) for s in rng.integers(1, 7, 3))
        return [np.ones((a, 1))], {"shape": (c, a, b)}
    if name == "conv2d":  # batch, channels per group, image and kernel sizes grown apart
        g, n, cg, og, kh, kw = (int(s) for s in rng.integers(1, 4, 6))
        h, w = kh + int(rng.integers(0, 9)), kw + int(rng.integers(0, 9))
        return [np.ones((n, g * cg, h, w)), np.ones((g * og, cg, kh, kw))], {
            **params, "groups": g, "dilation": (1, 1)}
    sizes: dict = {}

    def grow(shape):
        return tuple(1 if d == 1 else sizes.setdefault(d, d + int(rng.integers(0, 6)))
                     for d in shape)

    new = []
    for a in args:
        if isinstance(a, (np.ndarray, np.generic)):
            a = np.asarray(a)
            new.append(rng.random(grow(a.shape)) > 0.5 if a.dtype == bool
                       else rng.uniform(0.5, 2.0, grow(a.shape)))
        else:
            new.append(a)
    return new, params


@pytest.mark.parametrize("name,dtype", CASES)
def test_cost_nonnegative_integers_and_cheap_gradient_bound(name, dtype):
    prim = PRIMS[name]
    rng = np.random.default_rng(11)
    for label, args, params in points(name, dtype):
        for trial in range(8):
            new, prm = _random_instance(name, args, params, rng) if trial else (args, params)
            out = np.shape(prim.impl(*new, **prm))
            ins = [tuple(np.shape(a)) for a in new]
            needs = [_is_input(a) for a in new]
            c, cj, cv = _costs(prim, ins, out, prm, needs)
            for what, val in (("cost", c), ("jvp_cost", cj), ("vjp_cost", cv)):
                assert isinstance(val, (int, np.integer)) and not isinstance(val, bool), \
                    f"{label}: {what} = {val!r} is not an integer"
                assert val >= 0, f"{label}: {what} = {val} < 0"
            assert c + cv <= prim.omega * c, (
                f"{label} at shapes {ins}: cost {c} + vjp_cost {cv} > omega {prim.omega} * cost")


# Hand counts under the model's conventions (docstrings of Primitive.cost / jvp_cost /
# vjp_cost): elementwise ops cost c_fn per output entry; a JVP c_jvp per output entry and
# input plus the additions joining the inputs' terms; a VJP c_vjp per output entry and
# input, the sum over broadcast axes, and one addition per input entry to accumulate.
HAND = [
    # name, shapes, params, needs, (function, jvp, vjp)
    ("add", [(2, 3), (3,)], {}, [1, 1], (6, 6, 6 + (3 + 3))),  # g passes through; b sums 6->3
    ("mul", [(2, 3), (3,)], {}, [1, 1], (6, 6 + 6 + 6, (6 + 6) + (6 + 3 + 3))),
    ("mul", [(2, 3), (3,)], {}, [1, 0], (6, 6, 6 + 6)),
    ("div", [(3,), (3,)], {}, [1, 1], (3, 3 + 3 + 3, (2 * 3 + 3) * 2)),
    ("relu", [(5,)], {}, [1], (5, 5, 2 * 5 + 5)),  # VJP: compare, multiply, accumulate
    ("exp", [(4,)], {}, [1], (4, 4, 4 + 4)),
    ("sum", [(3, 4)], {"axis": (-1,), "keepdims": False}, [1], (12, 12, 12 + 12)),
    ("max", [(3, 4)], {"axis": (-1,), "keepdims": False}, [1], (12, 12 + 12, 3 * 12)),
    # (3,4) @ (4,2): 2mkn = 48; JVP two products and their sum; VJP g b^T (48) + 12
    # accumulations, a^T g (48) + 8 accumulations
    ("matmul", [(3, 4), (4, 2)], {}, [1, 1], (48, 48 + 48 + 6, (48 + 12) + (48 + 8))),
    # stacked (2,3,4) @ (4,2): the cotangent of b is summed over the stack (16 -> 8)
    ("matmul", [(2, 3, 4), (4, 2)], {}, [1, 1], (96, 96 + 96 + 12, (96 + 24) + (96 + 8 + 8))),
    ("matmul", [(4,), (4,)], {}, [1, 1], (8, 8 + 8 + 1, (8 + 4) + (8 + 4))),
    ("sort", [(3, 4)], {"axis": -1}, [1], (12 * 2, 12, 12 * 2 + 2 * 12)),  # n log2 n per row
    ("cumsum", [(3, 4)], {"axis": -1}, [1], (12, 12, 12 + 12)),  # VJP: reversed scan, accumulate
    # prod: the left and right exclusive scans and their product (3 per entry) serve both
    # the JVP (then a product with t and the sum: 2) and the VJP (a product with g, accumulate)
    ("prod", [(3, 4)], {"axis": (-1,), "keepdims": False}, [1], (12, 5 * 12, 5 * 12)),
    ("getitem", [(4, 5)], {"idx": (1,), "advanced": False}, [1], (5, 5, 2 * 5)),
    ("where", [(2, 3), (2, 3), (3,)], {}, [0, 1, 1], (6, 6 + 6 + 6, (6 + 6) + (6 + 3 + 3))),
    ("greater", [(2, 3), (2, 3)], {}, [1, 1], (6, 0, 0)),
]


@pytest.mark.parametrize("name,shapes,params,needs,want", HAND,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HAND)])
def test_cost_matches_hand_count(name, shapes, params, needs, want):
    prim = PRIMS[name]
    args = [np.ones(s, bool if name == "where" and i == 0 else np.float64)
            for i, s in enumerate(shapes)]
    out = np.shape(prim.impl(*args, **params))
    assert _costs(prim, shapes, out, params, [bool(n) for n in needs]) == want


# ---------------------------------------------------------------------- (8) dtypes kept
@pytest.mark.parametrize("name,dtype", [c for c in CASES if c.values[1] != np.float64])
def test_low_precision_values_and_gradients_keep_dtype(name, dtype):
    prim = PRIMS[name]
    for label, args, params in points(name, dtype):
        pt = Point(name, args, params)
        if not pt.n:
            continue
        out, fn = kinkgrad.vjp(pt.f, *pt.xs)
        assert np.asarray(out).dtype == (bool if prim.is_switch else dtype), label
        if not prim.differentiable:
            continue
        cts = fn(np.ones(np.shape(out), dtype))
        assert all(c.dtype == dtype for c in cts), f"{label}: {[c.dtype for c in cts]}"
        _, t = kinkgrad.jvp(pt.f, pt.xs, [np.ones_like(x) for x in pt.xs])
        assert np.asarray(t).dtype == dtype, f"{label}: tangent {np.asarray(t).dtype}"
