"""kinkgrad.minimize on a PyTorch model's loss translated by to_kinkgrad: the bundle method
ends at a certified stationary point, and PyTorch itself (the peer) agrees on the loss there
and finds no direction that lowers it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import kinkgrad  # noqa: E402
from kinkgrad.interop.torch import to_kinkgrad  # noqa: E402


@pytest.mark.parametrize("hidden", [(8,), (6,)])  # before this session: neither certified
def test_minimize_certifies_a_torch_relu_networks_loss(hidden):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 3))
    Y = np.sin(2 * X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3]
    torch.manual_seed(0)
    sizes = (3, *hidden)
    layers: list = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1)).double()
    f, params = to_kinkgrad(net, nn.functional.mse_loss)
    fit = kinkgrad.minimize(lambda p: f(p, X, Y), params)
    assert fit.stationarity.verdict == "stationary", fit.message
    assert fit.minimality.verdict == "minimal", fit.minimality.reason  # no direction falls
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(fit.x[name]))
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        loss = float(nn.functional.mse_loss(net(Xt), Yt))
        assert loss == pytest.approx(fit.fun, rel=1e-12)
        start = {name: p.clone() for name, p in net.named_parameters()}
        gen = torch.Generator().manual_seed(1)
        for _ in range(30):  # PyTorch's loss along random directions: none lowers it
            step = {n: torch.randn(p.shape, generator=gen, dtype=p.dtype)
                    for n, p in start.items()}
            size = float(torch.sqrt(sum((s * s).sum() for s in step.values())))
            for t in (1e-7, 1e-5):
                for name, p in net.named_parameters():
                    p.copy_(start[name] + t * step[name] / size)
                assert float(nn.functional.mse_loss(net(Xt), Yt)) >= loss - 1e-15
