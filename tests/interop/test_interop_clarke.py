"""clarke_grad_torch: a limiting (Bouligand) gradient, computed with torch.

Independent truths: the gradient of PyTorch's plain backward at the nearby points
params + t d (t > 0 small) where the loss is differentiable -- the definition of a limiting
gradient along the direction the function resolves its kinks with; and, for relu(h) - relu(-h)
(= h), the gradient of the equivalent smooth model.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from _interop_models import concat_net, kinky_mlp, tie_cnn  # noqa: E402

import kinkgrad  # noqa: E402
from kinkgrad.interop._dual import lex_resolve  # noqa: E402
from kinkgrad.interop.torch import certify_torch, clarke_grad_torch, to_kinkgrad  # noqa: E402


def plain_grad(model: nn.Module, loss_fn, x, y) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    loss = loss_fn(model(x), y)
    gs = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, gs))


def nearby_grad(model: nn.Module, loss_fn, x, y, d: dict, t: float, check=None) -> dict:
    """Plain backward at params + t d (then the parameters are restored); ``check`` (default:
    kinkgrad's kink report of the translated model) asserts that no kink is hit there."""
    params = dict(model.named_parameters())
    saved = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            if n in d:  # a direction moves only the parameters that reach a kink
                p += t * d[n]
    try:
        if check is None:
            f, p_np = to_kinkgrad(model, loss_fn)
            _, rep = kinkgrad.grad(f, report=True)(p_np, x.numpy(), y.numpy())
            assert all(r.primitive in ("max", "max_pool2d") for r in rep.records) \
                or not rep.any, str(rep)
        else:
            check()
        return plain_grad(model, loss_fn, x, y)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


def assert_limiting(model, loss_fn, x, y, seed: int, t: float = 1e-7,
                    direction: str = "rank1") -> dict:
    g, info = clarke_grad_torch(model, loss_fn, (x, y), seed=seed, direction=direction)
    assert info.total_kinks > 0 and info.total_unresolved == 0
    near = nearby_grad(model, loss_fn, x, y, info.directions[0], t)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=n)
    return g


def test_smooth_point_equals_plain_backward() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 7), nn.LeakyReLU(0.1),
                          nn.Linear(7, 3)).double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    assert info.total_kinks == 0 and len(info.directions) == 1
    ref = plain_grad(model, nn.CrossEntropyLoss(), x, y)
    for n in ref:
        torch.testing.assert_close(g[n], ref[n], rtol=0, atol=0)
    np.testing.assert_allclose(info.loss, float(nn.CrossEntropyLoss()(model(x), y).detach()))


@pytest.mark.parametrize("direction", ["rank1", "dense"])
def test_relu_kinks_give_a_limiting_gradient(direction: str) -> None:
    model, x, y = kinky_mlp()
    plain = plain_grad(model, nn.CrossEntropyLoss(), x, y)
    differs = []
    for seed in range(4):
        g = assert_limiting(model, nn.CrossEntropyLoss(), x, y, seed, direction=direction)
        differs.append(any(not torch.allclose(g[n], plain[n]) for n in g))
    assert any(differs)  # some direction enters a piece other than plain AD's choice


def test_rank_one_direction_is_the_outer_product_it_moves_along() -> None:
    """info.directions (dense) is u v^T per weight; the tangent rules used the factors."""
    model, x, y = kinky_mlp()
    _, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=5)
    f = info.factors[0]["0.weight"]
    np.testing.assert_allclose(info.directions[0]["0.weight"].numpy(),
                               np.outer(f.u.numpy(), f.v.numpy()))
    assert info.directions[0]["0.bias"].shape == (4,)


def test_unknown_direction_kind_is_refused() -> None:
    model, x, y = kinky_mlp()
    with pytest.raises(kinkgrad.KinkgradError, match="rank1"):
        clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), direction="sparse")


def test_kink_counts_match_kinkgrad_report() -> None:
    model, x, y = kinky_mlp()
    _, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    _, rep = kinkgrad.grad(f, report=True)(params, x.numpy(), y.numpy())
    assert info.kinks == {"1": rep.total} and rep.total == 8


