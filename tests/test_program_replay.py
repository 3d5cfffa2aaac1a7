"""A traced Program differentiated by replay: ``value_and_grad(program)`` evaluates the
recorded equations and sweeps them backward without calling the function under a new trace.
Its gradients are checked against finite differences (smooth points), hand-derived Clarke
elements (kinks), and the traced path's answers for kink reports and error messages; the
arguments ``kinkgrad.trace`` bakes in are accepted back when they are the same."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from _registry_cases import CASES, output_weights, sample
from kinkgrad import KinkgradError
from kinkgrad._core.primitive import registry
from kinkgrad._core.tracer import bind
from kinkgrad.kinks import KinkPolicy
from kinkgrad.modes import _replay
from kinkgrad.modes._replay import replay_call
from kinkgrad.primitives.linalg import Matmul


def _mlp(p: dict, x: np.ndarray, y: np.ndarray):
    h = knp.relu(x @ p["W0"] + p["b0"])
    z = h @ p["W1"] + p["b1"]
    return knp.mean(knp.logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y])


def _problem(rng: np.random.Generator, dtype=np.float64):
    p = {"W0": rng.normal(size=(5, 4)), "b0": rng.normal(size=4),
         "W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=3)}
    p = {k: v.astype(dtype) for k, v in p.items()}
    return p, rng.normal(size=(6, 5)).astype(dtype), rng.integers(0, 3, size=6)


def _fd(f, p: dict, eps: float = 1e-6) -> dict:
    out = {}
    for k, v in p.items():
        g = np.zeros_like(v)
        for i in range(v.size):
            up, dn = {**p, k: v.copy()}, {**p, k: v.copy()}
            up[k].flat[i] += eps
            dn[k].flat[i] -= eps
            g.flat[i] = (f(up) - f(dn)) / (2 * eps)
        out[k] = g
    return out


def test_replayed_gradient_matches_finite_differences(rng):
    p, x, y = _problem(rng)
    prog = kinkgrad.trace(_mlp, p, x, y)
    assert replay_call(prog, (p, x, y), {}, [0], False) is not None  # the replay path is taken
    v, g = kinkgrad.value_and_grad(prog)(p, x, y)
    fd = _fd(lambda q: float(_mlp(q, x, y)), p)
    assert float(v) == pytest.approx(float(_mlp(p, x, y)), rel=1e-14)
    for k in p:
        np.testing.assert_allclose(g[k], fd[k], rtol=1e-6, atol=1e-8)
        assert g[k].dtype == p[k].dtype and g[k].shape == p[k].shape


def test_replay_at_new_points_and_float32(rng):
    p, x, y = _problem(rng, np.float32)
    prog = kinkgrad.trace(_mlp, p, x, y)
    vg = kinkgrad.value_and_grad(prog)
    for _ in range(3):  # the program is traced once and replayed at each new point
        q = {k: (v + rng.normal(size=v.shape)).astype(np.float32) for k, v in p.items()}
        x2 = rng.normal(size=x.shape).astype(np.float32)
        v, g = vg(q, x2, y)
        v_ref, g_ref = kinkgrad.value_and_grad(_mlp)(q, x2, y)
        assert v.dtype == np.float32 and float(v) == pytest.approx(float(v_ref), rel=1e-6)
        for k in q:
            assert g[k].dtype == np.float32
            np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-5, atol=1e-6)


def test_a_program_computes_in_the_dtype_of_its_inputs_as_f_does():
    # sum(exp(x) x) with entries that float32 rounds: the truth is NumPy at the input dtype
    f = lambda x: knp.sum(knp.exp(x) * x)  # noqa: E731
    x64 = np.array([1.0 + 1e-9, -2.0 + 3e-9])
    x32 = x64.astype(np.float32)
    p32, p64 = kinkgrad.trace(f, x32), kinkgrad.trace(f, x64)
    for prog in (p32, p64):
        for x in (x64, x32):
            v = prog(x)
            assert v.dtype == x.dtype
            assert v == np.sum(np.exp(x) * x)  # the same NumPy operations in that dtype
            val, g = kinkgrad.value_and_grad(prog)(x)  # and the same rule when differentiated
            assert np.asarray(val).dtype == g.dtype == x.dtype
            np.testing.assert_allclose(g, np.exp(x) * (1 + x),
                                       rtol=1e-15 if x.dtype == np.float64 else 1e-6)
    assert p32(x64) != p32(x32)  # float32 rounding would erase the 1e-9 offsets
    # integer inputs still take the traced dtype
    assert p32(np.array([1, -2])).dtype == np.float32


@pytest.mark.parametrize("policy, expected", [
    (None, [0.0, 0.0, 1.0]),  # relu'(0) = 0, the convention of plain AD
    (KinkPolicy(relu=1.0), [0.0, 1.0, 1.0]),
])
def test_replay_at_exact_kinks_follows_the_policy(policy, expected):
    prog = kinkgrad.trace(lambda x: knp.sum(knp.relu(x)), np.ones(3))
    v, g, rep = kinkgrad.value_and_grad(prog, policy=policy, report=True)(
        np.array([-1.0, 0.0, 2.0]))
    assert float(v) == 2.0 and g.tolist() == expected
    assert rep.total == 1  # the one entry at 0


def test_replay_with_a_subset_of_argnums_computes_no_cotangent_for_the_rest(rng, monkeypatch):
    W, x = rng.normal(size=(5, 3)), rng.normal(size=(4, 5))
    prog = kinkgrad.trace(lambda W, x: knp.sum(knp.relu(x @ W)), W, x)
    needs_seen = []
    vjp = Matmul.vjp

    def spy(self, sel, g, args, out, params, needs):
        needs_seen.append(list(needs))
        return vjp(self, sel, g, args, out, params, needs)

    monkeypatch.setattr(Matmul, "vjp", spy)
    g = kinkgrad.grad(prog, argnums=0)(W, x)
    assert needs_seen == [[False, True]]  # x is held constant, as a trace of the call holds it
    np.testing.assert_allclose(g, x.T @ (x @ W > 0).astype(float))
    gx = kinkgrad.grad(prog, argnums=1)(W, x)
    np.testing.assert_allclose(gx, (x @ W > 0).astype(float) @ W.T)


def test_a_kink_on_a_constant_path_is_not_reported(rng):
    W = rng.normal(size=(3, 2))
    x = np.array([[0.0, 1.0, -1.0]])  # relu(x) has a kink at x = 0, but x is not differentiated
    f = lambda W, x: knp.sum(knp.relu(x) @ W)  # noqa: E731
    prog = kinkgrad.trace(f, W, x)
    _, g, rep = kinkgrad.value_and_grad(prog, report=True)(W, x)
    _, g_ref, rep_ref = kinkgrad.value_and_grad(f, report=True)(W, x)
    np.testing.assert_array_equal(g, np.maximum(x, 0).T @ np.ones((1, 2)))
    assert rep.total == rep_ref.total == 0


def test_baked_arguments_are_accepted_back_when_unchanged(rng):
    p, x, y = _problem(rng)
    prog = kinkgrad.trace(_mlp, p, x, y)  # y (integer labels) is baked in
    assert len(prog.invars) == 5
    want = float(_mlp(p, x, y))
    assert float(prog(p, x, y)) == want and float(prog(p, x)) == want
    assert float(prog(p, x, y.copy())) == want  # equal, not the same object
    with pytest.raises(KinkgradError, match="argument 2 was baked"):
        prog(p, x, (y + 1) % 3)
    with pytest.raises(KinkgradError, match="argument 2 was baked"):
        kinkgrad.value_and_grad(prog)(p, x, (y + 1) % 3)
    _, g_short = kinkgrad.value_and_grad(prog)(p, x)
    _, g_full = kinkgrad.value_and_grad(prog)(p, x, y)
    for k in p:
        np.testing.assert_array_equal(g_short[k], g_full[k])


def test_argnums_on_a_baked_argument_is_refused(rng):
    p, x, y = _problem(rng)
    prog = kinkgrad.trace(_mlp, p, x, y)
    with pytest.raises(KinkgradError, match="dtype int"):
        kinkgrad.grad(prog, argnums=2)(p, x, y)


def test_inputs_the_replay_does_not_take_go_through_the_trace(rng):
    W, x = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    prog = kinkgrad.trace(lambda W, x: knp.sum(knp.abs(x @ W)), W, x)
    W64 = W.astype(np.float64)
    assert replay_call(prog, (W64, x), {}, [0], False) is None  # another dtype: traced
    g = kinkgrad.grad(prog)(W64, x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, x.T @ np.sign(x @ W64), rtol=1e-6)
    # a Program inside a function differentiated by another transformation: traced values
    outer = kinkgrad.grad(lambda W: prog(W, x) * 2.0)(W)
    np.testing.assert_allclose(outer, 2 * x.T @ np.sign(x @ W), rtol=1e-5)
    with pytest.raises(KinkgradError, match="shape"):
        kinkgrad.grad(prog)(W[:2], x)


def test_non_finite_results_give_the_traced_paths_error(rng):
    f = lambda x: knp.sum(knp.log(x) * 2.0)  # noqa: E731
    prog = kinkgrad.trace(f, np.ones(3))
    x = np.array([1.0, 0.0, 2.0])
    with np.errstate(all="ignore"):
        with pytest.raises(KinkgradError) as replayed:
            kinkgrad.value_and_grad(prog)(x)
        with pytest.raises(KinkgradError) as traced:
            kinkgrad.value_and_grad(f)(x)
    assert type(replayed.value) is type(traced.value)
    assert "log" in str(replayed.value)
    nan_in = np.array([1.0, np.nan, 2.0])
    with np.errstate(all="ignore"):
        with pytest.raises(KinkgradError, match="NaN|not finite"):
            kinkgrad.value_and_grad(prog)(nan_in)


def test_values_no_reverse_rule_reads_are_let_go():
    prog = kinkgrad.trace(lambda x: knp.sum(knp.exp(x * 2.0) + 1.0), np.ones(4))
    tr = prog.replay([np.arange(4.0)], kink_values=False)
    kept = [type(v).__name__ for v in tr.vals]
    # the input is kept; x * 2 is read by no rule (exp's reads its output), so it goes
    assert kept[0] == "ndarray" and kept[1] == "Dropped" and kept[2] == "ndarray"
    tr.restore()
    assert all(type(v).__name__ != "Dropped" for v in tr.vals)
    np.testing.assert_allclose(tr.vals[prog.outs[0].index], np.sum(np.exp(2 * np.arange(4.0)) + 1))


def _wrapped(prim, args: tuple, params: dict, pos: list):
    """``sum((prim(inputs + 0) + 0) * w)``: the primitive's inputs and output are
    intermediates, so the replay lets go of every value its rules do not read."""
    w = output_weights(prim, args, params)

    def f(*diff):
        full = list(args)
        for p, d in zip(pos, diff):
            full[p] = d + 0.0
        return knp.sum((bind(prim, *full, **params) + 0.0) * w)

    return f


def _kink_cases() -> list:
    return [(name, i) for name, prim in sorted(registry().items()) if prim.differentiable
            for i in range(len(prim.kink_samples(np.random.default_rng(0))))]


def _same_answer(f, prog, diff, argnums, **kw) -> None:
    """value_and_grad of the replayed Program and of the function traced anew: the same
    value, gradient and kink count (the replay runs the same rules on the same values)."""
    v, g, rep = kinkgrad.value_and_grad(prog, argnums=argnums, report=True, **kw)(*diff)
    v_ref, g_ref, rep_ref = kinkgrad.value_and_grad(f, argnums=argnums, report=True, **kw)(
        *diff)
    np.testing.assert_array_equal(v, v_ref)
    for a, b in zip(g, g_ref):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert rep.total == rep_ref.total


def _sample_program(name: str, index: int, build) -> tuple:
    """``(prim, args, params, f, diff, program)`` at a registry sample: ``f = build(...)`` as
    a function of the floating-point arguments ``diff``, and its traced Program."""
    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no floating-point argument")
    f = build(prim, args, params, pos)
    diff = [args[p] for p in pos]
    return prim, args, params, f, diff, kinkgrad.trace(f, *diff)


@pytest.mark.parametrize("name, index", CASES)
def test_replay_agrees_with_tracing_for_every_primitive(name, index):
    _, _, _, f, diff, prog = _sample_program(name, index, _wrapped)
    assert replay_call(prog, diff, {}, list(range(len(diff))), True) is not None
    _same_answer(f, prog, diff, tuple(range(len(diff))))
    _same_answer(f, prog, diff, (0,))  # the other inputs frozen


@pytest.mark.parametrize("name, index", _kink_cases())
def test_replay_agrees_with_tracing_at_kinks(name, index):
    prim = registry()[name]
    args, params = prim.kink_samples(np.random.default_rng(0))[index]
    pos = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    if not pos:
        pytest.skip("no floating-point argument")
    f = _wrapped(prim, args, params, pos)
    diff = [args[p] for p in pos]
    prog = kinkgrad.trace(f, *diff)
    _same_answer(f, prog, diff, tuple(range(len(diff))))
    _same_answer(f, prog, diff, tuple(range(len(diff))), policy=kinkgrad.kink_policy("jax"))


def test_keyword_arguments_are_baked_in_and_checked():
    f = lambda x, axis=-1, scale=1.0: knp.sum(knp.max(knp.abs(x), axis=axis) * scale)  # noqa: E731
    x = np.array([[1.0, -2.0], [3.0, 0.5]])
    prog = kinkgrad.trace(f, x, axis=0, scale=2.0)
    assert float(prog(x)) == float(prog(x, axis=0, scale=2.0)) == 2.0 * (3.0 + 2.0)
    _, g = kinkgrad.value_and_grad(prog)(x, axis=0)
    assert replay_call(prog, (x,), {"axis": 0}, [0], False) is not None
    np.testing.assert_array_equal(g, [[0.0, -2.0], [2.0, 0.0]])  # d/dx of 2 (|x10| + |x01|)
    with pytest.raises(KinkgradError, match="axis=1 differs"):
        prog(x, axis=1)
    with pytest.raises(KinkgradError, match="keepdims=True was not given"):
        kinkgrad.grad(prog)(x, keepdims=True)


def test_a_call_with_the_traced_arguments_takes_them_in_their_positions(rng):
    a, b = rng.normal(size=3), rng.normal(size=3)
    f = lambda a, b: knp.sum(knp.maximum(a, 0.0) * b)  # noqa: E731
    prog = kinkgrad.trace(f, a, b, argnums=(1, 0))  # inputs in the order (b, a)
    assert float(prog(a, b)) == pytest.approx(float(np.sum(np.maximum(a, 0) * b)))
    ga, gb = kinkgrad.grad(prog, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, (a > 0) * b)
    np.testing.assert_allclose(gb, np.maximum(a, 0))


def test_a_baked_array_changed_in_place_is_refused(rng):
    p, x, y = _problem(rng)
    prog = kinkgrad.trace(_mlp, p, x, y)
    y[0] = (y[0] + 1) % 3  # the caller's labels, changed after tracing
    with pytest.raises(KinkgradError, match="argument 2 was baked"):
        prog(p, x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", sorted(n for n, p in registry().items() if p.differentiable))
def test_replay_agrees_with_tracing_in_low_precision(name, dtype):
    prim, rng = registry()[name], np.random.default_rng(7)
    pts = prim.samples(rng, dtype) + (prim.kink_samples(rng, dtype) if prim.nonsmooth else [])
    with np.errstate(under="ignore"):  # float16 underflow to subnormals is IEEE's answer
        for args, params in pts:
            pos = [i for i, a in enumerate(args)
                   if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
            if not pos:
                continue
            f = _wrapped(prim, args, params, pos)
            diff = [args[p] for p in pos]
            try:
                prog = kinkgrad.trace(f, *diff)
                expected = kinkgrad.value_and_grad(f, argnums=tuple(range(len(diff))))(*diff)
            except KinkgradError as exc:  # the replay must refuse the point as tracing does
                with pytest.raises(type(exc)):
                    kinkgrad.value_and_grad(kinkgrad.trace(f, *diff),
                                            argnums=tuple(range(len(diff))))(*diff)
                continue
            assert replay_call(prog, diff, {}, list(range(len(diff))), False) is not None
            _same_answer(f, prog, diff, tuple(range(len(diff))))
            v, g = kinkgrad.value_and_grad(prog, argnums=tuple(range(len(diff))))(*diff)
            np.testing.assert_array_equal(v, expected[0])
            assert all(a.dtype == dtype for a in g)


def test_an_integer_leaf_changed_in_place_is_refused():
    d = {"a": np.array([1.0, 2.0, 3.0]), "k": np.array([0, 2])}
    prog = kinkgrad.trace(lambda d: knp.sum(d["a"][d["k"]] ** 2), d)
    np.testing.assert_allclose(kinkgrad.grad(prog)(d)["a"], [2.0, 0.0, 6.0])
    d["k"][1] = 1  # the caller's index array, changed after tracing
    with pytest.raises(KinkgradError, match="integer leaf differs"):
        kinkgrad.grad(prog)(d)
    with pytest.raises(KinkgradError, match="integer leaf differs"):
        prog(d)


def _elementwise(prim, args: tuple, params: dict, pos: list):
    """``prim(inputs + 0) * 1`` with array output (for vjp, jvp and jacobian)."""
    def f(*diff):
        full = list(args)
        for p, d in zip(pos, diff):
            full[p] = d + 0.0
        return bind(prim, *full, **params) * 1.0

    return f


@pytest.mark.parametrize("name, index", CASES)
def test_vjp_jvp_and_jacobian_of_a_program_replay_it(name, index, monkeypatch):
    prim, args, params, f, diff, prog = _sample_program(name, index, _elementwise)
    rng = np.random.default_rng(3)
    out_shape = np.shape(prim.impl(*args, **params))
    ct = rng.normal(size=out_shape).astype(np.asarray(prim.impl(*args, **params)).dtype)
    tans = tuple(rng.normal(size=d.shape).astype(d.dtype) for d in diff)
    results = []
    for fn in (f, prog):  # traced anew, then replayed
        v, vjp_fn = kinkgrad.vjp(fn, *diff)
        y, t = kinkgrad.jvp(fn, tuple(diff), tans)
        jr = kinkgrad.jacobian(fn, mode="rev")(*diff)
        jf = kinkgrad.jacobian(fn, mode="fwd")(*diff)
        results.append((v, *vjp_fn(ct), y, t, jr, jf))
    for a, b in zip(*results):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    # and the replay is what ran (with no trace_call to fall back on)
    monkeypatch.setattr(_replay, "trace_call", None)
    kinkgrad.vjp(prog, *diff)[1](ct)
    kinkgrad.jvp(prog, tuple(diff), tans)
    kinkgrad.jacobian(prog)(*diff)


def test_vjp_of_a_program_refuses_a_nan_input_before_evaluating():
    prog = kinkgrad.trace(lambda x: knp.log(x) * 2.0, np.ones(3))
    x = np.array([1.0, np.nan, 2.0])
    for fn in (lambda x: knp.log(x) * 2.0, prog):
        with pytest.raises(KinkgradError, match="differentiated argument contains NaN"):
            kinkgrad.vjp(fn, x)
        with pytest.raises(KinkgradError, match="differentiated argument contains NaN"):
            kinkgrad.jacobian(fn)(x)


@pytest.mark.parametrize("state", ["ignore", "raise"])
def test_a_guarded_branch_that_is_not_finite_is_discarded_as_when_traced(state):
    """where(x > 0, sqrt(x), 0): the unselected branch is NaN (or raises) at x < 0; the
    gradient of 2 sqrt(x) is 0 there and 1/sqrt(x) elsewhere, the same through the replay (which
    brings back the values it let go for the discarding sweep) as through a trace."""
    f = lambda x: knp.sum(knp.where(x > 0, knp.sqrt(x), 0.0) * 2.0)  # noqa: E731
    prog = kinkgrad.trace(f, np.ones(3))
    x = np.array([-1.0, 4.0, 0.25])
    with np.errstate(all=state):
        outcomes = []
        for fn in (f, prog):
            try:
                v, g = kinkgrad.value_and_grad(fn)(x)
                outcomes.append((float(v), g.tolist()))
            except KinkgradError as exc:
                outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1]
    if state == "ignore":
        assert outcomes[1] == (5.0, [0.0, 0.5, 2.0])


def test_differentiating_an_argument_the_program_baked_in_names_the_fix():
    # trace(..., argnums=0) bakes s in; grad with respect to it compared a traced value with
    # the baked one and raised "bool() of a traced value ... control flow"
    def f(x, s):
        return knp.sum(knp.abs(x)) * s

    p = kinkgrad.trace(f, np.ones(3), np.array(2.0), argnums=0)
    with pytest.raises(kinkgrad.KinkgradError, match="baked into the program"):
        kinkgrad.grad(p, argnums=1)(np.ones(3), np.array(2.0))
    assert float(kinkgrad.grad(p)(np.ones(3), np.array(2.0)).sum()) == 6.0  # by hand: 2 * 3


@pytest.mark.parametrize("bad", [np.ones(3) + 1j, np.array(["a", "b", "c"]),
                                 np.array([1.0, "x", None], dtype=object)])
def test_a_program_refuses_inputs_that_are_not_real_numbers(bad):
    # complex lost its imaginary part (a ComplexWarning), strings raised NumPy's ValueError,
    # objects gave NaN; calling f itself on complex returns complex, grad refuses it
    p = kinkgrad.trace(lambda x: knp.sum(knp.abs(x)) / 4, np.zeros(3))
    with pytest.raises(kinkgrad.KinkgradError, match="real numbers"):
        p(bad)
    assert float(p(np.array([1, -2, 3]))) == 1.5  # integers take the traced dtype (by hand)
