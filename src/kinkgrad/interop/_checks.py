"""Checks of what the torch bridge is given, before torch meets it: a batch that is not an
``(inputs, targets)`` pair, a loss that does not reduce to a scalar, float labels for a
loss that takes class indices, NaN or inf in the data. Each raises a
:class:`~kinkgrad.errors.KinkgradError` naming the function and the fix, instead of torch's
own error from deep inside the forward or backward pass (``too many values to unpack``,
``grad can be implicitly created only for scalar outputs``, ``expected target dtype to be
Long``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import KinkgradError, NonFiniteInputError, ShapeError

__all__ = ["check_batch", "forward_errors", "require_numpy_dtypes"]

# losses whose targets are class indices (a 1-D integer tensor of length N)
_CLASS_INDEX_LOSSES = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss")


def _describe(batch: Any) -> str:
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of {len(batch)} item{'s' if len(batch) != 1 else ''}"
    shape = getattr(batch, "shape", None)
    return f"a {type(batch).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _is_float(y: Any) -> bool:
    dt = getattr(y, "dtype", None)
    if dt is not None and hasattr(dt, "is_floating_point"):  # a torch dtype
        return bool(dt.is_floating_point)
    return np.asarray(y).dtype.kind == "f"


def check_batch(batch: Any, loss_fn: Any, where: str, grad: bool = False) -> tuple[Any, Any]:
    """``(x, y)`` from ``batch`` after checking the batch, the loss's reduction and the
    labels' dtype for a class-index loss; with ``grad``, that torch can form a gradient."""
    if grad:
        import torch

        if torch.is_inference_mode_enabled():
            raise KinkgradError(f"{where}: called inside torch.inference_mode(), where torch "
                                "forms no gradient; call it outside (inside torch.no_grad() is "
                                "fine).")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ShapeError(
            f"{where}: batch must be a pair (inputs, targets), got {_describe(batch)}; pass "
            f"{where}(model, loss_fn, (x, y)) (a loss that takes no targets gets (x, None))."
        )
    x, y = batch
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in ("mean", "sum", "batchmean"):
        raise KinkgradError(
            f"{where}: {type(loss_fn).__name__}(reduction={reduction!r}) returns one loss per "
            "example; the generalized gradient is of a scalar loss. Use reduction='mean' or "
            "'sum' (or pass lambda out, y: loss(out, y).sum())."
        )
    name = type(loss_fn).__name__
    if name in _CLASS_INDEX_LOSSES and y is not None and np.ndim(y) == 1 and _is_float(y):
        dt = str(getattr(y, "dtype", "")).removeprefix("torch.")
        raise KinkgradError(
            f"{where}: {name} takes integer class indices as targets, got {dt} labels; convert "
            "them (y.long() for a tensor, y.astype(np.int64) for an array)."
        )
    for name_, v in (("inputs", x), ("targets", y)):  # NOTE: torch computed with them, and
        # clarke_grad_torch returned NaN gradients
        if v is not None and _is_float(v) and not _finite(v):
            raise NonFiniteInputError(f"{where}: the batch's {name_} contain NaN or inf; "
                                      "generalized derivatives need finite data. Drop or "
                                      "impute those entries first.")
    return x, y


def _finite(v: Any) -> bool:
    if hasattr(v, "is_floating_point"):  # a torch tensor, on its device
        import torch

        return bool(torch.isfinite(v).all())
    return bool(np.all(np.isfinite(np.asarray(v))))


def require_numpy_dtypes(model: Any, where: str) -> None:
    """Refuse what is not a torch module, or has parameters NumPy has no dtype for."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise KinkgradError(f"{where}: model must be a torch.nn.Module, got "
                            f"{type(model).__name__}; wrap a function of the parameters in a "
                            "Module, or write it with kinkgrad.numpy directly.")
    for n, p in model.named_parameters():
        if p.dtype not in (torch.float64, torch.float32, torch.float16):
            raise KinkgradError(
                f"{where}: parameter {n!r} is {str(p.dtype).removeprefix('torch.')}, which "
                "NumPy (the engine of the translated program and of certificates) has no dtype "
                "for; use a float32 copy (copy.deepcopy(model).float()), knowing that its "
                "kinks can differ from the low-precision model's. clarke_grad_torch works in "
                "any dtype.")


@contextmanager
def forward_errors(where: str) -> Iterator[None]:
    """torch's RuntimeError from the model's forward pass on the batch (``mat1 and mat2
    shapes cannot be multiplied``) as a ShapeError naming ``where`` and the fix."""
    try:
        yield
    except RuntimeError as exc:
        raise ShapeError(f"{where}: the model's forward pass failed on the batch (torch: "
                         f"{exc}); check the inputs' shape and dtype against the model's "
                         "first layer.") from exc
