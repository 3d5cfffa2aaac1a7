"""kinkgrad.minimize on the ten Haarala-Miettinen-Makela problems, side by side with PyGRANSO
(run in this script, in its own virtual environment) and NonOpt's published n = 1000 table.

For every problem, n and method: f - f*, evaluations of f (nfev), gradient-type evaluations
(ngev; an abs-normal form or an in-method stationarity test counts as one, ``cost`` counts it
in gradients), seconds, and the certified verdict at the radius the method ended at. PyGRANSO
1.2.0 needs numpy<2 and gurobipy, so ``benchmarks/peers/pygranso_env.py`` builds
``.venv-pygranso`` on first use and runs each problem there (objective written in torch);
its evaluation counts are counted by a wrapper around the objective.

Usage::

    python benchmarks/optimize.py [--n 50,200,1000] [--methods bundle,abs-linear,...]
        [--problems NAME,...] [--cap SECONDS] [--maxfev K] [--no-pygranso] [--out DIR]

Writes ``optimize.jsonl`` (one JSON object per run), ``optimize.md`` (the tables) and
``optimize.png`` (f - f* against gradient evaluations at the largest n) into ``--out``.
Never asserts on time.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import kinkgrad  # noqa: E402

# NonOpt 2.0 (Curtis and Zebiane), "Gradient" strategy, n = 1000: (f - f*, gradient evals);
# CB3 I and crescent II also have CuttingPlane values (best published, in brackets below).
NONOPT_1000 = {
    "active-faces": (1.2e-10, 387), "brown2": (1.9e-6, 207), "chained-cb3-1": (0.49, 741),
    "chained-cb3-2": (0.0, 143), "chained-crescent-1": (2.8e-8, 142),
    "chained-crescent-2": (8.1e-3, 138), "chained-lq": (3.5e-4, 796),
    "chained-mifflin2": (0.24, 151), "maxq": (9.8e-3, 1996), "mxhilb": (2.0e-6, 642),
}
NONOPT_BEST = {"chained-cb3-1": 1e-3, "chained-crescent-2": 9.5e-6}


def run_kinkgrad(name: str, n: int, method: str, cap: float, maxfev: int | None
                 ) -> dict[str, Any]:
    p = kinkgrad.problems.get(name, n)
    start = time.perf_counter()

    def stop(_: Any) -> bool:  # the time cap, through the documented callback
        return time.perf_counter() - start > cap

    res = kinkgrad.minimize(p.f, p.x0, method=method, maxfev=maxfev, callback=stop)
    gap = None if p.f_star is None else float(res.fun - p.f_star)
    rep = res.stationarity
    return {"tool": "kinkgrad", "problem": name, "n": n, "method": method, "gap": gap,
            "fun": float(res.fun), "nfev": int(res.nfev), "ngev": int(res.ngev),
            "cost": float(res.cost), "seconds": float(res.seconds), "verdict": rep.verdict,
            "radius": float(rep.radius), "distance": float(rep.distance),
            "minimality": None if res.minimality is None else res.minimality.verdict,
            "status": int(res.status), "message": res.message,
            "trace": [res.history["ngev"], [h - (p.f_star or 0.0) for h in res.history["fun"]]]}


def run_pygranso_row(name: str, n: int, cap: float) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from peers.pygranso_env import run_pygranso

    r = run_pygranso(name, n, timeout=cap + 60)
    if "error" in r:
        return {"tool": "PyGRANSO", "problem": name, "n": n, "method": "pygranso",
                "error": r["error"]}
    return {"tool": "PyGRANSO", "problem": name, "n": n, "method": "pygranso",
            "gap": r.get("gap"), "fun": r.get("fun"), "nfev": r.get("nfev"),
            "ngev": r.get("nfev"), "seconds": r.get("seconds"),
            "verdict": f"code {r.get('termination_code')}", "status": r.get("termination_code"),
            "message": r.get("message", "")}


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2e}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3g}"
    return str(v)


def tables(rows: list[dict]) -> str:
    out = []
    for n in sorted({r["n"] for r in rows}):
        out.append(f"\n### n = {n}\n")
        out.append("| problem | method | f - f* | nfev | ngev | cost | s | verdict |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in [r for r in rows if r["n"] == n]:
            if "error" in r:
                out.append(f"| {r['problem']} | {r['method']} | error: {r['error'][:60]} "
                           "| | | | | |")
                continue
            out.append(f"| {r['problem']} | {r['method']} | {fmt(r['gap'])} | {r['nfev']} | "
                       f"{r['ngev']} | {fmt(r.get('cost'))} | {fmt(r['seconds'])} | "
                       f"{r['verdict']} |")
        if n == 1000:
            out.append("\nNonOpt (published, n = 1000): " + ", ".join(
                f"{k} {v[0]:g} / {v[1]}" for k, v in NONOPT_1000.items()))
    return "\n".join(out)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(r["n"] for r in rows)
    names = sorted({r["problem"] for r in rows if r["n"] == n})
    cols = 5
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(16, 6.5),
                             squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        for r in rows:
            if r["n"] == n and r["problem"] == name and "trace" in r:
                g, f = r["trace"]
                ax.semilogy(g, [max(v, 1e-16) for v in f], label=r["method"])
        if name in NONOPT_1000 and n == 1000:
            gap, ev = NONOPT_1000[name]
            ax.plot([ev], [max(gap, 1e-16)], "k*", label="NonOpt (published)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("gradient evaluations", fontsize=8)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"f - f* against gradient evaluations, n = {n}")
    fig.tight_layout()
    fig.savefig(out / "optimize.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="50,200,1000")
    ap.add_argument("--methods", default="bundle,abs-linear,gradient-sampling")
    ap.add_argument("--problems", default=",".join(kinkgrad.problems.NAMES))
    ap.add_argument("--cap", default=300.0, type=float, help="seconds per run")
    ap.add_argument("--maxfev", default=None, type=int)
    ap.add_argument("--no-pygranso", action="store_true")
    ap.add_argument("--out", default="benchmarks/out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    log = (args.out / "optimize.jsonl").open("a")
    for n in [int(v) for v in args.n.split(",")]:
        for name in args.problems.split(","):
            for method in args.methods.split(","):
                row = run_kinkgrad(name, n, method, args.cap, args.maxfev)
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"{name:20s} n={n:5d} {method:18s} gap {fmt(row['gap']):>9s} nfev "
                      f"{row['nfev']:7d} ngev {row['ngev']:7d} {row['seconds']:7.1f}s "
                      f"{row['verdict']}"
                      + (f" ({row['minimality']})" if row.get("minimality") else ""),
                      flush=True)
            if not args.no_pygranso:
                row = run_pygranso_row(name, n, args.cap)
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                print(f"{name:20s} n={n:5d} PyGRANSO           {row}", flush=True)
    text = tables(rows)
    (args.out / "optimize.md").write_text(text + "\n")
    print(text)
    plot(rows, args.out)


if __name__ == "__main__":
    main()
