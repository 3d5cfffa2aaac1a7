"""The examples of a batched call, one at a time: ``in_axes``, the batch size, slicing and
stacking, the loop of a function over examples (its errors naming the example), the
positions ``argnums`` differentiates, and the rows of a batched result that ``grad`` of one
example computes again (:mod:`kinkgrad.modes.vmap`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from ..backends import check_torch_dtypes, is_torch
from ..errors import KinkgradError, ShapeError
from ._inputs import argnums_message, distinct_argnums, not_float, repeat_entries

__all__ = ["axes_of", "batch_size", "moved", "stack_tree", "loop", "at_example", "not_float",
           "no_examples_torch", "positions", "picked", "regrad"]


def axes_of(in_axes: Any, nargs: int) -> list[int | None]:
    """One batch axis (an int) or None per positional argument."""
    axes = list(in_axes) if isinstance(in_axes, (tuple, list)) else [in_axes] * nargs
    if len(axes) != nargs:
        raise KinkgradError(f"vmap: in_axes has {len(axes)} entries for {nargs} positional "
                            "arguments; give one entry (0 or None) per argument.")
    for a in axes:
        if a is not None and not isinstance(a, (int, np.integer)):
            raise KinkgradError(f"vmap: in_axes entries must be ints or None, got {a!r}.")
    return [None if a is None else int(a) for a in axes]


def batch_size(args: Sequence[Any], axes: list) -> int:
    sizes = {}
    for k, (a, ax) in enumerate(zip(args, axes)):
        if ax is None:
            continue
        for leaf in pytree.flatten(a)[0]:
            shape = np.shape(leaf)
            if not -len(shape) <= ax < len(shape):
                raise ShapeError(f"vmap: in_axes[{k}] = {ax} but an array of argument {k} has "
                                 f"shape {shape}; batch along an existing axis or pass None.")
            sizes[(k, shape)] = shape[ax]
    if not sizes:
        raise KinkgradError("vmap: no argument is batched; give in_axes=0 to the batched "
                            "arguments (the others None).")
    if len(set(sizes.values())) != 1:
        raise ShapeError(f"vmap: the batched axes have sizes {sorted(set(sizes.values()))}; "
                         "every batched argument needs the same number of examples.")
    return next(iter(sizes.values()))


def moved(args: Sequence[Any], axes: list) -> list:
    """Arguments with their batch axis moved to the front (leaves as NumPy arrays)."""
    out = []
    for a, ax in zip(args, axes):
        if ax is None:
            out.append(a)
        else:
            leaves, td = pytree.flatten(a)
            out.append(pytree.unflatten(td, [np.moveaxis(np.asarray(x), ax, 0) for x in leaves]))
    return out


def _stack(xs: list) -> Any:
    if is_torch(xs[0]):  # torch in, torch out (the loop of grad on the torch backend)
        import torch

        return torch.stack(xs)
    return np.stack(xs)


def zero_example(x: Any, ax: int) -> Any:
    """Zeros shaped like one example of the leaf ``x`` (axis ``ax`` removed), of its kind
    (a torch tensor on its device and dtype, else a NumPy array)."""
    if is_torch(x):
        shape = tuple(x.shape)
        k = ax % len(shape)
        return x.new_zeros(shape[:k] + shape[k + 1:])
    a = np.asarray(x)
    return np.zeros(np.delete(a.shape, ax % a.ndim), a.dtype)


def no_rows(v: Any) -> Any:
    """Zero rows (0, ...) shaped like the per-example result ``v``, of its kind."""
    if is_torch(v):
        return v.new_zeros((0,) + tuple(v.shape))
    return np.zeros((0,) + np.shape(v), np.asarray(v).dtype)


def stack_tree(results: list) -> Any:
    leaves0, td = pytree.flatten(results[0])
    cols = [pytree.flatten(r)[0] for r in results]
    return pytree.unflatten(td, [_stack([c[k] for c in cols]) for k in range(len(leaves0))])


def _take(x: Any, ax: int, b: int) -> Any:
    """Example ``b`` of the leaf ``x``: its index b along axis ``ax`` (the axis removed)."""
    if is_torch(x):
        return x.select(ax, b)
    return np.take(np.asarray(x), b, axis=ax)


def loop(fn: Callable, args: list, axes: list, rows: Any, name: str | None = None) -> list:
    """``fn`` once per example b of ``rows`` (every batched leaf indexed at b along its
    argument's axis in ``axes``): the list of results. With ``name``, a KinkgradError of
    example b is raised again (same class) naming the example."""
    flat = [None if ax is None else pytree.flatten(a) for a, ax in zip(args, axes)]
    res = []
    for b in rows:
        ab = [a if lt is None else pytree.unflatten(lt[1], [_take(x, ax, b) for x in lt[0]])
              for a, ax, lt in zip(args, axes, flat)]
        if name is None:
            res.append(fn(*ab))
            continue
        try:
            res.append(fn(*ab))
        except KinkgradError as exc:
            raise at_example(exc, name, int(b)) from exc
    return res


def at_example(exc: KinkgradError, name: str, b: int) -> KinkgradError:
    """``exc``, raised for example ``b`` alone, with the example named (same class)."""
    return type(exc)(f"{name}: example {b} (index {b} along the batch axis): {exc}")


def no_examples_torch(args: list, kwargs: dict, axes: list, nums: list[int]) -> list:
    """The gradient trees of the torch path for 0 examples: zeros (0, ...) of every
    differentiated leaf's example shape, as torch tensors (as ``grad`` returns on torch)."""
    import torch

    every = pytree.flatten((args, kwargs))[0]
    check_torch_dtypes(every, "per_example_grad")
    device = next(x.device for x in every if is_torch(x))
    trees = []
    for k in nums:
        leaves, td = pytree.flatten(args[k])
        out = []
        for x in leaves:
            t = x if is_torch(x) else torch.as_tensor(np.asarray(x))
            if not t.is_floating_point():
                raise not_float("per_example_grad", t.dtype)
            shape = tuple(t.shape)
            if axes[k] is not None:
                shape = shape[:axes[k] % len(shape)] + shape[axes[k] % len(shape) + 1:]
            out.append(torch.zeros((0,) + shape, dtype=t.dtype, device=device))
        trees.append(pytree.unflatten(td, out))
    return trees


def positions(nums: list[int], nargs: int, kwargs: dict) -> tuple[list[int], list | None]:
    """The distinct positions (in [0, nargs)) of ``argnums`` and the picks that repeat them
    (``_inputs.distinct_argnums``); a position out of range raises."""
    for a in nums:
        if not -nargs <= a < nargs:
            raise KinkgradError(argnums_message("per_example_grad", a, nargs, kwargs))
    diff, picks = distinct_argnums(nums, nargs)
    return [a % nargs for a in diff], picks


def picked(trees: tuple, picks: list[int] | None, single: bool) -> Any:
    """The gradient trees of the requested positions (a position named twice gets its
    gradient at each entry, as ``grad``), the tree alone for an int ``argnums``."""
    if picks is not None:
        trees = repeat_entries(trees, picks)
    return trees[0] if single else trees


def _bad_rows(outs: list, values: Any, n: int) -> np.ndarray:
    """The examples whose value or gradient holds NaN or inf."""
    bad = np.broadcast_to(~np.isfinite(values), (n,)).copy()
    for o in outs:
        bad |= ~np.isfinite(np.reshape(o, (n, -1))).all(axis=1)
    return np.flatnonzero(bad)


def regrad(one: Callable, args: list, axes: list, outs: list, values: Any, n: int) -> list:
    """``outs`` with the rows that are not finite (value or gradient) replaced by ``grad`` of
    that example alone: a ``where``'s unselected branch is discarded there, and an example
    whose gradient is not finite raises grad's error, naming the example."""
    bad = _bad_rows(outs, values, n)
    for b, res in zip(bad, loop(one, args, axes, bad, "per_example_grad")):
        for o, leaf in zip(outs, pytree.flatten(res)[0]):
            o[b] = leaf
    return outs
