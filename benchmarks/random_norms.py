"""``kinkgrad.minimize`` on random convex programs with Euclidean norms, against Clarabel:
certified verdicts per method, f - f*, and the soundness check that no certified point lies
above the minimum.

Each instance (one per seed; n 10..39, q 5..29 groups of d = 2 or 3 rows, m n/2..2n):

    f(x) = 1/2 ||A x - b||^2 + sum_k lam_k ||B_k x + c_k||,

B_k reading one to three coordinates (sparse rows), half the offsets c_k zero, and the last
group's rows the sum of the first two's (dependent rows, as total variation's). x0 is 0
for every third seed (every group with c_k = 0 at its kink), else Gaussian. f* comes from
Clarabel on the conic reformulation (t_k >= ||B_k x + c_k||, tolerances 1e-12). f is
convex, so a certified point must be a minimiser: a "stationary" verdict with f - f* above
1e-6 (1 + |f*|) would be a wrong verdict, and is counted.

With ``--kinks`` every instance also has other kinks: an l1 term sum_i mu_i |E_i x + e_i|
(half of its rows single coordinates, as a sparse group lasso's) and hinge terms sum_j
max(0, h_j . x + a_j), each reading coordinates the norms read too (Clarabel: a cone of
R^2 per l1 row, two nonnegative rows per hinge).

Usage: ``python benchmarks/random_norms.py [--seeds 30] [--kinks] [--out DIR]``. Prints a
table per method, writes ``random_norms[_kinks].md`` and ``.jsonl`` to DIR. Never asserts
on time.
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

METHODS = ("bundle", "abs-linear", "gradient-sampling")


def instance(seed: int, kinks: bool = False) -> tuple[Callable, np.ndarray, float]:
    """(f, x0, f*) of one random instance (module docstring)."""
    import clarabel
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n, q, d = int(rng.integers(10, 40)), int(rng.integers(5, 30)), int(rng.integers(2, 4))
    m = int(rng.integers(n // 2, 2 * n))
    A, b = rng.standard_normal((m, n)) / np.sqrt(m), rng.standard_normal(m)
    B = np.zeros((q, d, n))
    for k in range(q):
        cols = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
        B[k][:, cols] = rng.standard_normal((d, cols.size))
    B[q - 1] = B[0] + B[1]
    c = np.where(rng.random((q, d)) < 0.5, 0.0, 0.1 * rng.standard_normal((q, d)))
    lam = rng.uniform(0.05, 0.6, q)
    Bm = B.reshape(q * d, n)
    p, h = (int(rng.integers(n // 2, n + 1)), int(rng.integers(1, 6))) if kinks else (0, 0)
    E = np.zeros((p, n))
    E[np.arange(p), rng.choice(n, p, replace=False)] = 1.0  # l1 of coordinates ...
    E[p // 2:] += (rng.random((p - p // 2, n)) < 2.0 / n) * rng.standard_normal(
        (p - p // 2, n))  # ... and of sparse combinations
    e = np.where(rng.random(p) < 0.5, 0.0, 0.1 * rng.standard_normal(p))
    mu = rng.uniform(0.05, 0.4, p)
    Hh, a = rng.standard_normal((h, n)) / np.sqrt(n), rng.standard_normal(h)

    def f(x: object) -> object:
        r = A @ x - b
        W = knp.reshape(Bm @ x, (q, d)) + c
        out = 0.5 * knp.sum(r * r) + knp.sum(lam * knp.linalg.norm(W, axis=1))
        if kinks:
            out = out + knp.sum(mu * knp.abs(E @ x + e)) + knp.sum(
                knp.maximum(Hh @ x + a, 0.0))
        return out

    # variables (x, t, s, u): t_k >= ||B_k x + c_k||, s_i >= |E_i x + e_i|, u_j >= hinge j
    nv = n + q + p + h
    P = sp.block_diag([sp.csc_matrix(A.T @ A), sp.csc_matrix((q + p + h, q + p + h))],
                      format="csc")
    hinge = np.zeros((2 * h, nv))  # s = b - A z >= 0: u_j and u_j - h_j . x - a_j
    hinge[np.arange(h), n + q + p + np.arange(h)] = -1.0
    hinge[h + np.arange(h), n + q + p + np.arange(h)] = -1.0
    hinge[h:, :n] = Hh
    rows = np.zeros((q, 1 + d, nv))
    rows[np.arange(q), 0, n + np.arange(q)] = -1.0  # s = (t_k, B_k x + c_k)
    rows[:, 1:, :n] = -B
    l1 = np.zeros((p, 2, nv))
    l1[np.arange(p), 0, n + q + np.arange(p)] = -1.0  # s = (s_i, E_i x + e_i)
    l1[:, 1, :n] = -E
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-12
    cones = ([clarabel.NonnegativeConeT(2 * h)] if h else []) + \
        [clarabel.SecondOrderConeT(1 + d)] * q + [clarabel.SecondOrderConeT(2)] * p
    sol = clarabel.DefaultSolver(
        P, np.r_[-A.T @ b, lam, mu, np.ones(h)],
        sp.csc_matrix(np.vstack([hinge, rows.reshape(q * (1 + d), nv), l1.reshape(2 * p, nv)])),
        np.r_[np.zeros(h), -a, np.hstack([np.zeros((q, 1)), c]).ravel(),
              np.c_[np.zeros(p), e].ravel()], cones, st).solve()
    x0 = np.zeros(n) if seed % 3 == 0 else rng.standard_normal(n)
    return f, x0, float(f(np.asarray(sol.x[:n])))


def run(seeds: int, kinks: bool = False) -> list[dict]:
    rows = []
    for seed in range(seeds):
        f, x0, f_star = instance(seed, kinks)
        for method in METHODS:
            t0 = time.perf_counter()
            res = kinkgrad.minimize(f, x0, method=method,
                                    maxiter=300 if method == "gradient-sampling" else None)
            rep, gap = res.stationarity, float(res.fun - f_star)
            wrong = rep.verdict == "stationary" and gap > 1e-6 * (1.0 + abs(f_star))
            rows.append({"seed": seed, "n": int(x0.size), "method": method,
                         "verdict": rep.verdict, "gap": gap, "wrong": bool(wrong),
                         "ngev": int(res.ngev), "seconds": time.perf_counter() - t0})
            print(f"seed {seed:2d} n={x0.size:2d} {method:17s} {rep.verdict:15s} "
                  f"f - f* {gap:.1e}{'  WRONG' if wrong else ''}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | certified | wrong verdicts | median f - f* | max f - f* | median s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for method in METHODS:
        sel = [r for r in rows if r["method"] == method]
        gaps = [r["gap"] for r in sel]
        lines.append(f"| {method} | {sum(r['verdict'] == 'stationary' for r in sel)} of "
                     f"{len(sel)} | {sum(r['wrong'] for r in sel)} | {np.median(gaps):.1e} | "
                     f"{max(gaps):.1e} | {np.median([r['seconds'] for r in sel]):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--kinks", action="store_true", help="l1 and hinge terms too")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    rows = run(args.seeds, args.kinks)
    text = table(rows)
    print("\n" + text)
    write_outputs(args.out, "random_norms_kinks" if args.kinks else "random_norms", text, rows)


if __name__ == "__main__":
    main()
