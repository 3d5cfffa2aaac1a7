"""The engine on torch tensors gives the same numbers as on NumPy (one set of rules)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp

torch = pytest.importorskip("torch")

from _registry_cases import CASES, output_weights, sample, weighted_output  # noqa: E402


@pytest.mark.parametrize(("name", "index"), CASES)
def test_rule_on_torch_equals_numpy(name: str, index: int) -> None:
    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no differentiable input")
    weights = output_weights(prim, args, params)
    argnums = tuple(range(len(pos)))
    diff_np = [args[p] for p in pos]
    v_np, g_np = kinkgrad.value_and_grad(weighted_output(prim, args, params, pos, weights),
                                         argnums=argnums)(*diff_np)
    diff_t = [torch.tensor(a) for a in diff_np]
    f_t = weighted_output(prim, args, params, pos, torch.tensor(weights))
    v_t, g_t = kinkgrad.value_and_grad(f_t, argnums=argnums)(*diff_t)
    assert isinstance(v_t, torch.Tensor)
    np.testing.assert_allclose(v_t.numpy(), v_np, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_t, g_np):
        assert isinstance(a, torch.Tensor)
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_a_bare_call_on_tensors_gives_tensors_with_numpys_values(name: str, index: int) -> None:
    # a kinkgrad.numpy function called outside every entry point on tensors: knp.sum raised
    # torch's "sum() got an unexpected keyword argument 'axis'", knp.sort and knp.max
    # returned NumPy (np.asarray of the tensor: a CUDA tensor cannot be read that way)
    from kinkgrad._core.tracer import bind

    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no floating-point array input")
    want = prim.impl(*args, **params)
    got = bind(prim, *[torch.tensor(a) if i in pos else a for i, a in enumerate(args)],
               **params)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_vmap_of_a_plain_function_on_tensors_returns_tensors() -> None:
    # vmap's loop read the batched tensors as NumPy arrays, so fn saw NumPy slices and the
    # results were NumPy (knp.sum of a tensor slice raised before the bare call was fixed)
    x = torch.tensor(np.arange(6.0).reshape(3, 2) - 2.5)
    got = kinkgrad.vmap(lambda v: knp.sum(knp.relu(v)))(x)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), [0.0, 0.5, 4.0])  # rows' relu sums
    rows, total = kinkgrad.vmap(lambda v: (2 * v, knp.sum(v)), in_axes=1)(x)
    assert isinstance(rows, torch.Tensor) and rows.shape == (2, 3)
    np.testing.assert_array_equal(total.numpy(), [-1.5, 1.5])  # column sums
    empty = kinkgrad.vmap(lambda v: (v, knp.sum(v)))(x[:0])
    assert all(isinstance(e, torch.Tensor) for e in empty)
    assert empty[0].shape == (0, 2) and empty[1].shape == (0,)


def _mlp_loss(params: dict, x: object, y: np.ndarray) -> object:
    h = knp.relu(x @ params["W0"] + params["b0"])
    h = h @ params["W1"] + params["b1"]
    return knp.mean(knp.logsumexp(h, axis=1) - h[np.arange(h.shape[0]), y])


def test_mlp_float32_on_torch_matches_numpy_and_torch_autograd() -> None:
    rng = np.random.default_rng(0)
    params = {"W0": rng.normal(size=(20, 16)).astype(np.float32) * 0.3,
              "b0": np.zeros(16, np.float32),
              "W1": rng.normal(size=(16, 5)).astype(np.float32) * 0.3,
              "b1": np.zeros(5, np.float32)}
    x = rng.normal(size=(8, 20)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    v_np, g_np = kinkgrad.value_and_grad(_mlp_loss)(params, x, y)
    tparams = {k: torch.tensor(v) for k, v in params.items()}
    v_t, g_t = kinkgrad.value_and_grad(_mlp_loss)(tparams, torch.tensor(x), y)
    assert g_t["W0"].dtype == torch.float32 and g_t["W0"].device.type == "cpu"
    np.testing.assert_allclose(float(v_t), float(v_np), rtol=1e-6)
    ref = {k: v.clone().requires_grad_(True) for k, v in tparams.items()}
    h = torch.relu(torch.tensor(x) @ ref["W0"] + ref["b0"]) @ ref["W1"] + ref["b1"]
    loss = torch.nn.functional.cross_entropy(h, torch.tensor(y))
    loss.backward()
    for k in params:
        np.testing.assert_allclose(g_t[k].numpy(), g_np[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g_t[k].numpy(), ref[k].grad.numpy(), rtol=1e-4, atol=1e-6)


def test_kink_policy_on_torch() -> None:
    f = lambda x: knp.sum(knp.relu(x) - knp.relu(-x))  # noqa: E731
    x = torch.zeros(3, dtype=torch.float64)
    assert kinkgrad.grad(f)(x).tolist() == [0.0, 0.0, 0.0]
    with kinkgrad.kink_policy(relu=1.0):
        assert kinkgrad.grad(f)(x).tolist() == [2.0, 2.0, 2.0]


def test_numpy_path_is_untouched_after_torch_call() -> None:
    kinkgrad.grad(lambda x: knp.sum(knp.exp(x)))(torch.ones(2, dtype=torch.float64))
    g = kinkgrad.grad(lambda x: knp.sum(knp.exp(x)))(np.ones(2))
    assert isinstance(g, np.ndarray)
    np.testing.assert_allclose(g, np.e)


@pytest.mark.parametrize("name", ["certify", "clarke_grad", "directional", "subdifferential",
                                  "abs_normal_form", "in_clarke", "ld_derivative"])
def test_numpy_only_layer_refuses_torch_inputs_with_the_fix(name: str) -> None:
    f = lambda x: knp.sum(knp.relu(x))  # noqa: E731
    x = torch.zeros(2, dtype=torch.float64)
    extra = {"directional": (np.ones(2),), "in_clarke": (np.ones(2),),
             "ld_derivative": (np.eye(2),)}.get(name, ())
    with pytest.raises(kinkgrad.KinkgradError, match=r"NumPy arrays.*numpy\(\)"):
        getattr(kinkgrad, name)(f, x, *extra)


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_jacobian_and_jvp_on_torch_match_numpy(mode: str) -> None:
    rng = np.random.default_rng(3)
    W = rng.normal(size=(4, 3))
    f = lambda x: knp.relu(knp.tanh(x @ W.T) - 0.1)  # noqa: E731
    x = rng.normal(size=3)
    j_np = kinkgrad.jacobian(f, mode=mode)(x)
    j_t = kinkgrad.jacobian(lambda x: knp.relu(knp.tanh(x @ torch.tensor(W).T) - 0.1),
                            mode=mode)(torch.tensor(x))
    assert isinstance(j_t, torch.Tensor) and j_t.dtype == torch.float64
    np.testing.assert_allclose(j_t.numpy(), j_np, rtol=1e-12, atol=1e-14)


def test_tensors_requiring_grad_enter_detached() -> None:
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    g = kinkgrad.grad(lambda x: knp.sum(knp.exp(x)))(x)
    assert not g.requires_grad and g.grad_fn is None
    np.testing.assert_allclose(g.numpy(), np.e)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_traced_program_runs_on_the_inputs_backend(dtype: type) -> None:
    """kinkgrad.trace on NumPy arrays, then the same Program evaluated and differentiated on
    torch tensors: tensors out, NumPy's numbers."""
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 4)).astype(dtype)
    x = rng.normal(size=(5, 3)).astype(dtype)
    f = lambda x, W: knp.sum(knp.maximum(knp.relu(x @ W), 0.25) * knp.tanh(x @ W))  # noqa: E731
    prog = kinkgrad.trace(f, x, W)
    v_np = prog(x, W)
    v_t = prog(torch.tensor(x), torch.tensor(W))
    assert isinstance(v_t, torch.Tensor) and v_t.dtype == torch.tensor(x).dtype
    np.testing.assert_allclose(v_t.numpy(), v_np, rtol=1e-6)
    g_np = kinkgrad.grad(prog, argnums=(0, 1))(x, W)
    g_t = kinkgrad.grad(prog, argnums=(0, 1))(torch.tensor(x), torch.tensor(W))
    for a, b in zip(g_t, g_np):
        assert isinstance(a, torch.Tensor)
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)


