"""Differentiating a traced Program by replay: the transformations (``value_and_grad``,
``grad``, ``vjp``, ``jvp``, ``jacobian``) of a Program evaluate its recorded equations at the
new inputs (``Program.replay``) and sweep them, instead of calling the program under a new
trace, which would record the same equations again one bound operation at a time (style.md
8.3: trace once, then replay)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Program
from ._nonfinite import input_error_if_nonfinite
from ._traced import Traced, outputs_finite_or_raise, trace_call

__all__ = ["replay_call", "traced_or_replayed"]

# NumPy's own types: a replay runs on NumPy inputs only (others are traced)
_NDARRAY, _FLOATS = np.ndarray, (np.floating, float)


def traced_or_replayed(f: Callable, args: Sequence[Any], kwargs: dict,
                       argnums: Sequence[int], where: str, has_aux: bool = False,
                       check_finite: bool = True, reverse_only: bool = False,
                       kink_values: bool = True) -> Traced:
    """``trace_call``'s ``Traced`` of ``f(*args, **kwargs)`` (same flags), by replaying ``f``
    when it is a traced Program and the call is one a replay reproduces."""
    if type(f) is Program and not has_aux:
        tr = replay_call(f, args, kwargs, argnums, kink_values, reverse_only,
                         where if check_finite else None)
        if tr is not None:
            if check_finite:  # as trace_call: the outputs too
                outputs_finite_or_raise(tr, where)
            return tr
    return trace_call(f, args, kwargs, argnums, where, has_aux, check_finite=check_finite,
                      reverse_only=reverse_only, kink_values=kink_values)


def replay_call(prog: Program, args: Sequence[Any], kwargs: dict, argnums: Sequence[int],
                kink_values: bool, reverse_only: bool = True, check_inputs: str | None = None
                ) -> Traced | None:
    """The ``Traced`` of a call of a traced Program, by replaying its equations
    (``Program.replay``) instead of calling it under a new trace; None where the call is not
    one a replay reproduces (traced, torch or other-dtype inputs, a baked-in argument in
    ``argnums``, another structure): tracing the call then handles it, errors included.

    The arguments not in ``argnums`` stay inputs of the replayed equations, so the slots
    that only they reach are ``frozen``: a reverse sweep computes no cotangent for them, and
    a forward sweep seeds no tangent there, as a trace of the call would have held them as
    constants. With ``check_inputs`` (the caller's name) a differentiated input holding NaN
    or inf is refused before anything is evaluated, as ``trace_call`` refuses it."""
    if kwargs:
        prog.check_keywords(kwargs)  # the traced ones, unchanged
    nargs = len(args)
    if any(not -nargs <= a < nargs for a in argnums):
        return None
    if nargs == prog.call_arity:  # the arguments of the traced call: map argnums
        where = {p: k for k, p in enumerate(prog.input_positions)}
        if any(a % nargs not in where for a in argnums):
            return None
        nums = [where[a % nargs] for a in argnums]
    else:
        nums = [a % nargs for a in argnums]
    children = prog.in_tree[1] if prog.in_tree[0] == "tuple" else None
    inputs = prog.input_args(args)
    if children is None or len(children) != len(inputs) or len(set(nums)) != len(nums):
        return None
    leaves = prog.leaves_of(inputs)
    if len(leaves) != len(prog.invars):
        return None
    for k, (v, x) in enumerate(zip(prog.invars, leaves)):
        if type(x) is not _NDARRAY:
            if not isinstance(x, _FLOATS):
                return None
            leaves[k] = x = np.asarray(x)  # a NumPy or Python float: a 0-d array
        if x.dtype != v.dtype or x.shape != v.shape:
            return None
    in_vars, in_tree, frozen, where = _plan(prog, tuple(nums))
    if check_inputs is not None:
        for k in where:
            input_error_if_nonfinite(leaves[k], check_inputs)
    tr = Traced(prog.replay(leaves, kink_values, reverse_only), in_vars, in_tree, prog.outs,
                prog.out_tree)
    tr.frozen = frozen
    return tr


def _plan(prog: Program, nums: tuple[int, ...]
          ) -> tuple[list, Any, set[int] | None, list[int]]:
    """For differentiating with respect to the input arguments ``nums``: their input
    variables, the treedef of their gradient, the frozen slots (None when every input is
    differentiated) and the positions of their leaves among the program's inputs; computed
    once per program and ``nums``."""
    plans = prog.replay_plans
    if nums not in plans:
        children = prog.in_tree[1]
        counts = [pytree.input_count(c) for c in children]
        starts = [sum(counts[:k]) for k in range(len(counts))]
        where = [starts[k] + j for k in nums for j in range(counts[k])]
        in_vars = [prog.invars[i] for i in where]
        frozen = None if len(in_vars) == len(prog.invars) else prog.frozen_slots(
            frozenset(v.index for v in in_vars))
        plans[nums] = (in_vars, ("tuple", [children[k] for k in nums]), frozen, where)
    return plans[nums]
