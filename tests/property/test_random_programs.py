"""Property tests (hypothesis): random broadcast shapes and random programs built from the
registry's primitives. Checked: the VJP/JVP transposition identity (at kinks too), grad
against central differences at points with a margin from every kink, float32 kept, and a
replayed Program against tracing anew."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.primitive import registry
from kinkgrad.modes.api import trace_call
from kinkgrad.testing import check_grads, check_transpose

N = 4
W = np.random.default_rng(5).normal(size=(N, N)) / 2
C = np.random.default_rng(6).normal(size=N)
FEW = settings(max_examples=60, deadline=None)

# Each op maps two operands of shape (N,) to one of shape (N,), using the named primitives
# (plus add/mul/sub for glue); kept bounded so that programs stay well scaled.
OPS = {
    "abs": lambda a, b: knp.abs(a),
    "relu": lambda a, b: knp.relu(a) - b,
    "leaky_relu": lambda a, b: knp.leaky_relu(a, 0.25),
    "maximum": knp.maximum,
    "minimum": knp.minimum,
    "clip": lambda a, b: knp.clip(a, -0.5, 0.5) + b,
    "max": lambda a, b: knp.max(a, axis=0, keepdims=True) * knp.tanh(b),
    "min": lambda a, b: b - knp.min(a, axis=0, keepdims=True),
    "sort": lambda a, b: knp.sort(a) + b,
    "max_pool2d": lambda a, b: knp.reshape(knp.max_pool2d(  # overlapping, padded windows
        knp.reshape(a, (1, 1, 2, 2)), (2, 1), stride=1, padding=(1, 0)), (6,))[:N] + b,
    "norm": lambda a, b: knp.tanh(b) * knp.linalg.norm(a, axis=0, keepdims=True),
    "mul": lambda a, b: a * knp.tanh(b),
    "div": lambda a, b: a / (1.0 + b * b),
    "neg": lambda a, b: -a,
    "exp": lambda a, b: knp.exp(knp.tanh(a)),
    "sin": lambda a, b: knp.sin(a) * b,
    "cos": lambda a, b: knp.cos(a + b),
    "cumsum": lambda a, b: knp.cumsum(a) / N - b,
    "prod": lambda a, b: b * knp.prod(knp.tanh(a), axis=0, keepdims=True),
    "log": lambda a, b: knp.log(1.0 + a * a),
    "log1p": lambda a, b: knp.log1p(knp.sigmoid(a)),
    "sqrt": lambda a, b: knp.sqrt(1.0 + b * b) - a,
    "pow": lambda a, b: (1.0 + a * a) ** 0.75,
    "softplus": lambda a, b: knp.softplus(a) - knp.softplus(b),
    "logsumexp": lambda a, b: b - knp.logsumexp(a, axis=0, keepdims=True),
    "matmul": lambda a, b: W.astype(a.dtype) @ a,
    "sum": lambda a, b: a + knp.sum(b) / N,
    "where": lambda a, b: knp.where(a > b, a, 0.5 * b),
    "less": lambda a, b: knp.where(a < 0.25, b, a),
    "getitem": lambda a, b: a[::-1] + b[np.array([0, 0, 1, 3])],
    "concatenate": lambda a, b: knp.concatenate([a[:2], b[2:]]),
    "stack": lambda a, b: knp.sum(knp.stack([a, b]), axis=0),
    "transpose": lambda a, b: knp.reshape(knp.transpose(knp.reshape(a, (2, 2))), (N,)),
    "broadcast_to": lambda a, b: knp.mean(knp.broadcast_to(a, (3, N)), axis=0),
    "svd_norm": lambda a, b: knp.tanh(b) * knp.linalg.norm(knp.reshape(a, (2, 2)), "nuc")
    + knp.linalg.norm(knp.reshape(b, (2, 2)), 2) / 2,
    "erf": lambda a, b: knp.erf(a) * b,
    "logaddexp": lambda a, b: knp.logaddexp(a, b) - b,
    "einsum": lambda a, b: knp.einsum("i,ij,j->i", a, W.astype(a.dtype), knp.tanh(b)),
}
NAMES = sorted(n for n in OPS if n in registry())  # built from the registry's dictionary


@st.composite
def programs(draw):
    steps = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 9),
                                    st.integers(0, 9)), min_size=1, max_size=6))

    def f(x):
        pool = [x, knp.tanh(W.astype(x.dtype) @ x)]  # constants in the input's dtype
        for name, i, j in steps:
            pool.append(OPS[name](pool[i % len(pool)], pool[j % len(pool)]))
        return pool[-1]

    f.__name__ = " -> ".join(s[0] for s in steps)
    return f


def smooth_points():
    return hnp.arrays(np.float64, N, elements=st.floats(-2, 2).map(lambda v: round(v, 9)))


def kink_points():  # a 1/4 grid: zeros, ties and bounds are frequent
    return hnp.arrays(np.float64, N, elements=st.integers(-8, 8).map(lambda k: k / 4))


def margin(f, x) -> float:
    """Smallest |switching value| over the program's nonsmooth nodes (inf if none)."""
    tr = trace_call(f, [x], {}, [0], "margin")
    low = np.inf
    for e in tr.eqns:
        if e.prim.nonsmooth:
            args = [tr.vals[i.index] if hasattr(i, "index") else i.value for i in e.inputs]
            z = np.asarray(e.prim.switch(args, tr.vals[e.out.index], e.params))
            low = min(low, float(np.min(np.abs(z), initial=np.inf)))
    return low


