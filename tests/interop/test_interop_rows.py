"""Tangents formed for the rows that hit a kink only (kinkgrad.interop._lazy).

Truth: the same pass with tangents formed for the whole batch (``_lazy.ROWS = False``), which
the other interop tests check against nearby gradients and kinkgrad's LP; and, for the rows
bookkeeping, which rows were formed. Models put exact kinks in a few samples only.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from _interop_models import spy_on_tangent_rows  # noqa: E402

import kinkgrad.interop._lazy as lazy  # noqa: E402
from kinkgrad.interop.torch import clarke_grad_torch  # noqa: E402


def _both(model, x, y, seed: int = 0, **kw) -> tuple:
    rows_mode, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=seed, **kw)
    lazy.ROWS = False
    try:
        full, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=seed, **kw)
    finally:
        lazy.ROWS = True
    return rows_mode, full, info


_spy = spy_on_tangent_rows


def _mlp(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), act, nn.Linear(6, 6), nn.ReLU(),
                         nn.Linear(6, 3)).double()


class _Clamp(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.clamp(h, -0.5, 0.5)


@pytest.mark.parametrize("act", [nn.ReLU(), nn.LeakyReLU(0.2), _Clamp()],
                         ids=["relu", "leaky", "clamp"])
@pytest.mark.parametrize("direction", ["rank1", "dense"])
def test_kinks_in_two_samples_of_a_batch_of_twelve(monkeypatch, act, direction) -> None:
    model = _mlp(act)
    x = torch.randn(12, 4, dtype=torch.float64)
    with torch.no_grad():  # sample 3 hits layer 1's unit 0, sample 8 layer 2's unit 1
        model[0].bias[0] -= float(model[0](x)[3, 0]) - (0.5 if isinstance(act, _Clamp) else 0)
        h1 = model[1](model[0](x))
        model[2].bias[1] -= float(model[2](h1)[8, 1])
    seen = _spy(monkeypatch)
    rows_mode, full, info = _both(model, x, torch.arange(12) % 3, direction=direction)
    assert info.total_kinks >= 2 and info.total_unresolved == 0
    assert [3] in seen and [3, 8] in seen  # rows formed: first {3}, then the union {3, 8}
    for n in full:
        torch.testing.assert_close(rows_mode[n], full[n], rtol=1e-12, atol=1e-14)


def test_pool_ties_in_one_image(monkeypatch) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).double()
    x = torch.randn(6, 1, 6, 6, dtype=torch.float64)
    x[4] = 1.0  # image 4 constant: equal conv outputs inside, ties in the inner window
    with torch.no_grad():  # conv outputs of image 4 positive: live (not dead-relu) ties
        model[0].bias.copy_(model[0].weight.sum((1, 2, 3)).abs() + 1.0)
    seen = _spy(monkeypatch)
    rows_mode, full, info = _both(model, x, torch.arange(6) % 3, seed=2)
    assert info.kinks["2"] > 0 and [4] in seen
    for n in full:
        torch.testing.assert_close(rows_mode[n], full[n], rtol=1e-12, atol=1e-14)


class _Centered(nn.Module):
    """Batch centering before the relu: every row depends on the whole batch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(torch.relu(h - h.mean(0)))


def test_an_op_mixing_samples_forms_tangents_for_the_whole_batch(monkeypatch) -> None:
    torch.manual_seed(3)
    model = _Centered().double()
    x = torch.randn(8, 4, dtype=torch.float64)
    x[5] = (x.sum(0) - x[5]) / 7  # row 5 = the mean of the others: h[5] - mean(h) = 0
    seen = _spy(monkeypatch)
    rows_mode, full, info = _both(model, x, torch.arange(8) % 3)
    assert info.total_kinks > 0 and seen and all(r is None for r in seen)
    for n in full:
        torch.testing.assert_close(rows_mode[n], full[n], rtol=1e-12, atol=1e-14)
