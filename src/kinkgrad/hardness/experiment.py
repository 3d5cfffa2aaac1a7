"""Scaling experiment: one subgradient is cheap, two are NP-hard.

On random 3-SAT formulas near the satisfiability threshold (``m ~ 4.26 n`` clauses) the
reduction network ``F`` of :func:`network_from_cnf` is built and the question "two distinct
Clarke subgradients at 0?" is answered three ways: by a SAT solver on the formula (which is
equivalent, by the reduction), by the exact MILP and by exact enumeration of limiting gradients.
The rows also record whether the three answers agree. :func:`time_numpy_gradient` times one
forward pass and one backward product (a single conservative gradient) on the same networks:
it grows linearly with the network size.

Defaults are the quick configuration (seconds); :data:`FULL_N_VALUES` with ``trials=3`` is the
full one (about 3 minutes on one core, dominated by the MILP at the largest ``n``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .cnf import CNF, pysat_solve, random_ksat
from .decide import decide_by_enumeration
from .milp import decide_by_milp
from .network import LinearReLUNetwork
from .reduction import network_from_cnf

__all__ = [
    "FULL_N_VALUES",
    "QUICK_N_VALUES",
    "format_table",
    "run_scaling",
    "time_numpy_gradient",
]

QUICK_N_VALUES: tuple[int, ...] = (2, 3)
FULL_N_VALUES: tuple[int, ...] = (3, 4, 5, 6, 7)


def _progress(items: Sequence[Any], enabled: bool, desc: str) -> Iterable[Any]:
    from .._progress import bar  # nested in reproduce's bar: silent in a log

    return bar(items, desc=desc, leave=False, enabled=enabled)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _instances(
    n_values: Sequence[int], ratio: float, trials: int, seed: int
) -> list[tuple[int, int, CNF]]:
    out = []
    for n in n_values:
        m = max(1, int(round(ratio * n)))
        for t in range(trials):
            out.append((n, t, random_ksat(n, m, k=min(3, n), seed=seed + 1000 * n + t)))
    return out


def run_scaling(
    n_values: Sequence[int] = QUICK_N_VALUES,
    ratio: float = 4.26,
    trials: int = 3,
    seed: int = 0,
    enumeration_max_n: int = 4,
    milp_time_limit: float | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Time the SAT solver, the MILP and the enumeration on random 3-SAT reduction networks.

    Args:
        n_values: Numbers of variables.
        ratio: Clauses per variable (4.26 is the 3-SAT phase transition).
        trials: Formulas per ``n``.
        seed: Base seed (formula ``t`` at ``n`` uses ``seed + 1000 n + t``).
        enumeration_max_n: Skip the (exponential) enumeration above this ``n``.
        milp_time_limit: Optional HiGHS time limit per MILP in seconds.
        progress: Show a tqdm progress bar when tqdm is installed.

    Returns:
        One dict per formula with keys ``n, m, trial, n_neurons, depth, sat, t_sat, milp,
        t_milp, enum, t_enum, agree`` (``enum``/``t_enum`` are None when skipped).
    """
    rows = []
    for n, t, cnf in _progress(_instances(n_values, ratio, trials, seed), progress, "scaling"):
        net = network_from_cnf(cnf)
        sat, t_sat = _timed(lambda cnf=cnf: pysat_solve(cnf).satisfiable)
        milp_ans, t_milp = _timed(
            lambda net=net: decide_by_milp(net, time_limit=milp_time_limit)[0]
        )
        enum_ans: bool | None = None
        t_enum: float | None = None
        if n <= enumeration_max_n:
            enum_ans, t_enum = _timed(lambda net=net: decide_by_enumeration(net)[0])
        answers = [a for a in (sat, milp_ans, enum_ans) if a is not None]
        rows.append(
            {
                "n": n,
                "m": cnf.n_clauses,
                "trial": t,
                "n_neurons": net.n_neurons,
                "depth": net.depth,
                "sat": sat,
                "t_sat": t_sat,
                "milp": milp_ans,
                "t_milp": t_milp,
                "enum": enum_ans,
                "t_enum": t_enum,
                "agree": len(set(answers)) == 1,
            }
        )
    return rows


def time_numpy_gradient(
    n_values: Sequence[int] = QUICK_N_VALUES,
    ratio: float = 4.26,
    trials: int = 2,
    seed: int = 0,
    repeats: int = 50,
) -> list[dict[str, Any]]:
    """Time one forward pass and one backward product (numpy) on the same reduction networks.

    Returns:
        One dict per formula: ``n, m, trial, n_neurons, t_forward, t_gradient, ratio``, times
        being the median over ``repeats`` calls at a random point and ``ratio`` their quotient.
    """
    rows = []
    rng = np.random.default_rng(seed)
    for n, t, cnf in _instances(n_values, ratio, trials, seed):
        net: LinearReLUNetwork = network_from_cnf(cnf)
        x = rng.standard_normal(n)
        fwd, grad = [], []
        for _ in range(repeats):
            fwd.append(_timed(lambda net=net, x=x: net(x))[1])
            grad.append(_timed(lambda net=net, x=x: net.gradient(x))[1])
        t_f, t_g = float(np.median(fwd)), float(np.median(grad))
        rows.append(
            {
                "n": n,
                "m": cnf.n_clauses,
                "trial": t,
                "n_neurons": net.n_neurons,
                "t_forward": t_f,
                "t_gradient": t_g,
                "ratio": t_g / t_f if t_f > 0 else float("nan"),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as a fixed-width text table (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(rows[0])

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
