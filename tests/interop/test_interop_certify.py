"""certify_torch: does it agree with kinkgrad's own certificate on the same loss written by
hand with kinkgrad.numpy, and with an independent hull test over limiting gradients?"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from _interop_models import tie_cnn as _tie_cnn  # noqa: E402

import kinkgrad  # noqa: E402
import kinkgrad.numpy as knp  # noqa: E402
from kinkgrad.interop._api import lookup  # noqa: E402
from kinkgrad.interop.torch import certify_torch, clarke_grad_torch, to_kinkgrad  # noqa: E402

certify, in_clarke = lookup("certify"), lookup("in_clarke")
pytestmark = pytest.mark.skipif(certify is None or in_clarke is None,
                                reason="kinkgrad.certify / in_clarke not available")


def hand_mlp(p: dict, x: np.ndarray, y: np.ndarray) -> object:
    """Linear-ReLU-Linear + cross entropy, written directly with knp (not translated)."""
    h = knp.relu(x @ knp.transpose(p["0.weight"]) + p["0.bias"])
    o = h @ knp.transpose(p["2.weight"]) + p["2.bias"]
    return knp.mean(knp.logsumexp(o, axis=1) - o[np.arange(len(y)), y])


def mlp(w1: list, b1: list, w2: list, b2: list) -> nn.Module:
    model = nn.Sequential(nn.Linear(len(w1[0]), len(w1)), nn.ReLU(),
                          nn.Linear(len(w1), len(w2))).double()
    with torch.no_grad():
        for p, v in zip(model.parameters(), (w1, b1, w2, b2)):
            p.copy_(torch.tensor(v, dtype=torch.float64))
    return model


def numpy_params(model: nn.Module) -> dict:
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


W2 = [[1., -1., 0.5, 2.], [0.25, 1., -1., 0.5], [-1., 0.5, 1., 0.]]
B2 = [0.1, 0., -0.2]
W1 = [[1., -1., 0.], [0., 1., -1.], [1., 1., 1.], [2., 0., -1.]]


def test_smooth_point_is_certified() -> None:
    model = mlp(W1, [0.5, 0.25, -3.5, 0.125], W2, B2)
    x, y = torch.tensor([[1., 1., 1.], [2., 2., 1.]], dtype=torch.float64), torch.tensor([0, 2])
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    assert cert.certified and cert.by == "condition" and cert.agrees
    assert cert.active_kinks == 0 and sum(cert.kinks_by_layer.values()) == 0


def test_single_sample_with_biases_is_certified_at_kinks() -> None:
    """Paper B: one sample through dense ReLU layers with biases satisfies LIKQ."""
    model = mlp(W1, [0., 0., -3., 0.], W2, B2)
    x, y = torch.tensor([[1., 1., 1.]], dtype=torch.float64), torch.tensor([2])
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    own = certify(lambda p: hand_mlp(p, x.numpy(), y.numpy()), numpy_params(model))
    assert cert.kinks_by_layer == {"1": 3} and cert.active_kinks == own.active_kinks == 3
    assert cert.certified and own.certified and cert.by == "condition"
    assert cert.report.condition == own.condition == "LIKQ"


@pytest.mark.parametrize("rows", [[[1., 1., 1.], [2., 2., 1.]],
                                  [[1., 1., 1.], [1., 1., 1.]],
                                  [[1., 1., 1.], [0., 0., 0.], [1., 3., 2.]]])
def test_batch_matches_kinkgrads_own_certificate(rows: list) -> None:
    model = mlp(W1, [0., 0., -3., 0.], W2, B2)
    x = torch.tensor(rows, dtype=torch.float64)
    y = torch.arange(len(rows)) % 3
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    own = certify(lambda p: hand_mlp(p, x.numpy(), y.numpy()), numpy_params(model))
    assert cert.agrees and cert.max_abs_diff < 1e-12
    assert cert.active_kinks == own.active_kinks > 0
    assert (cert.by == "condition") == own.certified
    if not own.certified:  # then the LP decides; it must agree with kinkgrad's in_clarke
        inside = in_clarke(lambda p: hand_mlp(p, x.numpy(), y.numpy()), numpy_params(model),
                           cert.torch_grad)
        assert cert.in_clarke == inside == cert.certified


class Odd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.out(F.relu(h) - F.relu(-h))


def _odd() -> tuple:
    model = Odd().double()
    with torch.no_grad():
        model.lin.weight.copy_(torch.tensor([[1., 2.], [1., -1.], [0.5, 1.]]))
        model.lin.bias.copy_(torch.tensor([0.25, 0., -1.]))
        model.out.weight.copy_(torch.tensor([[1., -2., 0.5], [0.25, 3., -1.]]))
        model.out.bias.zero_()
    x = torch.tensor([[2., 2.], [1., 3.], [-1., 0.5]], dtype=torch.float64)
    return model, x, torch.tensor([0, 1, 1])


def test_relu_minus_relu_is_not_certified_and_the_lp_rejects_it() -> None:
    model, x, y = _odd()
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    assert not cert.certified and cert.by == "lp" and cert.in_clarke is False
    assert cert.agrees  # PyTorch's vector is kinkgrad's plain AD vector
    assert cert.kinks_by_layer == {"relu": 1, "relu_1": 1}
    assert "OUTSIDE" in cert.reason and "relu" in cert.reason
    g, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    f_np = {n: t.numpy() for n, t in g.items()}
    from kinkgrad.interop.torch import to_kinkgrad

    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    assert in_clarke(lambda p: f(p, x.numpy(), y.numpy()), params, f_np)


def _hull_contains(points: np.ndarray, g: np.ndarray) -> bool:
    """Independent LP: is g a convex combination of the rows of points?"""
    k = points.shape[0]
    res = scipy.optimize.linprog(np.zeros(k), A_eq=np.vstack([points.T, np.ones((1, k))]),
                                 b_eq=np.concatenate([g, [1.0]]), bounds=[(0, None)] * k,
                                 method="highs")
    return res.status == 0


class AbsLike(nn.Module):
    """relu(h) + relu(-h) = |h|: plain AD's 0 at h = 0 is a Clarke gradient, but kinkgrad's
    condition cannot tell (the two relus' switches depend on each other)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.out = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.out(F.relu(h) + F.relu(-h))


def _abs_like() -> tuple:
    model = AbsLike().double()
    with torch.no_grad():
        model.lin.weight.copy_(torch.tensor([[1., -1.], [1., 1.]]))
        model.lin.bias.copy_(torch.tensor([0., -1.]))
        model.out.weight.copy_(torch.tensor([[1., -1.], [0.5, 2.]]))
        model.out.bias.zero_()
    return model, torch.tensor([[1., 1.], [2., 1.]], dtype=torch.float64), torch.tensor([0, 1])


def _kinky_batch() -> tuple:
    model = mlp([[1., -1.], [1., 1.]], [0., -2.], [[1., -1.], [0.5, 2.]], [0., 0.])
    x = torch.tensor([[1., 1.], [2., 2.], [1., 1.]], dtype=torch.float64)
    return model, x, torch.tensor([0, 1, 1])


def test_lp_verdict_matches_a_hull_of_sampled_limiting_gradients() -> None:
    """Limiting gradients sampled with clarke_grad_torch over many directions span the
    Clarke subdifferential (few kinks, so every piece is hit); membership of PyTorch's vector
    in their hull, an LP written here, must match certify_torch's verdict."""
    verdicts = []
    loss = nn.CrossEntropyLoss()  # one instance: the traced graph is cached per loss function
    for make in (_kinky_batch, _odd, _abs_like, _tie_cnn):
        model, x, y = make()
        cert = certify_torch(model, loss, (x, y))
        assert cert.active_kinks > 0
        names = list(cert.torch_grad)
        samples = []
        for seed in range(48):
            g, _ = clarke_grad_torch(model, loss, (x, y), seed=seed)
            samples.append(np.concatenate([g[n].numpy().ravel() for n in names]))
        pts = np.unique(np.round(np.array(samples), 12), axis=0)
        tg = np.concatenate([cert.torch_grad[n].ravel() for n in names])
        assert cert.certified == _hull_contains(pts, tg)
        verdicts.append((cert.certified, cert.by))
    assert verdicts == [(True, "condition"), (False, "lp"), (True, "lp"), (False, "lp")]


def test_bridge_table_of_the_docs() -> None:
    from kinkgrad.interop._bridge_demo import bridge_rows

    header, rows = bridge_rows()
    assert [r[2] for r in rows] == ["certified (condition)", "not certified (lp)",
                                    "certified (lp)", "not certified (lp)"]
    assert [r[3] for r in rows] == ["yes", "no", "yes", "no"]
    assert all(r[5] == "yes" for r in rows)
    # where PyTorch's vector is outside the Clarke set, the Clarke gradient must differ
    assert all(float(r[4]) > 0 for r in rows if r[3] == "no")


def _dead_unit_mlp(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10)).to(dtype)
    with torch.no_grad():  # unit 0 dead: 64 kinks, one group, realised all-off (bias down)
        model[0].weight[0] = 0.0
        model[0].bias[0] = 0.0
    return model, torch.randn(64, 16).to(dtype), torch.randint(0, 10, (64,))


