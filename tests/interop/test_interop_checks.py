"""The torch bridge refuses a batch that is not a pair, a loss that does not reduce to a
scalar and float labels for a class-index loss with KinkgradErrors naming the function and
the fix, before torch raises its own error from inside the forward or backward pass."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinkgrad  # noqa: E402
import kinkgrad.numpy as knp  # noqa: E402
from kinkgrad.errors import IntegerInputError, KinkgradError, ShapeError  # noqa: E402
from kinkgrad.interop.torch import certify_torch, clarke_grad_torch, torch_program  # noqa: E402

torch.manual_seed(0)
MODEL = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
X = torch.randn(5, 3, dtype=torch.float64)
Y = torch.tensor([0, 1, 0, 1, 1])
CE = torch.nn.CrossEntropyLoss()
ENTRY = {"certify_torch": certify_torch, "clarke_grad_torch": clarke_grad_torch,
         "torch_program": torch_program}


@pytest.mark.parametrize("name", sorted(ENTRY))
@pytest.mark.parametrize("batch,what", [(X, r"a Tensor of shape \(5, 3\)"),
                                        ((X, Y, Y), "a tuple of 3 items"), ((X,), "1 item")])
def test_a_batch_that_is_not_a_pair(name, batch, what):
    with pytest.raises(ShapeError, match=rf"^{name}: batch must be a pair .*{what}"):
        ENTRY[name](MODEL, CE, batch)


@pytest.mark.parametrize("name", sorted(ENTRY))
@pytest.mark.parametrize("loss,y", [(torch.nn.CrossEntropyLoss(reduction="none"), Y),
                                    (torch.nn.MSELoss(reduction="none"),
                                     torch.zeros(5, 2, dtype=torch.float64))])
def test_a_loss_with_reduction_none(name, loss, y):
    with pytest.raises(KinkgradError, match=rf"^{name}: .*reduction='none'.*'mean' or 'sum'"):
        ENTRY[name](MODEL, loss, (X, y))


@pytest.mark.parametrize("name", ["certify_torch", "clarke_grad_torch"])
@pytest.mark.parametrize("loss,model", [
    (CE, MODEL),
    (torch.nn.NLLLoss(), torch.nn.Sequential(MODEL, torch.nn.LogSoftmax(dim=-1))),
])
def test_float_labels_for_a_class_index_loss(name, loss, model):
    with pytest.raises(KinkgradError, match=r"integer class indices.*float64 labels.*y\.long"):
        ENTRY[name](model, loss, (X, Y.double()))
    # the integer labels work, and the reduced loss is what torch computes
    assert ENTRY[name](model, loss, (X, Y)) is not None


def test_the_checks_let_a_mean_loss_through_with_torchs_gradient():
    g, _ = clarke_grad_torch(MODEL, torch.nn.MSELoss(reduction="sum"),
                             (X, torch.zeros(5, 2, dtype=torch.float64)))
    MODEL.zero_grad()
    torch.nn.MSELoss(reduction="sum")(MODEL(X), torch.zeros(5, 2, dtype=torch.float64)).backward()
    for name, p in MODEL.named_parameters():  # smooth point: PyTorch's gradient is the truth
        np.testing.assert_allclose(np.asarray(g[name]), p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_dtype_names_print_plainly_for_torch_tensors():
    with pytest.raises(IntegerInputError) as info:
        kinkgrad.grad(lambda x: knp.sum(x * 1.0))(torch.tensor([1, 2]))
    assert "dtype int64;" in str(info.value) and 'dtype("' not in str(info.value)


@pytest.mark.parametrize("name", sorted(ENTRY))
@pytest.mark.parametrize("where", ["inputs", "targets"])
def test_nan_in_the_batch_is_refused(name, where):
    # clarke_grad_torch returned NaN gradients for a NaN input
    x, y = X.clone(), torch.zeros(5, 2, dtype=torch.float64)
    (x if where == "inputs" else y)[1, 0] = float("nan")
    with pytest.raises(KinkgradError, match=rf"^{name}: the batch's {where} contain NaN"):
        ENTRY[name](MODEL, torch.nn.MSELoss(), (x, y))


@pytest.mark.parametrize("name", ["certify_torch", "to_kinkgrad"])
def test_a_function_instead_of_a_module_is_refused(name):
    from kinkgrad.interop.torch import to_kinkgrad

    call = {"certify_torch": lambda: certify_torch(lambda x: x, CE, (X, Y)),
            "to_kinkgrad": lambda: to_kinkgrad(lambda x: x, CE)}[name]
    with pytest.raises(KinkgradError, match="must be a torch.nn.Module"):
        call()  # AttributeError ('function' object has no attribute ...) before


@pytest.mark.parametrize("name", ["certify_torch", "clarke_grad_torch"])
def test_inputs_the_model_cannot_take_name_the_call(name):
    # torch's RuntimeError ("mat1 and mat2 shapes cannot be multiplied") came through
    x = torch.randn(5, 4, dtype=torch.float64)  # the model takes 3 features
    with pytest.raises(ShapeError, match=rf"^{name}: the model's forward pass failed.*mat1"):
        ENTRY[name](MODEL, CE, (x, Y))


@pytest.mark.parametrize("loss", ["ce", "nll"])
@pytest.mark.parametrize("label", [-1, -5, 2, 7])
def test_a_label_that_is_not_a_class_is_refused_as_torch_refuses_it(loss, label):
    # -1 was read as NumPy's last class: a value and a gradient where torch raises
    from kinkgrad.interop.torch import to_kinkgrad

    lossf = CE if loss == "ce" else (
        lambda o, y: torch.nn.NLLLoss()(torch.nn.functional.log_softmax(o, 1), y))
    y = Y.clone()
    y[1] = label
    with pytest.raises(IndexError):
        lossf(MODEL(X), y)
    f, p = to_kinkgrad(MODEL, lossf)
    with pytest.raises(ShapeError, match=rf"label {label} is not a class of the 2"):
        kinkgrad.grad(f)(p, X.numpy(), y.numpy())
    with pytest.raises(ShapeError, match=rf"label {label} is not a class"):
        f(p, X.numpy(), y.numpy())


def test_ignored_labels_as_torch_and_every_label_ignored_refused():
    from kinkgrad.interop.torch import to_kinkgrad

    f, p = to_kinkgrad(MODEL, CE)
    y = Y.clone()
    y[1] = -100
    MODEL.zero_grad()
    CE(MODEL(X), y).backward()
    g = kinkgrad.grad(f)(p, X.numpy(), y.numpy())
    np.testing.assert_allclose(g["2.bias"], MODEL[2].bias.grad.numpy(), rtol=1e-12)
    # all ignored: torch gives NaN; kinkgrad raised ZeroDivisionError from the mean
    assert torch.isnan(CE(MODEL(X), torch.full((5,), -100)))
    with pytest.raises(ShapeError, match="every label equals ignore_index=-100"):
        kinkgrad.grad(f)(p, X.numpy(), np.full(5, -100))


def test_translated_calls_with_misfit_data_raise_shape_errors():
    from kinkgrad.interop.torch import to_kinkgrad

    f, p = to_kinkgrad(MODEL, CE)
    with pytest.raises(ShapeError, match="^matmul: operands"):  # 4 features for 3
        f(p, np.ones((5, 4)), Y.numpy())
    with pytest.raises(ShapeError, match="float targets are class probabilities"):
        f(p, X.numpy(), Y.numpy().astype(np.float64))
