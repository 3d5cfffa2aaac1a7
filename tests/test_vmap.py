"""Per-example gradients: ``kinkgrad.vmap(kinkgrad.grad(f), in_axes)`` and
``kinkgrad.per_example_grad`` against a loop of ``grad`` calls (one example each, the same kink
policy), against torch.func at smooth points, at ReLU and max-pool kinks, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import nn
from kinkgrad.errors import IntegerInputError, NonScalarOutputError, ShapeError
from kinkgrad.nn.losses import cross_entropy


def _loop(f, params, X, Y, **kw):
    return [kinkgrad.grad(f, **kw)(params, X[b], Y[b]) for b in range(len(X))]


def _assert_rows(got, rows, rtol=1e-12, atol=1e-13):
    """``got`` (a pytree of (B, ...) arrays) row by row against a list of pytrees."""
    if isinstance(got, dict):
        for k in got:
            _assert_rows(got[k], [r[k] for r in rows], rtol, atol)
        return
    assert got.shape == (len(rows),) + np.shape(rows[0])
    for b, r in enumerate(rows):
        np.testing.assert_allclose(got[b], r, rtol=rtol, atol=atol, err_msg=f"example {b}")


def _nn_loss(model):
    def loss(p, x, y):
        return cross_entropy(model(p, x[None]), y[None])
    return loss


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_nn_models_match_a_loop_of_grad(kind):
    ds = nn.load_dataset("digits", dtype=np.float64, images=kind == "cnn")
    model = nn.build_model(kind, ds.sample_shape, ds.n_classes, (16,))
    params, _ = model.init(0, ds.sample_shape, np.float64)
    X, Y = ds.X_train[:24], ds.y_train[:24]
    loss = _nn_loss(model)
    got = kinkgrad.vmap(kinkgrad.grad(loss), in_axes=(None, 0, 0))(params, X, Y)
    _assert_rows(got, _loop(loss, params, X, Y))
    # the mean of the per-example gradients is the gradient of the mean loss
    full = kinkgrad.grad(lambda p: cross_entropy(model(p, X), Y))(params)
    for k in params:
        for j in params[k]:
            np.testing.assert_allclose(got[k][j].mean(axis=0), full[k][j], atol=1e-12)


def _mlp_params(rng, dtype, sizes=(5, 7, 3)):
    return {f"W{i}": rng.normal(size=(a, b)).astype(dtype) for i, (a, b) in
            enumerate(zip(sizes[:-1], sizes[1:]))} | {
        f"b{i}": rng.normal(size=(b,)).astype(dtype) for i, b in enumerate(sizes[1:])}


def mlp_loss(p, x, y):
    """A plain knp MLP on one example: relu hidden layer, softmax cross-entropy."""
    h = knp.relu(x @ p["W0"] + p["b0"])
    z = h @ p["W1"] + p["b1"]
    return knp.logsumexp(z) - z[y]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_knp_mlp_matches_loop_and_torch_func(dtype):
    torch = pytest.importorskip("torch")
    from torch.func import grad as tgrad
    from torch.func import vmap as tvmap

    rng = np.random.default_rng(0)
    p = _mlp_params(rng, dtype)
    X, Y = rng.normal(size=(9, 5)).astype(dtype), rng.integers(0, 3, 9)
    got = kinkgrad.per_example_grad(mlp_loss, in_axes=(None, 0, 0))(p, X, Y)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    _assert_rows(got, _loop(mlp_loss, p, X, Y), rtol=tol, atol=tol)

    def tloss(tp, x, y):
        h = torch.relu(x @ tp["W0"] + tp["b0"])
        z = h @ tp["W1"] + tp["b1"]
        return torch.logsumexp(z, 0) - torch.gather(z, 0, y.reshape(1))[0]

    tp = {k: torch.tensor(v) for k, v in p.items()}
    want = tvmap(tgrad(tloss), in_dims=(None, 0, 0))(tp, torch.tensor(X), torch.tensor(Y))
    for k in p:
        assert got[k].dtype == dtype
        np.testing.assert_allclose(got[k], want[k].numpy(), rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("relu", [0.0, 1.0])
def test_relu_kinks_take_the_policy_choice_of_each_example_alone(relu):
    rng = np.random.default_rng(1)
    p = _mlp_params(rng, np.float64)
    X = rng.normal(size=(6, 5))
    # examples 0, 2 and 4 put hidden unit 1 exactly at 0: x . W0[:, 1] + b0[1] = 0
    X[::2, 0] = 0.0
    p["W0"][0, 1], p["W0"][1:, 1], p["b0"][1] = 1.0, 0.0, 0.0
    Y = np.array([0, 1, 2, 0, 1, 2])
    pol = kinkgrad.KinkPolicy(relu=relu)
    got = kinkgrad.per_example_grad(mlp_loss, in_axes=(None, 0, 0), policy=pol)(p, X, Y)
    _assert_rows(got, _loop(mlp_loss, p, X, Y, policy=pol))
    with kinkgrad.kink_policy(relu=relu):  # the policy in force, through vmap(grad)
        ctx = kinkgrad.vmap(kinkgrad.grad(mlp_loss), in_axes=(None, 0, 0))(p, X, Y)
    _assert_rows(ctx, [{k: got[k][b] for k in got} for b in range(6)], rtol=0, atol=0)
    # at the kink, relu'(0) decides the column of W1's unit-1 row: h_1 = 0 either way, but the
    # gradient of b0[1] is relu'(0) * (dL/dh_1), nonzero for relu'(0) = 1
    g_b01 = got["b0"][::2, 1]
    assert np.all(g_b01 == 0) if relu == 0.0 else np.all(g_b01 != 0)


@pytest.mark.parametrize("max_policy", ["first", "split"])
def test_max_pool_ties_follow_the_max_policy_per_example(max_policy):
    model = nn.Sequential(nn.Conv2d(2, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Dense(3))
    params, _ = model.init(0, (1, 5, 5), np.float64)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 1, 5, 5))
    X[1] = 0.0  # a constant image: every pooling window of that example is a tie
    params["0_conv"]["b"][:] = 0.25
    Y = np.array([0, 1, 2, 1, 0])
    pol = kinkgrad.KinkPolicy(max=max_policy)
    loss = _nn_loss(model)
    got = kinkgrad.vmap(kinkgrad.grad(loss, policy=pol), in_axes=(None, 0, 0))(params, X, Y)
    _assert_rows(got, _loop(loss, params, X, Y, policy=pol))


def test_one_trace_per_label_not_per_example():
    calls = []

    def loss(p, x, y):
        calls.append(1)
        return mlp_loss(p, x, y)

    rng = np.random.default_rng(3)
    p = _mlp_params(rng, np.float64)
    X, Y = rng.normal(size=(40, 5)), np.repeat([2, 0], 20)
    got = kinkgrad.vmap(kinkgrad.grad(loss), in_axes=(None, 0, 0))(p, X, Y)
    assert len(calls) == 2  # two distinct labels: two traces, one batched sweep
    calls.clear()
    _assert_rows(got, _loop(loss, p, X, Y))


def test_programs_that_differ_between_labels_and_a_primitive_without_batching_rule():
    rng = np.random.default_rng(4)
    W, A = rng.normal(size=(4, 3)), rng.normal(size=(2, 4, 4))

    def loss(w, x, y):
        s = knp.matmul(A, x @ w)  # (2, 4, 4) @ (4, 3): no batching rule, a loop per equation
        return knp.sum(knp.tanh(s)) if int(y) == 0 else knp.max(s) * 2.0

    X, Y = rng.normal(size=(5, 4, 4)), np.array([0, 1, 0, 1, 1])
    got = kinkgrad.per_example_grad(loss, in_axes=(None, 0, 0))(W, X, Y)
    _assert_rows(got, _loop(loss, W, X, Y))


def test_in_axes_argnums_and_other_functions():
    rng = np.random.default_rng(5)
    w, c = rng.normal(size=3), rng.normal(size=3)
    X = rng.normal(size=(3, 7))  # examples along axis 1

    def f(w, c, x):
        return knp.sum(knp.abs(w * x - c)) + knp.sum(w * c)

    gw, gc = kinkgrad.vmap(kinkgrad.grad(f, argnums=(0, 1)), in_axes=(None, None, 1))(w, c, X)
    for b in range(7):
        want = kinkgrad.grad(f, argnums=(0, 1))(w, c, X[:, b])
        np.testing.assert_allclose(gw[b], want[0], atol=1e-14)
        np.testing.assert_allclose(gc[b], want[1], atol=1e-14)
    # any other function: mapped by a loop, results stacked
    vals = kinkgrad.vmap(lambda x: np.sum(x ** 2), in_axes=1)(X)
    np.testing.assert_allclose(vals, np.sum(X ** 2, axis=0))


def test_errors_name_the_fix():
    rng = np.random.default_rng(6)
    p = _mlp_params(rng, np.float64)
    with pytest.raises(ShapeError, match="same number of examples"):
        kinkgrad.per_example_grad(mlp_loss, in_axes=(None, 0, 0))(
            p, rng.normal(size=(4, 5)), np.zeros(3, int))
    with pytest.raises(NonScalarOutputError, match="scalar"):
        kinkgrad.per_example_grad(lambda w, x: w * x, in_axes=(None, 0))(
            np.ones(2), np.ones((3, 2)))
    with pytest.raises(kinkgrad.KinkgradError, match="one entry"):
        kinkgrad.vmap(kinkgrad.grad(mlp_loss), in_axes=(None, 0))(p, np.ones((2, 5)), [0, 1])
    with pytest.raises(IntegerInputError, match="floating-point"):
        kinkgrad.per_example_grad(lambda w, x: knp.sum(w * x), in_axes=(None, 0))(
            np.ones(2, int), np.ones((3, 2)))
    empty = kinkgrad.per_example_grad(mlp_loss, in_axes=(None, 0, 0))(
        p, np.ones((0, 5)), np.zeros(0, int))
    assert {k: v.shape for k, v in empty.items()} == {k: (0,) + v.shape for k, v in p.items()}


def test_torch_tensors_take_a_loop_of_grad_and_stay_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w, X, Y = rng.normal(size=2), rng.normal(size=(4, 2)), np.array([1.0, -1.0, 1.0, 1.0])

    def loss(w, x, y):
        return knp.relu(1.0 - y * knp.dot(x, w))

    got = kinkgrad.vmap(kinkgrad.grad(loss), in_axes=(None, 0, 0))(
        torch.tensor(w), torch.tensor(X), torch.tensor(Y))
    assert isinstance(got, torch.Tensor)
    # by hand: relu'(1 - y x.w) (-y x)
    want = np.where((1 - Y * (X @ w) > 0)[:, None], -Y[:, None] * X, 0.0)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-15)


def _many_ops(p, x, y):
    """One example through most primitives: broadcasting, axis and shape rules, matmul of
    vectors and matrices, advanced indices (adjacent: a rule; separated: the loop)."""
    W, v = p["W"], p["v"]
    a = knp.broadcast_to(v, (3, 4)) * W + x
    c = knp.concatenate([a, W], axis=1)
    d = knp.stack([a, x], axis=0)
    terms = [knp.transpose(a)[:, 0], knp.sort(c, axis=-1)[:, 2:], knp.cumsum(a, axis=0) ** 2,
             knp.linalg.norm(a, ord=1, axis=1), knp.linalg.norm(a, axis=0), knp.max(d, axis=0),
             a[np.array([0, 2]), np.array([1, 3])], d[np.array([1, 0]), :, np.array([2, 3])],
             knp.where(a > 0, a, 0.1 * a), knp.clip(x, -0.5, 0.5), knp.leaky_relu(W - x, 0.2),
             knp.prod(knp.tanh(a[:, :2]) + 2.0, axis=1), knp.minimum(a[:, 0], x[:, 1]),
             knp.logsumexp(c, axis=1), knp.reshape(knp.expand_dims(a, 0), (3, 4))[:, 1],
             x[0] @ v + v @ x[1] + (x @ v)[2] + (W @ x.T)[0, 0] + (x @ W.T)[1, 2],
             knp.abs(a) * y]
    return sum(knp.sum(t) for t in terms)


def test_many_primitives_per_example_wrt_parameters_and_data():
    rng = np.random.default_rng(8)
    p = {"W": rng.normal(size=(3, 4)), "v": rng.normal(size=4)}
    X, Y = rng.normal(size=(6, 3, 4)), rng.normal(size=6)
    X[2, 0, 0] = -(p["v"][0] * p["W"][0, 0])  # a at exactly 0: the abs and where kinks
    got = kinkgrad.vmap(kinkgrad.grad(_many_ops, argnums=(0, 1)), in_axes=(None, 0, 0))(p, X, Y)
    rows = [kinkgrad.grad(_many_ops, argnums=(0, 1))(p, X[b], Y[b]) for b in range(6)]
    _assert_rows(got[0], [r[0] for r in rows])
    _assert_rows(got[1], [r[1] for r in rows])


@pytest.mark.parametrize("in_axes", [(None, 0), (None, 1), (None, -1), (0, 1), (1, -1),
                                     (-1, None)])
def test_torch_path_follows_in_axes_like_a_loop_of_grad(in_axes):
    # the torch loop took axis 0 whatever in_axes said: wrong rows, or a crash when the
    # batch axis is not square with the example axis (4 examples of 3 entries here)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)

    def f(w, x):
        return knp.sum(knp.relu(x * w)) + knp.sum(knp.abs(w - x) * w)

    def batched(ax):  # 4 examples of shape (3,) along axis ax; None: one shared (3,) vector
        v = rng.normal(size=(4, 3))
        v[1, 0] = 0.0  # a relu kink in example 1
        return v[0] if ax is None else np.moveaxis(v, 0, ax)

    w, X = batched(in_axes[0]), batched(in_axes[1])

    def example(a, ax, b):
        return a if ax is None else np.take(a, b, axis=ax)

    for argnums in (0, (0, 1)):
        loop = [kinkgrad.grad(f, argnums)(example(w, in_axes[0], b), example(X, in_axes[1], b))
                for b in range(4)]
        got = kinkgrad.per_example_grad(f, argnums, in_axes)(torch.tensor(w), torch.tensor(X))
        got_v = kinkgrad.vmap(kinkgrad.grad(f, argnums), in_axes)(torch.tensor(w),
                                                                  torch.tensor(X))
        got, got_v, want = ((got,), (got_v,), [(g,) for g in loop]) if argnums == 0 else \
            (got, got_v, loop)
        for k in range(len(got)):
            assert isinstance(got[k], torch.Tensor) and tuple(got[k].shape) == (4, 3)
            np.testing.assert_array_equal(got[k].numpy(), np.stack([g[k] for g in want]))
            np.testing.assert_array_equal(got_v[k].numpy(), got[k].numpy())


def test_torch_path_passes_keyword_arguments_to_f():
    # the torch loop dropped them: f ran with its default scale
    torch = pytest.importorskip("torch")

    def f(w, x, scale=1.0):
        return knp.sum(knp.relu(x * w)) * scale

    w, X = np.array([1.0, -2.0, 3.0]), np.array([[1.0, 2.0, 3.0], [4.0, -5.0, 6.0]])
    got = kinkgrad.per_example_grad(f, 0, (None, 0))(torch.tensor(w), torch.tensor(X),
                                                     scale=3.0)
    # by hand: 3 * x where x * w > 0, else 0
    np.testing.assert_array_equal(got.numpy(), [[3.0, 0.0, 9.0], [12.0, -15.0, 18.0]])


def test_torch_path_with_no_examples_gives_empty_tensors_like_numpy():
    torch = pytest.importorskip("torch")

    def f(w, x):
        return knp.sum(knp.relu(w * x))

    w = np.ones(3)
    for in_axes, X in (((None, 0), np.ones((0, 3))), ((None, 1), np.ones((3, 0)))):
        g = kinkgrad.per_example_grad(f, 0, in_axes)(torch.tensor(w), torch.tensor(X))
        assert isinstance(g, torch.Tensor) and tuple(g.shape) == (0, 3)
        assert g.dtype == torch.float64
        gw, gx = kinkgrad.per_example_grad(f, (0, 1), in_axes)(
            torch.tensor(w, dtype=torch.float32), torch.tensor(X))
        assert tuple(gw.shape) == tuple(gx.shape) == (0, 3)
        assert gw.dtype == torch.float32 and gx.dtype == torch.float64
    with pytest.raises(IntegerInputError, match="floating-point"):
        kinkgrad.per_example_grad(f, 0, (None, 0))(torch.ones(3, dtype=torch.int64),
                                                   torch.ones((0, 3)))


# ---------------------------------------------------------------------- rows = grad's rows
def _grad_rows(f, args, in_axes, argnums=0, **kw):
    """The truth: ``grad`` of each example alone (a Python loop), stacked; an example whose
    ``grad`` raises gives ``(b, exception)`` instead."""
    n = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    g = kinkgrad.grad(f, argnums, **kw)
    rows = []
    for b in range(n):
        try:
            rows.append(g(*[a if ax is None else np.take(a, b, axis=ax)
                            for a, ax in zip(args, in_axes)]))
        except kinkgrad.KinkgradError as exc:
            return b, exc
    return rows


@pytest.mark.parametrize("argnums", [(0, 0), (0, -2), (1, 1), (1, 0, 1), (1, 0)])
def test_repeated_argnums_give_the_gradient_at_each_entry(argnums):
    # a repeated position raised a bare StopIteration from _core/pytree.py, and (1, 0) gave
    # the gradients in the order of the arguments (swapped), silently
    def f(x, y):
        return knp.sum(x * y) + knp.sum(knp.relu(y - 4.5))

    x, Y = np.array([1.0, 2.0]), np.array([[3.0, 4.0], [5.0, 6.0], [4.5, 0.0]])
    got = kinkgrad.per_example_grad(f, argnums, (None, 0))(x, Y)
    want = _grad_rows(f, (x, Y), (None, 0), argnums)
    assert isinstance(got, tuple) and len(got) == len(argnums)
    for k in range(len(argnums)):
        np.testing.assert_array_equal(got[k], np.stack([r[k] for r in want]))
    assert not np.shares_memory(got[0], got[-1])  # each entry is its own array, as grad's
    torch = pytest.importorskip("torch")
    tgot = kinkgrad.vmap(kinkgrad.grad(f, argnums), (None, 0))(torch.tensor(x), torch.tensor(Y))
    for k in range(len(argnums)):
        np.testing.assert_array_equal(tgot[k].numpy(), np.stack([r[k] for r in want]))


@pytest.mark.parametrize("argnums", [1.0, True, (0, 1.0), "0"])
def test_argnums_that_are_not_ints_are_refused_like_grad(argnums):
    with pytest.raises(kinkgrad.KinkgradError, match="per_example_grad: argnums"):
        kinkgrad.per_example_grad(lambda x: knp.sum(x), argnums)
    with pytest.raises(kinkgrad.KinkgradError, match="out of range"):
        kinkgrad.per_example_grad(lambda x, y: knp.sum(x * y), 2)(np.ones((2, 3)), np.ones(3))


def _ties_max(x):
    return knp.max(x) * 2.0


_INDEX_HELPERS = {
    "argmax": lambda x: x[knp.argmax(x)] ** 2,
    "argmin": lambda x: x[knp.argmin(x)] ** 3,
    "np.argmax": lambda x: x[np.argmax(x)] ** 2,
    "argsort": lambda x: knp.sum(knp.take_along_axis(x, knp.argsort(x), 0) *
                                 np.array([1.0, 2.0, 3.0])),
    "argsort_index": lambda x: knp.sum(x[knp.argsort(x)[:2]] ** 2),
    "where_one_argument": lambda x: knp.sum(x[knp.where(x > 0)] ** 2),
    "value": lambda x: x[int(np.argmax(x.value))] ** 2,
    "max_ties": _ties_max,
}


@pytest.mark.parametrize("name", list(_INDEX_HELPERS))
def test_indices_computed_from_the_values_are_each_examples_own(name):
    # argmax & co. were evaluated at example 0 and reused for every example: row 1 of
    # x[argmax(x)]**2 came back as [0, 0, -6] instead of [0, 4, 0], silently
    f = _INDEX_HELPERS[name]
    X = np.array([[1.0, -2.0, 3.0], [-1.0, 2.0, -3.0], [0.5, 0.5, -1.0], [4.0, 1.0, 1.0]])
    got = kinkgrad.per_example_grad(f)(X)
    np.testing.assert_array_equal(got, np.stack(_grad_rows(f, (X,), (0,))))
    if name == "argmax":  # by hand
        np.testing.assert_array_equal(got[:2], [[0.0, 0.0, 6.0], [0.0, 4.0, 0.0]])
    # with integer labels (one trace per label) as well
    Y = np.array([0, 1, 1, 0])

    def g(x, y):
        return f(x) * (y + 1.0)

    got = kinkgrad.vmap(kinkgrad.grad(g), (0, 0))(X, Y)
    np.testing.assert_array_equal(got, np.stack(_grad_rows(g, (X, Y), (0, 0))))


def test_python_decisions_on_traced_values_raise_and_value_free_helpers_keep_one_sweep():
    X = np.array([[1.0, -2.0], [-1.0, 2.0]])
    with pytest.raises(kinkgrad.errors.TracerBoolConversionError):
        kinkgrad.per_example_grad(lambda x: x[0] if x[0] > 0 else x[1])(X)
    calls = []

    def f(x):  # zeros_like/ones_like read the shape only: the batched sweep stays
        calls.append(1)
        return knp.sum(x * x + knp.zeros_like(x) + knp.ones_like(x))

    np.testing.assert_array_equal(kinkgrad.per_example_grad(f)(X), 2 * X)
    assert len(calls) == 1
    calls.clear()

    def g(w, x):  # an index from the shared parameters alone is every example's
        calls.append(1)
        return w[knp.argmax(w)] * knp.sum(w * x)

    w = np.array([0.5, 2.0])
    got = kinkgrad.per_example_grad(g, 0, (None, 0))(w, X)
    assert len(calls) == 1
    np.testing.assert_array_equal(got, np.stack(_grad_rows(g, (w, X), (None, 0))))


_DISCARDED = {
    "where_sqrt": lambda w, x: knp.sum(knp.where(x > 0, knp.sqrt(w * x), 0.0)),
    "where_log": lambda w, x: knp.sum(knp.where(x > 0, knp.log(w * x), w)),
    "where_inf": lambda w, x: knp.sum(knp.where(x > 0, 2.0 * x * w, w * x * np.inf)),
}


@pytest.mark.parametrize("errstate", ["ignore", "raise"])
@pytest.mark.parametrize("name", list(_DISCARDED))
def test_a_where_discards_its_unselected_branch_per_example_as_grad(name, errstate):
    # row 0 came back [nan, 0.707] where grad of example 0 alone gives [0, 0.707]
    f = _DISCARDED[name]
    w = np.array([1.0, 2.0])
    X = np.array([[0.0, 4.0], [1.0, 1.0], [2.0, 0.0], [3.0, 5.0]])
    with np.errstate(all=errstate):
        want = _grad_rows(f, (w, X), (None, 0))
        if isinstance(want, tuple):  # under "raise" grad refuses log(0) of example 0
            with pytest.raises(type(want[1]), match=f"example {want[0]}"):
                kinkgrad.per_example_grad(f, 0, (None, 0))(w, X)
            return
        got = kinkgrad.per_example_grad(f, 0, (None, 0))(w, X)
    np.testing.assert_array_equal(got, np.stack(want))
    if name == "where_sqrt":  # by hand: x / (2 sqrt(w x)) where x > 0, else 0
        np.testing.assert_allclose(got[0], [0.0, 4.0 / (2 * np.sqrt(8.0))])


def _weighted(w, x):
    return knp.sum(w * x)


def _log_weighted(w, x):
    return knp.sum(knp.log(w * x))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("errstate", ["ignore", "raise"])
@pytest.mark.parametrize("case", ["nan_data", "inf_data", "nan_value", "inf_parameter"])
def test_an_example_that_is_not_finite_raises_naming_it(case, errstate, backend):
    # per_example_grad returned [nan, 1, 1], [inf, 2] or a finite row for such examples
    X = np.array([[1.0, 2.0, 0.5], [1.0, 1.0, 1.0], [3.0, 1.0, 2.0]])
    w, f, argnums, bad = np.ones(3), _weighted, 0, 1
    if case == "nan_data":
        X[1, 0] = np.nan
    elif case == "inf_data":
        X[2, 1], argnums, bad = np.inf, 1, 2
    elif case == "nan_value":
        X[1, 0], f = -1.0, _log_weighted
    else:
        w[0], bad = np.inf, 0
    with np.errstate(all=errstate):
        want = _grad_rows(f, (w, X), (None, 0), argnums)
        assert isinstance(want, tuple) and want[0] == bad  # grad of that example raises
        args = (w, X)
        if backend == "torch":
            torch = pytest.importorskip("torch")
            args = (torch.tensor(w), torch.tensor(X))
        with pytest.raises(type(want[1]), match=f"per_example_grad: example {bad} "):
            kinkgrad.per_example_grad(f, argnums, (None, 0))(*args)
        ok = np.delete(X, bad, axis=0) if case != "inf_parameter" else X
        wk = np.ones(3)
        got = kinkgrad.per_example_grad(f, argnums, (None, 0))(wk, ok)
        np.testing.assert_array_equal(got, np.stack(_grad_rows(f, (wk, ok), (None, 0),
                                                               argnums)))


def test_label_groups_check_and_repair_rows_as_well():
    # the programs differ between labels (one sweep per label group): every group's rows are
    # checked, repaired by grad (a where's unselected branch) or refused naming the example
    def loss(w, x, y):
        if int(y) == 0:
            return knp.sum(knp.where(x > 0, knp.sqrt(w * x), 0.0))
        return knp.sum(knp.log(w * x)) * 2.0

    w = np.array([1.0, 2.0])
    X, Y = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 0.0], [2.0, 2.0]]), np.array([0, 1, 0, 1])
    with np.errstate(all="ignore"):
        got = kinkgrad.per_example_grad(loss, 0, (None, 0, 0))(w, X, Y)
        np.testing.assert_array_equal(got, np.stack(_grad_rows(loss, (w, X, Y), (None, 0, 0))))
        X[3, 1] = -1.0  # log of a negative number in example 3
        with pytest.raises(kinkgrad.errors.NonFiniteInputError, match="example 3 "):
            kinkgrad.per_example_grad(loss, 0, (None, 0, 0))(w, X, Y)


def test_vmap_over_no_examples_gives_zero_rows_shaped_like_the_outputs():
    # as JAX: the outputs' structure and per-example shapes, with a leading axis of 0 (an
    # IndexError before); the shapes by hand
    out = kinkgrad.vmap(lambda x, w: (knp.sum(knp.abs(x * w)), {"y": 2.0 * x}),
                        in_axes=(0, None))(np.zeros((0, 3), np.float32), np.ones(3))
    assert out[0].shape == (0,) and out[1]["y"].shape == (0, 3)
    assert out[1]["y"].dtype == np.float32


def test_per_example_rows_can_be_clipped_in_place():
    # per-example clipping (differential privacy) scales the rows in place; the batched rows
    # were read-only broadcast views (ValueError). Truth: a loop of grad, scaled
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    p = {"w": rng.normal(size=3), "b": np.zeros(1)}

    def f(p, x, t):
        return (knp.sum(knp.relu(x * p["w"])) + p["b"][0] - t) ** 2

    G = kinkgrad.per_example_grad(f, 0, (None, 0, 0))(p, X, y)
    norms = np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in G.values()))
    scale = np.minimum(1.0, 0.5 / norms)
    for g in G.values():
        g *= scale.reshape((-1,) + (1,) * (g.ndim - 1))
    for b in range(len(X)):
        want = kinkgrad.grad(f)(p, X[b], y[b])
        for k in G:
            np.testing.assert_allclose(G[k][b], scale[b] * want[k], rtol=1e-12, atol=1e-15)
