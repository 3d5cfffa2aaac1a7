"""``kinkgrad minimize``: minimize a published test problem and print the certified verdict.

Usage::

    kinkgrad minimize --problem NAME --n N [--method M] [--tol T] [--maxiter K]
                      [--maxfev K] [--seed S] [--json]

With ``--json`` the last line of the output is one JSON object with the keys ``problem``,
``n``, ``method``, ``fun``, ``f_star``, ``gap``, ``nit``, ``nfev``, ``ngev``, ``seconds``,
``verdict``, ``distance`` and ``radius`` (plus ``minimality``: the first-order minimality
verdict at a certified end point or null, ``cost``, ``status``, ``message``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "run_problem"]


def run_problem(problem: str, n: int, method: str = "bundle", tol: float = 1e-8,
                maxiter: int | None = None, maxfev: int | None = None, seed: int = 0,
                progress: bool | str = False) -> dict[str, Any]:
    """Minimize ``kinkgrad.problems.get(problem, n)`` from its published x0; one result row."""
    from .. import problems
    from .api import minimize

    p = problems.get(problem, n)
    res = minimize(p.f, p.x0, method=method, tol=tol, maxiter=maxiter, maxfev=maxfev,
                   seed=seed, progress=progress)
    rep = res.stationarity
    gap = None if p.f_star is None else float(res.fun - p.f_star)
    dist = rep.distance if math.isfinite(rep.distance) else None
    return {"problem": p.name, "n": n, "method": method, "fun": float(res.fun),
            "f_star": p.f_star, "gap": gap, "nit": int(res.nit), "nfev": int(res.nfev),
            "ngev": int(res.ngev), "seconds": round(float(res.seconds), 3),
            "verdict": rep.verdict, "distance": dist, "radius": float(rep.radius),
            "minimality": None if res.minimality is None else res.minimality.verdict,
            "cost": float(res.cost), "status": int(res.status), "message": res.message,
            "history": res.history}


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    from .. import problems
    from .api import METHODS

    parser = argparse.ArgumentParser(
        prog="kinkgrad minimize",
        description="Minimize one of the Haarala-Miettinen-Makela test problems from its "
                    "published starting point and certify the result with "
                    "kinkgrad.stationarity.")
    parser.add_argument("--problem", required=True, choices=list(problems.NAMES),
                        help="test problem (kinkgrad.problems)")
    parser.add_argument("--n", required=True, type=int, help="dimension")
    parser.add_argument("--method", default="bundle", choices=list(METHODS),
                        help="method (default: %(default)s)")
    parser.add_argument("--tol", default=1e-8, type=float,
                        help="stationarity tolerance (default: %(default)g)")
    parser.add_argument("--maxiter", default=None, type=int,
                        help="most iterations (default: the method's)")
    parser.add_argument("--maxfev", default=None, type=int,
                        help="most evaluations of f (default: no limit)")
    parser.add_argument("--seed", default=0, type=int, help="random seed (default: 0)")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line holding the result")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kinkgrad minimize``; 0 when the verdict is "stationary", else 1."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    from ..errors import KinkgradError

    try:
        row = run_problem(args.problem, args.n, args.method, args.tol, args.maxiter,
                          args.maxfev, args.seed, progress="auto")
    except KinkgradError as exc:
        print(f"kinkgrad minimize: {exc}", file=sys.stderr)
        return 2
    row.pop("history")
    gap = "unknown" if row["gap"] is None else f"{row['gap']:.3e}"
    print(f"{row['problem']} n={row['n']} method={row['method']}: f = {row['fun']:.12g} "
          f"(f* {row['f_star']}, gap {gap}), {row['nit']} iterations, {row['nfev']} f and "
          f"{row['ngev']} gradient-type evaluations, {row['seconds']:.2f} s")
    print(f"verdict at radius {row['radius']:.3g}: {row['verdict']} (distance "
          f"{row['distance'] if row['distance'] is None else format(row['distance'], '.3e')})"
          + ("" if row["minimality"] is None else f"; first-order: {row['minimality']}"))
    if args.json:
        print(json.dumps(row))
    return 0 if row["verdict"] == "stationary" else 1
