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

A trace holds the constants of the example it was taken at. When ``f`` reads the value of
a slot that depends on a batched argument (``knp.argmax``, ``argmin``, ``argsort``,
``knp.where(cond)``, ``.value``; the trace records it in ``Trace.values_read``), a constant
computed from it (an index) may differ between examples, and the rows are computed by a loop
of ``grad`` instead (values read from the shared arguments alone keep the one sweep). The
batched sweep's values and gradients are tested once for NaN/inf: a row that is not finite
is computed again by ``grad`` of that example alone (which discards a ``where``'s unselected
branch, or raises the error ``grad`` raises, naming the example); so is every row after a
floating-point error under ``np.errstate(... = "raise")``.

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
from ..backends import is_torch, on_numpy
from ..errors import NonFiniteInputError, NonScalarOutputError
from ..kinks import KinkPolicy, resolve_policy
from . import _examples as ex
from ._finite import finite
from ._inputs import normalize_argnums, require_callable
from .batching import batched_gradient

__all__ = ["vmap", "per_example_grad"]


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
        diff: dict[int, list] = {k: [] for k in nums}
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
                        diff[k].append(t.var)
                    new.append(t)
                else:
                    new.append(arr[rep] if ax is not None else x)
            call.append(pytree.unflatten(td, new))
        self.diff = [v for k in nums for v in diff[k]]  # in argnums order, as the trees
        try:
            out = f(*call, **kwargs)
        except NonFiniteInputError as exc:  # np.errstate "raise": grad of rep raises it too
            raise ex.at_example(exc, "per_example_grad", int(rep)) from exc
        finally:
            tr.active = False
        self.reads_batched = bool(tr.values_read) and _reads_batched(tr, self.inputs)
        self.const = None if type(out) is Tracer else np.asarray(out)
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
        dt = (self.const if self.out is None else self.out).dtype
        if dt.kind != "f":
            raise NonScalarOutputError(
                f"per_example_grad: the function returned a value of type {dt}; it must return "
                "a real floating-point scalar (a comparison or a count has no derivative).")

    def zeros(self, n: int) -> list:
        return [np.zeros((n,) + tuple(v.shape), v.dtype) for v in self.diff]


def _reads_batched(tr: Trace, inputs: list) -> bool:
    """Did ``f`` read the value of a slot that depends on a batched input?

    # NOTE: what is computed from such a value (knp.argmax, where(cond), .value: an index)
    # is a constant of the traced example alone, which the batched sweep would reuse for every
    # example. A value computed from the shared arguments alone is every example's (and a
    # label's is compared between the label traces, see _variants)."""
    batched = {v.index for v, _, b in inputs if b}
    for e in tr.eqns:
        if any(type(i) is Var and i.index in batched for i in e.inputs):
            batched.add(e.out.index)
    return not tr.values_read.isdisjoint(batched)


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
           variants: dict[int, list] | None, n: int) -> tuple[list, Any]:
    """Per-example gradients and values by one batched forward evaluation and one reverse
    sweep over the examples ``rows`` (all when None) of the program traced in ``t``."""
    if t.out is None:
        return t.zeros(n), t.const
    tr = t.trace
    vals = {v.index: (x if rows is None else x[rows]) if b else x for v, x, b in t.inputs}
    batched = {v.index: b for v, _, b in t.inputs}
    ct = batched_gradient(tr.eqns, vals, batched, tr.vals, {v.index for v in t.diff}, t.out,
                          t.out.dtype, policy, n, variants)
    return [_rows(ct.get(v.index), (n,) + tuple(v.shape), v.dtype) for v in t.diff], \
        vals[t.out.index]


def _rows(c: Any, shape: tuple, dtype: Any) -> np.ndarray:
    """The (n, ...) rows of one leaf's cotangent ``c``, writable as ``grad``'s arrays are
    (per-example clipping scales them in place): ``c`` itself where it has that shape and
    dtype and is writable, else a copy (zeros where no cotangent arrived)."""
    if c is None:
        return np.zeros(shape, dtype)
    a = np.asarray(c)
    if a.shape == shape and a.dtype == dtype and a.flags.writeable:
        return a
    return np.array(np.broadcast_to(a, shape), dtype=dtype)  # NOTE: a broadcast view was
    # returned before: read-only, so G *= factors raised ValueError


@on_numpy  # the batched interpreter runs the NumPy rules
def _per_example(f: Callable, args: list, axes: list, nums: list[int], policy: KinkPolicy,
                 kwargs: dict, n: int) -> tuple[list, Any] | None:
    """The per-example gradient leaves of every differentiated argument, (n, ...) each, and
    the per-example values; None when the batched evaluation cannot give ``grad``'s rows:
    ``f`` read a value that depends on a batched argument, or a floating-point error was
    raised (``np.errstate``)."""
    traces = [_Traced(f, args, axes, nums, rows, kwargs) for rows in _groups(args, axes, n)]
    if any(t.reads_batched for t in traces):
        return None
    variants = _variants(traces) if len(traces) > 1 else {}
    try:
        with np.errstate(under="ignore"):  # as grad: underflow is no error (tracer.py)
            if variants is not None:
                return _sweep(traces[0], None, policy, variants, n)
            outs = traces[0].zeros(n)  # programs differ between label groups: one sweep each
            values = np.zeros(n)  # for the finiteness test only
            for t in traces:
                gs, v = _sweep(t, t.rows, policy, None, len(t.rows))
                values[t.rows] = v
                for out, g in zip(outs, gs):
                    out[t.rows] = g
    except FloatingPointError:  # under np.errstate(... = "raise"): grad decides, per example
        return None
    return outs, values


