"""Minimizing a top-k loss written with ``knp.sort``, against its LP optimum.

f(x) = the sum of the k largest |A x - b|_i (A m x n Gaussian, b Gaussian), the robust
regression loss of "the k worst residuals". It is convex and piecewise linear, and its
minimum is an LP (HiGHS): the sum of the k largest of e >= |A x - b| is
min_t k t + sum_i max(e_i - t, 0). In kinkgrad it is one ``knp.sort``: the abs-normal form
holds the odd-even network's m(m - 1)/2 comparators, m levels deep, and at the minimizer
several |r_i| tie at the k-th largest value, within the rounding of the iterates.

For each m: ``kinkgrad.minimize`` with ``"abs-linear"`` and ``"bundle"``, f - f* against the
LP, gradient-type evaluations, seconds and the certified verdict.

Usage: ``python benchmarks/top_k.py [--m 20,30,50] [--k 8] [--n 5]``. Never asserts on time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp


def problem(m: int, n: int = 5, k: int = 8, seed: int = 0
            ) -> tuple[Callable, np.ndarray, np.ndarray]:
    """(f, A, b) of the top-k loss with Gaussian data."""
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((m, n)), rng.standard_normal(m)

    def f(x: object) -> object:
        return knp.sum(knp.sort(knp.abs(A @ x - b))[-k:])

    return f, A, b


def top_k_lp(A: np.ndarray, b: np.ndarray, k: int) -> float:
    """min over x of the sum of the k largest |A x - b|_i, as an LP (HiGHS)."""
    from scipy.optimize import linprog

    m, n = A.shape
    N = n + 1 + 2 * m  # x, t, e, s
    c = np.zeros(N)
    c[n], c[n + 1 + m:] = k, 1.0
    rows, rhs = [], []
    for i in range(m):
        for sgn in (1.0, -1.0):  # sgn (A x - b)_i <= e_i
            r = np.zeros(N)
            r[:n], r[n + 1 + i] = sgn * A[i], -1.0
            rows.append(r)
            rhs.append(sgn * b[i])
        r = np.zeros(N)  # e_i - t <= s_i
        r[n], r[n + 1 + i], r[n + 1 + m + i] = -1.0, 1.0, -1.0
        rows.append(r)
        rhs.append(0.0)
    res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs),
                  bounds=[(None, None)] * (n + 1) + [(0, None)] * (2 * m), method="highs")
    return float(res.fun)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", default="20,30,50", help="numbers of residuals")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args(argv)
    print("| m | method | f - f* (LP) | ngev | seconds | verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m in (int(v) for v in args.m.split(",")):
        f, A, b = problem(m, args.n, args.k)
        f_star = top_k_lp(A, b, args.k)
        for method in ("abs-linear", "bundle"):
            t0 = time.perf_counter()
            res = kinkgrad.minimize(f, np.zeros(args.n), method=method)
            print(f"| {m} | {method} | {res.fun - f_star:.2e} | {res.ngev} | "
                  f"{time.perf_counter() - t0:.1f} | {res.stationarity.verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
