"""Data-parallel averaging for ``clarke_grad_torch(all_reduce=True)``.

Each rank computes the Clarke gradient of its shard's loss along the same random directions
(the same seed), so every shard's result is the gradient of its loss at the same nearby
points params + t d, and their average is the gradient of the whole batch's loss there: a
limiting gradient of it. The average is one all-reduce of the flattened gradients per dtype
over the default ``torch.distributed`` process group.
"""

from __future__ import annotations

import torch

from ..errors import KinkgradError

__all__ = ["check_distributed", "mean_over_ranks"]


def check_distributed(seed: int | None) -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise KinkgradError("clarke_grad_torch(all_reduce=True): torch.distributed is not "
                            "initialized; call torch.distributed.init_process_group first.")
    if seed is None:
        raise KinkgradError("clarke_grad_torch(all_reduce=True) needs seed=, the same on every "
                            "rank (e.g. the step number): only ranks that resolve their kinks "
                            "along the same directions average to a Clarke gradient.")


def mean_over_ranks(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The average over the ranks: one all-reduce of the flattened gradients per dtype."""
    import torch.distributed as dist

    out: dict[str, torch.Tensor] = {}
    for dtype in {g.dtype for g in grads.values()}:
        names = [n for n, g in grads.items() if g.dtype == dtype]
        flat = torch.cat([grads[n].reshape(-1) for n in names])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        at = 0
        for n in names:
            k = grads[n].numel()
            out[n] = flat[at:at + k].view_as(grads[n])
            at += k
    return {n: out[n] for n in grads}