def per_example_grad(f: Callable, argnums: int | Sequence[int] = 0, in_axes: Any = 0,
                     policy: KinkPolicy | None = None) -> Callable:
    """Per-example conservative gradients of a scalar function of one example.

    ``per_example_grad(f, argnums, in_axes)(*args)[b]`` is ``grad(f, argnums)`` at example b
    (the arguments with ``in_axes`` not None indexed at b along that axis), stacked along a
    new leading axis, for every leaf of the differentiated arguments. Same as
    ``vmap(grad(f, argnums), in_axes)``. Computed in one batched forward evaluation and one
    reverse sweep (see :mod:`kinkgrad.modes.vmap`); torch tensors take a loop of ``grad``
    over the same slices (torch tensors out; 0 examples give zeros of shape (0, ...)). A
    loop of ``grad`` computes the rows as well when ``f`` reads a value computed from a
    batched argument (``knp.argmax(x)``: an index of that example alone), and the rows whose
    value or gradient is not finite (a ``where``'s unselected branch is discarded there, as
    ``grad`` does). ``argnums`` is read as by ``grad``: a position named twice gets its
    gradient at each entry.

    Kink convention: each example gets the kink policy's choice, exactly as ``grad`` of that
    example alone; each row is an element of a conservative gradient of f at that example.

    Raises:
        NonFiniteInputError: ``grad`` of some example alone raises it (a NaN or inf input,
            value or gradient); the message names the example's index.

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
    require_callable(f, "per_example_grad")
    nums, single = normalize_argnums(argnums, "per_example_grad")

    def peg(*args: Any, **kwargs: Any) -> Any:
        axes = ex.axes_of(in_axes, len(args))
        nums_, picks = ex.positions(nums, len(args), kwargs)
        n = ex.batch_size(args, axes)
        from .api import grad

        g = grad(f, tuple(nums_), policy=policy)  # one tree per distinct argument

        def one(*example: Any) -> Any:  # keyword arguments reach f, as on NumPy
            return g(*example, **kwargs)

        if any(is_torch(x) for x in pytree.flatten((args, kwargs))[0]):
            trees = ex.no_examples_torch(list(args), kwargs, axes, nums_) if n == 0 else \
                ex.stack_tree(ex.loop(one, list(args), axes, range(n), "per_example_grad"))
            return ex.picked(tuple(trees), picks, single)
        moved = ex.moved(args, axes)
        axes0 = [None if a is None else 0 for a in axes]
        leaves_per_arg = [pytree.flatten(moved[k]) for k in nums_]
        for leaves, _ in leaves_per_arg:
            for x in leaves:
                if np.asarray(x).dtype.kind != "f":
                    raise ex.not_float("per_example_grad", np.asarray(x).dtype)
        if n == 0:  # no examples: empty gradients of the right shapes
            outs = [np.zeros((0,) + (np.shape(x)[1:] if axes[k] is not None else np.shape(x)),
                             np.asarray(x).dtype)
                    for k, (leaves, _) in zip(nums_, leaves_per_arg) for x in leaves]
        else:
            res = _per_example(f, moved, axes, nums_, resolve_policy(policy), kwargs, n)
            if res is None:  # f read a batched value, or a floating-point error: grad per example
                outs = pytree.flatten(ex.stack_tree(ex.loop(one, moved, axes0, range(n),
                                                        "per_example_grad")))[0]
            else:
                outs, values = res
                if not (finite(values) and all(finite(o) for o in outs)):
                    outs = ex.regrad(one, moved, axes0, outs, values, n)
        trees, pos = [], 0
        for leaves, td in leaves_per_arg:
            trees.append(pytree.unflatten(td, outs[pos:pos + len(leaves)]))
            pos += len(leaves)
        return ex.picked(tuple(trees), picks, single)

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
    require_callable(fn, "vmap")
    spec = _grad_spec(fn)
    if spec is not None:
        f, argnums, policy = spec
        batched = per_example_grad(f, argnums, in_axes, policy)
        batched.__name__ = f"vmap({getattr(fn, '__name__', 'fn')})"
        return batched

    def looped(*args: Any) -> Any:
        axes = ex.axes_of(in_axes, len(args))
        n = ex.batch_size(args, axes)
        if any(is_torch(x) for x in pytree.flatten(args)[0]):
            # NOTE: tensors stay tensors on their device (moved() reads leaves as NumPy)
            front, at = list(args), axes
        else:
            front, at = ex.moved(args, axes), [None if a is None else 0 for a in axes]
        if n == 0:  # NOTE: as JAX, zero rows shaped like fn's outputs (at one zero example)
            one = [a if ax is None else pytree.unflatten(pytree.flatten(a)[1], [
                ex.zero_example(x, ax) for x in pytree.flatten(a)[0]])
                for a, ax in zip(front, at)]
            leaves, td = pytree.flatten(fn(*one))
            return pytree.unflatten(td, [ex.no_rows(v) for v in leaves])
        return ex.stack_tree(ex.loop(fn, front, at, range(n)))

    looped.__name__ = f"vmap({getattr(fn, '__name__', 'fn')})"
    return looped