def test_the_program_menu_covers_the_nonsmooth_registry():
    nonsmooth = {n for n, p in registry().items() if p.policy_key}
    assert nonsmooth <= set(NAMES)


@FEW
@given(programs(), st.one_of(smooth_points(), kink_points()))
def test_vjp_and_jvp_are_transposes_on_random_programs(f, x):
    check_transpose(f, x, batch=2)
    with kinkgrad.kink_policy(relu=0.5, abs=1.0, max="split", sort="split", clip=0.0):
        check_transpose(f, x, batch=2)


@FEW
@given(programs(), smooth_points())
def test_grad_matches_central_differences_away_from_kinks(f, x):
    assume(margin(f, x) > 1e-3)
    loss = lambda a: knp.sum(f(a) * C)  # noqa: E731
    g = kinkgrad.grad(loss)(x)
    eps = 1e-7
    with np.errstate(under="ignore"):  # NOTE: the truth's own plain NumPy evaluations:
        # products of tanh at x = (0, 1, 1, 6e-8) underflow there (--hypothesis-seed=8)
        fd = np.array([(loss(x + eps * e) - loss(x - eps * e)) / (2 * eps) for e in np.eye(N)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


@FEW
@given(programs(), smooth_points())
def test_float32_inputs_keep_float32_values_and_gradients(f, x):
    x32 = x.astype(np.float32)
    loss = lambda a: knp.sum(f(a) * C.astype(a.dtype))  # noqa: E731
    v, g = kinkgrad.value_and_grad(loss)(x32)
    assert np.asarray(v).dtype == np.float32 and g.dtype == np.float32
    _, t = kinkgrad.jvp(f, (x32,), (np.ones(N, np.float32),))
    assert t.dtype == np.float32
    assume(margin(f, x32.astype(np.float64)) > 1e-2)  # same pieces in both precisions
    g64 = kinkgrad.grad(loss)(x32.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(g64).max()))


@FEW
@given(programs(), st.one_of(smooth_points(), kink_points()), st.booleans())
def test_a_replayed_program_gives_what_tracing_gives(f, x, other_policy):
    """The Program of a random program, replayed by value_and_grad (with a kink report, so
    the kink resolutions' inputs are kept) and by vjp, against tracing the function anew:
    the same rules on the same values, so exactly the same numbers (tracing itself is
    checked against finite differences and the transposition identity above). Programs
    reuse intermediates (the pool), so a value read by one rule and not another is there."""
    loss = lambda a: knp.sum(f(a) * C)  # noqa: E731
    pol = kinkgrad.kink_policy(relu=1.0, abs=-1.0, max="split", sort="split") \
        if other_policy else None
    prog = kinkgrad.trace(loss, x)
    v, g, rep = kinkgrad.value_and_grad(prog, policy=pol, report=True)(x)
    v_ref, g_ref, rep_ref = kinkgrad.value_and_grad(loss, policy=pol, report=True)(x)
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(g, g_ref)
    assert rep.total == rep_ref.total
    np.testing.assert_array_equal(kinkgrad.grad(prog, policy=pol)(x),
                                  kinkgrad.grad(loss, policy=pol)(x))
    w = np.cos(np.arange(N) + 1.0)
    prog_f = kinkgrad.trace(f, x)
    np.testing.assert_array_equal(kinkgrad.vjp(prog_f, x, policy=pol)[1](w)[0],
                                  kinkgrad.vjp(f, x, policy=pol)[1](w)[0])


BINARY = {"add": knp.add, "sub": knp.subtract, "mul": knp.multiply,
          "div": lambda a, b: a / (1.5 + knp.tanh(b)), "maximum": knp.maximum,
          "minimum": knp.minimum, "pow": lambda a, b: (1.0 + a * a) ** knp.tanh(b),
          "where": lambda a, b: knp.where(a > b, a * b, b)}


@FEW
@given(st.sampled_from(sorted(BINARY)),
       hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       st.integers(0, 2 ** 16), st.sampled_from([np.float64, np.float32]))
def test_broadcasting_binary_ops(name, shapes, seed, dtype):
    rng = np.random.default_rng(seed)
    a, b = (rng.uniform(-2, 2, s).astype(dtype) for s in shapes.input_shapes)
    f = BINARY[name]
    gap = np.abs(np.asarray(a, float) - np.asarray(b, float))
    assume(name not in ("maximum", "minimum", "where") or gap.min(initial=1.0) > 1e-2)
    out = kinkgrad.jacobian(lambda u: f(u, b))(a)
    assert out.shape == shapes.result_shape + a.shape and out.dtype == dtype
    check_grads(f, a, b)
    check_transpose(f, a, b, batch=2)
    ga, gb = kinkgrad.vjp(f, a, b)[1](np.ones(shapes.result_shape, dtype))
    assert ga.shape == a.shape and gb.shape == b.shape and ga.dtype == gb.dtype == dtype
