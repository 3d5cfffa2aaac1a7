"""The bridge's newer layers, functions and losses: GELU, SiLU, ELU, PReLU, GroupNorm,
Embedding, Dropout (training mode), maximum/minimum, amax/amin, max/min with and without dim,
residual additions, HuberLoss/SmoothL1Loss, NLLLoss, BCELoss/BCEWithLogitsLoss.

Truths: PyTorch's autograd (value and gradient) at smooth points and, at kinks, PyTorch's own
vector for the translation under its preset; for clarke_grad_torch the plain backward at the
nearby points params + t d along the direction it resolved the kinks with (the definition of a
limiting gradient), for the C^1 Huber loss central differences of torch's loss.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from _interop_models import kinky_mlp, spy_on_tangent_rows  # noqa: E402

import kinkgrad  # noqa: E402
from kinkgrad.errors import UnsupportedOperationError, ValueReadError  # noqa: E402
from kinkgrad.interop._to_knp import torch_policy  # noqa: E402
from kinkgrad.interop.torch import (  # noqa: E402
    certify_torch,
    clarke_grad_torch,
    to_kinkgrad,
)


def torch_grad(model: nn.Module, loss_fn, x, y) -> tuple[float, dict]:
    params = dict(model.named_parameters())
    loss = loss_fn(model(x), y)
    gs = torch.autograd.grad(loss, list(params.values()))
    return float(loss.detach()), {n: g.numpy() for n, g in zip(params, gs)}


def translated(model: nn.Module, loss_fn, x, y) -> tuple[float, dict]:
    f, params = to_kinkgrad(model, loss_fn)
    pol = torch_policy(f.graph)
    v, g = kinkgrad.value_and_grad(f, policy=pol)(params, x.numpy(), y.numpy())
    return float(v), g


def nearby(model: nn.Module, loss_fn, x, y, d: dict, t: float = 1e-7) -> dict:
    params = dict(model.named_parameters())
    saved = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            if n in d:
                p += t * d[n]
    try:
        return torch_grad(model, loss_fn, x, y)[1]
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


def check_all(model: nn.Module, loss_fn, x, y, kinks: bool, seed: int = 0) -> None:
    """The translation equals torch (value and gradient), certify_torch certifies torch's
    vector, and clarke_grad_torch is torch's gradient (no kinks) or the gradient at the
    nearby points along its direction (kinks)."""
    v_t, g_t = torch_grad(model, loss_fn, x, y)
    v_k, g_k = translated(model, loss_fn, x, y)
    assert abs(v_k - v_t) <= 1e-12 * max(1.0, abs(v_t))
    for n in g_t:
        np.testing.assert_allclose(g_k[n], g_t[n], rtol=1e-10, atol=1e-12, err_msg=n)
    cert = certify_torch(model, loss_fn, (x, y))
    assert cert.certified and cert.agrees, cert.reason
    assert (sum(cert.kinks_by_layer.values()) > 0) == kinks, cert.kinks_by_layer
    g, info = clarke_grad_torch(model, loss_fn, (x, y), seed=seed)
    assert (info.total_kinks > 0) == kinks and info.total_unresolved == 0
    want = nearby(model, loss_fn, x, y, info.directions[0]) if kinks else g_t
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), want[n], rtol=1e-5, atol=1e-6, err_msg=n)


X = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 2, 1, 1, 0, 2])


def mlp(act: nn.Module, width: int = 4) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, width), act, nn.Linear(width, 3)).double()


# ---------------------------------------------------------------------- smooth points
@pytest.mark.parametrize("act", [nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.ELU(0.7),
                                 nn.PReLU(4), nn.PReLU(), nn.Sequential(nn.GroupNorm(2, 4),
                                                                        nn.ReLU())],
                         ids=["gelu", "gelu-tanh", "silu", "elu", "prelu4", "prelu1",
                              "groupnorm"])
def test_activations_and_group_norm_at_smooth_points(act: nn.Module) -> None:
    check_all(mlp(act), nn.CrossEntropyLoss(), X, Y, kinks=False)


class Emb(nn.Module):
    def __init__(self, padding_idx: int | None) -> None:
        super().__init__()
        self.e = nn.Embedding(7, 4, padding_idx=padding_idx)
        self.fc = nn.Linear(4, 3)

    def forward(self, i: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.e(i))).mean(1)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_gradient_is_torchs_padding_row_included(padding_idx) -> None:
    torch.manual_seed(2)
    model = Emb(padding_idx).double()
    idx = torch.tensor([[0, 2, 5], [2, 2, 1], [6, 3, 2], [4, 0, 0], [1, 1, 5], [3, 6, 2]])
    check_all(model, nn.CrossEntropyLoss(), idx, Y, kinks=False)
    if padding_idx is not None:  # PyTorch leaves the padding row's gradient at 0
        g = translated(model, nn.CrossEntropyLoss(), idx, Y)[1]["e.weight"]
        assert not g[padding_idx].any() and g.any()


@pytest.mark.parametrize("name,loss_fn,out,target", [
    ("huber", nn.HuberLoss(delta=0.5), nn.Identity(), torch.randn(6, 3, dtype=torch.float64)),
    ("smooth_l1", nn.SmoothL1Loss(beta=0.3, reduction="sum"), nn.Identity(),
     torch.randn(6, 3, dtype=torch.float64)),
    ("nll", nn.NLLLoss(weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)),
     nn.LogSoftmax(dim=1), Y),
    ("nll-fn", lambda z, t: F.nll_loss(z, t, ignore_index=2, reduction="sum"),
     nn.LogSoftmax(dim=1), Y),
    ("bce", nn.BCELoss(), nn.Sigmoid(), torch.rand(6, 3, dtype=torch.float64)),
    ("bce-none", lambda p, t: F.binary_cross_entropy(p, t, reduction="none").sum(),
     nn.Sigmoid(), torch.rand(6, 3, dtype=torch.float64)),
    ("bce-logits", nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 3.0],
                                                               dtype=torch.float64)),
     nn.Identity(), torch.rand(6, 3, dtype=torch.float64)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_losses_at_smooth_points(name, loss_fn, out, target) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 3), out).double()
    check_all(model, loss_fn, X, target, kinks=False)


def test_huber_and_smooth_l1_at_the_threshold_and_at_zero_are_differentiable() -> None:
    """Residuals exactly -delta, 0 and delta: Huber is C^1, so torch, the translation and
    clarke_grad_torch all give its derivative, which central differences confirm."""
    model = nn.Linear(1, 1).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    x = torch.tensor([[0.5], [0.0], [-0.5], [2.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [0.0], [0.0], [0.25]], dtype=torch.float64)
    for loss_fn in (nn.HuberLoss(delta=0.5), nn.SmoothL1Loss(beta=0.5)):
        _, g_t = torch_grad(model, loss_fn, x, y)
        h = 1e-6
        for n, p in model.named_parameters():
            with torch.no_grad():
                p += h
                up = float(loss_fn(model(x), y))
                p -= 2 * h
                down = float(loss_fn(model(x), y))
                p += h
            np.testing.assert_allclose(g_t[n], (up - down) / (2 * h), rtol=1e-7)
        check_all(model, loss_fn, x, y, kinks=True)


# ---------------------------------------------------------------------- at kinks
@pytest.mark.parametrize("act", [nn.ELU(0.7), nn.PReLU(4), nn.ReLU()],
                         ids=["elu", "prelu", "relu"])
def test_elu_and_prelu_at_zero_pre_activations(act: nn.Module) -> None:
    model, x, y = kinky_mlp(act)
    model.double()
    check_all(model, nn.CrossEntropyLoss(), x, y, kinks=True)


class Pair(nn.Module):
    """Two branches with equal weights and biases tied in some entries: maximum/minimum ties
    at every sample."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(4, 3)
        with torch.no_grad():
            w = torch.tensor([[1., -1., 0.], [0., 1., -1.], [1., 1., 1.], [2., 0., -1.]])
            self.a.weight.copy_(w)
            self.b.weight.copy_(w)
            self.a.bias.copy_(torch.tensor([0., 0., 1., 0.]))
            self.b.bias.copy_(torch.tensor([0., 1., 1., -1.]))
            self.c.weight.copy_(torch.arange(12.).reshape(3, 4) / 8 - 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), self.b(x)
        if self.how == "maximum":
            h = torch.maximum(a, b)
        elif self.how == "minimum":
            h = torch.minimum(a, b)
        elif self.how == "max2":
            h = torch.max(a, b) - a.min(0.5 * b)
        elif self.how == "residual":
            h = a + torch.relu(b - a)
        elif self.how == "amax":
            h = a + torch.amax(torch.stack([a, b], dim=2), dim=2) - b.amin(1, keepdim=True)
        elif self.how == "max_dim":
            v, _ = torch.stack([a, b], dim=2).max(2)  # unused indices: not computed
            h = v
        elif self.how == "max_dim_indices":
            v, i = torch.stack([a, b], dim=2).max(2)
            h = v + 0 * i  # the indices jump where the values tie: a read of a traced value
        else:  # max() of everything, tied across the branches
            h = a + torch.cat([a, b], 1).max()
        return self.c(h)