def test_torch_functions_on_traced_values_say_to_use_knp() -> None:
    with pytest.raises(kinkgrad.KinkgradError, match=r"torch\.relu.*knp\.relu"):
        kinkgrad.grad(lambda x: torch.relu(x).sum())(torch.randn(3))
    # a tensor constant times a traced value is fine (the tensor's operator defers)
    g = kinkgrad.grad(lambda x: knp.sum(torch.arange(3.0) * x))(torch.zeros(3))
    np.testing.assert_allclose(g.numpy(), [0.0, 1.0, 2.0])


def test_a_dtype_torch_numpy_lacks_is_refused_naming_it_and_the_fix() -> None:
    # bfloat16 raised a bare KeyError from inside torch._numpy
    from kinkgrad.errors import UnsupportedOperationError

    x = torch.ones(3, dtype=torch.bfloat16)
    for call in (lambda: kinkgrad.grad(lambda a: knp.sum(a * a))(x),
                 lambda: kinkgrad.grad(lambda a, c: knp.sum(a * c))(torch.ones(3), x),
                 lambda: kinkgrad.per_example_grad(lambda a: knp.sum(a * a))(x[None]),
                 lambda: kinkgrad.per_example_grad(lambda a: knp.sum(a * a))(x[:0, None])):
        with pytest.raises(UnsupportedOperationError, match=r"bfloat16.*x\.float\(\)"):
            call()
    # the conversion it names works: by hand, d/da sum(a^2) = 2a
    g = kinkgrad.grad(lambda a: knp.sum(a * a))(x.float())
    assert g.dtype == torch.float32 and g.tolist() == [2.0, 2.0, 2.0]


