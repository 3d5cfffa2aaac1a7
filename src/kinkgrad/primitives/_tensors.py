"""The torch tensor behind a torch-backed array, for the rules that call torch's own kernels
on the torch backend (conv2d, max_pool2d, relu, logsumexp)."""

from __future__ import annotations

from typing import Any


def tensor_of(a: Any) -> Any:
    """The torch tensor of a torch-backed array (``torch._numpy.ndarray``), None for anything
    else (a NumPy array, a Python number)."""
    t = getattr(a, "tensor", None)
    return t if t is not None and type(a).__module__.startswith("torch") else None