PAIR_X = torch.tensor([[1., 1., 1.], [2., 2., 1.], [0., 0., 0.], [1., 3., 2.]],
                      dtype=torch.float64)
PAIR_Y = torch.tensor([0, 2, 1, 1])


@pytest.mark.parametrize("how", ["maximum", "minimum", "max2", "residual", "amax", "max_dim",
                                 "max_all"])
def test_maximum_minimum_and_max_reductions_at_ties(how: str) -> None:
    model = Pair(how).double()
    check_all(model, nn.CrossEntropyLoss(), PAIR_X, PAIR_Y, kinks=True, seed=4)


def test_indices_read_at_a_tie_refuse_the_certificate() -> None:
    # torch's .max(dim) indices are knp.argmax of the traced values: at a tie they are a
    # constant of this point alone, so certify_torch refuses (abs_normal._reads); PAIR_X's
    # third row ties a and b
    model = Pair("max_dim_indices").double()
    with pytest.raises(ValueReadError, match="argmax"):
        certify_torch(model, nn.CrossEntropyLoss(), (PAIR_X, PAIR_Y))
    model_a, model_b = Pair("max_dim_indices").double(), Pair("max_dim").double()
    for m in (model_a, model_b):  # branches apart by 1/2 at least: no ties
        with torch.no_grad():
            m.b.bias.copy_(torch.tensor([0.5, 1.5, 2.0, -1.0]))
    got = certify_torch(model_a, nn.CrossEntropyLoss(), (PAIR_X, PAIR_Y))
    want = certify_torch(model_b, nn.CrossEntropyLoss(), (PAIR_X, PAIR_Y))
    assert got.certified and want.certified