def test_a_numpy_argument_differentiated_beside_tensors_becomes_a_tensor() -> None:
    # a float NumPy argument skipped the conversion to the torch backend, and the gradient
    # crashed casting to its NumPy dtype; by hand d/dw sum(w * x) = x, d/dx = w
    w, x = np.array([1.0, -2.0, 3.0]), torch.tensor([0.5, 4.0, -1.0], dtype=torch.float64)
    gw, gx = kinkgrad.grad(lambda w, x: knp.sum(knp.relu(w) * x), argnums=(0, 1))(w, x)
    assert isinstance(gw, torch.Tensor) and gw.dtype == torch.float64
    assert gw.tolist() == [0.5, 0.0, -1.0] and gx.tolist() == [1.0, 0.0, 3.0]


def test_numpy_float64_scalars_beside_tensors() -> None:
    # np.float64 is a Python float, which torch._numpy looked up by its exact type: a
    # KeyError from maximum / add / multiply / power, bare or inside grad
    t = torch.tensor([1.0, 3.0], dtype=torch.float64)
    g = kinkgrad.grad(lambda v: knp.sum(knp.maximum(v, np.float64(2.0)) * np.float64(3.0)))(t)
    np.testing.assert_array_equal(g.numpy(), [0.0, 3.0])  # by hand: slope 3 where v > 2
    np.testing.assert_array_equal(knp.maximum(t, np.float64(2.0)).numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(knp.power(t, np.float64(2.0)).numpy(), [1.0, 9.0])


def test_bare_comparisons_indices_and_factories_on_tensors_give_tensors() -> None:
    # they returned NumPy (comparisons called NumPy's ufunc, the integer helpers and the
    # *_like factories computed on a NumPy copy); NumPy's own answers are the truth
    a = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    t = torch.tensor(a, requires_grad=True)
    cases = [
        (knp.greater(t, 0.0), np.greater(a, 0.0)), (knp.less_equal(t, a), a <= a),
        (knp.argmax(t), np.argmax(a)), (knp.argmax(t, axis=1), np.argmax(a, axis=1)),
        (knp.argmin(t, axis=0, keepdims=True), np.argmin(a, axis=0, keepdims=True)),
        (knp.argsort(t), np.argsort(a, kind="stable")),
        (knp.argsort(t, axis=None), np.argsort(a, axis=None, kind="stable")),
        (knp.zeros_like(t), np.zeros_like(a)), (knp.ones_like(t), np.ones_like(a)),
        (knp.full_like(t, 2.5, dtype=np.float32), np.full_like(a, 2.5, dtype=np.float32)),
        (knp.asarray(t), a), (knp.sum(knp.greater(t, 0.0)), np.sum(a > 0)),
    ]
    for got, want in cases:
        assert isinstance(got, torch.Tensor) and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)
        assert got.numpy().dtype == np.asarray(want).dtype or want.dtype.kind == "i"
    for got, want in zip(knp.where(t > 0), np.nonzero(a > 0)):
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)
    rows = kinkgrad.vmap(lambda v: knp.argmax(v))(t)
    assert isinstance(rows, torch.Tensor)
    np.testing.assert_array_equal(rows.numpy(), np.argmax(a, axis=1))


