"""Hardtanh/ReLU6 and clamp at their bounds: the translation reproduces PyTorch's own choice
(0 for Hardtanh's open mask lo < x < hi, 1 for clamp's closed mask), so certify_torch compares
like with like. Truth: PyTorch's backward on the same model and batch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from kinkgrad.interop.torch import certify_torch  # noqa: E402


class Clamped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.out(torch.clamp(self.lin(x), -1.0, 1.0))


def _at_bounds(model: nn.Module, first: nn.Linear) -> None:
    with torch.no_grad():
        first.weight.copy_(torch.eye(3))
        first.bias.zero_()


@pytest.mark.parametrize("act", [nn.Hardtanh(), nn.ReLU6(), nn.Hardtanh(-2.0, 0.5)])
def test_hardtanh_at_its_bounds_reproduces_pytorch(act: nn.Module) -> None:
    model = nn.Sequential(nn.Linear(3, 3), act, nn.Linear(3, 2)).double()
    _at_bounds(model, model[0])
    lo, hi = float(act.min_val), float(act.max_val)
    x = torch.tensor([[lo, hi, 0.25 * (lo + hi)], [hi, lo, lo]], dtype=torch.float64)
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, torch.tensor([0, 1])))
    assert cert.active_kinks == 5
    assert cert.agrees, "kinkgrad's plain AD vector must equal PyTorch's"


def test_clamp_at_its_bounds_reproduces_pytorch() -> None:
    model = Clamped().double()
    _at_bounds(model, model.lin)
    x = torch.tensor([[1.0, -1.0, 0.5]], dtype=torch.float64)
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, torch.tensor([1])))
    assert cert.active_kinks == 2 and cert.agrees
    # and the two choices differ: clamp's vector has nonzero first-layer gradient at the bounds
    g = cert.torch_grad["lin.weight"]
    assert np.any(g[:2] != 0)


class _Kinked(nn.Module):
    """A linear layer (``inputs`` -> 3), then ``fn`` (a clamp or an amax tie), then a linear
    layer (3 -> 2)."""

    def __init__(self, fn, inputs: int = 2) -> None:  # noqa: ANN001
        super().__init__()
        self.lin, self.fn, self.out = nn.Linear(inputs, 3), fn, nn.Linear(3, 2)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.out(self.fn(self.lin(x)))


KINKED = {  # every entry of lin(x) is 0 at the batch below: at the kink of each
    "clamp(min=0)": lambda z: z.clamp(min=0.0),
    "clamp(-1, 0)": lambda z: torch.clamp(z, -1.0, 0.0),
    "clamp(0, 0)": lambda z: torch.clamp(z, 0.0, 0.0),  # min == max: torch's mask passes 1
    "amax tie": lambda z: z.amax(1, keepdim=True) + 0.5 * z,
}


@pytest.mark.parametrize("name", sorted(KINKED))
def test_translation_gradient_is_pytorchs_under_the_torch_preset(name: str) -> None:
    # to_kinkgrad's docs claimed kinkgrad's defaults were PyTorch's choices: they are not at
    # clamp bounds and amax ties; under kink_policy("torch") the gradients are PyTorch's
    import kinkgrad
    from kinkgrad.interop.torch import to_kinkgrad

    torch.manual_seed(0)
    model = _Kinked(KINKED[name]).double()
    with torch.no_grad():
        model.lin.bias.zero_()
    x, y = torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 1])
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    loss(model(x), y).backward()  # the truth: PyTorch's backward
    want = {n: p.grad.numpy() for n, p in model.named_parameters()}
    f, params = to_kinkgrad(model, loss)
    with kinkgrad.kink_policy("torch"):
        g = kinkgrad.grad(f)(params, x.numpy(), y.numpy())
    for n in want:
        np.testing.assert_allclose(g[n], want[n], rtol=1e-12, atol=1e-15, err_msg=n)
    assert certify_torch(model, loss, (x, y)).agrees
    # the default policy makes other choices there (slope 0 at a bound, first maximiser)
    g0 = kinkgrad.grad(f)(params, x.numpy(), y.numpy())
    assert not np.allclose(g0["lin.bias"], want["lin.bias"])


@pytest.mark.parametrize("fn,lo,hi", [
    (lambda z: torch.nn.functional.hardtanh(z), -1.0, 1.0),
    (lambda z: torch.nn.functional.hardtanh(z, min_val=-2.0, max_val=0.5), -2.0, 0.5),
    (lambda z: torch.nn.functional.relu6(z), 0.0, 6.0),
    (lambda z: torch.clamp_min(z, -1.0), -1.0, 6.0),
    (lambda z: z.clamp_max(1.0), -1.0, 1.0),
    (lambda z: torch.log_softmax(z, 1), -1.0, 1.0),
])
def test_functional_forms_at_their_bounds_reproduce_pytorch(fn, lo, hi) -> None:
    # the functional forms of Hardtanh / ReLU6, clamp_min / clamp_max and torch.log_softmax
    # were refused ("no rule") while their modules or other spellings were translated
    model = _Kinked(fn, 3).double()
    _at_bounds(model, model.lin)
    x = torch.tensor([[lo, hi, 0.25 * (lo + hi)], [hi, lo, lo]], dtype=torch.float64)
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, torch.tensor([0, 1])))
    assert cert.agrees, "kinkgrad's plain AD vector must equal PyTorch's"
