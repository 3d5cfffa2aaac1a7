"""The torch -> kinkgrad translation: values and gradients equal PyTorch's (the peer)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from _interop_models import concat_net  # noqa: E402
from _interop_models import kinky_mlp as _kinky_mlp  # noqa: E402

import kinkgrad  # noqa: E402
from kinkgrad.errors import KinkgradError, UnsupportedOperationError  # noqa: E402
from kinkgrad.interop.torch import to_kinkgrad, torch_program  # noqa: E402


class Hinge(nn.Module):
    """A custom module: multiclass hinge written with relu (and gather, view, size)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        picked = out.gather(1, y.view(-1, 1))
        return F.relu(1.0 + out - picked).sum() / out.size(0)


class FunctionalNet(nn.Module):
    """Functional relu / view / flatten / leaky_relu / max_pool2d / conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=1)
        self.conv2 = nn.Conv2d(3, 4, 2, groups=1, dilation=2, padding="same", bias=False)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv(x), 0.2)
        h = torch.relu(self.conv2(h))
        h = F.max_pool2d(h, 2, stride=1)
        h = h.view(h.size(0), -1)
        return self.fc(torch.flatten(h, 1))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 2, groups=1), nn.LeakyReLU(0.1), nn.Flatten(),
                         nn.Linear(16, 3))


def grouped() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, (3, 2), stride=(2, 1), groups=2, padding=(1, 0)),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 4, 3))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                         nn.Linear(8, 3))


LOSSES = {
    "ce_module": nn.CrossEntropyLoss(),
    "ce_sum": lambda o, y: F.cross_entropy(o, y, reduction="sum"),
    "hinge": Hinge(),
    "l1": lambda o, y: F.l1_loss(o.sum(1), y.double()),
    "mse": lambda o, y: nn.MSELoss()(o, F.one_hot(y, 3).double()),
    "logsoftmax": lambda o, y: -F.log_softmax(o, dim=1).gather(1, y[:, None]).mean(),
}


def _batch(model_name: str, n: int = 5) -> tuple:
    g = torch.Generator().manual_seed(1)
    shape = {"mlp": (n, 6), "cnn": (n, 2, 6, 6), "grouped": (n, 2, 6, 5),
             "functional": (n, 2, 8, 8)}[model_name]
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


MODELS = {"mlp": mlp, "cnn": cnn, "grouped": grouped, "functional": FunctionalNet}


def _torch_value_grad(model: nn.Module, loss_fn, x, y) -> tuple[float, dict]:
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return float(loss.detach()), {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


def _assert_translation_equals_torch(model: nn.Module, x, y) -> None:
    """The translated loss's value and gradient (kinkgrad on NumPy) equal torch autograd's,
    taken on a copy (a training-mode forward updates batch-norm statistics)."""
    import copy

    tv, tg = _torch_value_grad(copy.deepcopy(model), nn.CrossEntropyLoss(), x, y)
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    v, g = kinkgrad.value_and_grad(f)(params, x.numpy(), y.numpy())
    np.testing.assert_allclose(float(v), tv, rtol=1e-12)
    for n in params:
        np.testing.assert_allclose(g[n], tg[n], rtol=1e-9, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_value_and_grad_equal_pytorch_at_smooth_points(model_name: str, loss_name: str) -> None:
    torch.manual_seed(0)
    model = MODELS[model_name]().double()
    if model_name == "functional":
        model.fc = nn.Linear(4 * 3 * 3, 3).double()
    loss_fn = LOSSES[loss_name]
    x, y = _batch(model_name)
    tv, tg = _torch_value_grad(model, loss_fn, x, y)
    f, params = to_kinkgrad(model, loss_fn)
    assert sorted(params) == sorted(n for n, _ in model.named_parameters())
    v, g, rep = kinkgrad.value_and_grad(f, report=True)(params, x.numpy(), y.numpy())
    # random float64 data: no relu kink is hit (max-pool ties among relu zeros are)
    assert all(r.primitive == "max_pool2d" for r in rep.records)
    np.testing.assert_allclose(v, tv, rtol=1e-12)
    for name in tg:
        np.testing.assert_allclose(g[name], tg[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_float32_model_keeps_float32() -> None:
    torch.manual_seed(0)
    model = cnn()
    x, y = _batch("cnn")
    x = x.float()
    tv, tg = _torch_value_grad(model, nn.CrossEntropyLoss(), x, y)
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    assert all(p.dtype == np.float32 for p in params.values())
    v, g = kinkgrad.value_and_grad(f)(params, x.numpy(), y.numpy())
    assert g["0.weight"].dtype == np.float32
    np.testing.assert_allclose(v, tv, rtol=1e-5)
    for name in tg:
        np.testing.assert_allclose(g[name], tg[name], rtol=2e-3, atol=2e-5, err_msg=name)


def test_program_inputs_are_the_parameters() -> None:
    torch.manual_seed(0)
    model = mlp().double()
    x, y = _batch("mlp")
    prog = torch_program(model, nn.CrossEntropyLoss(), (x, y))
    assert len(prog.invars) == len(list(model.parameters()))
    assert {"relu", "matmul", "logsumexp"} <= set(prog.primitives_used())
    _, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    moved = {k: v + 0.01 for k, v in params.items()}  # re-evaluate at a new point
    with torch.no_grad():
        for p in model.parameters():
            p += 0.01
        expect = float(nn.CrossEntropyLoss()(model(x), y))
    np.testing.assert_allclose(prog(moved), expect, rtol=1e-12)


def test_grad_at_kinks_equals_pytorch_under_default_policy() -> None:
    model, x, y = _kinky_mlp()
    tv, tg = _torch_value_grad(model, nn.CrossEntropyLoss(), x, y)
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    v, g, rep = kinkgrad.value_and_grad(f, report=True)(params, x.numpy(), y.numpy())
    pre = x.numpy() @ params["0.weight"].T + params["0.bias"]
    assert rep.total == int(np.count_nonzero(pre == 0)) > 4
    for name in tg:
        np.testing.assert_allclose(g[name], tg[name], rtol=1e-12, atol=1e-15, err_msg=name)
    with kinkgrad.kink_policy(relu=1.0):  # a different choice gives a different vector
        g1 = kinkgrad.grad(f)(params, x.numpy(), y.numpy())
    assert not np.allclose(g1["0.weight"], tg["0.weight"])


def test_maxpool_ties_pick_the_same_entry_as_pytorch() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(2 * 2 * 2, 2)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[[[1., 1.], [0., 0.]]], [[[1., 0.], [0., 1.]]]]))
        model[0].bias.zero_()
    x = torch.tensor([[[[1., 2., 1., 2., 0.], [2., 1., 2., 1., 0.], [1., 2., 1., 2., 0.],
                        [2., 1., 2., 1., 0.], [0., 0., 0., 0., 0.]]]], dtype=torch.float64)
    y = torch.tensor([1])
    tv, tg = _torch_value_grad(model, nn.CrossEntropyLoss(), x, y)
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    g, rep = kinkgrad.grad(f, report=True)(params, x.numpy(), y.numpy())
    assert any(r.primitive == "max_pool2d" for r in rep.records)  # ties were hit
    for name in tg:
        np.testing.assert_allclose(g[name], tg[name], rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("layer, name", [(nn.Hardswish(), "Hardswish"),
                                         (nn.Softplus(), "Softplus"),
                                         (nn.Mish(), "Mish")])
def test_unsupported_layer_is_named(layer: nn.Module, name: str) -> None:
    model = nn.Sequential(nn.Linear(3, 4), layer, nn.Linear(4, 2))
    with pytest.raises(UnsupportedOperationError, match=name) as info:
        to_kinkgrad(model, nn.CrossEntropyLoss())
    assert "Supported layers" in str(info.value) and "'1'" in str(info.value)


def test_unsupported_function_and_modes_raise() -> None:
    class Sorts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sort(self.fc(torch.sort(x, dim=1).values), dim=1).values

    with pytest.raises(UnsupportedOperationError, match="sort"):
        to_kinkgrad(Sorts(), nn.MSELoss())
    drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    with pytest.raises(UnsupportedOperationError, match="0 <= p < 1"):
        to_kinkgrad(nn.Sequential(nn.Linear(3, 3), nn.Dropout(1.0)), nn.MSELoss())
    to_kinkgrad(drop, nn.MSELoss())  # training mode: torch's mask (test_interop_layers.py)
    to_kinkgrad(drop.eval(), nn.MSELoss())  # identity in eval mode
    with pytest.raises(UnsupportedOperationError, match="label smoothing"):
        to_kinkgrad(mlp(), nn.CrossEntropyLoss(label_smoothing=0.1))

    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(KinkgradError, match="torch.fx"):
        to_kinkgrad(Branchy(), nn.MSELoss())


class WithConstants(nn.Module):
    """Constants built by torch from metadata (dtype, shape) and from the labels."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(x)) * 2.0
        mix = torch.eye(3, 3, dtype=h.dtype) + torch.ones(3, 3, dtype=h.dtype) / h.shape[1]
        return torch.sigmoid(h) @ mix + h.exp() / 4


