"""``knp.max_pool2d``: values and gradients against PyTorch (``F.max_pool2d`` and its
autograd) over kernel, stride, padding and dilation (a hypothesis property, float32 and
float64) away from ties; at ties the "first" gradient against PyTorch's, the "split" one
against equal shares counted by brute force, ``clarke_grad`` against the gradient at a nearby
point along its direction; batched tangents and cotangents, torch tensors, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from _pool_ref import max_pool2d_ref
from kinkgrad.errors import KinkgradError, NonFiniteInputError, ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def configs(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))  # PyTorch's bound
    h = max(dilation[0] * (kh - 1) + 1 - 2 * padding[0], 1) + draw(st.integers(0, 4))
    w = max(dilation[1] * (kw - 1) + 1 - 2 * padding[1], 1) + draw(st.integers(0, 4))
    return {"shape": (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w),
            "kernel": (kh, kw), "stride": stride, "padding": padding, "dilation": dilation,
            "seed": draw(st.integers(0, 2**16))}


def _args(c: dict) -> tuple:
    return c["kernel"], c["stride"], c["padding"], c["dilation"]


def _torch_value_grad(x: np.ndarray, v: np.ndarray, c: dict) -> tuple:
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, *_args(c))
    (ty * torch.tensor(v)).sum().backward()
    return ty.detach().numpy(), tx.grad.numpy()


@settings(max_examples=30, deadline=None)
@given(configs(), st.sampled_from([np.float64, np.float32]))
def test_values_and_gradients_equal_pytorch_away_from_ties(c, dtype):
    rng = np.random.default_rng(c["seed"])
    size = int(np.prod(c["shape"]))
    x = (rng.permutation(size).reshape(c["shape"]) / 4.0 - 3.0).astype(dtype)  # distinct
    y = knp.max_pool2d(x, *_args(c))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, max_pool2d_ref(x, *_args(c)).astype(dtype))
    v = rng.normal(size=y.shape).astype(dtype)
    if not np.all(np.isfinite(y)):  # a dilated window over padding only: -inf
        # NOTE: PyTorch's CPU backward scatters such a window's gradient out of bounds
        # (memory corruption), so it is not called here
        with torch.no_grad():
            np.testing.assert_array_equal(y, F.max_pool2d(torch.tensor(x), *_args(c)).numpy())
        with pytest.raises(NonFiniteInputError, match="not finite|non-finite"):
            kinkgrad.grad(lambda a: knp.sum(knp.max_pool2d(a, *_args(c)) * v))(x)
        return
    ty, _ = _torch_value_grad(x, np.ones(np.shape(y), dtype), c)
    np.testing.assert_array_equal(y, ty)  # a maximum is an entry: exact
    g = kinkgrad.grad(lambda a: knp.sum(knp.max_pool2d(a, *_args(c)) * v))(x)
    _, tg = _torch_value_grad(x, v, c)
    # overlapping windows add up to kh kw terms per entry, in another order than PyTorch's
    tol = (1e-6 if dtype == np.float32 else 1e-14) * np.prod(c["kernel"]) * np.abs(v).max()
    np.testing.assert_allclose(g, tg, rtol=0, atol=tol)


CASES = [((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)),
         ((2, 3), (1, 2), (1, 1), (2, 1)), ((3, 3), (1, 1), (1, 1), (1, 1))]


def _tied(rng: np.random.Generator, shape: tuple = (2, 2, 7, 6)) -> np.ndarray:
    return rng.integers(0, 3, shape).astype(np.float64)  # many tied windows


def _split_ref(x: np.ndarray, v: np.ndarray, kernel, stride, padding, dilation) -> np.ndarray:
    """Equal shares of each window's v among its maximisers, by a loop over windows."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    g = np.zeros_like(x)
    for p in range(v.shape[2]):
        for q in range(v.shape[3]):
            pos = [(p * sh + i * dh - ph, q * sw + j * dw - pw)
                   for i in range(kh) for j in range(kw)]
            pos = [(a, b) for a, b in pos if 0 <= a < h and 0 <= b < w]
            for b_ in range(n):
                for ch in range(c):
                    vals = [x[b_, ch, a, b] for a, b in pos]
                    top = [ab for ab, val in zip(pos, vals) if val == max(vals)]
                    for a, b in top:
                        g[b_, ch, a, b] += v[b_, ch, p, q] / len(top)
    return g


