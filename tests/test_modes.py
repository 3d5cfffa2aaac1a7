"""The transformations: grad, value_and_grad, vjp, jvp, jacobian over pytrees, argnums,
has_aux, report; NumPy's dispatch protocols on traced values; plain runs; Programs."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError
from kinkgrad.testing import check_grads

RNG = np.random.default_rng(42)


def _fd_grad(f, x, eps=1e-6):
    """Central differences of a scalar function of one array."""
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        g.flat[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def _fd_jac(f, x, eps=1e-6):
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        cols.append(np.ravel((f(x + e) - f(x - e)) / (2 * eps)))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


# ---------------------------------------------------------------------- pytrees and argnums
def test_grad_over_a_dict_tuple_list_pytree():
    params = {"w": RNG.normal(size=(2, 3)), "b": (RNG.normal(size=3), [RNG.normal(size=2)])}

    def f(p):
        w, (b0, [b1]) = p["w"], p["b"]
        return knp.sum(w * w) + knp.sum(b0 * 3.0) + knp.sum(knp.exp(b1))

    g = kinkgrad.grad(f)(params)
    assert set(g) == {"w", "b"} and isinstance(g["b"], tuple) and isinstance(g["b"][1], list)
    np.testing.assert_allclose(g["w"], 2 * params["w"], rtol=1e-15)
    np.testing.assert_allclose(g["b"][0], np.full(3, 3.0), rtol=1e-15)
    np.testing.assert_allclose(g["b"][1][0], np.exp(params["b"][1][0]), rtol=1e-15)


def test_argnums_int_and_tuple():
    x, y = RNG.normal(size=3), RNG.normal(size=3)
    f = lambda a, b: knp.sum(a * b) + knp.sum(b ** 2)  # noqa: E731
    np.testing.assert_allclose(kinkgrad.grad(f)(x, y), y)
    np.testing.assert_allclose(kinkgrad.grad(f, argnums=1)(x, y), x + 2 * y)
    np.testing.assert_allclose(kinkgrad.grad(f, argnums=-1)(x, y), x + 2 * y)
    gx, gy = kinkgrad.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, y)
    np.testing.assert_allclose(gy, x + 2 * y)
    v, (gx2, gy2) = kinkgrad.value_and_grad(f, argnums=(1, 0))(x, y)
    np.testing.assert_allclose(v, x @ y + y @ y)
    np.testing.assert_allclose(gx2, x + 2 * y)  # in argnums order
    np.testing.assert_allclose(gy2, y)
    # non-differentiated arguments may be integers (labels) and are passed through
    h = lambda a, k: knp.sum(a[k])  # noqa: E731
    assert kinkgrad.grad(h)(np.ones(4), np.array([0, 0, 2])).tolist() == [2, 0, 1, 0]


def test_an_argument_named_twice_in_argnums_gets_its_gradient_at_each_entry():
    # sum(x * y): d/dx = y, d/dy = x (by hand); JAX returns the gradient at every entry
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    f = lambda a, b: knp.sum(a * b)  # noqa: E731
    for nums, want in [((0, 0), (y, y)), ((0, -2), (y, y)), ((0, 1, 0), (y, x, y)),
                       ((1, 0, 1), (x, y, x))]:
        got = kinkgrad.grad(f, argnums=nums)(x, y)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        v, got2 = kinkgrad.value_and_grad(f, argnums=nums)(x, y)
        assert v == 11.0
        for g, w in zip(got2, want):
            np.testing.assert_array_equal(g, w)
        jac = kinkgrad.jacobian(lambda a, b: a * b, argnums=nums)(x, y)  # one per entry
        for j, w in zip(jac, want):
            np.testing.assert_array_equal(j, np.diag(w))
    # a pytree argument, a Program (replayed), and separate arrays at the repeated entries
    gp = kinkgrad.grad(lambda p, b: knp.sum(p["a"] * b), argnums=(0, 0))({"a": x}, y)
    np.testing.assert_array_equal(gp[0]["a"], y)
    np.testing.assert_array_equal(gp[1]["a"], y)
    prog = kinkgrad.trace(f, x, y)
    g0, g1, g2 = kinkgrad.grad(prog, argnums=(1, 0, -1))(x, y)
    np.testing.assert_array_equal(g0, x)
    np.testing.assert_array_equal(g1, y)
    np.testing.assert_array_equal(g2, x)
    g0[0] = 99.0
    assert g2[0] == 1.0
    # trace: an argument named twice is one input
    assert len(kinkgrad.trace(f, x, y, argnums=(1, 1, -1)).invars) == 1


def test_has_aux_and_report():
    def f(x):
        y = knp.relu(x)
        return knp.sum(y), {"active": np.sum(x > 0)}

    x = np.array([-1.0, 0.0, 2.0])
    g, aux = kinkgrad.grad(f, has_aux=True)(x)
    assert g.tolist() == [0, 0, 1] and aux["active"] == 1
    (v, aux2), g2 = kinkgrad.value_and_grad(f, has_aux=True)(x)
    assert v == 2.0 and aux2 == aux and g2.tolist() == g.tolist()
    g3, aux3, rep = kinkgrad.grad(f, has_aux=True, report=True)(x)
    assert g3.tolist() == g.tolist() and rep.total == 1 and rep.records[0].primitive == "relu"
    (v4, aux4), g4, rep4 = kinkgrad.value_and_grad(f, has_aux=True, report=True)(x + 5)
    assert v4 == 16.0 and not rep4.any and rep4.nonsmooth_nodes == 1
    g5, rep5 = kinkgrad.grad(lambda a: f(a)[0], report=True)(x)
    assert rep5.total == 1 and g5.tolist() == [0, 0, 1]


def test_vjp_over_pytree_outputs_and_a_batch_of_cotangents():
    x, W = RNG.normal(size=3), RNG.normal(size=(2, 3))
    f = lambda a, M: {"y": M @ a, "s": knp.sum(knp.tanh(a))}  # noqa: E731
    out, fn = kinkgrad.vjp(f, x, W)
    np.testing.assert_allclose(out["y"], W @ x)
    gx, gW = fn({"y": np.array([1.0, -2.0]), "s": np.float64(0.5)})
    np.testing.assert_allclose(gx, W.T @ [1.0, -2.0] + 0.5 * (1 - np.tanh(x) ** 2))
    np.testing.assert_allclose(gW, np.outer([1.0, -2.0], x))
    # a batch of 4 cotangents (trailing axis: the columns, J^T W) in one sweep equals 4 sweeps
    cy, cs = RNG.normal(size=(2, 4)), RNG.normal(size=4)
    bx, bW = fn({"y": cy, "s": cs})
    assert bx.shape == (3, 4) and bW.shape == (2, 3, 4)
    for k in range(4):
        sx, sW = fn({"y": cy[:, k], "s": cs[k]})
        np.testing.assert_allclose(bx[..., k], sx, rtol=1e-13)
        np.testing.assert_allclose(bW[..., k], sW, rtol=1e-13)
    lx, lW = fn({"y": cy.T, "s": cs}, batch_axis=0)  # rows: the batch first, in and out
    np.testing.assert_allclose(lx, bx.T, rtol=1e-13)
    np.testing.assert_allclose(lW, np.moveaxis(bW, -1, 0), rtol=1e-13)


def test_jvp_with_a_batch_of_tangents_equals_single_jvps():
    W1, W2 = RNG.normal(size=(5, 4)), RNG.normal(size=(3, 5))
    f = lambda x: knp.max(W2 @ knp.relu(W1 @ x), axis=0) + knp.linalg.norm(x, 1)  # noqa
    x = RNG.normal(size=4)
    T = RNG.normal(size=(4, 6))  # k = 6 directions, shape (n, k)
    v, tb = kinkgrad.jvp(f, (x,), (T,))
    assert tb.shape == (6,)
    for k in range(6):
        v1, t1 = kinkgrad.jvp(f, (x,), (T[:, k],))
        assert v1 == v
        np.testing.assert_allclose(tb[k], t1, rtol=1e-12, atol=1e-14)
    # and the batch equals the directional differences at this smooth point
    fd = [(f(x + 1e-6 * T[:, k]) - f(x - 1e-6 * T[:, k])) / 2e-6 for k in range(6)]
    np.testing.assert_allclose(tb, fd, rtol=1e-6, atol=1e-7)


def test_jvp_over_pytree_primals():
    p = {"a": RNG.normal(size=2), "b": [RNG.normal(size=(2, 2))]}
    t = {"a": np.ones(2), "b": [np.eye(2)]}
    out, tan = kinkgrad.jvp(lambda q: (q["b"][0] @ q["a"], knp.sum(q["a"])), (p,), (t,))
    np.testing.assert_allclose(out[0], p["b"][0] @ p["a"])
    np.testing.assert_allclose(tan[0], np.eye(2) @ p["a"] + p["b"][0] @ np.ones(2))
    assert tan[1] == 2.0


def test_jvp_and_vjp_refuse_tangents_of_another_structure():
    # the same number of leaves is not enough: keys and containers must match (as in JAX)
    f = lambda p: p["a"] * 2.0 + p["b"]  # noqa: E731
    p = {"a": np.ones(2), "b": np.ones(2)}
    with pytest.raises(KinkgradError, match=r"tangents must have the same structure as primals"):
        kinkgrad.jvp(f, (p,), ({"a": np.ones(2), "c": np.full(2, 5.0)},))
    with pytest.raises(KinkgradError, match=r"tangents must have the same structure as primals"):
        kinkgrad.jvp(f, (p,), ((np.ones(2), np.full(2, 5.0)),))
    _, t = kinkgrad.jvp(f, (p,), ({"b": np.full(2, 5.0), "a": np.ones(2)},))  # key order: free
    np.testing.assert_array_equal(t, [7.0, 7.0])  # 2 * 1 + 5, by hand
    g = lambda x: {"u": x * 2.0, "v": x * 3.0}  # noqa: E731
    _, fn = kinkgrad.vjp(g, np.ones(2))
    for bad in ({"v": np.ones(2), "w": np.zeros(2)}, [np.ones(2), np.zeros(2)]):
        with pytest.raises(KinkgradError, match=r"cotangent must have the structure of the out"):
            fn(bad)
    (gx,) = fn({"v": np.ones(2), "u": np.zeros(2)})
    np.testing.assert_array_equal(gx, [3.0, 3.0])  # the cotangent on v: 3, by hand
    # an integer leaf of a container is a constant: its tangent is ignored, the others align
    h = lambda q: q["w"][q["idx"]] * 2.0  # noqa: E731
    q = {"idx": np.array([1]), "w": np.array([1.0, 2.0])}
    _, th = kinkgrad.jvp(h, (q,), ({"idx": np.array([0]), "w": np.array([10.0, 20.0])},))
    np.testing.assert_array_equal(th, [40.0])


# ---------------------------------------------------------------------- jacobians
def _programs():
    A, B = RNG.normal(size=(6, 5)), RNG.normal(size=(4, 6))
    return {
        "smooth": lambda x: knp.tanh(B @ knp.exp(A @ x * 0.3)) + knp.logsumexp(x),
        "relu_net": lambda x: B @ knp.relu(A @ x + 0.1),
        "piecewise": lambda x: knp.concatenate([knp.sort(x), knp.abs(x) * knp.max(x),
                                                knp.clip(x, -0.5, 0.5),
                                                knp.maximum(x, x[::-1])]),
        "norms": lambda x: knp.stack([knp.linalg.norm(x), knp.linalg.norm(x, ord=1),
                                      knp.linalg.norm(x, ord=np.inf)]),
    }


@pytest.mark.parametrize("name", list(_programs()))
def test_jacobian_rev_equals_fwd_equals_differences(name):
    f = _programs()[name]
    x = RNG.normal(size=5)
    jr = kinkgrad.jacobian(f, mode="rev")(x)
    jf = kinkgrad.jacobian(f, mode="fwd")(x)
    np.testing.assert_allclose(jr, jf, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(jr, _fd_jac(f, x), rtol=1e-5, atol=1e-6)  # smooth point
    # at a kink both modes make the same declared choice (equal up to summation order)
    xk = np.array([0.0, 0.5, 0.5, -0.5, 1.0])
    np.testing.assert_allclose(kinkgrad.jacobian(f, mode="rev")(xk),
                               kinkgrad.jacobian(f, mode="fwd")(xk), rtol=1e-13, atol=1e-15)


def test_jacobian_of_a_matrix_argument_and_scalar_output():
    X = RNG.normal(size=(2, 3))
    j = kinkgrad.jacobian(lambda M: M @ np.ones(3))(X)
    assert j.shape == (2, 2, 3)
    np.testing.assert_array_equal(j, np.stack([np.outer([1, 0], np.ones(3)),
                                               np.outer([0, 1], np.ones(3))]))
    js = kinkgrad.jacobian(lambda M: knp.sum(M * M), mode="fwd")(X)
    np.testing.assert_allclose(js, 2 * X)


# ---------------------------------------------------------------------- NumPy protocols
def test_plain_numpy_calls_on_traced_values():
    W = RNG.normal(size=(3, 4))

    def with_np(x):
        h = np.maximum(W @ x, 0.0)
        return np.sum(np.exp(-h)) + np.mean(np.abs(x)) + np.dot(x, x) + np.max(x) \
            + np.linalg.norm(x) + np.sum(np.where(x > 0, x, 0.0)) + np.sum(np.sort(x)[:2]) \
            + np.sum(np.clip(x, -0.1, 0.1)) + np.sum(np.tanh(np.square(x)))

    def with_knp(x):
        h = knp.maximum(W @ x, 0.0)
        return knp.sum(knp.exp(-h)) + knp.mean(knp.abs(x)) + knp.dot(x, x) + knp.max(x) \
            + knp.linalg.norm(x) + knp.sum(knp.where(x > 0, x, 0.0)) \
            + knp.sum(knp.sort(x)[:2]) + knp.sum(knp.clip(x, -0.1, 0.1)) \
            + knp.sum(knp.tanh(x * x))

    x = RNG.normal(size=4)
    assert [e.prim.name for e in kinkgrad.trace(with_np, x).eqns] == \
        [e.prim.name for e in kinkgrad.trace(with_knp, x).eqns]
    g = kinkgrad.grad(with_np)(x)
    np.testing.assert_allclose(g, kinkgrad.grad(with_knp)(x), rtol=1e-15)
    np.testing.assert_allclose(g, _fd_grad(with_np, x), rtol=1e-6, atol=1e-7)
    check_grads(with_np, x)


def test_functions_run_plain_on_numpy_arrays_outside_a_trace():
    W = RNG.normal(size=(3, 4))
    f = lambda x: knp.sum(knp.relu(W @ x)) + knp.linalg.norm(x, 1)  # noqa: E731
    x = RNG.normal(size=4)
    y = f(x)
    assert type(y) in (np.float64, np.ndarray)
    assert y == np.sum(np.maximum(W @ x, 0)) + np.sum(np.abs(x))
    out = knp.sort(knp.abs(x))
    assert type(out) is np.ndarray and out.tolist() == sorted(np.abs(x).tolist())


# ---------------------------------------------------------------------- Programs
def test_program_reevaluates_at_a_new_point_and_is_differentiable():
    W, b = RNG.normal(size=(3, 4)), RNG.normal(size=3)
    f = lambda x: knp.sum(knp.relu(W @ x + b) ** 2) + knp.max(x)  # noqa: E731
    prog = kinkgrad.trace(f, np.zeros(4))
    assert isinstance(prog, kinkgrad.Program) and len(prog.eqns) == 7
    for _ in range(3):
        x = RNG.normal(size=4)
        assert prog(x) == f(x)
        np.testing.assert_array_equal(kinkgrad.grad(prog)(x), kinkgrad.grad(f)(x))
    np.testing.assert_allclose(kinkgrad.grad(prog)(x), _fd_grad(f, x), rtol=1e-6, atol=1e-8)
    assert prog.cost().function == kinkgrad.cost(f, x).function > 0


def test_program_of_several_inputs_and_outputs():
    prog = kinkgrad.trace(lambda a, b: (a * b, knp.sum(a)), np.ones(2), np.ones(2))
    p, s = prog(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert p.tolist() == [3.0, 8.0] and s == 3.0
    g = kinkgrad.grad(lambda a, b: knp.sum(prog(a, b)[0]), argnums=(0, 1))(
        np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert g[0].tolist() == [3.0, 4.0] and g[1].tolist() == [1.0, 2.0]


def test_kink_policy_is_read_at_call_time():
    f = kinkgrad.grad(lambda x: knp.sum(knp.relu(x)))
    x = np.zeros(2)
    assert f(x).tolist() == [0, 0]
    with kinkgrad.kink_policy(relu=1.0):
        assert f(x).tolist() == [1, 1]
        with kinkgrad.kink_policy(relu=0.5):
            assert f(x).tolist() == [0.5, 0.5]
        assert f(x).tolist() == [1, 1]
    assert f(x).tolist() == [0, 0]


def test_a_norm_kink_record_counts_among_the_inputs_entries():
    # ||x||_1 at [0, 1, 0]: two of its three entries at a kink (by hand); size was the
    # output's (1), so the report read "2/1 at a kink"
    _, _, rep = kinkgrad.value_and_grad(lambda x: knp.linalg.norm(x, 1), report=True)(
        np.array([0.0, 1.0, 0.0]))
    assert [(r.primitive, r.count, r.size) for r in rep.records] == [("norm", 2, 3)]


def test_cost_of_a_program_at_other_shapes_is_refused():
    # kinkgrad.cost(prog, ones(1000)) reported the cost at the traced shape (3,), silently
    prog = kinkgrad.trace(lambda x: knp.sum(x * x), np.ones(3))
    assert kinkgrad.cost(prog, np.ones(3)).function == kinkgrad.cost(prog).function
    with pytest.raises(kinkgrad.errors.ShapeError, match=r"traced with shape \(3,\)"):
        kinkgrad.cost(prog, np.ones(1000))
