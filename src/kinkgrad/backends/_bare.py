"""A bare ``kinkgrad.numpy`` call (outside every entry point) on another backend's arrays."""

from __future__ import annotations

from typing import Any

from . import follow_inputs, to_backend

__all__ = ["on_inputs_backend"]


def on_inputs_backend(prim: Any, args: tuple, params: dict) -> Any:
    """The value of a primitive called outside every entry point (a bare ``knp`` function)
    on torch tensors or CuPy arrays: computed on their backend as :func:`follow_inputs`
    computes it (torch tensors out, on the inputs' device), not by NumPy's conversion
    (``knp.sum`` of a tensor raised torch's TypeError, ``knp.sort`` returned NumPy)."""
    def value(*a: Any) -> Any:  # tensors as torch-backed arrays, as the sweeps see them
        return prim.impl(*[to_backend(x) for x in a],  # (and a tensor parameter: clip's
                         **{k: to_backend(v) for k, v in params.items()})  # bounds)

    value.__name__ = f"kinkgrad.numpy.{prim.name}"
    return follow_inputs(value)(*args)
