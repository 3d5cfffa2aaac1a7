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

__all__ = ["Var", "Literal", "Equation", "Program", "dtype_code", "aval_str"]

_DTYPE_CODES = {
    "float64": "f64", "float32": "f32", "float16": "f16", "bool": "bool",
    "int64": "i64", "int32": "i32", "int8": "i8", "uint8": "u8",
}


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
    """

    def __init__(self, invars: list[Var], in_tree: Any, eqns: list[Equation],
                 outs: list, out_tree: Any, nvars: int) -> None:
        self.invars = invars
        self.in_tree = in_tree
        self.eqns = eqns
        self.outs = outs
        self.out_tree = out_tree
        self.nvars = nvars

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

    def evaluate_flat(self, leaves: Sequence[Any]) -> list:
        """All slot values at the given flat inputs (plain NumPy, no tracing)."""
        self._check_inputs(leaves)
        vals: list = [None] * self.nvars
        for v, x in zip(self.invars, leaves):
            vals[v.index] = np.asarray(x, dtype=v.dtype.name)  # a name every backend reads
        for eqn in self.eqns:
            args = [vals[i.index] if type(i) is Var else i.value for i in eqn.inputs]
            vals[eqn.out.index] = eqn.prim.impl(*args, **eqn.params)
        return vals

    def output_values(self, vals: list) -> list:
        return [vals[o.index] if type(o) is Var else o.value for o in self.outs]

    @follow_inputs
    def __call__(self, *args: Any) -> Any:
        """The program's outputs at ``args``, computed on the inputs' backend (NumPy arrays,
        torch tensors on their device, CuPy arrays), or traced when given traced values."""
        leaves, _ = pytree.flatten(args)
        kept = pytree.input_leaves(self.in_tree, args)  # integer leaves are constants
        if kept is not None:
            leaves = kept
        from .tracer import Tracer

        if any(type(x) is Tracer for x in leaves):
            self._check_inputs(leaves)
            env: dict[int, Any] = {v.index: x for v, x in zip(self.invars, leaves)}
            for eqn in self.eqns:
                a = [env[i.index] if type(i) is Var else i.value for i in eqn.inputs]
                env[eqn.out.index] = _bind(eqn.prim, a, eqn.params)
            outs = [env[o.index] if type(o) is Var else o.value for o in self.outs]
        else:
            outs = self.output_values(self.evaluate_flat(leaves))
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


def _bind(prim: Primitive, args: list, params: dict) -> Any:
    from .tracer import bind

    return bind(prim, *args, **params)
