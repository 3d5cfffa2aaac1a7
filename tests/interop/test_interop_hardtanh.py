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