def test_maximum_tie_split_and_max_dim_first_as_torch() -> None:
    a = torch.tensor([[1.0, 2.0]], dtype=torch.float64)

    class M(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind, self.w = kind, nn.Parameter(torch.ones(2, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = x * self.w  # [1, 2]
            z = torch.cat([z, z[:, 1:] - 1.0], 1)  # [1, 2, 1]
            if self.kind == "maximum":
                return torch.maximum(z[:, 0], z[:, 2]).sum()
            if self.kind == "amax":
                return z[:, [0, 2]].amax(1).sum()
            return z[:, [0, 2]].max(1).values.sum()

    # z[:, 0] = w0 and z[:, 2] = 2 w1 - 1 tie at w = (1, 1): PyTorch splits maximum and amax
    # ties equally, and max(dim) gives everything to its index, the first
    want = {"maximum": [0.5, 1.0], "amax": [0.5, 1.0], "max_dim": [1.0, 0.0]}
    for kind, w in want.items():
        model = M(kind)
        _, g_t = torch_grad(model, lambda out, y: out, a, torch.zeros(1))
        _, g_k = translated(model, lambda out, y: out, a, torch.zeros(1))
        np.testing.assert_allclose(g_t["w"], w, rtol=1e-15, err_msg=kind)
        np.testing.assert_allclose(g_k["w"], w, rtol=1e-15, err_msg=kind)


# ---------------------------------------------------------------------- dropout
def test_dropout_in_training_mode_uses_torchs_mask_as_a_constant() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.4), nn.Linear(8, 3),
                          nn.Dropout(0.2)).double().train()
    loss_fn = nn.CrossEntropyLoss()
    f, params = to_kinkgrad(model, loss_fn)
    state = torch.get_rng_state()
    v1, v2 = float(f(params, X.numpy(), Y.numpy())), float(f(params, X.numpy(), Y.numpy()))
    assert v1 == v2  # the same masks at every call (and the generator is left alone)
    assert torch.equal(torch.get_rng_state(), state)
    v_t, g_t = torch_grad(model, loss_fn, X, Y)  # the forward draws the masks f replays
    assert abs(v1 - v_t) <= 1e-12
    g_k = kinkgrad.grad(f)(params, X.numpy(), Y.numpy())
    for n in g_t:
        np.testing.assert_allclose(g_k[n], g_t[n], rtol=1e-10, atol=1e-12)
    # certify_torch and clarke_grad_torch see the masks torch's forward would draw next
    torch.set_rng_state(state)
    cert = certify_torch(model, loss_fn, (X, Y))
    assert cert.certified and cert.agrees and cert.max_abs_diff < 1e-12
    for max_dirs in (1, 2):
        torch.set_rng_state(state)
        g, _ = clarke_grad_torch(model, loss_fn, (X, Y), seed=0, max_directions=max_dirs)
        torch.set_rng_state(state)
        _, g_t = torch_grad(model, loss_fn, X, Y)
        for n in g:
            np.testing.assert_allclose(g[n].numpy(), g_t[n], rtol=1e-12, atol=1e-14)
    model.eval()  # identity
    f, params = to_kinkgrad(model, loss_fn)
    assert abs(float(f(params, X.numpy(), Y.numpy())) - torch_grad(model, loss_fn, X, Y)[0]) \
        < 1e-12


def test_functional_dropout_follows_its_training_flag() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(self.fc(x), 0.5, training=self.training)

    torch.manual_seed(6)
    model = M().double()
    for train in (True, False):
        model.train(train)
        state = torch.get_rng_state()
        f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
        v_t = torch_grad(model, nn.CrossEntropyLoss(), X, Y)[0]
        torch.set_rng_state(state)
        assert abs(float(f(params, X.numpy(), Y.numpy())) - v_t) < 1e-12


# ---------------------------------------------------------------------- errors
def test_unsupported_layers_are_still_named_with_the_supported_list() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Mish()).double()
    with pytest.raises(UnsupportedOperationError, match=r"Mish.*GELU.*PReLU.*HuberLoss"):
        to_kinkgrad(model, nn.MSELoss())
    with pytest.raises(UnsupportedOperationError, match="max_norm"):
        to_kinkgrad(nn.Embedding(4, 2, max_norm=1.0).double(), nn.MSELoss())
    with pytest.raises(UnsupportedOperationError, match="integer"):
        f, p = to_kinkgrad(nn.Sequential(nn.Linear(2, 3), nn.LogSoftmax(1)).double(),
                           nn.NLLLoss())
        f(p, np.ones((2, 2)), np.array([0.0, 1.0]))