@pytest.mark.parametrize("act", [nn.LeakyReLU(0.25), nn.Hardtanh(-1.0, 1.0)])
def test_other_activations_give_a_limiting_gradient(act: nn.Module) -> None:
    if isinstance(act, nn.Hardtanh):  # clamp, written functionally
        class Clamp(nn.Module):
            def forward(self, h: torch.Tensor) -> torch.Tensor:
                return torch.clamp(h, -1.0, 1.0) + torch.clamp(h, min=0.0)

        act = Clamp()
    model, x, y = kinky_mlp(act)
    assert_limiting(model, nn.CrossEntropyLoss(), x, y, seed=3)


def test_l1_loss_at_zero_residual() -> None:
    model, x, _ = kinky_mlp()
    with torch.no_grad():
        target = model(x).detach().clone()
        target[0, 0] += 1.0
    assert_limiting(model, nn.L1Loss(), x, target, seed=4)


class Odd(nn.Module):
    """relu(h) - relu(-h) = h: the Clarke gradient is that of the linear model."""

    def __init__(self, odd: bool = True) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.out = nn.Linear(3, 2)
        self.odd = odd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.out(F.relu(h) - F.relu(-h) if self.odd else h)


def test_relu_minus_relu_differs_from_plain_backward_exactly_where_it_must() -> None:
    odd, lin = Odd().double(), Odd(odd=False).double()
    with torch.no_grad():
        odd.lin.weight.copy_(torch.tensor([[1., 2.], [1., -1.], [0.5, 1.]]))
        odd.lin.bias.copy_(torch.tensor([0.25, 0., -1.]))
        odd.out.weight.copy_(torch.tensor([[1., -2., 0.5], [0.25, 3., -1.]]))
        odd.out.bias.zero_()
    lin.load_state_dict(odd.state_dict())
    x = torch.tensor([[2., 2.], [1., 3.], [-1., 0.5]], dtype=torch.float64)  # h[0, 1] == 0
    y = torch.tensor([0, 1, 1])
    loss = nn.CrossEntropyLoss()
    truth = plain_grad(lin, loss, x, y)  # smooth model: its gradient is the Clarke set
    plain = plain_grad(odd, loss, x, y)
    for seed in (0, 1):
        g, info = clarke_grad_torch(odd, loss, (x, y), seed=seed)
        assert info.total_kinks == 2  # relu(h) and relu(-h) at entry (0, 1)
        for n in truth:
            torch.testing.assert_close(g[n], truth[n], rtol=1e-12, atol=1e-14)
    expected_diff = {"lin.weight": np.array([[0, 0], [1, 1], [0, 0]], bool),
                     "lin.bias": np.array([0, 1, 0], bool),
                     "out.weight": np.zeros((2, 3), bool), "out.bias": np.zeros(2, bool)}
    for n, mask in expected_diff.items():
        differs = ~np.isclose(plain[n].numpy(), truth[n].numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(differs, mask, err_msg=n)


def test_maxpool_ties_resolved_by_the_tangent() -> None:
    model, x, y = tie_cnn()
    results = set()
    for seed in range(6):
        g = assert_limiting(model, nn.CrossEntropyLoss(), x, y, seed)
        results.add(tuple(np.round(g["0.weight"].numpy().ravel(), 9)))
    assert len(results) == 2  # both tied candidates are limiting gradients, both are reached


@pytest.mark.parametrize("direction", ["rank1", "dense"])
def test_conv_pool_network_with_padding_in_pool(direction: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
                          nn.Linear(2 * 3 * 3, 3)).double()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():  # make some conv outputs exactly 0: relu kinks, then pool ties
        x[0, 0] = 0.0
        model[0].bias[0] = 0.0
    y = torch.tensor([0, 2])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0,
                                direction=direction)
    # pool ties may stay unresolved: on the zero image every candidate of channel 0 is the
    # same function b_0 of the parameters, so the choice cannot matter
    assert info.kinks["1"] > 0

    def no_relu_kink() -> None:
        assert int((model[0](x) == 0).sum()) == 0

    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                       no_relu_kink)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-6)


def test_float32_and_set_grad() -> None:
    model, x, y = kinky_mlp()
    model = model.float()
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x.float(), y), seed=0,
                                set_grad=True)
    assert g["0.weight"].dtype == torch.float32 and info.total_kinks == 8
    for n, p in model.named_parameters():
        assert p.grad is g[n]
    g64, _ = clarke_grad_torch(kinky_mlp()[0], nn.CrossEntropyLoss(), (x, y), seed=0)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), g64[n].numpy(), rtol=1e-5, atol=1e-6)


