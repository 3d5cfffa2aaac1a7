"""``kinkgrad hardness FILE.cnf``: decide "two Clarke subgradients at 0?" for a user's formula.

Builds the linear ReLU network of :func:`~kinkgrad.hardness.network_from_cnf` from a DIMACS
file, answers with the exact procedures (MILP with HiGHS, enumeration of limiting gradients),
cross-checks with a SAT solver, and shows that one conservative gradient (``kinkgrad.grad``)
and one Clarke gradient (``kinkgrad.clarke_grad``) at 0 stay cheap.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .cnf import parse_dimacs, pysat_solve
from .conservative import autodiff_conservative_set_is_singleton
from .enumeration import limiting_gradients_at_zero
from .milp import decide_by_milp
from .reduction import network_from_cnf


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(  # a plain description: --help prints no reST markup
        prog="kinkgrad hardness", description='Decide "two Clarke subgradients at 0?" for the '
        "linear ReLU network of a DIMACS CNF formula (MILP, enumeration, SAT cross-check).")
    ap.add_argument("cnf", help="a DIMACS CNF file")
    ap.add_argument("--method", choices=["milp", "enumeration", "both"], default="milp",
                    help="exact procedure(s) on the network (default: milp)")
    ap.add_argument("--limit", type=int, default=100_000,
                    help="LP budget of the enumeration (it stops with a partial answer)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = ap.parse_args(argv)

    import kinkgrad

    try:
        cnf = parse_dimacs(args.cnf)
    except (ValueError, OSError) as exc:  # a missing, unreadable or malformed file
        ap.error(str(exc))
    net = network_from_cnf(cnf)
    row: dict[str, Any] = {"n_vars": cnf.n_vars, "n_clauses": len(cnf.clauses),
                           "neurons": net.n_neurons, "depth": net.depth}
    try:
        sat, row["sat_seconds"] = _timed(lambda: pysat_solve(cnf).satisfiable)
        row["sat_solver"] = bool(sat)
    except ImportError as exc:
        row["sat_solver"] = f"unavailable ({exc})"
    if args.method in ("milp", "both"):
        (ans, _), row["milp_seconds"] = _timed(lambda: decide_by_milp(net))
        row["milp"] = bool(ans)
    if args.method in ("enumeration", "both"):
        res, row["enumeration_seconds"] = _timed(
            lambda: limiting_gradients_at_zero(net, limit=args.limit))
        row["limiting_gradients"] = len(res.gradients)
        row["enumeration"] = len(res.gradients) >= 2 if res.complete else "incomplete"
    f = net.as_traced_function()
    x0 = np.zeros(net.n_inputs)
    _, row["grad_seconds"] = _timed(lambda: kinkgrad.grad(f)(x0))
    (g, _), row["clarke_grad_seconds"] = _timed(lambda: kinkgrad.clarke_grad(f, x0, seed=0))
    row["clarke_grad_at_0"] = g.tolist()
    row["autodiff_set_singleton"] = bool(autodiff_conservative_set_is_singleton(net)[0])
    answers = {row.get(k) for k in ("sat_solver", "milp", "enumeration") if isinstance(
        row.get(k), bool)}
    row["agree"] = len(answers) == 1

    print(f"formula: {cnf.n_vars} variables, {len(cnf.clauses)} clauses -> linear ReLU network "
          f"with {net.n_neurons} neurons, depth {net.depth}, weights in {{-1, 0, 1}}")
    labels = {"sat_solver": "SAT solver: formula satisfiable",
              "milp": "MILP: two Clarke subgradients at 0",
              "enumeration": "enumeration: two Clarke subgradients at 0"}
    for key, label in labels.items():
        if key in row:
            secs = row.get(f"{key}_seconds", row.get("sat_seconds"))
            timing = f"({secs:.4f} s)" if isinstance(secs, float) else ""
            print(f"  {label:<44s} {row[key]!s:<6s} {timing}")
    print(f"  one conservative gradient (grad): {row['grad_seconds']:.4f} s; one Clarke gradient "
          f"(clarke_grad): {row['clarke_grad_seconds']:.4f} s")
    print(f"  AD's conservative set D^a_F(0) is a singleton: {row['autodiff_set_singleton']} "
          "(AD alone cannot decide)")
    print(f"  answers agree: {row['agree']}")
    if args.json:
        print(json.dumps(row))
    return 0 if row["agree"] else 1
