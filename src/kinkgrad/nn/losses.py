"""Losses (mean over the batch), written with ``kinkgrad.numpy`` primitives.

Each takes predictions ``(N, C)`` and targets; integer labels ``(N,)`` are one-hot encoded
where a loss needs a target vector. The definitions are PyTorch's with ``reduction="mean"``.

Kink convention: ``cross_entropy`` and ``mse`` are smooth. ``l1`` uses ``knp.abs`` (abs'(0)
is the policy's ``abs`` value) and ``hinge`` uses ``knp.relu`` on the margins (the policy's
``relu`` value at a margin exactly met). Both are abs-smooth (paper B), so their kinks enter
the abs-normal form and the Clarke certificate like the network's own ReLUs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import numpy as knp
from .._core.tracer import is_traced
from ..errors import ShapeError

__all__ = ["cross_entropy", "mse", "l1", "hinge", "one_hot", "LOSSES"]


def _check_labels(labels: np.ndarray, n: int, n_classes: int) -> None:
    if labels.shape != (n,):
        raise ShapeError(
            f"loss: {n} predictions but labels of shape {labels.shape}; pass one integer "
            "label per row of the predictions."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ShapeError(
            f"loss: labels must lie in [0, {n_classes}) for {n_classes} classes, got values "
            f"in [{labels.min()}, {labels.max()}]; remap them (np.unique(y, "
            "return_inverse=True)) or widen the last layer."
        )


def _numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of ``dtype``: NumPy's, or the dtype of a value on the torch backend
    (``torch._numpy``'s dtype object, or a ``torch.dtype``), which NumPy cannot read."""
    try:
        return np.dtype(dtype)
    except TypeError:
        name = getattr(dtype, "name", None)
        return np.dtype(name if isinstance(name, str) else str(dtype).removeprefix("torch."))


def one_hot(labels: np.ndarray, n_classes: int, dtype: Any) -> np.ndarray:
    """Constant ``(N, C)`` one-hot matrix of integer labels (a NumPy array of ``dtype``, a
    NumPy dtype or the dtype of a torch-backed value)."""
    labels = np.asarray(labels)
    _check_labels(labels, labels.shape[0] if labels.ndim == 1 else -1, n_classes)
    out = np.zeros((labels.shape[0], n_classes), dtype=_numpy_dtype(dtype))
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def _target(pred: Any, target: Any) -> Any:
    t = target if is_traced(target) else np.asarray(target)
    if not is_traced(t) and t.dtype.kind in "iu":
        if t.shape == tuple(knp.shape(pred)):  # integer-valued targets, not class labels
            return t.astype(_numpy_dtype(pred.dtype))
        _labels(pred, t)
        return one_hot(t, knp.shape(pred)[1], pred.dtype)
    if knp.shape(t) != knp.shape(pred):
        raise ShapeError(
            f"loss: target shape {knp.shape(t)} does not match predictions "
            f"{knp.shape(pred)}; pass integer labels (N,) or an (N, C) array."
        )
    return t


def _labels(pred: Any, labels: Any) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.ndim != 1 or knp.ndim(pred) != 2:
        raise ShapeError(
            f"loss: expects logits (N, C) and integer labels (N,), got "
            f"{knp.shape(pred)} and {labels.shape} ({getattr(labels.dtype, 'name', labels.dtype)})."
        )
    _check_labels(labels, *knp.shape(pred))
    return labels


def cross_entropy(logits: Any, labels: Any) -> Any:
    """``mean_n [logsumexp(z_n) - z_n[y_n]]`` (softmax cross-entropy; smooth)."""
    labels = _labels(logits, labels)
    picked = logits[np.arange(labels.shape[0]), labels]
    return knp.mean(knp.logsumexp(logits, axis=-1) - picked)


def mse(pred: Any, target: Any) -> Any:
    """``mean (pred - target)^2`` over all entries; integer labels become one-hot."""
    d = pred - _target(pred, target)
    return knp.mean(d * d)


def l1(pred: Any, target: Any) -> Any:
    """``mean |pred - target|`` over all entries (``knp.abs``: kinks where pred == target)."""
    return knp.mean(knp.abs(pred - _target(pred, target)))


def hinge(logits: Any, labels: Any, margin: float = 1.0) -> Any:
    """Multi-class hinge (PyTorch ``MultiMarginLoss``, p = 1):
    ``mean_n sum_{i != y_n} relu(margin - z_n[y_n] + z_n[i]) / C``.

    The true class's own term is masked out by a constant 0/1 factor, so it contributes
    neither value nor derivative.
    """
    labels = _labels(logits, labels)
    n, c = knp.shape(logits)
    zy = knp.reshape(logits[np.arange(n), labels], (n, 1))
    mask = 1 - one_hot(labels, c, logits.dtype)
    terms = knp.relu(logits - zy + margin) * mask
    return knp.sum(terms) * (1.0 / (n * c))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse, "l1": l1, "hinge": hinge}
