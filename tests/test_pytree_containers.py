"""Pytrees users pass: namedtuples, dataclasses, integer/bool leaves inside a params dict
(constants), Python lists of arrays, and knp.asarray of a list of traced scalars (a stack).

Expected gradients are computed independently: closed forms in plain NumPy and central
differences of the plain-NumPy function."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core import pytree
from kinkgrad.errors import IntegerInputError, UnsupportedOperationError
from kinkgrad.nn.optim import SGD, Adam

Pair = namedtuple("Pair", "w b")


@dataclasses.dataclass
class Params:
    w: np.ndarray
    b: np.ndarray


@dataclasses.dataclass(frozen=True)
class Frozen:
    w: np.ndarray
    scale: float
    name: str = "layer"


W = np.array([0.5, -1.5, 2.0])
B = np.array([1.0, 2.0, -3.0])


def _fd(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a plain-NumPy function of one array."""
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        g.flat[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def test_namedtuple_argument_gives_a_namedtuple_gradient():
    g = kinkgrad.grad(lambda p: knp.sum(knp.tanh(p.w) * p.b))(Pair(W, B))
    assert type(g) is Pair
    np.testing.assert_allclose(g.w, (1 - np.tanh(W) ** 2) * B, rtol=1e-12)
    np.testing.assert_allclose(g.b, np.tanh(W), rtol=1e-12)


@pytest.mark.parametrize("frozen", [False, True])
def test_dataclass_argument_gives_a_dataclass_gradient(frozen):
    if frozen:
        p = Frozen(W, 3.0)
        g = kinkgrad.grad(lambda q: knp.sum(knp.abs(q.w) * q.scale))(p)
        assert type(g) is Frozen and g.name is None  # a string field is a constant
        np.testing.assert_allclose(g.w, 3.0 * np.sign(W))
        np.testing.assert_allclose(g.scale, np.abs(W).sum())
    else:
        g = kinkgrad.grad(lambda q: knp.sum(q.w * q.w * q.b))(Params(W, B))
        assert type(g) is Params
        np.testing.assert_allclose(g.w, 2 * W * B)
        np.testing.assert_allclose(g.b, W * W)


def test_integer_index_array_in_a_params_dict_is_a_constant():
    idx = np.array([0, 2, 2])
    mask = np.array([True, False, True])
    params = {"w": W, "idx": idx, "mask": mask, "n": 2}

    def f(p):
        picked = p["w"][p["idx"]]
        return knp.sum(picked ** 2) + knp.sum(knp.where(p["mask"], p["w"], 0.0)) * p["n"]

    def f_np(w):
        return np.sum(w[idx] ** 2) + np.sum(np.where(mask, w, 0.0)) * 2

    v, g = kinkgrad.value_and_grad(f)(params)
    assert v == pytest.approx(f_np(W))
    np.testing.assert_allclose(g["w"], _fd(f_np, W), rtol=1e-8)
    # the constants' gradient entries: zeros of their shape and dtype
    assert g["idx"].dtype == idx.dtype and g["idx"].shape == idx.shape and not g["idx"].any()
    assert g["mask"].dtype == bool and not g["mask"].any()
    assert g["n"].shape == () and g["n"] == 0
    # the same point through vjp and the abs-smooth layer (clarke_grad)
    _, fn = kinkgrad.vjp(f, params)
    np.testing.assert_allclose(fn(1.0)[0]["w"], g["w"])
    gc, _ = kinkgrad.clarke_grad(f, params)
    np.testing.assert_allclose(gc["w"], g["w"])
    assert not gc["idx"].any()
    # directions shaped like the params: the constant positions may hold anything
    d = kinkgrad.directional(f, params, {"w": np.ones(3), "idx": None, "mask": None, "n": 0})
    assert float(d) == pytest.approx(_fd(f_np, W).sum(), rel=1e-8)


def test_a_container_without_float_leaves_is_refused():
    with pytest.raises(IntegerInputError, match="astype"):
        kinkgrad.grad(lambda p: knp.sum(p["idx"] * 1.0))({"idx": np.array([1, 2])})
    with pytest.raises(IntegerInputError):
        kinkgrad.grad(lambda i: i * 1.0)(np.array([1, 2]))


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.5, weight_decay=0.1), Adam(lr=0.1)])
def test_optimizers_leave_constant_leaves_unchanged(opt):
    params = {"w": W.copy(), "idx": np.array([0, 2])}
    g = kinkgrad.grad(lambda p: knp.sum(p["w"][p["idx"]]))(params)
    state = opt.init(params)
    new, state = opt.update(params, g, state)
    assert new["idx"] is params["idx"]
    assert new["w"][1] != W[1] or isinstance(opt, Adam)  # weight decay moves w[1] under SGD
    assert new["w"][0] < W[0] and new["w"][2] < W[2]


