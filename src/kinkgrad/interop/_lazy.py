"""Tangents on demand, for every row of the batch or only for the rows that hit a kink.

The dual pass (:mod:`._dual`) asks for the tangent of a value only when a nonsmooth op finds a
kink in it. In a batch each sample is its own computation up to the loss (a Linear, Conv2d,
activation or pooling layer acts on every sample alike), so the tangent of a kink in sample i
depends on sample i alone: when only a few samples hit a kink (a float32 batch at scale hits a
handful), the tangents are formed for those rows only, at a cost proportional to their
number. Which values are *row-wise* is decided op by op on the actual shapes
(:func:`row_flag`); any op that mixes samples (a reduction over the batch, a transpose that
moves the batch axis, an operand whose leading axis is not the batch) makes everything
after it ineligible, and the tangents are then formed for the whole batch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._fx import NONSMOOTH, Op, Ref, TorchGraph, refs, resolve
from ._tangent_rules import FN, dense, detached, tangent

__all__ = ["needs_tangent", "row_flag", "Tangents"]

ROWS = True  # form tangents for the rows with kinks only (False: always the whole batch)

# ops acting entry by entry (with broadcasting) or window by window within a sample
_ELEMENTWISE = {"relu", "leaky_relu", "abs", "clamp", "maxpool2d", "avgpool2d", "neg",
                "identity", "cast", "add", "sub", "mul", "div", "pow", "tanh", "sigmoid", "exp",
                "log", "gelu", "silu", "chanmul"}
# shape ops that keep the batch axis in front keep every sample's entries in its own row
_RESHAPES = {"reshape", "flatten", "squeeze", "unsqueeze"}


def needs_tangent(graph: TorchGraph) -> list[bool]:
    """Which op values need a tangent: those on a path into a nonsmooth op."""
    need = [False] * len(graph.ops)
    for i in range(len(graph.ops) - 1, -1, -1):
        op = graph.ops[i]
        if op.kind in ("size", "meta", "opaque", "argmax"):  # shapes, dtypes, constants, indices
            continue
        if op.kind in NONSMOOTH or need[i]:
            for r in refs(op.args):
                need[r] = True
    return need


_signature = functools.lru_cache(maxsize=None)(inspect.signature)  # once per rule, not per pass


def _dims(op: Op, args: tuple, names: tuple[str, ...], ndim: int) -> list[int] | None:
    """The (normalized) dims named ``names`` of the op's call, or None if one is None."""
    bound = _signature(FN[op.kind]).bind(*args, **op.params).arguments
    out = []
    for n in names:
        d = bound.get(n)
        if d is None:
            return None
        out += [int(v) % ndim for v in (d if isinstance(d, (tuple, list)) else (d,))]
    return out


def row_flag(op: Op, flags: list, args: tuple, out: Any, batch: int) -> bool | None:
    """Whether the op's value is row-wise in the batch: True (row i depends on sample i
    only), False (it does not depend on the batch), None (it mixes samples).

    ``flags`` holds the flags of the op's top-level arguments (False for non-Ref ones).
    """
    if any(f is None for f in flags):
        return None
    if not any(flags):
        return False
    if not (isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] == batch):
        return None
    kind, x = op.kind, args[0]
    if kind in ("linear", "conv2d"):
        return True if flags[0] and not any(flags[1:]) else None
    if kind == "matmul":
        ok = flags[0] and not flags[1] and x.dim() >= 2 and args[1].dim() <= 2
        return True if ok else None
    if kind == "batchnorm":  # batch statistics mix the samples; running ones do not
        return None if op.params["training"] or not flags[0] or any(flags[1:]) else True
    if kind == "layernorm":  # within each sample, as long as the batch axis is not normalised
        ok = flags[0] and not any(flags[1:]) and len(op.params["shape"]) < x.dim()
        return True if ok else None
    if kind == "cat":
        return True if all(flags) and int(op.params["dim"]) % x.dim() != 0 else None
    if kind in _RESHAPES:
        return True if flags[0] and x.shape[0] == batch else None
    if kind == "transpose":
        return True if 0 not in _dims(op, args, ("dim0", "dim1"), x.dim()) else None
    if kind == "groupnorm":  # within each sample, like layernorm
        return True if flags[0] and not any(flags[1:]) else None
    if kind in ("sum", "mean", "log_softmax", "logsumexp", "softmax"):
        dims = _dims(op, args, ("dim",), x.dim())
        return True if dims is not None and 0 not in dims else None
    if kind in _ELEMENTWISE:  # an operand off the batch must not align an axis with it
        for f, a in zip(flags, args):
            if not f and isinstance(a, torch.Tensor) and a.dim() == out.dim() \
                    and a.shape[0] != 1:
                return None
        return True
    return None