@pytest.mark.parametrize("case", CASES)
def test_ties_first_is_pytorch_and_split_is_equal_shares(case):
    rng = np.random.default_rng(1)
    x = _tied(rng)
    y = knp.max_pool2d(x, *case)
    v = rng.normal(size=y.shape)

    def f(a):
        return knp.sum(knp.max_pool2d(a, *case) * v)

    _, tg = _torch_value_grad(x, v, dict(zip(("kernel", "stride", "padding", "dilation"),
                                              case)))
    with kinkgrad.kink_policy(max="first"):
        np.testing.assert_allclose(kinkgrad.grad(f)(x), tg, rtol=1e-14, atol=1e-15)
    with kinkgrad.kink_policy(max="split"):
        np.testing.assert_allclose(kinkgrad.grad(f)(x), _split_ref(x, v, *case), rtol=1e-13,
                                   atol=1e-15)


@pytest.mark.parametrize("case", CASES[:3])
def test_clarke_grad_at_ties_is_the_gradient_along_its_direction(case):
    rng = np.random.default_rng(2)
    x = _tied(rng, (1, 2, 6, 6))
    v = rng.normal(size=knp.max_pool2d(x, *case).shape)

    def f(a):
        return knp.sum(knp.max_pool2d(a, *case) * v)

    g, info = kinkgrad.clarke_grad(f, x, seed=0)
    assert info.kinks > 0
    d = info.directions[:, 0].reshape(x.shape)
    near = x + 1e-7 * d  # inside the piece x + t d enters (no tie left there)
    _, tg = _torch_value_grad(near, v, dict(zip(("kernel", "stride", "padding", "dilation"),
                                                case)))
    np.testing.assert_allclose(g, tg, rtol=1e-14, atol=1e-15)
    # the exact one-sided derivative along d is <g, d> (f is linear on that piece)
    assert abs(float(kinkgrad.directional(f, x, d)) - float(np.sum(g * d))) < 1e-12


def test_batched_tangents_and_cotangents_are_the_rules_per_direction():
    from kinkgrad._core.primitive import registry
    from kinkgrad.kinks import KinkPolicy

    prim, rng = registry()["max_pool2d"], np.random.default_rng(3)
    x = rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) / 8.0
    p = {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 1), "dilation": (1, 1)}
    out = prim.impl(x, **p)
    sel, kinks = prim.select(KinkPolicy(), [x], out, p)
    assert kinks == 0
    t = rng.normal(size=(3,) + x.shape)
    g = rng.normal(size=(4, 3) + out.shape)
    jt = prim.jvp(sel, [t], [x], out, p)
    (gx,) = prim.vjp(sel, g, [x], out, p, [True])
    for k in range(3):
        tt = torch.tensor(x, requires_grad=True)
        _, jk = torch.func.jvp(lambda a: F.max_pool2d(a, (3, 2), (2, 1), (1, 1)),
                               (tt,), (torch.tensor(t[k]),))
        np.testing.assert_allclose(jt[k], jk.detach().numpy(), rtol=1e-14)
    for i in range(4):
        for k in range(3):
            _, tg = _torch_value_grad(x, g[i, k], {"kernel": (3, 2), "stride": (2, 1),
                                                   "padding": (1, 1), "dilation": (1, 1)})
            np.testing.assert_allclose(gx[i, k], tg, rtol=1e-14)