def test_python_list_argument_and_knp_asarray_of_traced_scalars():
    g = kinkgrad.grad(lambda xs: xs[0] * knp.sin(xs[1]))([2.0, 0.5])
    assert isinstance(g, list)
    np.testing.assert_allclose(g, [np.sin(0.5), 2.0 * np.cos(0.5)])

    def f(x):
        v = knp.asarray([x[0] * x[1], knp.abs(x[2]), 3.0])
        return knp.sum(v * np.array([1.0, 2.0, 4.0]))

    def f_np(x):
        return x[0] * x[1] + 2 * abs(x[2]) + 12.0

    assert float(kinkgrad.value_and_grad(f)(W)[0]) == pytest.approx(f_np(W))
    np.testing.assert_allclose(kinkgrad.grad(f)(W), _fd(f_np, W), rtol=1e-8)
    # nested lists stack to 2-D, knp.array is the same function
    M = kinkgrad.grad(lambda x: knp.sum(knp.array([[x[0], x[1]], [x[2], 1.0]]) @ B[:2]))(W)
    np.testing.assert_allclose(M, [B[0], B[1], B[0]])


def test_numpy_conversion_of_a_list_of_traced_values_names_knp_stack():
    with pytest.raises(UnsupportedOperationError, match=r"knp\.stack"):
        kinkgrad.grad(lambda xs: knp.sum(xs))([1.0, 2.0])
    with pytest.raises(UnsupportedOperationError, match=r"knp\.stack"):
        kinkgrad.grad(lambda x: knp.sum(np.asarray([x[0], x[1]])))(W)


def test_treedef_round_trip_and_match():
    tree = {"a": Pair(W, [B, None]), "b": Frozen(W, 1.0)}
    leaves, td = pytree.flatten(tree)
    assert len(leaves) == 5
    back = pytree.unflatten(td, leaves)
    assert back["a"].b[1] is None and back["b"].name == "layer" and back["b"].w is W
    marked = pytree.mark_constants(td, [False, False, False, True, True], leaves)
    assert pytree.match(marked, tree) == leaves[:3]
    assert pytree.match(marked, {"a": Pair(W, [B, None])}) is None


def test_saving_namedtuple_or_dataclass_params_says_how(tmp_path):
    from kinkgrad.errors import KinkgradError
    from kinkgrad.nn.params import load, save

    with pytest.raises(KinkgradError, match=r"_asdict\(\)"):
        save(tmp_path / "p.npz", {"layer": Pair(W, B)})
    with pytest.raises(KinkgradError, match=r"dataclasses\.asdict"):
        save(tmp_path / "p.npz", Params(W, B))
    save(tmp_path / "p.npz", {"layer": Pair(W, B)._asdict()})  # the fix works
    np.testing.assert_array_equal(load(tmp_path / "p.npz")["layer"]["w"], W)


@pytest.mark.parametrize("tree", [
    {"b": np.ones(2), "a": np.zeros(3), "c": np.full((2, 2), 3.0)},     # arrays only
    {"a": np.ones(2), "b": 2.5, "c": np.zeros(1)},                        # a float after an array
    {"a": np.ones(2), "b": [np.zeros(1), 3.0], "c": {"d": np.ones(1)}},  # nesting after an array
    (np.ones(2), np.zeros(3)),
    (np.ones(2), (np.zeros(3), 1.0), None),
    ({"x": np.ones(1)}, {"y": np.zeros(2), "z": np.full(1, 7.0)}),
])
def test_flatten_order_and_round_trip_match_a_plain_recursive_walk(tree):
    def walk(t):  # the definition: dict values by sorted key, containers in order
        if isinstance(t, dict):
            return [x for k in sorted(t) for x in walk(t[k])]
        if isinstance(t, (tuple, list)):
            return [x for c in t for x in walk(c)]
        return [] if t is None else [t]

    leaves, td = pytree.flatten(tree)
    expected = walk(tree)
    assert len(leaves) == len(expected) and all(a is b for a, b in zip(leaves, expected))
    back = pytree.unflatten(td, leaves)
    assert type(back) is type(tree)
    assert pytree.flatten(back)[1] == td
    assert all(a is b for a, b in zip(pytree.flatten(back)[0], leaves))


def test_dict_keys_of_mixed_types_are_refused_with_the_fix():
    # sorted() of {2, 'a'} raised a raw TypeError from inside the pytree code
    with pytest.raises(kinkgrad.KinkgradError, match="mix types.*int, str"):
        kinkgrad.grad(lambda d: d[2] * d["a"])({2: 1.0, "a": 2.0})