class Tangents:
    """The tangents of the op values along the directions, formed in op order on demand.

    ``upto(i, rows)`` forms every needed tangent up to op i (each once) and returns op i's (a
    list with one tensor per direction, or None where it is zero) together with the rows it
    covers: None for the whole batch, else a sorted index tensor containing ``rows``. A
    request for rows not covered yet forms the tangents again for the union (row-wise values
    only: otherwise for the whole batch, which then serves every later request).
    """

    def __init__(self, graph: TorchGraph, vals: list, flags: list, directions: list[dict],
                 need: list[bool], batch: int) -> None:
        self.graph, self.vals, self.flags, self.dirs = graph, vals, flags, directions
        self.need, self.batch = need, batch
        self.maps: dict[int, Callable] = {}  # nonsmooth op -> (tangents, rows) to output's
        self.tans: list = []
        self.rows: torch.Tensor | None = None

    def upto(self, i: int, rows: torch.Tensor | None) -> tuple[list | None, Any]:
        if rows is not None and (not ROWS or self.flags[i] is not True
                                 or rows.numel() >= self.batch):
            rows = None
        if self.tans or self.rows is not None:
            if rows is None and self.rows is not None:
                self.tans, self.rows = [], None  # the whole batch from now on
            elif rows is not None and self.rows is not None \
                    and not bool(torch.isin(rows, self.rows).all()):
                self.tans, self.rows = [], torch.unique(torch.cat([self.rows, rows]))
        elif rows is not None:
            self.rows = rows
        with torch.no_grad():
            for k in range(len(self.tans), i + 1):
                # in row mode a value that mixes samples is never asked for (its consumers
                # mix samples too): it is left unformed
                mixed = self.rows is not None and self.flags[k] is None
                self.tans.append(self._form(k) if self.need[k] and self.dirs and not mixed
                                 else None)
        return self.tans[i], self.rows

    def _take(self, k: int, v: Any) -> Any:
        return v[self.rows] if self.rows is not None and self.flags[k] is True else v

    def _form(self, k: int) -> list | None:
        op = self.graph.ops[k]
        if op.kind == "param":
            return [d[op.name] for d in self.dirs] if op.name in self.dirs[0] else None
        if op.kind in ("input", "const", "meta", "opaque", "size", "argmax"):
            return None
        in_t = [self.tans[r.index] if isinstance(r, Ref) else None for r in op.args]
        if op.kind in NONSMOOTH:
            return None if in_t[0] is None else self.maps[k]([dense(t) for t in in_t[0]],
                                                             self.rows)
        if all(t is None for t in in_t):
            return None
        out = self._take(k, self.vals[k])
        if self.rows is not None and op.kind in _RESHAPES and self.flags[k] is True:
            return None if in_t[0] is None else [dense(t).reshape(out.shape) for t in in_t[0]]
        args = tuple(detached(self._take(r.index, a) if isinstance(r, Ref) else a)
                     for r, a in zip(op.args, resolve(op.args, self.vals)))
        tk = [tangent(op, args, in_t, out, j) for j in range(len(self.dirs))]
        return None if any(t is None for t in tk) else tk
