"""The cost model of paper A (Bolte, Boustany, Pauwels, Pesquet-Popescu, arXiv 2206.01730).

Every primitive has a cost (arithmetic operations counted from shapes: one per output entry
for elementwise ops, 2 m k n for an (m, k) @ (k, n) product), a VJP cost and a JVP cost
(see ``_core/primitive.py``). The cost of a program is the sum over its nodes. Then

* ``backward`` = function + sum of VJP costs: the cost of value and gradient by backward mode;
* ``forward_full`` = function + p * (sum of JVP costs): the full gradient by forward mode with
  p directional passes (p = input dimension);
* ``bound`` = max of the declared per-primitive omega: (cost + vjp_cost) <= omega * cost for
  each primitive, hence backward <= bound * function for every program over those
  primitives (the nonsmooth cheap gradient principle), independently of p.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._core.cost import CostReport, PrimitiveCost, program_cost
from ._core.program import Program
from .backends import on_numpy
from .errors import KinkgradError
from .modes.api import trace

__all__ = ["cost", "program_cost", "CostReport", "PrimitiveCost"]


@on_numpy
def cost(f: Callable | Program, *args: Any, argnums: Any = None) -> CostReport:
    """Cost-model report of ``f`` at ``args``: function, backward, forward-mode full gradient,
    their ratios and the model's bound omega (paper A's nonsmooth cheap gradient principle).

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> W = np.ones((4, 3))
        >>> r = kinkgrad.cost(lambda x: knp.sum(knp.relu(W @ x)), np.ones(3))
        >>> r.function, r.backward <= r.bound * r.function
        (32, True)
    """
    if isinstance(f, Program):
        if args:  # NOTE: its cost is that of the shapes it was traced at (arguments of other
            f._check_inputs(f.flat_inputs(args))  # shapes were ignored): a ShapeError
        return program_cost(f)
    if not callable(f):
        raise KinkgradError(f"cost: f must be a function or a kinkgrad Program, got "
                            f"{type(f).__name__}; pass the function first: "
                            "kinkgrad.cost(f, *args).")
    return program_cost(trace(f, *args, argnums=argnums))
