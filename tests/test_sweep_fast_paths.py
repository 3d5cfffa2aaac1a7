"""The reverse sweep's fast paths on the common training step (issue 13): a relu's slope
without the kink count, a cotangent scaled in place when the sweep alone holds it, and the
gradient's finiteness tested as each leaf's cotangent is produced. Each must give exactly
what the plain rules give and never write into an array someone else holds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError


def _mlp_loss(params: dict, x: np.ndarray, y: np.ndarray) -> object:
    h = knp.relu(x @ params["W0"] + params["b0"])
    h = knp.relu(h @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    return knp.mean(knp.logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y])


def _hand_grad(params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """The same loss differentiated by hand (relu'(0) = 0); underflow to 0 or to a subnormal
    is the IEEE result here, as in the engine."""
    with np.errstate(under="ignore"):
        z0 = x @ params["W0"] + params["b0"]
        h0 = np.maximum(z0, 0)
        z1 = h0 @ params["W1"] + params["b1"]
        h1 = np.maximum(z1, 0)
        z = h1 @ params["W2"] + params["b2"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        g = e / e.sum(axis=1, keepdims=True)
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        out = {"W2": h1.T @ g, "b2": g.sum(0)}
        g = (g @ params["W2"].T) * (z1 > 0)
        out.update(W1=h0.T @ g, b1=g.sum(0))
        g = (g @ params["W1"].T) * (z0 > 0)
        out.update(W0=x.T @ g, b0=g.sum(0))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 9), dead=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_mlp_gradient_matches_hand_written(seed: int, batch: int, dead: bool, dtype: type
                                           ) -> None:
    rng = np.random.default_rng(seed)
    sizes = (5, 7, 6, 3)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"W{i}"] = rng.standard_normal((a, b)).astype(dtype)
        params[f"b{i}"] = rng.standard_normal(b).astype(dtype)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    if dead:  # exact zeros at the relus: the kinks, where relu'(0) = 0 is the slope
        x[:] = 0
        params["b0"][::2] = 0
    y = rng.integers(0, sizes[-1], batch)
    got = kinkgrad.grad(_mlp_loss)(params, x, y)
    want = _hand_grad(params, x, y)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for k in want:
        assert got[k].dtype == dtype
        with np.errstate(under="ignore"):  # rtol * |subnormal| in the comparison itself
            np.testing.assert_allclose(got[k], want[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("slope", [0.0, 0.5, 1.0])
def test_relu_slope_at_zero_with_and_without_report(slope: float) -> None:
    x = np.array([-1.0, 0.0, 2.0, 0.0])
    f = lambda v: knp.sum(knp.relu(v) * np.array([1.0, 2.0, 3.0, 4.0]))  # noqa: E731
    with kinkgrad.kink_policy(relu=slope):
        plain = kinkgrad.grad(f)(x)
        reported, rep = kinkgrad.grad(f, report=True)(x)
    want = np.array([0.0, 2.0 * slope, 3.0, 4.0 * slope])
    np.testing.assert_array_equal(plain, want)
    np.testing.assert_array_equal(reported, want)
    assert rep.total == 2  # the report path counts the two zeros


def test_shared_cotangent_is_not_scaled_in_place() -> None:
    # add's cotangent reaches both operands as one array; each relu must scale its own copy
    x = np.array([-1.0, 0.5, 2.0])
    f = lambda v: knp.sum(knp.relu(v * 2.0) * 3.0 + knp.relu(v * 2.0) + knp.relu(-v))  # noqa: E731
    np.testing.assert_array_equal(kinkgrad.grad(f)(x), [-1.0, 8.0, 8.0])
    g = lambda v: knp.sum(knp.abs(v + v) + knp.leaky_relu(v + v, 0.1))  # noqa: E731
    np.testing.assert_array_equal(kinkgrad.grad(g)(x), [-2.0 + 0.2, 4.0, 4.0])


def test_user_cotangent_and_aux_are_left_alone() -> None:
    x = np.array([-1.0, 0.5, 2.0])
    ct = np.array([1.0, 2.0, 3.0])
    keep = ct.copy()
    _, vjp_fn = kinkgrad.vjp(lambda v: knp.relu(v * 1.0), x)
    (gx,) = vjp_fn(ct)
    np.testing.assert_array_equal(ct, keep)
    np.testing.assert_array_equal(gx, [0.0, 2.0, 3.0])

    def f(v: object) -> tuple:
        h = knp.relu(v * 2.0)
        return knp.sum(h * 3.0), h

    (val, aux), g = kinkgrad.value_and_grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(aux, np.maximum(x * 2.0, 0))
    np.testing.assert_array_equal(g, [0.0, 6.0, 6.0])
    assert float(val) == 3.0 * float(np.maximum(x * 2.0, 0).sum())


def test_two_finite_contributions_that_overflow_together_raise() -> None:
    # each use of x contributes 2e38 (finite in float32); their sum 4e38 is not
    x = np.array([1e-30, 2e-30], np.float32)
    c = np.float32(2e38)
    with pytest.raises(KinkgradError, match="not representable|not finite|overflow"):
        kinkgrad.grad(lambda v: knp.sum(v * c + v * c))(x)
    v, g = kinkgrad.value_and_grad(lambda v: knp.sum(v * c))(x)  # one use: fine
    np.testing.assert_array_equal(g, [c, c])


def test_gradient_that_overflows_when_cast_to_the_argument_dtype_raises() -> None:
    x = np.array([1.0, 2.0], np.float32)
    with pytest.raises(KinkgradError, match="overflows in float32"):
        kinkgrad.grad(lambda v: knp.sum(v * np.float64(1e39)))(x)
    g = kinkgrad.grad(lambda v: knp.sum(v * np.float64(1e30)))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [1e30, 1e30], rtol=1e-7)


def test_nan_gradient_of_a_single_use_leaf_still_raises() -> None:
    # sqrt'(0) is infinite: the leaf's only cotangent, tested as the sweep produces it
    with pytest.raises(KinkgradError):
        kinkgrad.grad(lambda v: knp.sum(knp.sqrt(v)))(np.array([0.0, 1.0]))


def test_a_subclass_redefining_a_rule_loses_the_shortcut_to_it() -> None:
    from kinkgrad.primitives.piecewise import Relu

    def vjp(self, sel, g, args, out, params, needs):  # noqa: ANN001, ANN202
        return (g * 0.5,)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):  # noqa: ANN001, ANN202
        return args[0] >= 0, 0

    own_vjp = type("OwnVJP", (Relu,), {"vjp": vjp})
    own_select = type("OwnSelect", (Relu,), {"select": select})
    assert Relu.scales_cotangent and not own_vjp.scales_cotangent
    x = np.array([-1.0, 0.0, 2.0])
    from kinkgrad.kinks import resolve_policy

    sel = own_select().selection(resolve_policy(None), (x,), np.maximum(x, 0), {})
    np.testing.assert_array_equal(sel, [False, True, True])  # its own select, not relu's


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_slope_on_torch_tensors_matches_numpy_at_edge_values(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    info = np.finfo(dtype)
    x = np.array([-0.0, 0.0, info.tiny, -info.tiny, info.smallest_subnormal, info.max,
                  -info.max, 1.0, -1.0], dtype=dtype)
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.5, 6.0, 7.0, 8.0], dtype=dtype)  # max * 0.5: finite
    f = lambda v: knp.sum(knp.relu(v) * w)  # noqa: E731
    want = np.where(x > 0, w, 0).astype(dtype)  # relu'(0) = 0, also at -0.0
    np.testing.assert_array_equal(kinkgrad.grad(f)(x), want)
    got = kinkgrad.grad(f)(torch.tensor(x))
    assert got.dtype == getattr(torch, dtype)
    np.testing.assert_array_equal(got.numpy(), want)


_UNARY = [knp.relu, knp.abs, lambda v: knp.leaky_relu(v, 0.1), lambda v: v * 1.5, knp.sin]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_ops=st.integers(2, 12))
def test_random_programs_with_shared_values_match_finite_differences(seed: int, n_ops: int
                                                                     ) -> None:
    """Random DAGs of elementwise ops where values are reused (their cotangents shared
    between consumers, the case the in-place scaling must leave alone), against central
    differences at a point whose every kink is at least 1e-3 away."""
    rng = np.random.default_rng(seed)
    plan = [(int(rng.integers(len(_UNARY))), int(rng.integers(3)), rng.integers(0, 99, 2))
            for _ in range(n_ops)]
    w = rng.standard_normal(4)

    def f(x):
        vals = [x, x * 0.5 + 0.1]
        for op, kind, (i, j) in plan:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            vals.append(_UNARY[op](a) if kind == 0 else
                        (_UNARY[op](a) + b if kind == 1 else _UNARY[op](a) * 0.5 + a))
        return knp.sum(sum(v * w for v in vals[-3:]))

    x = rng.uniform(-2, 2, 4)
    g = kinkgrad.grad(f)(x)
    h = 1e-6
    fd = np.array([(float(f(x + h * e)) - float(f(x - h * e))) / (2 * h) for e in np.eye(4)])
    # a kink within h of x makes the difference quotient meaningless there: skip such draws
    near = any(float(np.min(np.abs(np.asarray(v)))) < 1e-3
               for v in _intermediates(f, x))
    if not near:
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def _intermediates(f, x):
    """The arguments of every nonsmooth node of f's trace at x (the values whose zeros are
    its kinks)."""
    from kinkgrad.modes.api import trace_call

    tr = trace_call(f, (x,), {}, [0], "test")
    for eqn in tr.eqns:
        if eqn.prim.name in ("relu", "abs", "leaky_relu"):
            yield tr.vals[eqn.inputs[0].index]


def test_values_let_go_are_restored_for_the_error_paths() -> None:
    # value_and_grad lets the matmul outputs go (no reverse rule reads them); the error
    # messages and the discarding sweep need them back
    W = np.array([[1.0, -1.0], [2.0, -2.0]])
    x = np.array([1.0, -0.5])  # x @ W = [0, 0]: sqrt'(0) is infinite
    with pytest.raises(KinkgradError, match="sqrt"):
        kinkgrad.grad(lambda v: knp.sum(knp.sqrt(v @ W)))(x)

    def guarded(v: object) -> object:  # log only where v @ W > 0: the other branch discarded
        z = v @ W
        return knp.sum(knp.where(z > 0, knp.log(knp.maximum(z, 1e-300)), 0.0) + z)

    x2 = np.array([1.0, 0.0])  # x2 @ W = [1, -1]
    want = W @ np.array([1.0 / 1.0 + 1.0, 1.0])  # d/dv [log z0 + z0 + z1]
    np.testing.assert_allclose(kinkgrad.grad(guarded)(x2), want)
    x3 = np.array([1.0, -0.5])  # z = [0, 0]: where picks 0; maximum(z, 1e-300) ties: finite
    np.testing.assert_allclose(kinkgrad.grad(guarded)(x3), W @ np.array([1.0, 1.0]))


def test_reverse_only_trace_lets_go_of_values_no_rule_reads() -> None:
    from kinkgrad._core.tracer import Dropped
    from kinkgrad.modes.api import trace_call

    W = np.ones((3, 2))
    f = lambda v: knp.sum(knp.relu(v @ W + 1.0) - 2.0)  # noqa: E731
    tr = trace_call(f, (np.ones(3),), {}, [0], "test", reverse_only=True)
    kinds = {e.prim.name: type(tr.vals[e.out.index]) for e in tr.eqns}
    assert kinds["matmul"] is Dropped and kinds["sub"] is Dropped  # read by nobody
    assert kinds["add"] is np.ndarray  # relu's slope reads it
    tr.trace.restore()
    assert all(type(v) is not Dropped for v in tr.vals)
    np.testing.assert_array_equal(tr.vals[tr.eqns[0].out.index], np.ones(3) @ W)
    plain = trace_call(f, (np.ones(3),), {}, [0], "test")
    assert not any(type(v) is Dropped for v in plain.vals)


def test_kink_report_with_values_let_go_counts_the_exact_zeros() -> None:
    rng = np.random.default_rng(3)
    W = rng.integers(-2, 3, (4, 6)).astype(float)
    x = rng.integers(-2, 3, (5, 4)).astype(float)  # integer data: exact zeros of x @ W
    b = np.zeros(6)
    f = lambda W: knp.sum(knp.relu(x @ W + b) * 2.0 - 1.0)  # noqa: E731
    g, rep = kinkgrad.grad(f, report=True)(W)
    z = x @ W + b
    assert rep.total == int(np.count_nonzero(z == 0)) > 0
    np.testing.assert_array_equal(g, x.T @ (2.0 * (z > 0)))  # relu'(0) = 0


def _selection_cases() -> list:
    from kinkgrad._core.primitive import registry

    cases = []
    for name, prim in sorted(registry().items()):
        if not prim.nonsmooth:
            continue
        rng = np.random.default_rng(3)
        points = prim.samples(rng) + prim.kink_samples(rng)
        cases += [(name, i) for i in range(len(points))]
    return cases


@pytest.mark.parametrize("preset", [None, "torch", "min-norm"])
@pytest.mark.parametrize("name,index", _selection_cases())
def test_selection_is_the_selects_choice_at_samples_and_kinks(name: str, index: int,
                                                               preset: str | None) -> None:
    # the sweep's call without a kink report must choose what select chooses, ties included
    from kinkgrad._core.primitive import registry
    from kinkgrad.kinks import DEFAULT_POLICY, PRESETS

    prim = registry()[name]
    rng = np.random.default_rng(3)
    args, params = (prim.samples(rng) + prim.kink_samples(rng))[index]
    out = prim.impl(*args, **params)
    policy = DEFAULT_POLICY if preset is None else DEFAULT_POLICY.replace(**PRESETS[preset])
    want, _ = prim.select(policy, args, out, params)
    got = prim.selection(policy, args, out, params)
    _assert_same_selection(got, want)


def _assert_same_selection(got: object, want: object) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for a, b in zip(got, want):
            _assert_same_selection(a, b)
    elif want is None or isinstance(want, (str, int)) and not isinstance(want, bool):
        assert got == want
    else:  # weights: booleans and 0/1 floats alike
        np.testing.assert_array_equal(np.asarray(got, dtype=float), np.asarray(want, dtype=float))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("kernel,stride,padding,dilation",
                         [(2, 2, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), (1, 1), (2, 1))])
def test_max_pool_on_cpu_tensors_ties_give_torchs_gradient(dtype, kernel, stride, padding,
                                                           dilation) -> None:
    # the pool's selection and VJP on CPU tensors run on their NumPy views: at windows full
    # of ties (relu zeros, repeated dyadic values) the gradient must be torch's own ("first")
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = np.maximum(rng.integers(-3, 3, (2, 3, 9, 8)) / 4.0, 0).astype(dtype)
    args = (kernel, stride, padding, dilation)
    with torch.no_grad():
        shape = F.max_pool2d(torch.tensor(x, dtype=torch.float64), *args).shape
    v = (rng.integers(1, 5, tuple(shape)) / 4.0).astype(dtype)  # exact sums in float16
    tx = torch.tensor(x, requires_grad=True)
    (F.max_pool2d(tx, *args) * torch.tensor(v)).sum().backward()
    f = lambda a: knp.sum(knp.max_pool2d(a, *args) * v)  # noqa: E731
    got = kinkgrad.grad(f)(torch.tensor(x))
    assert isinstance(got, torch.Tensor) and got.dtype == tx.dtype
    np.testing.assert_array_equal(got.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(kinkgrad.grad(f)(x), tx.grad.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_on_tensors_is_the_numpy_rules_at_extreme_rows(dtype: str) -> None:
    # torch's logsumexp and softmax kernels on tensors: the values and gradients of the NumPy
    # rules, at rows near the overflow limit, with -1e30, tiny, equal and -inf entries
    torch = pytest.importorskip("torch")
    from kinkgrad.backends import follow_inputs

    big = 3e38 if dtype == "float32" else 1e308
    x = np.array([[0, -1e30, 1], [big, big, -big], [1e-30, 0, 0], [-1e4, -1e4, -1e4]], dtype)
    w = np.array([1.0, 1e-3, 3.0, 4.0], dtype)
    f = lambda a: knp.sum(knp.logsumexp(a, axis=1) * w)  # noqa: E731
    v, g = kinkgrad.value_and_grad(f)(x)
    tv, tg = kinkgrad.value_and_grad(f)(torch.tensor(x))
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(float(tv), float(v), rtol=rtol)
    np.testing.assert_allclose(tg.numpy(), g, rtol=rtol, atol=1e-30)
    c = np.array([[0, -np.inf, 1], [2, 1, -np.inf]], dtype)  # -inf entries
    for axis, keep in (((1,), False), ((0, 1), True), ((0,), True)):
        want = knp.logsumexp(c, axis=axis, keepdims=keep)
        got = follow_inputs(lambda a: knp.logsumexp(a, axis=axis, keepdims=keep))(  # noqa: B023
            torch.tensor(c))
        assert isinstance(got, torch.Tensor)
        assert tuple(got.shape) == np.shape(want)
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol)


def _two_slots_one_array(v: object) -> object:
    # add's VJP gives a and b one array; a's second use must not add into b's cotangent
    w = np.array([2.0, 3.0, 5.0])
    a, b = v * 2.0, v * 3.0
    m = a * 5.0  # recorded before a + b, so the sweep meets a + b first
    return knp.sum((a + b) * w + m * w[::-1])


def test_accumulation_in_place_never_writes_a_shared_cotangent() -> None:
    # two uses of x add their cotangents; the sum is taken in place only in an array the
    # sweep alone holds: the same array reaching two slots (add's VJP), one rule's two
    # results for one slot (x * x), a view (reshape) and the caller's seed are left alone
    x = np.array([1.0, -2.0, 3.0])
    w = np.array([2.0, 3.0, 5.0])
    cases = [
        (lambda v: knp.sum((v + v) * w + v * v), 2 * w + 2 * x),
        (lambda v: knp.sum(knp.exp(v) * 2.0 + knp.exp(v) * 3.0 + knp.sin(v)),
         5 * np.exp(x) + np.cos(x)),
        (lambda v: knp.sum(knp.reshape(v * w, (3, 1)) * 2.0 + knp.reshape(v, (3, 1))
                           * w[:, None]), 2 * w + w),
        (lambda v: knp.sum(knp.relu(v) * w + knp.relu(v) * w), 2 * w * (x > 0)),
        (_two_slots_one_array, 5 * w + 10 * w[::-1]),
    ]
    for f, want in cases:
        np.testing.assert_allclose(kinkgrad.grad(f)(x), want, rtol=1e-15)
    seed = np.array([1.0, 10.0, 100.0])
    keep = seed.copy()
    _, vjp_fn = kinkgrad.vjp(lambda v: v * 2.0 + knp.exp(v) * 0.0, x)
    (gx,) = vjp_fn(seed)
    np.testing.assert_array_equal(seed, keep)
    np.testing.assert_array_equal(gx, 2.0 * keep)


@pytest.mark.parametrize("slope", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("report", [False, True])
def test_relu_of_an_intermediate_at_zero_under_every_policy(slope: float, report: bool
                                                            ) -> None:
    # on the default policy without a report the trace keeps relu's output and lets its
    # input go (the slope [x > 0] is [out > 0]); another slope at 0, or a report counting
    # the zeros, needs the input: it must be kept then
    x = np.array([-1.0, 0.0, 2.0, 0.0, -0.0])
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    f = lambda v: knp.sum(knp.relu(v * 2.0 - 0.0) * w)  # noqa: E731
    with kinkgrad.kink_policy(relu=slope):
        out = kinkgrad.grad(f, report=report)(x)
    g = out[0] if report else out
    np.testing.assert_array_equal(g, 2.0 * w * np.array([0.0, slope, 1.0, slope, slope]))
    if report:
        assert out[1].total == 3


def test_without_exact_reference_counts_the_sweep_allocates_and_agrees(monkeypatch) -> None:
    # on interpreters whose sys.getrefcount may undercount (CPython 3.14's borrowed loads,
    # free-threaded builds) the in-place paths are off: the same gradients, by allocation
    import kinkgrad.modes.sweeps as sweeps

    x = np.array([1.0, -2.0, 0.0])
    w = np.array([2.0, 3.0, 5.0])
    fs = [lambda v: knp.sum((v * 2.0 + v * 3.0) * w + knp.relu(v * 1.0) * w),
          lambda v: knp.sum(knp.exp(v) * 2.0 + knp.exp(v) * 3.0), _two_slots_one_array]
    want = [kinkgrad.grad(f)(x) for f in fs]
    monkeypatch.setattr(sweeps, "_COUNTS_EXACT", False)
    scaled = []
    real = sweeps._MULTIPLY
    monkeypatch.setattr(sweeps, "_MULTIPLY", lambda *a, **k: scaled.append(1) or real(*a, **k))
    for f, g in zip(fs, want):
        np.testing.assert_array_equal(kinkgrad.grad(f)(x), g)
    assert not scaled  # no in-place scaling happened
