"""The intermediate representation: variables, equations and the Program.

A :class:`Program` is paper A's *program*: a directed acyclic graph whose nodes apply
elementary functions of a dictionary (the registered primitives) to earlier nodes, stored as a
list of equations in topological order over numbered slots. It prints like a jaxpr, evaluates
at a new point, and is what every mode (backward, forward, directional, lexicographic, the
abs-normal form and the cost model) walks over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import follow_inputs
from ..errors import KinkgradError
from . import pytree

if TYPE_CHECKING:
    from .primitive import Primitive

__all__ = ["Var", "Literal", "Equation", "Program", "dtype_code", "aval_str", "snapshot",
           "value_of"]

_DTYPE_CODES = {
    "float64": "f64", "float32": "f32", "float16": "f16", "bool": "bool",
    "int64": "i64", "int32": "i32", "int8": "i8", "uint8": "u8",
}


_NDARRAY = np.ndarray  # NumPy's, kept when np is rebound to a backend
_NUMPY_RESULTS = (np.ndarray, np.generic)


def dtype_code(dtype: Any) -> str:
    name = np.dtype(dtype).name
    return _DTYPE_CODES.get(name, name)


def aval_str(shape: tuple, dtype: Any) -> str:
    return f"{dtype_code(dtype)}[{','.join(str(s) for s in shape)}]"


class Var:
    """A slot of the program: its index, shape and dtype."""

    __slots__ = ("index", "shape", "dtype")

    def __init__(self, index: int, shape: tuple, dtype: Any) -> None:
        self.index = index
        self.shape = shape
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"Var({self.index}, {aval_str(self.shape, self.dtype)})"


class Literal:
    """A constant operand (not differentiated): a Python scalar or an array."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Equation:
    """``out = prim(*inputs, **params)``."""

    __slots__ = ("prim", "inputs", "out", "params")

    def __init__(self, prim: Primitive, inputs: list, out: Var, params: dict) -> None:
        self.prim = prim
        self.inputs = inputs
        self.out = out
        self.params = params

    def args(self, vals: Any) -> list:
        """The inputs' values in a sweep: ``vals[v.index]`` for a Var, a literal's value."""
        return [vals[i.index] if type(i) is Var else i.value for i in self.inputs]


def value_of(i: Any, vals: Any) -> Any:
    """The value of an equation's input in a sweep: ``vals[i.index]`` for a Var, a
    literal's value (``Equation.args`` writes the same inline, on the hot path)."""
    return vals[i.index] if type(i) is Var else i.value


def _var_name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    name = ""
    i += 1
    while i > 0:
        i, r = divmod(i - 1, 26)
        name = letters[r] + name
    return name


