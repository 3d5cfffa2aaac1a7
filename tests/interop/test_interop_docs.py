"""The torch bridge's module docstring: its kink table is what PyTorch's backward returns (so
a change in PyTorch shows up here), and its layer list is the one place the bridge reads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import kinkgrad.interop.torch as bridge  # noqa: E402

W = torch.tensor([0.25], dtype=torch.float64)
CASES = {  # docstring claim -> (function, point, PyTorch's gradient as documented)
    "relu'(0) = 0": (torch.relu, [0.0], [0.0]),
    "leaky_relu'(0) = the negative slope": (lambda x: F.leaky_relu(x, 0.1), [0.0], [0.1]),
    "PReLU'(0) = the negative slope": (lambda x: F.prelu(x, W), [0.0], [0.25]),
    "ELU'(0) = alpha": (lambda x: F.elu(x, 2.0), [0.0], [2.0]),
    "abs'(0) = 0": (torch.abs, [0.0], [0.0]),
    "slope 1 at a bound of clamp": (lambda x: torch.clamp(x, 0.0, 1.0), [0.0, 1.0], [1.0, 1.0]),
    "0 at a bound of Hardtanh": (lambda x: F.hardtanh(x, 0.0, 1.0), [0.0, 1.0], [0.0, 0.0]),
    "0 at a bound of ReLU6": (F.relu6, [0.0, 6.0], [0.0, 0.0]),
    "first maximiser of a max-pool window": (lambda x: F.max_pool1d(x.view(1, 1, 2), 2),
                                             [1.0, 1.0], [1.0, 0.0]),
    "first maximiser of x.max(dim)": (lambda x: x.max(0).values, [1.0, 1.0], [1.0, 0.0]),
    "even split of amax": (torch.amax, [1.0, 1.0], [0.5, 0.5]),
    "even split of max()": (lambda x: x.max(), [1.0, 1.0], [0.5, 0.5]),
    "even split of torch.maximum": (lambda x: torch.maximum(x[0], x[1]), [1.0, 1.0], [0.5, 0.5]),
}


@pytest.mark.parametrize("claim", sorted(CASES))
def test_the_documented_kink_choices_are_pytorchs(claim):
    fn, point, want = CASES[claim]
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    fn(x).sum().backward()
    assert x.grad.tolist() == want


def test_the_docstring_points_to_the_one_list_of_supported_layers():
    doc = " ".join(bridge.__doc__.split())
    assert ":data:`SUPPORTED`" in doc and "Kink convention:" in doc
    for layer in ("Linear", "Conv2d", "ReLU", "MaxPool2d", "CrossEntropyLoss"):
        assert layer in bridge.SUPPORTED
