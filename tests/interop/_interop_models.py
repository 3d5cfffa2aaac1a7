"""Tiny torch models whose kinks are exact, shared by the interop tests."""

from __future__ import annotations

import torch
from torch import nn


def kinky_mlp(act: nn.Module | None = None) -> tuple:
    """Integer weights and data: eight pre-activations are exactly 0 (exact in both NumPy and
    torch), so the choices at kinks are exercised."""
    model = nn.Sequential(nn.Linear(3, 4), act or nn.ReLU(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1., -1., 0.], [0., 1., -1.], [1., 1., 1.],
                                            [2., 0., -1.]]))
        model[0].bias.copy_(torch.tensor([0., 0., -3., 0.]))
        model[2].weight.copy_(torch.arange(12.).reshape(3, 4) / 8 - 0.5)
        model[2].bias.zero_()
    x = torch.tensor([[1., 1., 1.], [2., 2., 1.], [0., 0., 0.], [1., 3., 2.]], dtype=torch.float64)
    return model, x, torch.tensor([0, 2, 1, 1])


def tie_cnn() -> tuple:
    """Weight sharing couples two max-pool ties: conv kernel [1, 1] on patches (1, 2) / (2, 1)
    in row 0 and (3, 0) / (0, 3) in row 1: equal outputs, different gradients. Their switches
    are z and -3z, so "first entry wins in both windows", PyTorch's choice, is never realised."""
    model = nn.Sequential(nn.Conv2d(1, 2, (1, 2)), nn.MaxPool2d((1, 2)), nn.Flatten(),
                          nn.Linear(2 * 2, 2)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[[[1., 1.]]], [[[1., -1.]]]]))
        model[0].bias.zero_()
        model[3].weight.copy_(torch.tensor([[1., -1., 0.5, 2.], [0., 1., -1., 1.]]))
        model[3].bias.zero_()
    x = torch.tensor([[[[1., 2., 1.], [3., 0., 3.]]]], dtype=torch.float64)
    return model, x, torch.tensor([1])


class ConcatNet(nn.Module):
    """Two branches side by side (torch.cat on the channel axis), ReLU6 and Hardtanh, average
    pooling and global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 1)
        self.act = nn.ReLU6()
        self.pool = nn.AvgPool2d(2)
        self.c = nn.Conv2d(4, 3, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)
        self.clip = nn.Hardtanh(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.act(self.a(x)), self.clip(self.b(x))], dim=1)
        h = self.gap(torch.relu(self.c(self.pool(h))))
        return self.fc(torch.flatten(h, 1))


def concat_net() -> nn.Module:
    return ConcatNet()


def spy_on_tangent_rows(monkeypatch) -> list:  # noqa: ANN001 - a pytest MonkeyPatch
    """Record, for every tangent the lazy dual pass forms, the batch rows it was formed for
    (None: the whole batch); returns the list the records go to."""
    import kinkgrad.interop._lazy as lazy

    seen: list = []
    upto = lazy.Tangents.upto

    def spy(self, i, rows):  # noqa: ANN001, ANN202
        out = upto(self, i, rows)
        seen.append(None if out[1] is None else out[1].tolist())
        return out

    monkeypatch.setattr(lazy.Tangents, "upto", spy)
    return seen
