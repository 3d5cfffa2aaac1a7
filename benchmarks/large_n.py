"""Deciding stationarity at the published minimisers for n = 10^3 .. 10^5.

For each problem of ``kinkgrad.problems`` with a closed-form minimiser (and MaxQ near a tie,
where its minimisers end), one call of ``kinkgrad.stationarity(f, x*, radius=1e-8)`` per n
(after one untimed call at the smallest n), with the number of active switches, the rows
the reverse sweeps seeded and the sweep rows they cost (compressed seeding,
``kinkgrad.modes.sparse_rows``), and the time of one plain ``grad`` for scale. A problem
stops growing once a call takes longer than ``--cap`` seconds. Single-threaded BLAS. Never
asserts on time.

Usage: ``python benchmarks/large_n.py [--n 1000,10000,100000] [--problems a,b] [--cap S]
[--out DIR]``. Run it with ``PYTHONPATH=<another checkout>/src`` to measure that code
(the sweep-row columns then read "-" where it has no compressed seeding).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import kinkgrad  # noqa: E402
from kinkgrad import problems  # noqa: E402

# closed-form minimisers (problems.md); chained LQ's 1/sqrt(2) is rounded, so no switch is
# exactly 0 there and the ball decides
X_STAR = {
    "chained-lq": lambda n: np.full(n, 2 ** -0.5),
    "chained-cb3-1": lambda n: np.ones(n),
    "chained-cb3-2": lambda n: np.ones(n),
    "active-faces": lambda n: np.zeros(n),
    "brown2": lambda n: np.zeros(n),
    "chained-crescent-1": lambda n: np.zeros(n),
    "chained-crescent-2": lambda n: np.zeros(n),
    "maxq": lambda n: np.zeros(n),
    "mxhilb": lambda n: np.zeros(n),
    # not a minimiser: where abs-linear ends on MaxQ (f ~ 1e-15), every item within 1e-3 of
    # the largest, so all n - 1 comparisons are active in the ball: one block of n leaves
    "maxq-near-tie": lambda n: 3e-8 * np.random.default_rng(0).choice([-1.0, 1.0], n) * (
        1 + 1e-3 * np.random.default_rng(1).random(n)),
}
PROBLEM = {"maxq-near-tie": "maxq"}
_DENSE_LIMIT = {"mxhilb": 20_000}  # its Hilbert matrix is n^2 entries


def _sweep_rows() -> dict:
    """Wrap the compressed-seeding entry point (when this checkout has one) to count rows."""
    seen = {"rows": 0, "sweep": 0}
    try:
        from kinkgrad.abs_normal import active, stationarity
        from kinkgrad.modes import sparse_rows
    except ImportError:
        return {}
    real = sparse_rows.reverse_rows

    def counted(*args, **kwargs):
        mats, stats = real(*args, **kwargs)
        seen["rows"] += stats.rows
        seen["sweep"] += stats.sweep_rows
        return mats, stats

    for mod in (active, stationarity):
        if hasattr(mod, "reverse_rows"):
            mod.reverse_rows = counted
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1000,10000,100000")
    ap.add_argument("--problems", default=",".join(X_STAR))
    ap.add_argument("--cap", type=float, default=60.0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.n.split(",")]
    seen = _sweep_rows()
    rows = []
    print(f"{'problem':<20s}{'n':>8s}{'active':>8s}{'rows':>8s}{'swept':>8s}{'grad ms':>9s}"
          f"{'stationarity s':>16s}  verdict")
    for name in args.problems.split(","):
        warm = problems.get(PROBLEM.get(name, name), sizes[0])
        kinkgrad.stationarity(warm.f, X_STAR[name](sizes[0]), radius=1e-8)
        for n in sizes:
            if n > _DENSE_LIMIT.get(name, np.inf):
                break
            p = problems.get(PROBLEM.get(name, name), n)
            x = X_STAR[name](n)
            t0 = time.perf_counter()
            kinkgrad.grad(p.f)(x)
            grad_ms = 1e3 * (time.perf_counter() - t0)
            for k in seen:
                seen[k] = 0
            t0 = time.perf_counter()
            rep = kinkgrad.stationarity(p.f, x, radius=1e-8)
            sec = time.perf_counter() - t0
            row = {"problem": name, "n": n, "active": rep.num_active, "seconds": sec,
                   "grad_ms": grad_ms, "verdict": rep.verdict,
                   "rows": seen.get("rows"), "sweep_rows": seen.get("sweep")}
            rows.append(row)
            swept = "-" if not seen else f"{seen['sweep']:>8d}"
            nrows = "-" if not seen else f"{seen['rows']:>8d}"
            print(f"{name:<20s}{n:>8d}{rep.num_active:>8d}{nrows:>8s}{swept:>8s}"
                  f"{grad_ms:>9.1f}{sec:>16.2f}  {rep.verdict}", flush=True)
            if sec > args.cap:
                break
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "large_n.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
