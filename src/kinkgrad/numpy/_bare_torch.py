"""``knp``'s constant-valued helpers called bare on torch tensors: torch results.

The integer helpers (``argmax``, ``argmin``, ``argsort``, one-argument ``where``) and the
``*_like`` / ``asarray`` factories compute NumPy constants from a traced value's current
value. Called on a torch tensor outside every transformation they returned NumPy arrays (a
CUDA tensor copied to the host) while the primitives return tensors there; they now answer
with torch's own functions, on the tensor's device, detached from autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import is_torch

__all__ = ["is_torch", "torch_dtype", "arg_reduce", "argsort", "like", "asarray"]


def torch_dtype(dtype: Any) -> Any:
    """torch's dtype for a NumPy dtype (or a torch dtype, or None)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.zeros(0, np.dtype(dtype))).dtype


def arg_reduce(x: Any, axis: Any, keepdims: bool, largest: bool) -> Any:
    """argmax / argmin: the first extreme entry, as NumPy (of the flattened x at None)."""
    import torch

    t = x.detach()
    fn = torch.argmax if largest else torch.argmin
    if axis is None:
        out = fn(t.reshape(-1))
        return out.reshape((1,) * t.ndim) if keepdims else out
    return fn(t, dim=int(axis), keepdim=bool(keepdims))


def argsort(x: Any, axis: Any) -> Any:
    import torch

    t = x.detach()
    if axis is None:
        return torch.argsort(t.reshape(-1), stable=True)
    return torch.argsort(t, dim=int(axis), stable=True)


def like(x: Any, fill: Any, dtype: Any) -> Any:
    """zeros_like / ones_like / full_like (fill 0, 1, or the value)."""
    import torch

    return torch.full_like(x.detach(), fill, dtype=torch_dtype(dtype))


def asarray(x: Any, dtype: Any) -> Any:
    t = x.detach()
    return t if dtype is None else t.to(torch_dtype(dtype))
