"""Minimize one Haarala-Miettinen-Makela test problem with PyGRANSO; print one JSON line.

Run by the PyGRANSO venv's Python (see ``pygranso_env.py``), never by kinkgrad's: this script
imports only the standard library, torch and pygranso.

    python pygranso_runner.py --problem NAME --n N [--maxit K] [--seed S] [--threads T]

The problems are those of ``shared/problems.md`` (a = x_1..x_{n-1}, b = x_2..x_n), written in
vectorised torch float64 on the CPU. PyGRANSO runs unconstrained with its defaults (full BFGS,
weak Wolfe line search, OSQP for the stationarity QP) apart from ``print_level = 0``,
``maxit`` and ``x0`` (the published starting point). Every call of the objective is counted:
PyGRANSO always asks for the value and the gradient (by autograd) together, so ``nfev`` is the
number of value+gradient evaluations. The last stdout line is a JSON object with ``problem``,
``n``, ``fun`` (best objective value found), ``f_star``, ``gap`` (``fun - f_star``, null where
f* is unknown), ``nfev``, ``seconds`` (wall clock of the solve), ``termination_code``,
``message``, ``iters`` and some extras (``f0``, ``final_f``, ``pygranso_fn_evals``, versions).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import traceback
from collections.abc import Callable

import torch

DTYPE = torch.float64
DEVICE = torch.device("cpu")

# Short texts for soln.termination_code, from PyGRANSO's documentation (help(pygranso)).
MESSAGES = {
    0: "approximate stationarity measure <= opt_tol (converged to tolerances)",
    1: "relative decrease in penalty function <= rel_tol",
    2: "objective target value reached (fvalquit)",
    3: "user requested termination via halt_log_fn",
    4: "max number of iterations reached (maxit)",
    5: "clock/wall time limit exceeded (maxclocktime)",
    6: "line search bracketed a minimizer but failed to satisfy Wolfe conditions at a feasible "
    "point (for unconstrained problems often a sign that a stationary point was reached)",
    7: "line search bracketed a minimizer but failed to satisfy Wolfe conditions at an "
    "infeasible point",
    8: "line search failed to bracket a minimizer (objective may be unbounded below)",
    9: "failed to produce a descent direction",
    10: "no longer in use",
    11: "user-supplied functions threw an error",
    12: "quadprog error forced the steering procedure to be aborted",
    13: "unknown error",
}

PROBLEMS = (
    "maxq",
    "mxhilb",
    "chained-lq",
    "chained-cb3-1",
    "chained-cb3-2",
    "active-faces",
    "brown2",
    "chained-mifflin2",
    "chained-crescent-1",
    "chained-crescent-2",
)

# f* of chained Mifflin 2 (Karmitsa's table); unknown for other n.
MIFFLIN2_FSTAR = {50: -34.795, 200: -140.86, 1000: -706.55}


def _ab(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[:-1], x[1:]


def _alternating(n: int, odd: float, even: float) -> torch.Tensor:
    """x_i = odd for odd 1-based i, even for even i."""
    x = torch.full((n,), even, dtype=DTYPE)
    x[0::2] = odd  # 0-based even positions are 1-based odd indices
    return x


def make_problem(
    name: str, n: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, float | None]:
    """Return (f, x0, f*) for a problem: f maps a float64 vector of length n to a scalar."""
    if n < 2:
        raise ValueError("n must be at least 2")
    idx = torch.arange(1, n + 1, dtype=DTYPE)  # 1-based indices i
    if name == "maxq":

        def f(x: torch.Tensor) -> torch.Tensor:
            return torch.max(x * x)

        x0 = torch.where(idx <= n // 2, idx, -idx)
        fstar: float | None = 0.0
    elif name == "mxhilb":
        hilbert = 1.0 / (idx[:, None] + idx[None, :] - 1.0)

        def f(x: torch.Tensor) -> torch.Tensor:
            return torch.max(torch.abs(hilbert @ x))

        x0 = torch.ones(n, dtype=DTYPE)
        fstar = 0.0
    elif name == "chained-lq":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            lin = -a - b
            return torch.sum(torch.maximum(lin, lin + (a * a + b * b - 1.0)))

        x0 = torch.full((n,), -0.5, dtype=DTYPE)
        fstar = -(n - 1) * math.sqrt(2.0)
    elif name == "chained-cb3-1":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            t1 = a**4 + b * b
            t2 = (2.0 - a) ** 2 + (2.0 - b) ** 2
            t3 = 2.0 * torch.exp(b - a)
            return torch.sum(torch.maximum(torch.maximum(t1, t2), t3))

        x0 = torch.full((n,), 2.0, dtype=DTYPE)
        fstar = 2.0 * (n - 1)
    elif name == "chained-cb3-2":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            s1 = torch.sum(a**4 + b * b)
            s2 = torch.sum((2.0 - a) ** 2 + (2.0 - b) ** 2)
            s3 = torch.sum(2.0 * torch.exp(b - a))
            return torch.max(torch.stack((s1, s2, s3)))

        x0 = torch.full((n,), 2.0, dtype=DTYPE)
        fstar = 2.0 * (n - 1)
    elif name == "active-faces":

        def f(x: torch.Tensor) -> torch.Tensor:
            g_sum = torch.log(torch.abs(-torch.sum(x)) + 1.0)
            g_max = torch.max(torch.log(torch.abs(x) + 1.0))
            return torch.maximum(g_sum, g_max)

        x0 = torch.ones(n, dtype=DTYPE)
        fstar = 0.0
    elif name == "brown2":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            return torch.sum(torch.abs(a) ** (b * b + 1.0) + torch.abs(b) ** (a * a + 1.0))

        x0 = _alternating(n, -1.0, 1.0)
        fstar = 0.0
    elif name == "chained-mifflin2":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            q = a * a + b * b - 1.0
            return torch.sum(-a + 2.0 * q + 1.75 * torch.abs(q))

        x0 = torch.full((n,), -1.0, dtype=DTYPE)
        fstar = MIFFLIN2_FSTAR.get(n)
    elif name == "chained-crescent-1":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            c = a * a + (b - 1.0) ** 2
            return torch.maximum(torch.sum(c + b - 1.0), torch.sum(-c + b + 1.0))

        x0 = _alternating(n, -1.5, 2.0)
        fstar = 0.0
    elif name == "chained-crescent-2":

        def f(x: torch.Tensor) -> torch.Tensor:
            a, b = _ab(x)
            c = a * a + (b - 1.0) ** 2
            return torch.sum(torch.maximum(c + b - 1.0, -c + b + 1.0))

        x0 = _alternating(n, -1.5, 2.0)
        fstar = 0.0
    else:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}")
    return f, x0, fstar


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def solve(name: str, n: int, maxit: int, seed: int, maxclocktime: float | None) -> dict:
    from pygranso.pygranso import pygranso
    from pygranso.pygransoStruct import pygransoStruct

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a PyGRANSO dependency
        pass

    fun, x0, fstar = make_problem(name, n)
    f0 = float(fun(x0))
    counter = {"nfev": 0}

    def comb_fn(x_struct):  # PyGRANSO's combined function: (f, ci, ce)
        counter["nfev"] += 1
        return fun(x_struct.x.reshape(-1)), None, None

    opts = pygransoStruct()
    opts.torch_device = DEVICE
    opts.double_precision = True
    opts.x0 = x0.clone().reshape(n, 1)
    opts.print_level = 0
    opts.maxit = maxit
    if maxclocktime is not None:
        opts.maxclocktime = maxclocktime

    record = {
        "problem": name,
        "n": n,
        "solver": "pygranso",
        "f_star": fstar,
        "f0": f0,
        "maxit": maxit,
        "seed": seed,
        "threads": torch.get_num_threads(),
    }
    t0 = time.perf_counter()
    try:
        soln = pygranso(var_spec={"x": [n, 1]}, combined_fn=comb_fn, user_opts=opts)
    except SystemExit as exc:  # PyGRANSO calls sys.exit() when the user function raises
        record.update(
            seconds=time.perf_counter() - t0,
            nfev=counter["nfev"],
            error=f"pygranso exited (sys.exit({exc.code!r})) after an error in the objective",
        )
        return record
    seconds = time.perf_counter() - t0

    best_f = float(soln.best.f)
    final_f = float(soln.final.f)
    code = int(soln.termination_code)
    record.update(
        fun=best_f,
        gap=_finite_or_none(best_f - fstar) if fstar is not None else None,
        nfev=counter["nfev"],
        seconds=round(seconds, 4),
        termination_code=code,
        message=MESSAGES.get(code, "unknown termination code"),
        iters=int(soln.iters),
        final_f=final_f,
        pygranso_fn_evals=int(soln.fn_evals),
    )
    if hasattr(soln, "error"):
        record["error"] = str(soln.error)[:500]
    return record


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for dist in ("pygranso", "numpy", "osqp"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", required=True, choices=PROBLEMS)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--maxit", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--maxclocktime", type=float, default=None, help="PyGRANSO's time limit (s)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        record = solve(args.problem, args.n, args.maxit, args.seed, args.maxclocktime)
    except Exception as exc:  # reported as JSON: the caller decides
        traceback.print_exc(file=sys.stderr)
        record = {
            "problem": args.problem,
            "n": args.n,
            "solver": "pygranso",
            "error": f"{type(exc).__name__}: {exc}",
        }
    record["versions"] = _versions()
    sys.stdout.flush()
    print(json.dumps(record), flush=True)
    return 0 if "error" not in record else 1


if __name__ == "__main__":
    raise SystemExit(main())
