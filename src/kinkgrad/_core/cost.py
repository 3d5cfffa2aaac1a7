"""The cost model of a traced Program (paper A: Bolte, Boustany, Pauwels, Pesquet-Popescu,
arXiv 2206.01730): operation counts from shapes, summed over the nodes.

Every primitive has a cost (one operation per output entry for elementwise ops, 2 m k n for
an (m, k) @ (k, n) product), a VJP cost and a JVP cost (see ``primitive.py``). A Program's
report adds them up; :func:`kinkgrad.cost` (``kinkgrad/cost.py``, above the transformations
that trace a function) is the public entry point and explains the report's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .program import Program, Var

__all__ = ["program_cost", "CostReport", "PrimitiveCost"]


@dataclass
class PrimitiveCost:
    """Totals for one primitive over a program."""

    name: str
    count: int = 0
    function: int = 0
    vjp: int = 0
    jvp: int = 0
    omega: float = 0.0


@dataclass
class CostReport:
    """Cost-model report of a program (operation counts, not seconds).

    Attributes:
        function: cost of evaluating the program.
        backward: cost of value plus conservative gradient by backward mode.
        forward_pass: cost of value plus one directional (JVP) pass.
        forward_full: cost of the full gradient by forward mode (p passes).
        p: input dimension.
        backward_ratio: backward / function (bounded by ``bound`` whatever p).
        forward_ratio: forward_full / function (grows like p).
        bound: the model's omega for the primitives used.
        table: per-primitive totals.
    """

    function: int
    backward: int
    forward_pass: int
    forward_full: int
    p: int
    bound: float
    table: list[PrimitiveCost] = field(default_factory=list)

    @property
    def backward_ratio(self) -> float:
        return self.backward / max(self.function, 1)

    @property
    def forward_ratio(self) -> float:
        return self.forward_full / max(self.function, 1)

    @property
    def within_bound(self) -> bool:
        return self.backward <= self.bound * self.function

    def __str__(self) -> str:
        lines = [
            f"{'primitive':<14s}{'count':>7s}{'function':>14s}{'vjp':>14s}{'jvp':>14s}"
            f"{'omega':>7s}",
        ]
        for r in self.table:
            lines.append(f"{r.name:<14s}{r.count:>7d}{r.function:>14,d}{r.vjp:>14,d}"
                         f"{r.jvp:>14,d}{r.omega:>7g}")
        lines += [
            "",
            f"input dimension p          {self.p:,d}",
            f"function                   {self.function:,d} ops",
            f"value + gradient (reverse) {self.backward:,d} ops   ratio {self.backward_ratio:.3f}"
            f"  (bound omega = {self.bound:g}: {'holds' if self.within_bound else 'VIOLATED'})",
            f"full gradient (forward)    {self.forward_full:,d} ops   ratio "
            f"{self.forward_ratio:.3f}  (p passes)",
        ]
        return "\n".join(lines)


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if type(x) is Var else tuple(np.shape(x.value))


def program_cost(program: Program) -> CostReport:
    """The cost-model report of a traced :class:`Program`."""
    eqns = program.eqns
    # nodes whose value reaches an output (only those enter the reverse sweep)
    live = {o.index for o in program.outs if type(o) is Var}
    on_path = [False] * len(eqns)
    for k in range(len(eqns) - 1, -1, -1):
        e = eqns[k]
        if e.out.index in live and e.prim.differentiable:
            on_path[k] = True
            live.update(i.index for i in e.inputs if type(i) is Var)
    rows: dict[str, PrimitiveCost] = {}
    function = vjp = jvp = 0
    for k, e in enumerate(eqns):
        ins = [_shape(i) for i in e.inputs]
        needs = [type(i) is Var for i in e.inputs]
        c = e.prim.cost(ins, tuple(e.out.shape), e.params)
        cv = e.prim.vjp_cost(ins, tuple(e.out.shape), e.params, needs) if on_path[k] else 0
        cj = e.prim.jvp_cost(ins, tuple(e.out.shape), e.params, needs) if e.prim.differentiable \
            else 0
        r = rows.setdefault(e.prim.name, PrimitiveCost(e.prim.name, omega=e.prim.omega))
        r.count += 1
        r.function += c
        r.vjp += cv
        r.jvp += cj
        function, vjp, jvp = function + c, vjp + cv, jvp + cj
    p = sum(int(np.prod(v.shape, dtype=np.int64)) for v in program.invars)
    bound = max((r.omega for r in rows.values() if r.function > 0), default=1.0)
    return CostReport(function=function, backward=function + vjp, forward_pass=function + jvp,
                      forward_full=function + p * jvp, p=p, bound=bound,
                      table=sorted(rows.values(), key=lambda r: -r.function))
