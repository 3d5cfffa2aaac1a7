"""Peers: losses, networks and optimizers against PyTorch at the same parameters (smooth
points), and relu'(0) against torch ReLUs with the same declared derivative at 0."""

import numpy as np
import pytest

import kinkgrad
from kinkgrad import nn
from kinkgrad.nn._torch import to_torch, torch_grads

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _logits(rng, n=6, c=4):
    return rng.normal(size=(n, c)), rng.integers(0, c, size=n)


@pytest.mark.parametrize("name", ["cross_entropy", "mse", "l1", "hinge"])
def test_losses_match_torch(name, rng):
    z, y = _logits(rng)
    if name == "hinge":  # a smooth point: no margin term exactly 0
        margins = 1 - z[np.arange(6), y][:, None] + z
        assert np.min(np.abs(margins)) > 1e-3
    ours = getattr(nn, name)
    v, g = kinkgrad.value_and_grad(lambda t: ours(t, y))(z)
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y)
    onehot = F.one_hot(yt, 4).double()
    ref = {
        "cross_entropy": lambda: F.cross_entropy(zt, yt),
        "mse": lambda: F.mse_loss(zt, onehot),
        "l1": lambda: F.l1_loss(zt, onehot),
        "hinge": lambda: F.multi_margin_loss(zt, yt),
    }[name]()
    ref.backward()
    np.testing.assert_allclose(v, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["mse", "l1", "hinge"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_losses_with_integer_labels_on_torch_tensors_match_torch(name, dtype, rng):
    # one_hot handed the torch backend's dtype to np.zeros and crashed
    z, y = _logits(rng)
    z[0, y[0]] = 1.0  # a kink of l1 (pred == one-hot target): abs'(0) = 0 as torch's sign
    zt = torch.tensor(z, dtype=dtype, requires_grad=True)
    yt = torch.tensor(y)
    onehot = F.one_hot(yt, 4).to(dtype)
    ref = {"mse": lambda: F.mse_loss(zt, onehot), "l1": lambda: F.l1_loss(zt, onehot),
           "hinge": lambda: F.multi_margin_loss(zt, yt)}[name]()
    ref.backward()
    for labels in (y, yt):
        v, g = kinkgrad.value_and_grad(lambda t, labels=labels: getattr(nn, name)(t, labels))(
            torch.tensor(z, dtype=dtype))
        assert isinstance(g, torch.Tensor) and g.dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        np.testing.assert_allclose(float(v), ref.item(), rtol=tol)
        np.testing.assert_allclose(g.numpy(), zt.grad.numpy(), rtol=tol, atol=tol)


def test_losses_accept_dense_targets(rng):
    z, t = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(nn.mse(z, t), np.mean((z - t) ** 2))
    np.testing.assert_allclose(nn.l1(z, t), np.mean(np.abs(z - t)))
    with pytest.raises(kinkgrad.KinkgradError):
        nn.mse(z, t[:, :1])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_network_loss_and_gradient_match_torch(kind, dtype, rtol, rng):
    if kind == "mlp":
        model = nn.Sequential(nn.Dense(16), nn.ReLU(), nn.Dense(8), nn.LeakyReLU(0.1), nn.Dense(5))
        x = rng.normal(size=(7, 6)).astype(dtype)
    else:
        model = nn.Sequential(
            nn.Conv2d(4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(3, 2, stride=1),
            nn.Flatten(),
            nn.Dense(5),
        )
        x = rng.normal(size=(3, 2, 8, 8)).astype(dtype)
    params, _ = model.init(1, x.shape[1:], dtype)
    y = rng.integers(0, 5, size=x.shape[0])
    loss, g = kinkgrad.value_and_grad(lambda p: nn.cross_entropy(model(p, x), y))(params)
    tm = to_torch(model, params)
    out = tm(torch.from_numpy(x))
    ref = F.cross_entropy(out, torch.from_numpy(y))
    ref.backward()
    np.testing.assert_allclose(model(params, x), out.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loss, ref.item(), rtol=rtol)
    tg = torch_grads(model, tm)
    for key in params:
        for leaf in params[key]:
            assert g[key][leaf].dtype == dtype
            np.testing.assert_allclose(
                g[key][leaf], tg[key][leaf], rtol=rtol, atol=rtol * np.abs(tg[key][leaf]).max()
            )


class _ReluOne(torch.autograd.Function):
    """ReLU whose derivative at 0 is declared 1 (torch's own ReLU declares 0)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x >= 0).to(g.dtype)


def test_relu0_choice_matches_torch_relus_with_the_same_choice_at_exact_kinks():
    rng = np.random.default_rng(5)
    # dyadic numbers: every pre-activation is computed exactly, and many are exactly 0
    x = rng.integers(-2, 3, size=(8, 5)).astype(np.float64)
    model = nn.Sequential(nn.Dense(6), nn.ReLU(), nn.Dense(3))
    params = {
        "0_dense": {
            "W": rng.integers(-4, 5, size=(5, 6)) / 8.0,
            "b": rng.integers(-4, 5, size=6) / 8.0,
        },
        "2_dense": {
            "W": rng.integers(-4, 5, size=(6, 3)) / 8.0,
            "b": rng.integers(-4, 5, size=3) / 8.0,
        },
    }
    # exact kinks: neurons 0 and 1 get the bias that cancels sample 0's input exactly
    params["0_dense"]["b"][:2] = -(x[0] @ params["0_dense"]["W"][:, :2])
    y = rng.integers(0, 3, size=8)
    zeros = int(np.sum(x @ params["0_dense"]["W"] + params["0_dense"]["b"] == 0))
    assert zeros >= 2

    def loss(p):
        return nn.cross_entropy(model(p, x), y)

    grads = {}
    for relu0, act in ((0.0, torch.relu), (1.0, _ReluOne.apply)):
        _, g, rep = kinkgrad.value_and_grad(
            loss, report=True, policy=kinkgrad.kink_policy(relu=relu0)
        )(params)
        assert rep.total == zeros
        tm = to_torch(model, params)
        xt = torch.from_numpy(x)
        out = tm[2](act(tm[0](xt)))
        F.cross_entropy(out, torch.from_numpy(y)).backward()
        tg = torch_grads(model, tm)
        for key in params:
            for leaf in params[key]:
                np.testing.assert_allclose(g[key][leaf], tg[key][leaf], rtol=1e-12, atol=1e-14)
        grads[relu0] = g
    diff = grads[0.0]["0_dense"]["W"] - grads[1.0]["0_dense"]["W"]
    assert np.abs(diff).max() > 0


def _torch_steps(opt_name, p0, grads):
    w = torch.tensor(p0, requires_grad=True)
    opt = (
        torch.optim.SGD([w], lr=0.1, momentum=0.9)
        if opt_name == "sgd"
        else torch.optim.Adam([w], lr=0.01)
    )
    for g in grads:
        opt.zero_grad()
        w.grad = torch.tensor(g)
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_optimizer_steps_match_torch(opt_name, rng):
    p0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    opt = nn.SGD(0.1, momentum=0.9) if opt_name == "sgd" else nn.Adam(0.01)
    params = {"w": p0}
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, {"w": g}, state)
    np.testing.assert_allclose(params["w"], _torch_steps(opt_name, p0, grads), rtol=1e-12)