def test_on_torch_tensors_value_and_gradient_follow_pytorch():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(2, 3, 8, 8)))
    v = rng.normal(size=(2, 3, 4, 4))
    val, g = kinkgrad.value_and_grad(lambda a: knp.sum(knp.max_pool2d(a, 3, 2, 1) * v))(x)
    tx = x.clone().requires_grad_(True)
    ty = (F.max_pool2d(tx, 3, 2, 1) * torch.tensor(v)).sum()
    ty.backward()
    assert isinstance(g, torch.Tensor)
    np.testing.assert_allclose(float(val), float(ty.detach()), rtol=1e-14)
    np.testing.assert_allclose(g.numpy(), tx.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_on_torch_tensors_ties_follow_the_policy(case):
    rng = np.random.default_rng(6)
    x = _tied(rng)
    v = rng.normal(size=knp.max_pool2d(x, *case).shape)

    def f(a):
        return knp.sum(knp.max_pool2d(a, *case) * v)

    _, tg = _torch_value_grad(x, v, dict(zip(("kernel", "stride", "padding", "dilation"),
                                              case)))
    with kinkgrad.kink_policy(max="first"):
        np.testing.assert_allclose(kinkgrad.grad(f)(torch.tensor(x)).numpy(), tg, rtol=1e-14,
                                   atol=1e-15)
    with kinkgrad.kink_policy(max="split"):
        np.testing.assert_allclose(kinkgrad.grad(f)(torch.tensor(x)).numpy(),
                                   _split_ref(x, v, *case), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("args,match", [
    (((2, 6, 6), 2), "4-D"),
    (((1, 1, 6, 6), 2, 2, 2), "half the kernel"),
    (((1, 1, 2, 2), 3), "does not fit"),
    (((1, 1, 6, 6), 0), ">= 1"),
    (((1, 1, 6, 6), (2, 2, 2)), "pair of ints"),
])
def test_bad_input_raises_naming_the_operation(args, match):
    shape, *rest = args
    with pytest.raises(ShapeError, match=match) as e:
        knp.max_pool2d(np.zeros(shape), *rest)
    assert isinstance(e.value, KinkgradError)
    assert "max_pool2d" in str(e.value) or "kernel" in str(e.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (2, 1), (2, 2, 0, 2)])
def test_on_torch_tensors_values_are_pytorchs_exactly(dtype, args):
    # the torch rules take the maximum of the strided views (not F.max_pool2d): same values
    rng = np.random.default_rng(9)
    x = torch.tensor(rng.normal(size=(3, 2, 9, 8)), dtype=dtype)
    x[0, 0, :2, :2] = 0.5  # a tied window
    ref = F.max_pool2d(x, *args)
    y = kinkgrad.trace(lambda a: knp.max_pool2d(a, *args), x)(x)
    assert torch.equal(torch.as_tensor(y), ref)
    v = torch.tensor(rng.normal(size=tuple(ref.shape)), dtype=dtype)
    with kinkgrad.kink_policy(max="first"):  # F.max_pool2d: a tie goes to the first entry
        g = kinkgrad.grad(lambda a: knp.sum(knp.max_pool2d(a, *args) * v))(x)
    tx = x.clone().requires_grad_(True)
    (F.max_pool2d(tx, *args) * v).sum().backward()
    assert g.dtype == dtype
    torch.testing.assert_close(g, tx.grad)  # overlapping windows add in another order


def test_vjp_of_a_numpy_selection_with_a_cotangent_numpy_cannot_view():
    # the selection of CPU tensors is made on their NumPy views; a cotangent NumPy cannot
    # view (bfloat16) takes the torch path with that selection moved to a tensor
    from kinkgrad import backends
    from kinkgrad._core.primitive import registry
    from kinkgrad.kinks import resolve_policy

    prim = registry()["max_pool2d"]
    rng = np.random.default_rng(11)
    x = torch.tensor(rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 8.0,
                     dtype=torch.float32)  # distinct entries: no tie
    p = {"kernel": (3, 2), "stride": (2, 2), "padding": (1, 0), "dilation": (1, 1)}
    v = torch.tensor(rng.integers(-4, 5, (2, 3, 3, 3)) / 4.0, dtype=torch.bfloat16)
    with backends.use_namespace(backends._torch_numpy()):
        tnp = backends._torch_numpy()
        xa = tnp.asarray(x)
        out = prim.impl(xa, **p)
        sel = prim.selection(resolve_policy(None), [xa], out, p)
        assert isinstance(sel, np.ndarray)  # made on the NumPy views
        (got,) = prim.vjp(sel, tnp.asarray(v), [xa], out, p, [True])
    got = torch.as_tensor(got)
    tx = x.clone().requires_grad_(True)
    (F.max_pool2d(tx, (3, 2), 2, (1, 0)) * v.float()).sum().backward()
    torch.testing.assert_close(got.float(), tx.grad)  # quarters: exact in bfloat16
