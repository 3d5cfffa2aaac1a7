"""``knp.conv2d``: values and gradients against PyTorch (``F.conv2d`` and its autograd) over
stride, padding, dilation and groups (a hypothesis property, float32 and float64), against
central differences of a plain-NumPy loop, on torch tensors, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinkgrad
import kinkgrad.numpy as knp
from _conv_ref import conv2d_ref
from kinkgrad.errors import KinkgradError, ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional

# relative to the scale of the terms: rounding of sums of up to ~100 products
TOL = {np.float64: 1e-11, np.float32: 2e-5}


@st.composite
def configs(draw: st.DrawFn) -> dict:
    groups = draw(st.sampled_from([1, 2, 3]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    # the input at least as large as the dilated kernel minus the padding
    h = max(dilation[0] * (kh - 1) + 1 - 2 * padding[0], 1) + draw(st.integers(0, 4))
    w = max(dilation[1] * (kw - 1) + 1 - 2 * padding[1], 1) + draw(st.integers(0, 4))
    return {"n": draw(st.integers(1, 2)), "cg": draw(st.integers(1, 2)),
            "og": draw(st.integers(1, 2)), "groups": groups, "k": (kh, kw), "hw": (h, w),
            "stride": stride, "padding": padding, "dilation": dilation,
            "bias": draw(st.booleans()), "seed": draw(st.integers(0, 2**16))}


def _arrays(c: dict, dtype) -> tuple:
    rng = np.random.default_rng(c["seed"])
    g = c["groups"]
    x = rng.normal(size=(c["n"], g * c["cg"]) + c["hw"]).astype(dtype)
    w = rng.normal(size=(g * c["og"], c["cg"]) + c["k"]).astype(dtype)
    b = rng.normal(size=(g * c["og"],)).astype(dtype) if c["bias"] else None
    return x, w, b


def _kw(c: dict) -> dict:
    return {k: c[k] for k in ("stride", "padding", "dilation", "groups")}


def _close(got, want, dtype, scale) -> None:
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=TOL[dtype],
                               atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=40, deadline=None)
@given(c=configs())
def test_values_and_gradients_match_torch_autograd(c, dtype):
    x, w, b = _arrays(c, dtype)
    y = knp.conv2d(x, w, b, **_kw(c))
    assert y.dtype == dtype
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = F.conv2d(tx, tw, tb, **_kw(c))
    scale = float(np.abs(x).max() * np.abs(w).sum(axis=(1, 2, 3)).max()) + 1
    _close(y, ty.detach().numpy(), dtype, scale)
    gy = np.random.default_rng(c["seed"] + 1).normal(size=y.shape).astype(dtype)
    (ty * torch.tensor(gy)).sum().backward()
    args = (x, w) if b is None else (x, w, b)

    def f(*a):
        return knp.sum(knp.conv2d(*a, **_kw(c)) * gy)

    grads = kinkgrad.grad(f, argnums=tuple(range(len(args))))(*args)
    for got, t in zip(grads, (tx, tw, tb)):
        assert got.dtype == dtype and got.shape == tuple(t.shape)
        gscale = float(np.abs(gy).sum()) * float(max(np.abs(x).max(), np.abs(w).max())) + 1
        _close(got, t.grad.numpy(), dtype, gscale)


@pytest.mark.parametrize("kw", [
    {}, {"stride": 2, "padding": 1}, {"stride": (1, 2), "padding": (2, 1), "dilation": 2,
                                      "groups": 2}, {"padding": 1, "groups": 4}])
def test_gradient_and_tangent_match_central_differences_of_plain_numpy(kw):
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(4, 4 // kw.get("groups", 1), 3, 2))
    gy = rng.normal(size=knp.conv2d(x, w, **kw).shape)
    p = {"stride": kw.get("stride", 1), "padding": kw.get("padding", 0),
         "dilation": kw.get("dilation", 1), "groups": kw.get("groups", 1)}
    p = {k: (v, v) if isinstance(v, int) and k != "groups" else v for k, v in p.items()}

    def ref(x, w):
        return float(np.sum(conv2d_ref(x, w, **p) * gy))

    gx, gw = kinkgrad.grad(lambda x, w: knp.sum(knp.conv2d(x, w, **kw) * gy),
                           argnums=(0, 1))(x, w)
    dx, dw, h = rng.normal(size=x.shape), rng.normal(size=w.shape), 1e-5
    fd = (ref(x + h * dx, w + h * dw) - ref(x - h * dx, w - h * dw)) / (2 * h)
    assert abs(np.sum(gx * dx) + np.sum(gw * dw) - fd) <= 1e-7 * max(1.0, abs(fd))
    _, t = kinkgrad.jvp(lambda x, w: knp.sum(knp.conv2d(x, w, **kw) * gy), (x, w), (dx, dw))
    assert abs(float(t) - fd) <= 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("kw", [{"stride": 2, "padding": 1}, {"dilation": 2, "groups": 2}])
def test_on_torch_tensors_values_and_gradients_are_torchs(kw):
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(2, 4, 8, 7)), rng.normal(size=(6, 4 // kw.get("groups", 1), 3, 3)), \
        rng.normal(size=6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, **kw)
    gy = torch.tensor(rng.normal(size=tuple(ty.shape)))
    (ty * gy).sum().backward()

    def f(x, w, b):
        return knp.sum(knp.conv2d(x, w, b, **kw) * gy.numpy())

    v, grads = kinkgrad.value_and_grad(f, argnums=(0, 1, 2))(
        torch.tensor(x), torch.tensor(w), torch.tensor(b))
    assert all(isinstance(g, torch.Tensor) for g in grads)
    np.testing.assert_allclose(float(v), float((ty * gy).sum().detach()), rtol=1e-12)
    for g, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)


def _kernel_jacobian_ref(x: np.ndarray, wshape: tuple, *conv: object) -> np.ndarray:
    """The Jacobian of the reference ``conv2d_ref(x, w, *conv)`` with respect to w: linear in
    w, so column k is the output at the k-th unit kernel, flattened."""
    cols = []
    for k in range(int(np.prod(wshape))):
        e = np.zeros(int(np.prod(wshape)))
        e[k] = 1.0
        cols.append(np.ravel(conv2d_ref(x, e.reshape(wshape), *conv)))
    return np.stack(cols, axis=-1)


def test_batched_cotangents_and_tangents_in_one_sweep():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(4, 1, 2, 2))

    def f(x, w):
        return knp.conv2d(x, w, stride=2, padding=1, groups=2)

    jac = kinkgrad.jacobian(lambda w: knp.reshape(f(x, w), (-1,)))(w)  # rev: batched cotangents
    jac_fwd = kinkgrad.jacobian(lambda w: knp.reshape(f(x, w), (-1,)), mode="fwd")(w)
    want = _kernel_jacobian_ref(x, w.shape, (2, 2), (1, 1), (1, 1), 2).reshape(jac.shape)
    np.testing.assert_allclose(jac, want, atol=1e-12)
    np.testing.assert_allclose(jac_fwd, want, atol=1e-12)


def test_on_torch_tensors_kernel_only_gradient_and_batched_cotangents():
    # the image is a constant (a network's first layer): only the kernel's cotangent is made,
    # once per leading cotangent of a reverse jacobian
    rng = np.random.default_rng(9)
    x, w = rng.normal(size=(2, 2, 6, 5)), rng.normal(size=(4, 1, 3, 2))
    kw = {"stride": (2, 1), "padding": 1, "dilation": (1, 2), "groups": 2}
    tw = torch.tensor(w, requires_grad=True)
    ty = F.conv2d(torch.tensor(x), tw, None, **kw)
    gy = rng.normal(size=tuple(ty.shape))
    (ty * torch.tensor(gy)).sum().backward()
    g = kinkgrad.grad(lambda w: knp.sum(knp.conv2d(torch.tensor(x), w, **kw) * gy))(
        torch.tensor(w))
    assert isinstance(g, torch.Tensor)
    np.testing.assert_allclose(g.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    jac = kinkgrad.jacobian(lambda w: knp.reshape(knp.conv2d(torch.tensor(x), w, **kw), (-1,)))(
        torch.tensor(w))
    want = _kernel_jacobian_ref(x, w.shape, (2, 1), (1, 1), (1, 2), 2)
    np.testing.assert_allclose(jac.numpy(), want.reshape(tuple(jac.shape)), atol=1e-12)


@pytest.mark.parametrize("xs,ws,kw,match", [
    ((1, 3, 5, 5), (4, 1, 3, 3), {"groups": 2}, "divisible by groups=2"),
    ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, "divisible by groups=2"),
    ((1, 4, 5, 5), (4, 4, 3, 3), {"groups": 2}, "input channels per group"),
    ((1, 2, 3, 3), (2, 2, 5, 5), {}, "does not fit"),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"dilation": 2}, "does not fit"),
    ((2, 5, 5), (2, 2, 3, 3), {}, r"4-D \(N, C, H, W\)"),
    ((1, 2, 5, 5), (2, 3, 3), {}, "weight has shape"),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"stride": 0}, "must be >= 1"),
    ((1, 2, 5, 5), (0, 2, 3, 3), {}, "0 output channels"),
])
def test_bad_shapes_raise_naming_conv2d_and_the_fix(xs, ws, kw, match):
    x, w = np.ones(xs), np.ones(ws)
    for call in (lambda: knp.conv2d(x, w, **kw),
                 lambda: kinkgrad.grad(lambda x: knp.sum(knp.conv2d(x, w, **kw)))(x)):
        with pytest.raises(ShapeError, match=match) as err:
            call()
        assert isinstance(err.value, KinkgradError) and "conv2d" in str(err.value)


def test_bias_of_the_wrong_shape_raises():
    with pytest.raises(ShapeError, match=r"bias has shape \(3,\)"):
        knp.conv2d(np.ones((1, 2, 4, 4)), np.ones((2, 2, 3, 3)), np.ones(3))


def test_program_prints_one_conv2d_equation_with_its_parameters():
    prog = kinkgrad.trace(lambda x, w: knp.conv2d(x, w, stride=(2, 1), padding=1),
                          np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)))
    assert prog.primitives_used() == ["conv2d"]
    assert "conv2d[stride=(2,1),padding=(1,1),dilation=(1,1),groups=1]" in str(prog)


def test_cost_is_that_of_the_matrix_product():
    # 2 x (N O OH OW) x (Cg kh kw) = 2 * (1*4*3*3) * (2*2*2)
    prim = kinkgrad._core.primitive.registry()["conv2d"]
    p = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    assert prim.cost([(1, 2, 4, 4), (4, 2, 2, 2)], (1, 4, 3, 3), p) == 2 * 36 * 8


def test_bias_kinks_reach_the_clarke_subdifferential():
    # conv2d(x, w, b) -> relu -> pool -> linear at a zero image: every relu sits at its kink
    # through the bias alone. The limiting gradients, sampled at random nearby points (an
    # independent truth), must each lie in the subdifferential kinkgrad computes, and it must
    # hold nothing else.
    x = np.zeros((1, 1, 2, 3))
    lin = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

    def f(p):
        h = knp.max_pool2d(knp.relu(knp.conv2d(x, p["w"], p["b"])), (1, 2))
        z = knp.reshape(h, (1, 4)) @ lin.T
        return knp.sum(knp.logsumexp(z, axis=1) - z[:, 0])

    p0 = {"w": np.zeros((2, 1, 1, 2)), "b": np.zeros(2)}
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(400):
        q = {k: v + 1e-7 * rng.standard_normal(v.shape) for k, v in p0.items()}
        g = kinkgrad.grad(f)(q)
        seen[tuple(np.round(np.concatenate([g["b"], g["w"].ravel()]), 6))] = g
    assert len(seen) == 2  # b[1] > 0 passes 1/2 of the softmax's weight, b[1] < 0 none
    sub = kinkgrad.subdifferential(f, p0)
    assert len(sub.gradients) == 2 and not sub.partial
    for g in seen.values():
        assert kinkgrad.in_clarke(f, p0, g)
        assert any(np.allclose(g["b"], s["b"]) and np.allclose(g["w"], s["w"])
                   for s in sub.gradients)


# (kernel dtype, image dtype, kernel as a NumPy array?, image as a NumPy array?, bias?):
# torch's kernels need one dtype and raised on each of these; NumPy's promote
MIXED = {
    "float32 tensors, float64 NumPy bias": ("float32", "float32", False, False, True),
    "float32 kernel, float64 NumPy image": ("float32", "float64", False, True, False),
    "float16 tensors, float64 NumPy bias": ("float16", "float16", False, False, True),
    "float64 kernel, int64 image tensor": ("float64", "int64", False, False, False),
    "float64 NumPy kernel, image tensor": ("float64", "float64", True, False, False),
}


@pytest.mark.parametrize("case", sorted(MIXED))
@pytest.mark.parametrize("stride", [1, 2])
def test_on_torch_tensors_mixed_dtypes_promote_as_numpy_does(case, stride):
    wdt, xdt, w_np, x_np, bias = MIXED[case]
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 4, 6, 6)).round(0 if xdt == "int64" else 8).astype(xdt)
    w = rng.normal(size=(4, 4, 3, 3)).astype(wdt)
    b = rng.normal(size=4) if bias else None
    # the truth: torch autograd in float64 on the same values
    tw64 = torch.tensor(w.astype(np.float64), requires_grad=True)
    ty = F.conv2d(torch.tensor(x.astype(np.float64)), tw64,
                  None if b is None else torch.tensor(b), stride=stride)
    gy = rng.normal(size=tuple(ty.shape))
    (ty * torch.tensor(gy)).sum().backward()
    want_v = float((ty * torch.tensor(gy)).sum().detach())
    scale = float((ty.abs() * torch.tensor(np.abs(gy))).sum().detach())

    def f(w, x):
        return knp.sum(knp.conv2d(x, w, b, stride=stride) * gy)

    v, g = kinkgrad.value_and_grad(f)(w if w_np else torch.tensor(w),
                                      x if x_np else torch.tensor(x))
    # dtypes by hand: NumPy promotes float16/32 with float64 (the bias, the gy weights) to
    # float64; the gradient takes the kernel's dtype
    assert isinstance(g, torch.Tensor) and g.dtype == getattr(torch, wdt)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float64
    # the forward conv runs in the operands' dtype (float16: ~1e-3 relative); the kernel's
    # cotangent in float64 (the cotangent gy is float64), then rounded to the kernel's dtype
    rtol = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-12}[wdt]
    assert abs(float(v) - want_v) <= rtol * scale
    np.testing.assert_allclose(g.double().numpy(), tw64.grad.numpy(), rtol=rtol,
                               atol=rtol * float(tw64.grad.abs().max()))


@pytest.mark.parametrize("on_torch", [False, True])
def test_empty_batch_gives_zero_kernel_gradient_as_torch(on_torch):
    # N = 0: the kernel's cotangent reshaped with -1 next to a 0 (ambiguous) and crashed
    w, x = np.ones((6, 4, 3, 3)), np.zeros((0, 4, 5, 5))
    tw = torch.tensor(w, requires_grad=True)
    F.conv2d(torch.tensor(x), tw, stride=2, padding=1).sum().backward()
    args = (torch.tensor(w), torch.tensor(x)) if on_torch else (w, x)
    gw, gx = kinkgrad.grad(lambda w, x: knp.sum(knp.conv2d(x, w, stride=2, padding=1)),
                           argnums=(0, 1))(*args)
    assert tuple(gw.shape) == (6, 4, 3, 3) and tuple(gx.shape) == (0, 4, 5, 5)
    np.testing.assert_array_equal(np.asarray(gw), tw.grad.numpy())
    # reverse Jacobian rows (batched cotangents) and per-example gradients of no example
    jac = kinkgrad.jacobian(lambda w: knp.sum(knp.conv2d(args[1], w)))(args[0])
    np.testing.assert_array_equal(np.asarray(jac), np.zeros((6, 4, 3, 3)))
    jac = kinkgrad.jacobian(lambda w: knp.conv2d(args[1], w)[:, :2])(args[0])
    assert tuple(jac.shape) == (0, 2, 3, 3, 6, 4, 3, 3)
