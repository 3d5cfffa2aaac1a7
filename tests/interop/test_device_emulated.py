"""The torch paths never leave the inputs' device: an emulated accelerator on the CPU, and
the real one (CUDA) where there is one (``pytest tests/interop/test_device_emulated.py`` on a
GPU machine runs every test twice: emulated and on ``cuda``, comparing with NumPy there).

No CUDA machine runs these tests, so they emulate the two ways code that works on CPU tensors
breaks on a GPU: (1) a tensor is turned into a NumPy array without ``.cpu()`` first (CUDA
tensors refuse ``.numpy()`` and ``np.asarray``), and (2) a tensor is created without the
inputs' device (it lands on the default device and mixing devices raises). Here ``.numpy()``
and ``__array__`` raise unless the tensor went through ``.cpu()``, and the default device is
``meta``: a factory call that forgets the device makes a data-less tensor that cannot be
combined with the CPU inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp

torch = pytest.importorskip("torch")
nn = torch.nn

from _interop_models import concat_net, kinky_mlp, tie_cnn  # noqa: E402

from _registry_cases import CASES, output_weights, sample, weighted_output  # noqa: E402


def _mlp_loss(params: dict, x: object, y: np.ndarray) -> object:
    h = knp.relu(x @ params["W0"] + params["b0"])
    h = h @ params["W1"] + params["b1"]
    return knp.mean(knp.logsumexp(h, axis=1) - h[np.arange(h.shape[0]), y])


class _Host(torch.Tensor):
    """A tensor that went through ``.cpu()``: host memory, convertible to NumPy."""


def _emulate(monkeypatch: pytest.MonkeyPatch) -> None:
    to_numpy, to_cpu = torch.Tensor.numpy, torch.Tensor.cpu

    allowed = []  # set while a host tensor converts (the default-device mode re-enters)

    def refuse(self: torch.Tensor, *a: object, **k: object) -> np.ndarray:
        if type(self) is _Host or allowed:
            allowed.append(True)
            try:
                return to_numpy(self.as_subclass(torch.Tensor), *a, **k)
            finally:
                allowed.pop()
        raise RuntimeError("can't convert an accelerator tensor to numpy (emulated): "
                           "use Tensor.cpu() first")

    def array(self: torch.Tensor, dtype: object = None, copy: object = None) -> np.ndarray:
        out = refuse(self)
        return out if dtype is None else out.astype(dtype)

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    monkeypatch.setattr(torch.Tensor, "__array__", array)
    monkeypatch.setattr(torch.Tensor, "cpu",
                        lambda self, *a, **k: to_cpu(self, *a, **k).as_subclass(_Host))


@pytest.fixture(params=["emulated", "cuda"])
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The device the test's tensors live on: ``cpu`` under the emulation, or ``cuda``."""
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device here")
        yield "cuda"
        return
    _emulate(monkeypatch)
    torch.set_default_device("meta")
    try:
        yield "cpu"
    finally:
        torch.set_default_device(None)