def test_lex_resolve_uses_the_next_direction_only_where_the_first_vanishes() -> None:
    z = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    t1 = torch.tensor([0.0, 0.0, 2.0, -5.0, 0.0])
    t2 = torch.tensor([0.0, -1.0, -3.0, 0.0, 0.0])
    zero = torch.tensor([False, False, False, False, True])
    pos, undecided, kinks, unresolved = lex_resolve(z, [t1, t2], zero)
    assert pos.tolist() == [False, False, True, True, False]
    assert undecided.tolist() == [True, False, False, False, True]  # entry 1: sign -
    assert int(kinks) == 4 and int(unresolved) == 1  # entry 4 is structurally zero


class Mixed(nn.Module):
    """Smooth functions between the kinks (tanh, sigmoid, exp, division, products with
    constants built from metadata): their tangents come from torch.func.jvp."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(3, 4)
        self.l2 = nn.Linear(4, 4)
        self.l3 = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.l1(x)) * 2.0
        h = F.relu(self.l2(h) / 1.5)
        mix = torch.eye(3, 4, dtype=h.dtype).T @ torch.ones(3, 3, dtype=h.dtype)
        return self.l3(torch.sigmoid(h) @ mix + h[:, :3].exp())


def test_smooth_functions_between_kinks_use_forward_mode_ad() -> None:
    torch.manual_seed(0)
    model = Mixed().double()
    with torch.no_grad():  # two units with zero weights and bias: exact kinks for every sample
        model.l2.weight[:2] = 0.0
        model.l2.bias[:2] = 0.0
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=1)
    assert info.kinks == {"relu": 8} and info.total_unresolved == 0
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-8)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-6)
    plain = plain_grad(model, nn.CrossEntropyLoss(), x, y)
    assert not torch.allclose(g["l2.weight"], plain["l2.weight"])


@pytest.mark.parametrize("make", [kinky_mlp, tie_cnn])
def test_result_is_a_limiting_gradient_enumerated_by_kinkgrad(make) -> None:  # noqa: ANN001
    from kinkgrad.interop._api import lookup

    subdifferential, in_clarke = lookup("subdifferential"), lookup("in_clarke")
    if subdifferential is None or in_clarke is None:
        pytest.skip("kinkgrad.subdifferential / in_clarke not available")
    model, x, y = make()
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())

    def fp(p: dict) -> object:
        return f(p, x.numpy(), y.numpy())

    sub = subdifferential(fp, params)
    assert not sub.partial and len(sub) >= 2
    names = sorted(params)  # match by value, whatever the flat order of the matrix
    vertices = [np.concatenate([np.ravel(v[n]) for n in names]) for v in sub.gradients]
    found = set()
    for seed in range(8):
        g, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=seed)
        flat = np.concatenate([g[n].numpy().ravel() for n in names])
        hits = [i for i, v in enumerate(vertices) if np.allclose(flat, v, rtol=1e-9, atol=1e-12)]
        assert len(hits) >= 1
        found.update(hits)
        if seed == 0:  # the LP membership test too (it enumerates again: once is enough)
            assert in_clarke(fp, params, {n: t.numpy() for n, t in g.items()})
    assert len(found) >= 2  # different directions reach different pieces


def test_frozen_parameters_are_constants() -> None:
    """With the first layer frozen, the loss is a function of the last layer only: the
    result must be a limiting gradient of that function (directions never move frozen
    weights), and has no entry for the frozen ones."""
    model, x, y = kinky_mlp()
    for p in model[0].parameters():
        p.requires_grad_(False)
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=1)
    assert set(g) == {"2.weight", "2.bias"}
    assert set(info.directions[0]) == set() and info.kinks == {"1": 8}
    # relu kinks do not depend on the trainable parameters: plain backward is the gradient
    plain = torch.autograd.grad(nn.CrossEntropyLoss()(model(x), y),
                                [model[2].weight, model[2].bias])
    torch.testing.assert_close(g["2.weight"], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(g["2.bias"], plain[1], rtol=0, atol=0)


@pytest.mark.parametrize(("groups", "stride", "padding", "dilation"),
                         [(1, 1, 0, 1), (2, 2, 1, 1), (3, 1, 2, 2)])
def test_rank_one_conv_tangent_equals_the_dense_convolution(groups, stride, padding, dilation):
    from kinkgrad.interop._tangent_rules import RankOne, _conv_rank_one

    gen = torch.Generator().manual_seed(groups)
    x = torch.randn(2, 6, 9, 8, generator=gen, dtype=torch.float64)
    d = RankOne(torch.randn(12, generator=gen, dtype=torch.float64),
                torch.randn(6 // groups, 3, 2, generator=gen, dtype=torch.float64))
    want = F.conv2d(x, d.dense(), None, stride, padding, dilation, groups)
    got = _conv_rank_one(x, d, stride=stride, padding=padding, dilation=dilation, groups=groups)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_rank_one_linear_tangent_on_a_3d_input_equals_the_dense_one() -> None:
    from kinkgrad.interop._fx import Op
    from kinkgrad.interop._tangent_rules import RankOne, tangent

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, generator=gen, dtype=torch.float64)
    w, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    d = RankOne(torch.randn(3, generator=gen, dtype=torch.float64),
                torch.randn(4, generator=gen, dtype=torch.float64))
    db = torch.randn(3, generator=gen, dtype=torch.float64)
    out = F.linear(x, w, b)
    op = Op("linear", "lin", (None, None, None), {})
    got = tangent(op, (x, w, b), [None, [d], [db]], out, 0)
    torch.testing.assert_close(got, F.linear(x, d.dense(), db), rtol=1e-12, atol=1e-12)


class _Abs(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.abs(h)


class _Clamp(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.clamp(h, -1.0, 1.0)


@pytest.mark.parametrize("act", [nn.ReLU(), nn.LeakyReLU(0.25), _Abs(), _Clamp()],
                         ids=["relu", "leaky", "abs", "clamp"])
def test_tangents_cross_a_kink_free_layer_on_demand(act: nn.Module) -> None:
    """Layer 1 hits no kink (its tangent map is formed only when asked); layer 2 hits kinks
    exactly (units 0 and 1 of layer 1 are equal, row 0 of layer 2 subtracts them), so its
    tangents need layer 1's map. Truth: plain backward at params + t d."""
    model = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 3), nn.ReLU(),
                          nn.Linear(3, 2)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1., 1., 0.], [1., 1., 0.], [0., 1., -1.],
                                            [1., 0., 2.]]))
        model[0].bias.copy_(torch.tensor([0.5, 0.5, -0.5, 0.5]))  # half-integers: no kink
        model[2].weight.copy_(torch.tensor([[1., -1., 0., 0.], [0.5, 0., 1., -1.],
                                            [0., 1., 1., 1.]]))
        model[2].bias.zero_()
    x = torch.tensor([[1., 0., 2.], [-2., 1., 1.], [0., -1., 3.], [2., 2., -1.]],
                     dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    plain = plain_grad(model, nn.CrossEntropyLoss(), x, y)
    differs = []
    for seed in range(4):
        g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=seed)
        first, second = list(info.kinks.values())  # node names vary with the module type
        assert first == 0 and second >= 4 and info.total_unresolved == 0
        near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                           lambda: None)
        for n in g:
            np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=n)
        differs.append(any(not torch.allclose(g[n], plain[n]) for n in g))
    assert any(differs)


