"""Per-example gradients: ``vmap(grad(f), in_axes)`` and ``per_example_grad(f, argnums,
in_axes)``.

``f`` is written for ONE example, as for ``jax.vmap(jax.grad(f))`` or ``torch.func``. The
gradients of all examples come from one trace of ``f`` at one example, one batched evaluation
of the traced program (every value carries a leading batch axis) and one reverse sweep whose
cotangents keep that axis (:mod:`kinkgrad.modes.batching`). There is no Python loop over the
examples, except inside the equations of a primitive without a batching rule. Integer batched
arguments (class labels) are constants of a trace, so ``f`` is traced once per distinct
integer value (at most 10 traces for 10 classes, each at one example); the equations whose
constants differ between those traces are evaluated group by group inside the one sweep (one
sweep per group only when the traced programs differ in structure).

Kink convention: every node makes, for each example, the choice the kink policy makes in a
plain ``grad`` of that example alone; row b of the result is therefore exactly the
conservative gradient ``grad(f)`` returns for example b (an element of a conservative
gradient of f at that example; a Clarke gradient where ``kinkgrad.certify`` says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Var
from .._core.tracer import Trace, Tracer
from ..backends import check_torch_dtypes, is_torch, on_numpy
from ..errors import IntegerInputError, KinkgradError, NonScalarOutputError, ShapeError
from ..kinks import KinkPolicy, resolve_policy
from .batching import batched_gradient

__all__ = ["vmap", "per_example_grad"]


def _in_axes(in_axes: Any, nargs: int) -> list[int | None]:
    axes = list(in_axes) if isinstance(in_axes, (tuple, list)) else [in_axes] * nargs
    if len(axes) != nargs:
        raise KinkgradError(f"vmap: in_axes has {len(axes)} entries for {nargs} positional "
                            "arguments; give one entry (0 or None) per argument.")
    for a in axes:
        if a is not None and not isinstance(a, (int, np.integer)):
            raise KinkgradError(f"vmap: in_axes entries must be ints or None, got {a!r}.")
    return [None if a is None else int(a) for a in axes]


def _batch_size(args: Sequence[Any], axes: list) -> int:
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


def _moved(args: Sequence[Any], axes: list) -> list:
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


def _stack_tree(results: list) -> Any:
    leaves0, td = pytree.flatten(results[0])
    cols = [pytree.flatten(r)[0] for r in results]
    return pytree.unflatten(td, [_stack([c[k] for c in cols]) for k in range(len(leaves0))])


def _take(x: Any, ax: int, b: int) -> Any:
    """Example ``b`` of the leaf ``x``: its index b along axis ``ax`` (the axis removed)."""
    if is_torch(x):
        return x.select(ax, b)
    return np.take(np.asarray(x), b, axis=ax)


def _loop(fn: Callable, args: list, axes: list, n: int) -> Any:
    """The fallback: ``fn`` once per example (example b: every batched leaf indexed at b
    along its argument's axis in ``axes``), results stacked along a new leading axis."""
    flat = [None if ax is None else pytree.flatten(a) for a, ax in zip(args, axes)]
    res = []
    for b in range(n):
        ab = [a if lt is None else pytree.unflatten(lt[1], [_take(x, ax, b) for x in lt[0]])
              for a, ax, lt in zip(args, axes, flat)]
        res.append(fn(*ab))
    return _stack_tree(res)


def _not_float(where: str, dtype: Any) -> IntegerInputError:
    return IntegerInputError(
        f"{where}: a differentiated argument has dtype {dtype}; gradients need floating-point "
        "inputs. Convert it (x.astype(np.float64) or float32; torch: x.double() or x.float()), "
        "or leave it out of argnums.")


def _no_examples_torch(args: list, kwargs: dict, axes: list, nums: list[int]) -> list:
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
                raise _not_float("per_example_grad", t.dtype)
            shape = tuple(t.shape)
            if axes[k] is not None:
                shape = shape[:axes[k] % len(shape)] + shape[axes[k] % len(shape) + 1:]
            out.append(torch.zeros((0,) + shape, dtype=t.dtype, device=device))
        trees.append(pytree.unflatten(td, out))
    return trees


# ---------------------------------------------------------------------- one sweep
def _groups(args: list, axes: list, n: int) -> list[np.ndarray]:
    """Examples grouped by the values of their integer batched leaves (one trace per group)."""
    keys = [np.reshape(np.asarray(x), (n, -1)) for a, ax in zip(args, axes) if ax is not None
            for x in pytree.flatten(a)[0] if np.asarray(x).dtype.kind in "iub"]
    if not keys:
        return [np.arange(n)]
    key = np.concatenate([k.astype(np.int64) for k in keys], axis=1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = np.ravel(inv)
    return [np.flatnonzero(inv == u) for u in range(int(inv.max()) + 1)]


class _Traced:
    """``f`` traced at one example: the trace, its output, its inputs (slot, full data,
    batched?) and the slots of the differentiated leaves."""

    def __init__(self, f: Callable, args: list, axes: list, nums: list[int], rows: np.ndarray,
                 kwargs: dict) -> None:
        self.trace = tr = Trace()
        self.rows = rows
        call: list = []
        self.inputs: list = []
        self.diff: list = []
        rep = rows[0]
        for k, (a, ax) in enumerate(zip(args, axes)):
            leaves, td = pytree.flatten(a)
            new = []
            for x in leaves:
                arr = np.asarray(x)
                if k in nums or (ax is not None and arr.dtype.kind == "f"):
                    t = tr.new_input(arr[rep] if ax is not None else arr)
                    self.inputs.append((t.var, arr, ax is not None))
                    if k in nums:
                        self.diff.append(t.var)
                    new.append(t)
                else:
                    new.append(arr[rep] if ax is not None else x)
            call.append(pytree.unflatten(td, new))
        try:
            out = f(*call, **kwargs)
        finally:
            tr.active = False
        if type(out) is not Tracer:
            if np.size(out) != 1:
                raise NonScalarOutputError("per_example_grad: the function must return a "
                                           f"scalar per example, got shape {np.shape(out)}.")
            self.out = None
        elif out.var.shape != ():
            raise NonScalarOutputError(
                f"per_example_grad: the function returned shape {out.var.shape} for one "
                "example; it must return a scalar (reduce it with knp.sum / knp.mean).")
        else:
            self.out = out.var

    def zeros(self, n: int) -> list:
        return [np.zeros((n,) + tuple(v.shape), v.dtype) for v in self.diff]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype and \
            bool(np.array_equal(a, b))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and \
            all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _variants(traces: list[_Traced]) -> dict[int, list] | None:
    """Equations whose constants or parameters differ between the traces, or None when the
    traces differ in structure (then each is evaluated on its own rows)."""
    first = traces[0]
    e0 = first.trace.eqns
    out: dict[int, list] = {}
    for t in traces[1:]:
        if len(t.trace.eqns) != len(e0) or (t.out is None) != (first.out is None) or \
                (t.out is not None and t.out.index != first.out.index):
            return None
    for k, eqn in enumerate(e0):
        others = [t.trace.eqns[k] for t in traces[1:]]
        for o in others:
            if o.prim is not eqn.prim or o.out.index != eqn.out.index or \
                    o.out.shape != eqn.out.shape or len(o.inputs) != len(eqn.inputs):
                return None
            for i, j in zip(eqn.inputs, o.inputs):
                if (type(i) is Var) != (type(j) is Var) or (type(i) is Var and i.index != j.index):
                    return None
        if any(not _same(eqn.params, o.params) or not all(
                type(i) is Var or _same(i.value, j.value) for i, j in zip(eqn.inputs, o.inputs))
               for o in others):
            out[k] = [(t.rows, t.trace.eqns[k]) for t in traces]
    return out


def _sweep(t: _Traced, rows: np.ndarray | None, policy: KinkPolicy,
           variants: dict[int, list] | None, n: int) -> list:
    """Per-example gradients by one batched forward evaluation and one reverse sweep over the
    examples ``rows`` (all when None) of the program traced in ``t``."""
    if t.out is None:
        return t.zeros(n)
    tr = t.trace
    vals = {v.index: (x if rows is None else x[rows]) if b else x for v, x, b in t.inputs}
    batched = {v.index: b for v, _, b in t.inputs}
    ct = batched_gradient(tr.eqns, vals, batched, tr.vals, {v.index for v in t.diff}, t.out,
                          t.out.dtype, policy, n, variants)
    return [np.zeros((n,) + tuple(v.shape), v.dtype) if ct.get(v.index) is None
            else np.asarray(np.broadcast_to(ct[v.index], (n,) + tuple(v.shape)), v.dtype)
            for v in t.diff]


@on_numpy  # the batched interpreter runs the NumPy rules
def _per_example(f: Callable, args: list, axes: list, nums: list[int], policy: KinkPolicy,
                 kwargs: dict, n: int) -> list:
    """The per-example gradient leaves of every differentiated argument, (n, ...) each."""
    traces = [_Traced(f, args, axes, nums, rows, kwargs) for rows in _groups(args, axes, n)]
    variants = _variants(traces) if len(traces) > 1 else {}
    if variants is not None:
        return _sweep(traces[0], None, policy, variants, n)
    outs = traces[0].zeros(n)  # programs differ between label groups: one sweep per group
    for t in traces:
        for out, g in zip(outs, _sweep(t, t.rows, policy, None, len(t.rows))):
            out[t.rows] = g
    return outs


def per_example_grad(f: Callable, argnums: int | Sequence[int] = 0, in_axes: Any = 0,
                     policy: KinkPolicy | None = None) -> Callable:
    """Per-example conservative gradients of a scalar function of one example.

    ``per_example_grad(f, argnums, in_axes)(*args)[b]`` is ``grad(f, argnums)`` at example b
    (the arguments with ``in_axes`` not None indexed at b along that axis), stacked along a
    new leading axis, for every leaf of the differentiated arguments. Same as
    ``vmap(grad(f, argnums), in_axes)``. Computed in one batched forward evaluation and one
    reverse sweep (see :mod:`kinkgrad.modes.vmap`); torch tensors take a loop of ``grad``
    over the same slices (torch tensors out; 0 examples give zeros of shape (0, ...)).

    Kink convention: each example gets the kink policy's choice, exactly as ``grad`` of that
    example alone; each row is an element of a conservative gradient of f at that example.

    Examples:
        Per-example clipping (differential privacy, DP-SGD): clip each example's gradient to
        norm C, then average.

        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> def loss(w, x, y):                      # one example
        ...     return knp.relu(1.0 - y * knp.dot(x, w))
        >>> w = np.array([0.5, -0.5]); X = np.array([[2., 0.], [3., 1.], [0., 2.]])
        >>> Y = np.array([1., -1., 1.])
        >>> G = kinkgrad.vmap(kinkgrad.grad(loss), in_axes=(None, 0, 0))(w, X, Y)
        >>> (G + 0.0).tolist()          # example 0 sits on the margin: relu'(0) = 0
        [[0.0, 0.0], [3.0, 1.0], [0.0, -2.0]]
        >>> C = 1.0
        >>> norms = np.linalg.norm(G, axis=1, keepdims=True)
        >>> clipped = G / np.maximum(1.0, norms / C)
        >>> np.round(clipped.mean(axis=0), 4).tolist()
        [0.3162, -0.2279]
    """
    nums = [int(argnums)] if isinstance(argnums, (int, np.integer)) else [int(a) for a in argnums]
    single = isinstance(argnums, (int, np.integer))

    def peg(*args: Any, **kwargs: Any) -> Any:
        axes = _in_axes(in_axes, len(args))
        nums_ = [a % len(args) for a in nums]
        n = _batch_size(args, axes)
        if any(is_torch(x) for x in pytree.flatten((args, kwargs))[0]):
            if n == 0:
                trees0 = _no_examples_torch(list(args), kwargs, axes, nums_)
                return trees0[0] if single else tuple(trees0)
            from .api import grad

            g = grad(f, argnums, policy=policy)

            def one(*example: Any) -> Any:  # keyword arguments reach f, as on NumPy
                return g(*example, **kwargs)

            return _loop(one, list(args), axes, n)
        moved = _moved(args, axes)
        leaves_per_arg = [pytree.flatten(moved[k]) for k in nums_]
        for leaves, _ in leaves_per_arg:
            for x in leaves:
                if np.asarray(x).dtype.kind != "f":
                    raise _not_float("per_example_grad", np.asarray(x).dtype)
        if n == 0:  # no examples: empty gradients of the right shapes
            outs = [np.zeros((0,) + (np.shape(x)[1:] if axes[k] is not None else np.shape(x)),
                             np.asarray(x).dtype)
                    for k, (leaves, _) in zip(nums_, leaves_per_arg) for x in leaves]
        else:
            outs = _per_example(f, moved, axes, nums_, resolve_policy(policy), kwargs, n)
        trees, pos = [], 0
        for leaves, td in leaves_per_arg:
            trees.append(pytree.unflatten(td, outs[pos:pos + len(leaves)]))
            pos += len(leaves)
        return trees[0] if single else tuple(trees)

    peg.__name__ = f"per_example_grad({getattr(f, '__name__', 'f')})"
    return peg


def _grad_spec(fn: Callable) -> tuple | None:
    """``(f, argnums, policy)`` when ``fn`` is ``kinkgrad.grad(f, argnums, policy=...)``
    without has_aux or report (``grad`` records them as ``grad_of``), else None."""
    spec = getattr(fn, "grad_of", None)
    return spec if isinstance(spec, tuple) and len(spec) == 3 else None


def vmap(fn: Callable, in_axes: Any = 0) -> Callable:
    """Map ``fn`` over a batch axis of its arguments (results stacked along axis 0).

    ``vmap(kinkgrad.grad(f, argnums), in_axes)`` is :func:`per_example_grad`: per-example
    gradients in one batched sweep. Any other ``fn`` is called once per example (a loop).

    Args:
        fn: the function of one example.
        in_axes: an int or None for all positional arguments, or one per argument: the axis
            of that argument's arrays that indexes the examples (None: shared by all).

    Returns:
        A function of the batched arguments.
    """
    spec = _grad_spec(fn)
    if spec is not None:
        f, argnums, policy = spec
        batched = per_example_grad(f, argnums, in_axes, policy)
        batched.__name__ = f"vmap({getattr(fn, '__name__', 'fn')})"
        return batched

    def looped(*args: Any) -> Any:
        axes = _in_axes(in_axes, len(args))
        n = _batch_size(args, axes)
        return _loop(fn, _moved(args, axes), [None if a is None else 0 for a in axes], n)

    looped.__name__ = f"vmap({getattr(fn, '__name__', 'fn')})"
    return looped