class Program:
    """A traced program: inputs, equations in topological order, outputs.

    Build one with :func:`kinkgrad.trace`. ``str(program)`` prints one line per equation;
    ``program(*args)`` re-evaluates it at a new point (also on traced values, so a Program can
    itself be differentiated); ``program.cost()`` gives the cost-model report.
    ``grad``, ``value_and_grad``, ``vjp``, ``jvp`` and ``jacobian`` of a Program replay the
    equations at new NumPy arrays of the traced shapes and dtypes instead of tracing the call
    again: the same rules on the same values, so the same results and kink reports.

    Dtypes follow the inputs, in a call as in its transformations and as in calling the
    traced function itself: a program traced at float32 and called (or differentiated) at
    float64 computes in float64, and one traced at float64 called at float32 computes in
    float32 (with NumPy's promotion against constants recorded in the program). Integer
    inputs are converted to the traced dtype.

    A call passes either all the arguments ``kinkgrad.trace`` was given, the ones it baked in
    as constants (integer labels, keyword arguments) unchanged, or the inputs alone. The
    program is what the trace saw: Python decisions on ``.value``, random draws and globals
    are part of it, so trace again when those change.
    """

    def __init__(self, invars: list[Var], in_tree: Any, eqns: list[Equation],
                 outs: list, out_tree: Any, nvars: int) -> None:
        self.invars = invars
        self.in_tree = in_tree
        self.eqns = eqns
        self.outs = outs
        self.out_tree = out_tree
        self.nvars = nvars
        # set by kinkgrad.trace: the positional arity it was called with, the positions that
        # are inputs (in the order of in_tree), and copies of the arguments it baked in as
        # constants (see input_args)
        self.call_arity: int | None = None
        self.input_positions: list[int] = []
        self.baked: dict[int, Any] = {}
        self.baked_keywords: dict[str, Any] = {}
        self._drops: dict[bool | None, list[list[Var]]] = {}
        self._frozen: dict[frozenset[int], set[int]] = {}
        self.replay_plans: dict[tuple[int, ...], Any] = {}  # modes/_replay.py's, per argnums

    # ------------------------------------------------------------------ evaluation
    def _check_inputs(self, leaves: Sequence[Any]) -> None:
        if len(leaves) != len(self.invars):
            raise KinkgradError(
                f"Program: expected {len(self.invars)} input arrays, got {len(leaves)}; pass "
                "arguments with the same structure as when the program was traced."
            )
        for v, x in zip(self.invars, leaves):
            if tuple(np.shape(x)) != tuple(v.shape):
                from ..errors import ShapeError

                raise ShapeError(
                    f"Program: input {_var_name(v.index)} was traced with shape "
                    f"{tuple(v.shape)} but got {tuple(np.shape(x))}; re-trace for new shapes."
                )

    def evaluate_flat(self, leaves: Sequence[Any], let_go: bool = False) -> list:
        """All slot values at the given flat inputs (plain NumPy, no tracing); with
        ``let_go`` each intermediate value is let go (None) after its last use, as the
        function, run eagerly, frees its temporaries, and only inputs and outputs remain.
        Floating-point inputs keep their dtype (see :class:`Program`)."""
        self._check_inputs(leaves)
        frees = self._schedule(None) if let_go else [()] * len(self.eqns)
        vals: list = [None] * self.nvars
        for v, x in zip(self.invars, leaves):
            vals[v.index] = _as_input(x, v)
        for eqn, gone in zip(self.eqns, frees):
            args = eqn.args(vals)
            vals[eqn.out.index] = eqn.prim.impl(*args, **eqn.params)
            for var in gone:
                vals[var.index] = None
        return vals

    def output_values(self, vals: list) -> list:
        return [value_of(o, vals) for o in self.outs]

    def input_args(self, args: Sequence[Any]) -> tuple:
        """The arguments that are the program's inputs, in its input order. Called with the
        arity ``kinkgrad.trace`` was called with, ``args`` are that call's arguments: the
        ones it baked in as constants (integer labels, say) are dropped after a check that
        they equal the traced ones, and the inputs are taken in ``argnums`` order; called
        with fewer, ``args`` are the inputs in that order.

        Raises:
            KinkgradError: a baked-in argument differs from the one traced.
        """
        if self.call_arity is None or len(args) != self.call_arity:
            return tuple(args)
        from .tracer import Tracer  # NOTE: tracer.py imports this module

        for pos, traced in self.baked.items():
            if any(isinstance(x, Tracer) for x in pytree.flatten(args[pos])[0]):
                raise KinkgradError(  # NOTE: its comparison with the baked value would ask
                    # bool() of a traced value, which blames Python control flow instead
                    f"Program: argument {pos} was baked into the program as a constant when "
                    "it was traced, so it cannot be differentiated here; trace again with it "
                    f"among the inputs (kinkgrad.trace(f, ..., argnums=...)); the inputs are "
                    f"positions {self.input_positions}.")
            if not pytree.same_constant(args[pos], traced):
                raise KinkgradError(
                    f"Program: argument {pos} was baked into the program as a constant when it "
                    "was traced and this call passes a different value; trace again for "
                    "another value (kinkgrad.trace(f, ...)), or pass only the inputs "
                    f"(positions {self.input_positions})."
                )
        return tuple(args[i] for i in self.input_positions)

    def check_keywords(self, kwargs: dict) -> None:
        """A call may repeat the keyword arguments ``kinkgrad.trace`` baked in, unchanged.

        Raises:
            KinkgradError: a keyword the trace did not have, or another value for one."""
        for k, v in kwargs.items():
            if k not in self.baked_keywords or not pytree.same_constant(v, self.baked_keywords[k]):
                raise KinkgradError(
                    f"Program: keyword argument {k}={v!r} "
                    + ("differs from the value it was traced with" if k in self.baked_keywords
                       else "was not given when the program was traced")
                    + "; keyword arguments are baked into a traced program, so trace again "
                    f"with it (kinkgrad.trace(f, ..., {k}=...))."
                )

    def flat_inputs(self, args: Sequence[Any]) -> list:
        """The input leaves of a call (see ``input_args``)."""
        return self.leaves_of(self.input_args(args))

    def leaves_of(self, inputs: Sequence[Any]) -> list:
        """The input leaves of the program's input arguments (integer leaves beside
        floating-point ones are constants, checked against the traced ones)."""
        leaves, _ = pytree.flatten(tuple(inputs))
        kept = pytree.input_leaves(self.in_tree, tuple(inputs))  # integer leaves: constants
        return leaves if kept is None else kept

    def replay(self, leaves: Sequence[Any], kink_values: bool = True,
               reverse_only: bool = True) -> Any:
        """Evaluate at flat NumPy inputs into a ``Trace``, the trace a transformation would
        record by calling the program again, without the calls.

        As in a recorded reverse-only trace, a value that no reverse rule reads (and, with
        ``kink_values=False``, no kink resolution reads) is let go after its last use;
        ``Trace.restore`` brings such values back for the error paths. With
        ``reverse_only=False`` every value is kept (forward sweeps read them all)."""
        from .tracer import Dropped, Trace, retry_without_underflow

        self._check_inputs(leaves)
        drops = self._schedule(kink_values) if reverse_only else [()] * len(self.eqns)
        vals: list = [None] * self.nvars
        for v, x in zip(self.invars, leaves):
            vals[v.index] = x
        for eqn, gone in zip(self.eqns, drops):
            args = eqn.args(vals)
            try:
                out = eqn.prim.impl(*args, **eqn.params)
            except FloatingPointError as exc:  # only under np.errstate(... = "raise")
                out = retry_without_underflow(exc, eqn.prim.name, "value", eqn.prim.impl,
                                              *args, **eqn.params)
            if not isinstance(out, _NUMPY_RESULTS):
                out = np.asarray(out)
            vals[eqn.out.index] = out
            for var in gone:
                vals[var.index] = Dropped(var)
        tr = Trace(reverse_only=reverse_only, kink_values=kink_values)
        tr.eqns, tr.vals, tr.active = self.eqns, vals, False
        return tr

    def frozen_slots(self, active_inputs: frozenset[int]) -> set[int]:
        """The slots that no input in ``active_inputs`` reaches (constants of a sweep that
        differentiates with respect to those inputs only); cached per input set."""
        cache = self._frozen
        if active_inputs not in cache:
            reached = set(active_inputs)
            for eqn in self.eqns:
                if any(type(i) is Var and i.index in reached for i in eqn.inputs):
                    reached.add(eqn.out.index)
            cache[active_inputs] = set(range(self.nvars)) - reached
        return cache[active_inputs]

    def _schedule(self, kink_values: bool | None) -> list[list[Var]]:
        """``_drop_schedule(kink_values)``, computed once per program."""
        drops = self._drops.get(kink_values)
        if drops is None:
            drops = self._drops[kink_values] = self._drop_schedule(kink_values)
        return drops

    def _drop_schedule(self, kink_values: bool | None) -> list[list[Var]]:
        """Per equation, the slots to let go after it, at their last use: those no reverse
        rule reads (no kink resolution either, with ``kink_values``), or with ``None`` every
        intermediate value (a plain evaluation). The inputs and outputs are kept."""
        needed = {v.index for v in self.invars}
        needed.update(o.index for o in self.outs if type(o) is Var)
        last: dict[int, int] = {}
        var_of: dict[int, Var] = {}
        for k, eqn in enumerate(self.eqns):
            prim = eqn.prim
            reads = kink_values is not None and (
                prim.vjp_reads_args or (prim.kink_reads_args and kink_values))
            for i in eqn.inputs:
                if type(i) is Var:
                    last[i.index] = k
                    if reads:
                        needed.add(i.index)
            last.setdefault(eqn.out.index, k)
            var_of[eqn.out.index] = eqn.out
            if kink_values is not None and prim.vjp_reads_out:
                needed.add(eqn.out.index)
        drops: list[list[Var]] = [[] for _ in self.eqns]
        for slot, var in var_of.items():
            if slot not in needed:
                drops[last[slot]].append(var)
        return drops

    @follow_inputs
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The program's outputs at ``args``, computed on the inputs' backend (NumPy arrays,
        torch tensors on their device, CuPy arrays), or traced when given traced values.
        ``args`` are all the arguments ``kinkgrad.trace`` was given (those it baked in as
        constants must be the same) or only the inputs; keyword arguments, baked in too, may
        be repeated unchanged."""
        if kwargs:
            self.check_keywords(kwargs)
        leaves = self.flat_inputs(args)
        from .tracer import Tracer

        if any(type(x) is Tracer for x in leaves):
            self._check_inputs(leaves)
            env: dict[int, Any] = {v.index: x for v, x in zip(self.invars, leaves)}
            for eqn in self.eqns:
                a = eqn.args(env)
                env[eqn.out.index] = _bind(eqn.prim, a, eqn.params)
            outs = [value_of(o, env) for o in self.outs]
        else:
            outs = self.output_values(self.evaluate_flat(leaves, let_go=True))
        return pytree.unflatten(self.out_tree, outs)

    # ------------------------------------------------------------------ printing
    def names(self) -> dict[int, str]:
        return {i: _var_name(i) for i in range(self.nvars)}

    def pretty(self, annotate: dict[int, str] | None = None) -> str:
        """The jaxpr-like listing; ``annotate`` maps an equation index to a trailing comment."""
        consts: list[str] = []
        const_names: dict[int, str] = {}

        def operand(x: Any) -> str:
            if type(x) is Var:
                return _var_name(x.index)
            v = x.value
            if np.ndim(v) == 0 and not isinstance(v, np.ndarray):
                return repr(v) if isinstance(v, (bool, np.bool_)) else f"{float(v):g}"
            if np.ndim(v) == 0:
                return f"{float(v):g}"
            key = id(x)
            if key not in const_names:
                const_names[key] = f"c{len(const_names)}"
                consts.append(f"{const_names[key]}:{aval_str(np.shape(v), np.asarray(v).dtype)}")
            return const_names[key]

        body = []
        for k, eqn in enumerate(self.eqns):
            ops = " ".join(operand(x) for x in eqn.inputs)
            line = (f"    {_var_name(eqn.out.index)}:{aval_str(eqn.out.shape, eqn.out.dtype)} = "
                    f"{eqn.prim.name}{eqn.prim.pp_params(eqn.params)} {ops}")
            if annotate and k in annotate:
                line = f"{line:<60s}  # {annotate[k]}"
            body.append(line)
        ins = " ".join(f"{_var_name(v.index)}:{aval_str(v.shape, v.dtype)}" for v in self.invars)
        outs = " ".join(operand(o) for o in self.outs)
        head = "{ lambda " + (" ".join(consts) + " " if consts else "") + "; " + ins + ". let"
        return "\n".join([head, *body, f"  in ({outs}) }}"])

    def __str__(self) -> str:
        return self.pretty()

    def __repr__(self) -> str:
        return f"<Program: {len(self.invars)} inputs, {len(self.eqns)} equations>"

    # ------------------------------------------------------------------ conveniences
    def primitives_used(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.eqns:
            seen.setdefault(e.prim.name, None)
        return list(seen)

    def cost(self) -> Any:
        """The cost-model report of this program (see :func:`kinkgrad.cost`)."""
        from .cost import program_cost

        return program_cost(self)


def _as_input(x: Any, v: Var) -> Any:
    """An input leaf for an evaluation: a floating-point array as it is (its dtype, not the
    traced one: the rule of calling the function, and of tracing a call of the program),
    anything else (a Python float, an integer array, a list) as an array; a non-float one
    takes the traced dtype."""
    if type(x) is _NDARRAY and (x.dtype == v.dtype or x.dtype.kind == "f"):
        return x
    a = np.asarray(x)
    dt = a.dtype  # NumPy's (.kind) or a backend's (torch: .is_floating_point)
    kind = getattr(dt, "kind", "f" if getattr(dt, "is_floating_point", False) else "?")
    if kind == "f":
        return a
    if kind in "cUSOVMm":  # NOTE: complex lost its imaginary part with a warning, strings
        # raised NumPy's ValueError, objects gave NaN
        raise KinkgradError(f"Program: an input of dtype {dt} (shape {np.shape(a)}); a "
                            "program takes real numbers (floating point, or integers taking "
                            f"the traced dtype {v.dtype}).")
    return np.asarray(x, dtype=v.dtype.name)  # a name every backend reads


def snapshot(tree: Any) -> Any:
    """A copy of the NumPy arrays in ``tree`` (a baked argument is compared with the value
    it had when traced, even if the caller's array is changed in place later)."""
    leaves, td = pytree.flatten(tree)
    return pytree.unflatten(td, [x.copy() if type(x) is _NDARRAY else x for x in leaves])


def _bind(prim: Primitive, args: list, params: dict) -> Any:
    from .tracer import bind

    return bind(prim, *args, **params)