def test_pool_ties_after_a_kink_free_relu() -> None:
    model, x, y = tie_cnn()
    model = nn.Sequential(model[0], nn.ReLU(), *model[1:])
    results = set()
    for seed in range(6):
        g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=seed)
        assert info.kinks["1"] == 0 and info.kinks["2"] > 0
        near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                           lambda: None)
        for n in g:
            np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-6)
        results.add(tuple(np.round(g["0.weight"].numpy().ravel(), 9)))
    assert len(results) == 2


def test_pool_ties_among_dead_relus_are_inert() -> None:
    """Random conv-relu-pool: windows whose relus are all off tie at 0. Every choice gives a
    zero gradient there, so clarke_grad_torch takes torch's own pooling (no tangents) and
    returns plain backward, which is the gradient at every nearby point."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3 * 3 * 3, 2)).double()
    x, y = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 1, 0])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    assert info.kinks["1"] == 0 and info.kinks["2"] > 0 and info.total_unresolved == 0
    plain = plain_grad(model, nn.CrossEntropyLoss(), x, y)
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                       lambda: None)
    for n in g:
        torch.testing.assert_close(g[n], plain[n], rtol=0, atol=0)
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-7)


def test_inside_no_grad_inference_mode_and_with_a_wrong_dtype() -> None:
    model, x, y = kinky_mlp()
    want, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=1)
    with torch.no_grad():  # a gradient was asked for: it is formed anyway
        g, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=1)
        cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    for n in want:
        torch.testing.assert_close(g[n], want[n], rtol=0, atol=0)
    assert cert.active_kinks == 8
    with torch.inference_mode():
        with pytest.raises(kinkgrad.KinkgradError, match="inference_mode"):
            clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=1)
    with pytest.raises(kinkgrad.KinkgradError, match=r"float32 but the parameters are float64"):
        clarke_grad_torch(model, nn.CrossEntropyLoss(), (x.float(), y), seed=1)


def test_cat_relu6_hardtanh_avgpool_at_kinks_give_a_limiting_gradient() -> None:
    """Dyadic weights and integer images put ReLU6 at 0 and 6, Hardtanh at its bounds and
    relus at 0 exactly, after a torch.cat of two branches and average pooling."""
    torch.manual_seed(0)
    model = concat_net().double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 4) / 4)
        model.b.weight.fill_(0.5)
        model.b.bias.zero_()
    g0 = torch.Generator().manual_seed(1)
    x = torch.randint(-2, 3, (4, 1, 6, 6), generator=g0).double()
    x[0] = 12.0  # branch a saturates ReLU6 at 6 only where its sum hits 6 exactly
    y = torch.tensor([0, 1, 1, 0])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=2)
    assert info.total_kinks > 0 and info.total_unresolved == 0, info
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-8,
                       lambda: None)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg=n)


def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                         nn.Linear(4, 2)).double()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_statistics_updated_once_as_torch_does(momentum) -> None:
    import copy

    model = _bn_net()
    model[1].momentum = momentum
    ref = copy.deepcopy(model)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    for step in range(2):
        clarke_grad_torch(model, nn.CrossEntropyLoss(), (x + step, y), seed=step)
        ref(x + step)  # torch's own training-mode forward
    for (n, b), (_, r) in zip(model.named_buffers(), ref.named_buffers()):
        torch.testing.assert_close(b, r, rtol=1e-12, atol=1e-14, msg=n)
    before = {n: b.clone() for n, b in model.named_buffers()}
    certify_torch(model, nn.CrossEntropyLoss(), (x, y))  # leaves the statistics alone
    for n, b in model.named_buffers():
        torch.testing.assert_close(b, before[n], rtol=0, atol=0)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_at_relu_kinks_gives_a_limiting_gradient(train: bool) -> None:
    """Batch statistics (training) or running ones (eval) put the middle sample of an
    arithmetic progression exactly at the mean: its normalised value is 0, a relu kink."""
    model = _bn_net().train(train)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                                            [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
        model[0].bias.zero_()
        model[1].running_mean.fill_(2.0)  # eval: the running mean is the middle value
    x = torch.tensor([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0], [3.0, 6.0, 12.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=3)
    assert info.total_kinks >= 1 and info.total_unresolved == 0, info
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                       lambda: None)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg=n)


def test_layer_norm_at_relu_kinks_gives_a_limiting_gradient(monkeypatch) -> None:
    """Each sample's pre-activations in arithmetic progression: the middle one is exactly
    the sample mean, so layer norm maps it to 0 (times the weight, plus a zero bias): a relu
    kink in every sample; the tangents are formed per sample (layer norm is row-wise)."""
    import kinkgrad.interop._lazy as lazy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
        model[0].bias.zero_()
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 2.0, 0.0], [1.0, 5.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    formed = []
    upto = lazy.Tangents.upto
    monkeypatch.setattr(lazy.Tangents, "upto",
                        lambda self, i, rows: formed.append(rows) or upto(self, i, rows))
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=4)
    assert info.kinks["2"] == 2 and info.total_unresolved == 0  # samples 0 and 1
    assert [r.tolist() for r in formed] == [[0, 1]]
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                       lambda: None)
    for n in g:
        np.testing.assert_allclose(g[n].numpy(), near[n].numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg=n)