def test_bare_clip_with_tensor_bounds() -> None:
    # the bounds travel as parameters, which the bare path did not look at: a bound that
    # requires grad raised torch's "Can't call numpy() on Tensor that requires grad", and a
    # tensor operand's result kept autograd through it
    x = np.linspace(-2.0, 2.0, 5)
    lo = torch.full((5,), -1.0, dtype=torch.float64, requires_grad=True)
    got = knp.clip(torch.tensor(x), lo, 1.0)
    assert isinstance(got, torch.Tensor) and not got.requires_grad
    np.testing.assert_array_equal(got.numpy(), np.clip(x, -1.0, 1.0))
    np.testing.assert_array_equal(np.asarray(knp.clip(x, lo, 1.0)), np.clip(x, -1.0, 1.0))


def test_bare_composites_on_tensors_are_detached_tensors() -> None:
    # square, outer, log_softmax and dot with a scalar used Python operators, which on a
    # bare tensor are torch's: the result kept autograd (and outer(ndarray, tensor) raised)
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    t = torch.tensor(a, requires_grad=True)
    lse = np.log(np.exp(a).sum(-1, keepdims=True))
    cases = [(knp.square(t), a * a), (knp.outer(a[0], t[1]), np.outer(a[0], a[1])),
             (knp.outer(t[0], a[1]), np.outer(a[0], a[1])), (knp.log_softmax(t), a - lse),
             (knp.softmax(t), np.exp(a - lse)), (knp.dot(2.0, t), 2.0 * a)]
    for got, want in cases:
        assert isinstance(got, torch.Tensor) and not got.requires_grad
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-15)


@pytest.mark.parametrize("method", ["linear", "midpoint"])
def test_bare_quantile_of_a_tensor_with_several_q(method: str) -> None:
    # the interpolation multiplied the gathered tensors by NumPy weights with operators:
    # torch's DeprecationWarning (__array_wrap__), an error under -W error
    a = np.random.default_rng(0).standard_normal((3, 7))
    got = knp.quantile(torch.tensor(a), [0.1, 0.65], axis=1, method=method)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), np.quantile(a, [0.1, 0.65], axis=1, method=method))


def test_where_of_two_python_floats_is_float64_on_tensors() -> None:
    # torch._numpy's where(cond, 0.1, -0.3) is float32 (torch's default dtype) where NumPy's
    # is float64: a float64 gradient on tensors was off by 1e-8 relative
    t = torch.tensor([1.0, -2.0], dtype=torch.float64)
    g = kinkgrad.grad(lambda v: knp.sum(v * knp.where(v > 0, 0.1, -0.3)))(t)
    np.testing.assert_array_equal(g.numpy(), [0.1, -0.3])  # by hand: the selected constant
    assert knp.where(t > 0, 0.1, -0.3).dtype == torch.float64
