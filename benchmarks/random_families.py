"""``kinkgrad.minimize`` on random problems of four families, where each method is strong
or weak: certified verdicts per family, and f - f* where a QP gives f*.

Families (n between 2 and 29, one random instance per seed):

* ``max-affine + quad (ill)``: max_i (a_i . x + c_i) + 1/2 ||Q x||^2 with Q Gaussian / sqrt(n)
  (cond(Q^T Q) ~ 1e2 .. 1e5); f* from the QP min t + 1/2 ||Q x||^2 s.t. A x + c <= t (PIQP).
* ``max-affine + quad (well)``: the same with Q = I + 0.1 Gaussian / sqrt(n) (cond ~ 2).
* ``l1 + ridge``: sum_i |a_i . x - c_i| + 0.1 ||x||^2 (convex, kinks at the solution).
* ``max(u, -u^2)``: sum_i max(a_i . x, -(a_i . x)^2) + ||x||^2 (not convex).

The first family shows what successive abs-linear minimisation lacked before its learnt
metric: a model first order in the smooth part (q/2 ||dx||^2 with q above the curvature)
converges at a rate about 1 - mu/L on an ill-conditioned quadratic, and the bundle method's
finishing steps inherit that; the second, the same kinks with a well-conditioned quadratic,
is the control. ``--metric none`` runs abs-linear without the metric (B = 0).

Usage: ``python benchmarks/random_families.py [--seeds 10] [--maxiter 2000] [--metric M]
[--out DIR]``.
Prints a table of verdicts per family and method, writes ``random_families.md``,
``.jsonl`` and ``.png`` to DIR. Never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp
from _out import write_outputs

FAMILIES = ("max-affine + quad (ill)", "max-affine + quad (well)", "l1 + ridge", "max(u, -u^2)")
METHODS = ("bundle", "abs-linear")


def instance(family: str, seed: int) -> tuple[Callable, np.ndarray, float | None]:
    """(f, x0, f* or None) of one random instance."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(2, 30)), int(rng.integers(2, 6))
    A, c = rng.standard_normal((k, n)), rng.standard_normal(k)
    x0 = rng.standard_normal(n)
    if family.startswith("max-affine"):
        G = rng.standard_normal((n, n)) / np.sqrt(n)
        Q = G if family.endswith("(ill)") else np.eye(n) + 0.1 * G

        def f(x: object) -> object:
            return knp.max(A @ x + c) + 0.5 * knp.sum((Q @ x) ** 2)

        return f, x0, max_affine_quad_star(A, c, Q)
    if family == "l1 + ridge":
        return (lambda x: knp.sum(knp.abs(A @ x - c)) + 0.1 * knp.sum(x * x)), x0, None
    return (lambda x: knp.sum(knp.maximum(A @ x, -(A @ x) ** 2)) + knp.sum(x * x)), x0, None


def max_affine_quad_star(A: np.ndarray, c: np.ndarray, Q: np.ndarray) -> float:
    """min over x of max_i (A x + c)_i + 1/2 ||Q x||^2, as the QP in (x, t) (PIQP)."""
    import piqp

    k, n = A.shape
    P = np.zeros((n + 1, n + 1))
    P[:n, :n] = Q.T @ Q
    cost = np.zeros(n + 1)
    cost[n] = 1.0
    G = np.hstack([A, -np.ones((k, 1))])  # A x - t <= -c
    solver = piqp.DenseSolver()
    solver.settings.eps_abs = solver.settings.eps_rel = 1e-12
    solver.settings.verbose = False
    solver.setup(np.asfortranarray(P), cost, None, None, np.asfortranarray(G), None, -c,
                 None, None)  # h_l none, h_u = -c
    solver.solve()
    x = np.asarray(solver.result.x)[:n]
    return float(np.max(A @ x + c) + 0.5 * np.sum((Q @ x) ** 2))  # f at the QP's minimiser


def run(seeds: int, maxiter: int, metric: str = "bfgs") -> list[dict]:
    rows = []
    for family in FAMILIES:
        for seed in range(seeds):
            f, x0, f_star = instance(family, seed)
            for method in METHODS:
                t0 = time.perf_counter()
                opts = {"metric": metric} if method == "abs-linear" else {}
                res = kinkgrad.minimize(f, x0, method=method, maxiter=maxiter, options=opts)
                rep = res.stationarity
                rows.append({"family": family, "seed": seed, "n": int(x0.size),
                             "method": method, "verdict": rep.verdict,
                             "distance": float(rep.distance), "fun": float(res.fun),
                             "gap": None if f_star is None else float(res.fun - f_star),
                             "ngev": int(res.ngev), "seconds": time.perf_counter() - t0})
                print(f"{family:26s} seed {seed:2d} n={x0.size:2d} {method:10s} "
                      f"{rep.verdict:15s} distance {rep.distance:.2e}"
                      + ("" if f_star is None else f"  f - f* {res.fun - f_star:.2e}"),
                      flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| family | method | certified | median distance | median f - f* | median s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for family in FAMILIES:
        for method in METHODS:
            sel = [r for r in rows if r["family"] == family and r["method"] == method]
            ok = sum(r["verdict"] == "stationary" for r in sel)
            gaps = [r["gap"] for r in sel if r["gap"] is not None]
            gap = f"{np.median(gaps):.1e}" if gaps else "-"
            lines.append(f"| {family} | {method} | {ok} of {len(sel)} | "
                         f"{np.median([r['distance'] for r in sel]):.1e} | {gap} | "
                         f"{np.median([r['seconds'] for r in sel]):.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.38
    for j, method in enumerate(METHODS):
        frac = [np.mean([r["verdict"] == "stationary" for r in rows
                         if r["family"] == fam and r["method"] == method]) for fam in FAMILIES]
        ax.bar(np.arange(len(FAMILIES)) + (j - 0.5) * width, frac, width, label=method)
    ax.set_xticks(np.arange(len(FAMILIES)), FAMILIES, fontsize=8)
    ax.set_ylabel("certified stationary")
    ax.set_ylim(0, 1.05)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--maxiter", type=int, default=2000)
    ap.add_argument("--metric", default="bfgs", choices=("bfgs", "none"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    rows = run(args.seeds, args.maxiter, args.metric)
    text = table(rows)
    print("\n" + text)
    write_outputs(args.out, "random_families", text, rows)
    plot(rows, os.path.join(args.out, "random_families.png"))


if __name__ == "__main__":
    main()
