"""The dual pass's rule for ``amax`` (amax/amin, ``max()``, ``max(dim)``): ties resolved
lexicographically by the tangents, as :mod:`._dual` does for max-pool windows.

Among the maximisers of a group, those with the largest tangent along the first direction
stay, then along the second, ...; the backward pass then puts the cotangent on them: shared
equally (``tie="split"``, PyTorch's amax/amin/max()) or on the first (``tie="first"``,
PyTorch's ``max(dim)`` index). Where one maximiser is left, that is the gradient of the piece
that params + t d enters, a limiting gradient; maximisers still tied after every direction
have equal tangents along all of them (with probability one, equal gradients on the piece),
so how they share does not change the result.
"""

from __future__ import annotations

from typing import Any

import torch

from ._dual import DualStats, TangentsFn, ZeroFn

__all__ = ["EXTRA_SELECT"]


def _layout(x: torch.Tensor, dim: Any) -> tuple[list, list, tuple]:
    """The permutation putting the reduced dims last, its inverse, and the kept shape."""
    nd = x.dim()
    red = list(range(nd)) if dim is None else sorted({d % nd for d in dim})
    rest = [i for i in range(nd) if i not in red]
    perm = rest + red
    inv = sorted(range(nd), key=perm.__getitem__)
    return perm, inv, tuple(x.shape[i] for i in rest)


class _Weighted(torch.autograd.Function):
    """``value`` (the max, exact) whose backward sends g times the weights ``w`` (x-shaped)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, value: torch.Tensor,
                shape: tuple) -> torch.Tensor:
        ctx.save_for_backward(w)
        ctx.shape = shape  # the output with the reduced dims kept (as 1)
        return value.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        (w,) = ctx.saved_tensors
        return g.reshape(ctx.shape) * w, None, None, None


def _amax(x: torch.Tensor, ts_fn: TangentsFn, zero_fn: ZeroFn, op: Any, st: DualStats
          ) -> tuple:
    p = op.params
    dim, keepdim, sign = p["dim"], p["keepdim"], p["sign"]
    perm, inv, kept = _layout(x, dim)
    red_shape = tuple(1 if i in perm[len(kept):] else s for i, s in enumerate(x.shape))

    def last(v: torch.Tensor) -> torch.Tensor:
        return (v * sign).permute(perm).reshape(kept + (-1,))

    with torch.no_grad():
        xl = last(x.detach())
        cand = xl == xl.amax(-1, keepdim=True)
        tied = torch.count_nonzero(cand, dim=-1) > 1
        nk = torch.count_nonzero(tied)
    nu = torch.zeros_like(nk)
    if bool(nk):
        ts, _ = ts_fn(None)  # the whole batch: the reduced dims may include the batch axis
        with torch.no_grad():
            for t in ts or ():
                tl = last(t)
                best = torch.where(cand, tl, float("-inf")).amax(-1, keepdim=True)
                cand = cand & (tl == best)
            cnt = torch.count_nonzero(cand, dim=-1)
            if ts is not None:
                nu = torch.count_nonzero(cnt > 1)
    with torch.no_grad():
        if p["tie"] == "split":
            wl = cand.to(x.dtype) / cand.sum(-1, keepdim=True).to(x.dtype)
        else:
            j = cand.to(torch.uint8).argmax(-1, keepdim=True)
            wl = torch.zeros_like(xl).scatter_(-1, j, 1.0)
        w = wl.reshape(tuple(x.shape[i] for i in perm)).permute(inv)
    st.add(op.name, nk, nu)
    red = (torch.amax if sign > 0 else torch.amin)
    value = red(x.detach(), dim=() if dim is None else dim, keepdim=keepdim)
    out = _Weighted.apply(x, w, value, red_shape)

    def tangent_map(ts: list, rows: Any) -> list:
        out_t = []
        for t in ts:
            s = (t * w).sum(dim=tuple(perm[len(kept):]), keepdim=keepdim)
            out_t.append(s.reshape(value.shape))
        return out_t

    return out, tangent_map, lambda: None


EXTRA_SELECT = {"amax": _amax}
