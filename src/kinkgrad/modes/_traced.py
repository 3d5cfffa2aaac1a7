"""One traced call of a function: ``trace_call`` records it (the forward pass) and
``Traced`` holds the equations, values, inputs and outputs every transformation sweeps over."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Literal, Program, Var, value_of
from .._core.tracer import Trace, Tracer
from ..errors import KinkgradError, NestedTransformError, NonFiniteInputError
from ._inputs import argnums_message, constant_leaves, not_float
from ._nonfinite import finite, input_error_if_nonfinite, nonfinite_culprit

__all__ = ["Traced", "trace_call", "outputs_finite_or_raise"]

_NUMPY = np
_NDARRAY = np.ndarray  # NumPy's own (np is rebound to another backend during its calls)


class Traced:
    """One traced call: the trace (equations and values), its inputs and outputs."""

    def __init__(self, trace: Trace, in_vars: list[Var], in_tree: Any, outs: list,
                 out_tree: Any, aux: Any = None) -> None:
        self.trace = trace
        self.in_vars = in_vars
        self.in_tree = in_tree
        self.outs = outs
        self.out_tree = out_tree
        self.aux = aux
        self.frozen: set[int] | None = None  # a replay's constant slots (see reverse_sweep)
        # the trace as written, where this one rewrites it (abs_normal.where_ties: a tied
        # where as a maximum/minimum); plain AD differentiates that one
        self.unrewritten: Traced | None = None

    @property
    def eqns(self) -> list:
        return self.trace.eqns

    @property
    def vals(self) -> list:
        return self.trace.vals

    def out_values(self) -> list:
        return [value_of(o, self.vals) for o in self.outs]

    def program(self) -> Program:
        return Program(self.in_vars, self.in_tree, self.eqns, self.outs, self.out_tree,
                       len(self.vals))


def _as_input(x: Any, where: str, check_finite: bool) -> np.ndarray:
    if type(x) is _NDARRAY and x.dtype.kind == "f" and not check_finite and np is _NUMPY:
        return x  # the common case, decided without a call (on another backend: converted)
    if isinstance(x, Tracer):
        raise NestedTransformError(
            f"{where}: an argument is already a traced value (a transformation inside another "
            "one); kinkgrad computes first-order generalized derivatives. Differentiate the "
            "outer function only."
        )
    a = np.asarray(x)
    if a.dtype.kind not in "f":
        raise not_float(where, a.dtype)
    if check_finite:
        input_error_if_nonfinite(a, where)
    return a


def _strip(tree: Any) -> Any:
    leaves, td = pytree.flatten(tree)
    # NOTE: _value: returning aux decides nothing in f (Tracer.value records a read)
    return pytree.unflatten(td, [x._value if isinstance(x, Tracer) else x for x in leaves])


def trace_call(f: Callable, args: Sequence[Any], kwargs: dict, argnums: Sequence[int],
               where: str, has_aux: bool = False, check_finite: bool = True,
               reverse_only: bool = False, kink_values: bool = True) -> Traced:
    """Record ``f`` with the leaves of ``args[argnums]`` traced (the flags: ``Trace``)."""
    nargs = len(args)
    for a in argnums:
        if not -nargs <= a < nargs:
            raise KinkgradError(argnums_message(where, a, nargs, kwargs))
    argnums = [a % nargs for a in argnums]
    diff = [args[i] for i in argnums]
    leaves, in_tree = pytree.flatten(tuple(diff))
    const = constant_leaves(diff, leaves)
    tr = Trace(reverse_only, kink_values)
    tracers = [tr.new_input(_as_input(x, where, check_finite))
               for x, c in zip(leaves, const) if not c]
    if any(const):  # integer/bool leaves inside an argument: constants (see _core/pytree.py)
        in_tree = pytree.mark_constants(in_tree, const, leaves)
    new = list(pytree.unflatten(in_tree, tracers))
    call_args = list(args)
    for pos, v in zip(argnums, new):
        call_args[pos] = v
    try:
        res = f(*call_args, **kwargs)
    finally:
        tr.active = False
    aux = None
    if has_aux:
        if not (isinstance(res, tuple) and len(res) == 2):
            raise KinkgradError(f"{where}(has_aux=True): the function must return a pair "
                                "(output, aux).")
        res, aux = res[0], _strip(res[1])
    out_leaves, out_tree = pytree.flatten(res)
    outs = []
    for o in out_leaves:
        if isinstance(o, Tracer):
            outs.append(o.var)
        else:
            outs.append(Literal(np.asarray(o)))
    traced = Traced(tr, [t.var for t in tracers], in_tree, outs, out_tree, aux)
    if check_finite:
        outputs_finite_or_raise(traced, where)
    return traced


def outputs_finite_or_raise(traced: Traced, where: str) -> None:
    """A NaN value has no derivative: say where it came from."""
    vals = [np.asarray(v) for v in traced.out_values()]
    if not all(finite(v) for v in vals if v.dtype.kind == "f"):
        raise NonFiniteInputError(nonfinite_culprit(traced, where))