def test_constants_built_by_torch_are_evaluated_by_torch() -> None:
    torch.manual_seed(0)
    model = WithConstants().double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])

    def loss(o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(o, F.one_hot(t, 3).to(o.dtype))

    tv, tg = _torch_value_grad(model, loss, x, y)
    f, params = to_kinkgrad(model, loss)
    v, g = kinkgrad.value_and_grad(f)(params, x.numpy(), y.numpy())
    np.testing.assert_allclose(v, tv, rtol=1e-12)
    for name in tg:
        np.testing.assert_allclose(g[name], tg[name], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_translated_cnn_runs_on_torch_tensors(dtype: torch.dtype) -> None:
    """The engine on torch tensors (a padded, strided, grouped conv) gives the numbers of
    the engine on NumPy and of torch autograd."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=(1, 2), groups=2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 3, 3)).to(dtype)
    x, y = torch.randn(3, 2, 9, 9, dtype=dtype), torch.tensor([0, 2, 1])
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    v_np, g_np = kinkgrad.value_and_grad(f)(params, x.numpy(), y.numpy())
    v_t, g_t = kinkgrad.value_and_grad(f)({k: torch.from_numpy(v) for k, v in params.items()},
                                          x, y)
    ref = dict(zip(params, torch.autograd.grad(nn.CrossEntropyLoss()(model(x), y),
                                               list(model.parameters()))))
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10}
    assert isinstance(v_t, torch.Tensor) and v_t.dtype == dtype
    np.testing.assert_allclose(float(v_t), float(v_np), **tol)
    for k in params:
        assert g_t[k].dtype == dtype
        np.testing.assert_allclose(g_t[k].numpy(), g_np[k], **tol)
        np.testing.assert_allclose(g_t[k].numpy(), ref[k].numpy(), **tol)


def test_cat_avgpool_relu6_hardtanh_equal_pytorch() -> None:
    torch.manual_seed(0)
    model = concat_net().double()
    x, y = torch.randn(3, 1, 6, 6, dtype=torch.float64) * 3, torch.tensor([0, 1, 1])
    _assert_translation_equals_torch(model, x, y)


@pytest.mark.parametrize("layer", [nn.AvgPool2d(2, padding=1), nn.AdaptiveAvgPool2d(2),
                                   nn.AvgPool2d(2, ceil_mode=True)])
def test_unsupported_pooling_options_are_named(layer: nn.Module) -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 1), layer, nn.Flatten())
    with pytest.raises(UnsupportedOperationError, match=type(layer).__name__):
        to_kinkgrad(model, nn.MSELoss())


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_layers_equal_pytorch(train: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5, affine=False), nn.ReLU(),
                          nn.Linear(5, 2)).double().train(train)
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    x, y = torch.randn(6, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0])
    _assert_translation_equals_torch(model, x, y)


@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_with_padding_equals_pytorch(ties: bool) -> None:
    """PyTorch pads max-pooling with -inf; the translation pads with a constant below every
    entry at the point, the same function near it. Values, gradients (ties included: the
    first maximiser in window order, as PyTorch's kernel) and a certificate."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                          nn.Flatten(), nn.Linear(2 * 3 * 3, 2)).double()
    if ties:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.round(p * 4) / 4)
        x = torch.randint(-2, 3, (2, 1, 6, 6)).double()
    else:
        x = torch.randn(2, 1, 6, 6, dtype=torch.float64) - 5.0  # negative entries
    y = torch.tensor([0, 1])
    _assert_translation_equals_torch(model, x, y)
    if ties:
        from kinkgrad.interop.torch import certify_torch

        cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y), membership=False)
        assert cert.agrees and cert.active_kinks > 0


def test_layer_norm_equals_pytorch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 3),
                          nn.LayerNorm(3, elementwise_affine=False)).double()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    _assert_translation_equals_torch(model, x, y)