# ---------------------------------------------------------------------- rows with kinks only
@pytest.mark.parametrize("act", [nn.ELU(0.5), nn.PReLU(6), nn.GELU(),
                                 nn.Sequential(nn.GroupNorm(2, 6), nn.SiLU())],
                         ids=["elu", "prelu", "gelu", "groupnorm-silu"])
def test_tangents_only_for_the_rows_with_kinks(act: nn.Module, monkeypatch) -> None:
    """Kinks in samples 3 and 8 of twelve: the tangents formed for those rows only give the
    same vector as tangents for the whole batch (``_lazy.ROWS = False``)."""
    import kinkgrad.interop._lazy as lazy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), act, nn.Linear(6, 6), nn.ReLU(),
                          nn.Linear(6, 3)).double()
    x = torch.randn(12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(12) % 3
    with torch.no_grad():
        model[0].bias[0] -= float(model[0](x)[3, 0])  # sample 3: a kink of ELU/PReLU
        model[2].bias[1] -= float(model[2](model[1](model[0](x)))[8, 1])  # sample 8: relu
    seen = spy_on_tangent_rows(monkeypatch)
    rows_mode, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    assert [8] in seen or [3, 8] in seen, seen  # the layer passes rows through
    lazy.ROWS = False
    try:
        full, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    finally:
        lazy.ROWS = True
    assert info.total_kinks >= 1 and info.total_unresolved == 0
    for n in full:
        torch.testing.assert_close(rows_mode[n], full[n], rtol=1e-12, atol=1e-14)
    want = nearby(model, nn.CrossEntropyLoss(), x, y, info.directions[0])
    for n in full:
        np.testing.assert_allclose(full[n].numpy(), want[n], rtol=1e-5, atol=1e-6)