def host(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()


def on(device: str, a: object) -> torch.Tensor:
    return torch.tensor(np.asarray(a), device=device)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_every_rule_stays_on_the_device(device: str, name: str, index: int) -> None:
    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no differentiable input")
    w_np = output_weights(prim, args, params)
    argnums = tuple(range(len(pos)))
    v, g = kinkgrad.value_and_grad(weighted_output(prim, args, params, pos, on(device, w_np)),
                                   argnums=argnums)(*[on(device, args[p]) for p in pos])
    assert v.device.type == device and all(t.device.type == device for t in g)
    v_np, g_np = kinkgrad.value_and_grad(weighted_output(prim, args, params, pos, w_np),
                                         argnums=argnums)(*[args[p] for p in pos])
    np.testing.assert_allclose(host(v), v_np, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, g_np):
        np.testing.assert_allclose(host(a), b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_a_bare_call_stays_on_the_device(device: str, name: str, index: int) -> None:
    # knp outside every entry point: knp.sort / knp.max read the tensor with np.asarray
    from kinkgrad._core.tracer import bind

    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no floating-point array input")
    got = bind(prim, *[on(device, a) if i in pos else a for i, a in enumerate(args)], **params)
    assert isinstance(got, torch.Tensor) and got.device.type == device
    np.testing.assert_allclose(host(got), prim.impl(*args, **params), rtol=1e-12, atol=1e-12)


def test_comparisons_and_index_helpers_stay_on_the_device(device: str) -> None:
    # comparisons called NumPy's ufunc (a host copy of a device tensor), and the bare
    # integer helpers and factories computed on a NumPy copy
    a = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    t = on(device, a)
    g = kinkgrad.grad(lambda v: knp.sum(knp.where(v > 0, v, 0.5 * v)))(t)
    assert g.device.type == device
    np.testing.assert_array_equal(host(g), np.where(a > 0, 1.0, 0.5))
    for got, want in ((knp.greater(t, 0.0), a > 0), (knp.argmax(t, axis=1), np.argmax(a, 1)),
                      (knp.zeros_like(t), np.zeros_like(a)), (knp.where(t > 0)[1],
                                                              np.nonzero(a > 0)[1])):
        assert isinstance(got, torch.Tensor) and got.device.type == device
        np.testing.assert_array_equal(host(got), want)


def test_modes_stay_on_the_device(device: str) -> None:
    rng = np.random.default_rng(0)
    params = {"W0": on(device, rng.normal(size=(20, 16)) * 0.3), "b0": on(device, np.zeros(16)),
              "W1": on(device, rng.normal(size=(16, 5)) * 0.3), "b1": on(device, np.zeros(5))}
    x, y = on(device, rng.normal(size=(8, 20))), rng.integers(0, 5, 8)
    v, g = kinkgrad.value_and_grad(_mlp_loss)(params, x, y)
    assert g["W0"].device.type == device
    W = on(device, rng.normal(size=(4, 3)))
    f = lambda x: knp.relu(knp.tanh(x @ W.T) - 0.1)  # noqa: E731
    x3 = on(device, rng.normal(size=3))
    for mode in ("rev", "fwd"):
        assert kinkgrad.jacobian(f, mode=mode)(x3).shape == (4, 3)
    _, t_out = kinkgrad.jvp(f, (x3,), (on(device, np.ones(3)),))
    out, vjp_fn = kinkgrad.vjp(f, x3)
    (ct,) = vjp_fn(on(device, np.ones(4)))
    assert t_out.device.type == ct.device.type == device
    with kinkgrad.kink_policy(relu=1.0):
        kinkgrad.grad(lambda x: knp.sum(knp.relu(x)))(on(device, np.zeros(3)))
    Wn = rng.normal(size=(4, 3))
    prog = kinkgrad.trace(lambda x: knp.sum(knp.relu(x @ Wn.T)), rng.normal(size=3))  # NumPy
    assert prog(x3).device.type == kinkgrad.grad(prog)(x3).device.type == device


@pytest.mark.parametrize("direction", ["rank1", "dense"])
@pytest.mark.parametrize("case", ["mlp", "cnn", "padded-pool", "concat-bn"])
def test_clarke_grad_torch_stays_on_the_device(device: str, case: str,
                                               direction: str) -> None:
    from kinkgrad.interop.torch import clarke_grad_torch

    with torch.device("cpu"):  # the test builds its model and batch on the "device"
        if case == "padded-pool":  # a constant image: ties in every pooling window
            torch.manual_seed(0)
            model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
                                  nn.Linear(18, 3)).double()
            with torch.no_grad():
                model[0].bias.fill_(0.5)
            x, y = torch.ones(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 2])
        elif case == "concat-bn":  # cat, ReLU6, Hardtanh, pooling; batch norm in training
            torch.manual_seed(0)
            model = nn.Sequential(concat_net(), nn.BatchNorm1d(2), nn.ReLU()).double()
            with torch.no_grad():  # dyadic weights, integer images: exact kinks
                for p in model.parameters():
                    p.copy_(torch.round(p * 4) / 4)
                model[0].b.weight.fill_(0.5)
                model[0].b.bias.zero_()
            x = torch.randint(-2, 3, (4, 1, 6, 6)).double()
            y = torch.tensor([0, 1, 1, 0])
        else:
            model, x, y = kinky_mlp() if case == "mlp" else tie_cnn()
    model, x, y = model.to(device), x.to(device), y.to(device)
    g, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0,
                                direction=direction)
    assert info.total_kinks > 0 and all(t.device.type == device for t in g.values())


def test_certify_torch_copies_to_the_host_explicitly(device: str) -> None:
    from kinkgrad.interop.torch import certify_torch

    with torch.device("cpu"):
        model, x, y = kinky_mlp()
    model, x, y = model.to(device), x.to(device), y.to(device)
    cert = certify_torch(model, nn.CrossEntropyLoss(), (x, y))
    assert cert.active_kinks > 0


@pytest.mark.parametrize("case", ["mlp", "cnn"])
def test_translated_model_keeps_the_batch_on_the_device(device: str, case: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # value+gradient of a translated model on device tensors: the batch is never copied to
    # the host (it used to go to NumPy and back on every call); the gradient is the one of
    # the NumPy arrays
    from kinkgrad.interop.torch import to_kinkgrad

    with torch.device("cpu"):
        model, x, y = kinky_mlp() if case == "mlp" else tie_cnn()
    f, params = to_kinkgrad(model, nn.CrossEntropyLoss())
    v_np, g_np = kinkgrad.value_and_grad(f)(params, host(x), host(y))
    x, y = x.to(device), y.to(device)
    copied = []
    cpu = torch.Tensor.cpu

    def recording_cpu(self: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        copied.append(self.data_ptr())
        return cpu(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "cpu", recording_cpu)
    v, g = kinkgrad.value_and_grad(f)({k: on(device, a) for k, a in params.items()}, x, y)
    assert x.data_ptr() not in copied
    assert all(t.device.type == device for t in g.values())
    np.testing.assert_allclose(float(host(v)), float(v_np), rtol=1e-12)
    for k in g_np:
        np.testing.assert_allclose(host(g[k]), g_np[k], rtol=1e-12, atol=1e-12)