def test_float16_gradient_certified_despite_summation_order() -> None:
    """PyTorch and NumPy sum float16 products in different orders (about 1e-3 relative
    apart): the same choices at kinks must still be recognised, and certified."""
    model, x, y = _dead_unit_mlp(torch.float16)
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y), membership=False)
    assert cert.active_kinks == 64 and cert.agrees and cert.certified and cert.by == "condition"


def test_bfloat16_model_is_refused_with_the_fix_and_clarke_grad_torch_runs() -> None:
    model, x, y = _dead_unit_mlp(torch.bfloat16)
    for fn in (lambda: certify_torch(model, nn.CrossEntropyLoss(), (x, y)),
               lambda: to_kinkgrad(model, nn.CrossEntropyLoss())):
        with pytest.raises(kinkgrad.KinkgradError, match=r"bfloat16.*float\(\)"):
            fn()
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0)
    assert info.total_kinks == 64 and g["0.weight"].dtype == torch.bfloat16
    # the same computation in float32 on the same (bfloat16-exact) weights and data
    ref, _ = clarke_grad_torch(model.float(), nn.CrossEntropyLoss(), (x.float(), y), seed=0)
    for n in g:
        err = float((g[n].float() - ref[n]).abs().max()) / float(ref[n].abs().max())
        assert err < 0.05, n


def test_likq_certifies_pytorch_choice_at_hardtanh_bounds():
    # issue 12: Hardtanh at its bounds (PyTorch's slope 0, the translation's 1) made
    # certify_torch throw LIKQ away and enumerate; LIKQ covers every choice at those kinks
    import torch

    from kinkgrad.interop.torch import certify_torch

    m = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.Hardtanh(), torch.nn.Linear(12, 3))
    with torch.no_grad():
        m[0].weight.copy_(torch.eye(12))
        m[0].bias.zero_()
    rep = certify_torch(m, torch.nn.CrossEntropyLoss(), (torch.ones(1, 12), torch.tensor([1])))
    assert rep.certified and rep.by == "condition" and "LIKQ" in rep.reason
    assert rep.active_kinks == 12
