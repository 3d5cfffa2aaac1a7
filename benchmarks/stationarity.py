"""Cost of deciding stationarity and of certificates, against n and the number of kinks.

Six tables (each drawn in ``--out/stationarity.png``), every row side by side with plain
``grad`` (and ``clarke_grad``) on the same program, with the peak memory of each call
(tracemalloc, which sees NumPy's buffers):

1. chained LQ at its rounded minimiser (x_i = 1/sqrt(2): no switch exactly 0, all n - 1 of
   them within the ball), ``stationarity(radius=1e-6)``, n = 10^2 .. 10^4;
2. MaxQ (f = max x_i^2, n = 1000) with t tied maximisers: ``stationarity`` and
   ``in_clarke`` (one k-way max block with t candidates instead of 2^(t-1) signatures);
3. a ReLU MLP loss over a batch with all-zero rows and zero biases (the certify issue's
   case: H = 256 hidden units, 64 inputs; m = zero rows x H active kinks up to ~10^5):
   ``certify`` and ``stationarity``, with a time cap per call;
4. w . sort(x) on a row of 50 with a tie class of m entries (m(m - 1)/2 and more active
   comparators): ``stationarity`` with the sort-tie blocks (orderings listed up to m = 7,
   an assignment oracle above) and without them (the generic blocks, as before
   2026-12-04), against the closed-form distance (the permutohedron's); then near ties
   (1e-10 apart) at ``radius=1e-6``;
5. w . sort(x) on rows of n = 50 .. 300 with 5 and 20 tied entries (the network's
   n (n - 1) / 2 comparators), against the same closed form;
6. Euclidean norms at zero: 1/2 ||x - c||^2 + lam sum_g ||x_g|| (groups of 10) at a point
   with half its groups zero, c chosen so that the distance has a closed form
   (lam (sum over zero groups of max(0, ||v_g|| - 1)^2)^(1/2)), n = 10^2 .. 10^4; before
   2026-12-06 "undecided" (not abs-smooth).

Usage: ``python benchmarks/stationarity.py [--quick] [--out DIR] [--cap SECONDS]``. Never
asserts on time.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import kinkgrad  # noqa: E402
import kinkgrad.numpy as knp  # noqa: E402


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak MB, result) of one call."""
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sec, peak / 2**20, out


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def chained_lq(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        p = kinkgrad.problems.get("chained-lq", n)
        x = p.x_star
        sec, mb, rep = measure(lambda p=p, x=x: kinkgrad.stationarity(p.f, x, radius=1e-6))
        g = timed(lambda p=p, x=x: kinkgrad.grad(p.f)(x))
        rows.append({"table": "chained-lq", "n": n, "kinks": rep.num_active,
                     "stationarity s": sec, "MB": mb, "grad ms": 1e3 * g,
                     "ratio": sec / g, "verdict": rep.verdict})
        print(rows[-1], flush=True)
    return rows


def maxq_ties(ties: list[int], n: int = 1000) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    f = lambda v: knp.max(v ** 2)  # noqa: E731
    for t in ties:
        x = rng.uniform(-0.05, 0.05, n)
        x[:t] = 0.1 * np.where(np.arange(t) % 2, 1.0, -1.0)
        sec, mb, rep = measure(lambda x=x: kinkgrad.stationarity(f, x))
        g = np.zeros(n)
        g[:t] = 2 * x[:t] / t  # the hull's barycentre: a Clarke gradient
        sec2, _, member = measure(lambda x=x, g=g: kinkgrad.in_clarke(f, x, g))
        gt = timed(lambda x=x: kinkgrad.grad(f)(x))
        rows.append({"table": "maxq", "n": n, "ties": t, "kinks": rep.num_active,
                     "stationarity s": sec, "in_clarke s": sec2, "MB": mb,
                     "grad ms": 1e3 * gt, "verdict": rep.verdict, "in_clarke": member})
        print(rows[-1], flush=True)
    return rows


def mlp(zero_rows: list[int], cap: float, H: int = 256, D: int = 64) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((D, H)) / np.sqrt(D)
    w2 = rng.standard_normal(H) / np.sqrt(H)
    slow = {"certify": False, "stationarity": False}
    for z in zero_rows:
        B = 4 * z
        X = rng.standard_normal((B, D))
        X[:z] = 0.0
        y = rng.standard_normal(B)
        params = {"W1": W1, "b1": np.zeros(H), "w2": w2}

        def loss(p, X=X, y=y):
            return knp.mean((knp.relu(X @ p["W1"] + p["b1"]) @ p["w2"] - y) ** 2)

        row: dict[str, Any] = {"table": "mlp", "B": B, "kinks": z * H}
        row.update(_mlp_row(loss, params, cap, slow))
        rows.append(row)
        print(row, flush=True)
    return rows


def _mlp_row(loss: Callable, params: dict, cap: float, slow: dict) -> dict:
    row: dict[str, Any] = {}
    row["grad ms"] = 1e3 * timed(lambda: kinkgrad.grad(loss)(params))
    row["clarke_grad ms"] = 1e3 * timed(lambda: kinkgrad.clarke_grad(loss, params)[0])
    for name, call in (("certify", lambda: kinkgrad.certify(loss, params)),
                       ("stationarity", lambda: kinkgrad.stationarity(loss, params))):
        if slow[name]:
            row[f"{name} s"] = None
            continue
        sec, mb, rep = measure(call)
        row[f"{name} s"], row[f"{name} MB"] = sec, mb
        row[name] = getattr(rep, "condition", None) or getattr(rep, "verdict", "")
        slow[name] = sec > cap
    return row


def sort_ties(sizes: list[int], n: int = 50, near: bool = False) -> list[dict]:
    """Table 4; ``near``: the tied entries 1e-10 apart and ``radius=1e-6`` (the ball moves
    the comparators onto their kinks: the routing of derivatives, sort_near.py)."""
    import kinkgrad.abs_normal.localset as localset

    rows = []
    rng = np.random.default_rng(0)
    radius = 1e-6 if near else 0.0
    for m in sizes:
        x = rng.permutation(np.arange(n, dtype=float))
        tied = x < m  # the m smallest entries
        x[tied] = -1.0 + (np.arange(m) * 1e-10 if near else 0.0)
        w = rng.standard_normal(n)
        f = lambda v, w=w: knp.sum(knp.sort(v) * w)  # noqa: E731
        g = np.zeros(n)
        g[np.argsort(x, kind="stable")] = w
        truth = float(np.sqrt(np.sum(g[~tied] ** 2) + m * w[:m].mean() ** 2))
        sec, mb, rep = measure(lambda x=x, f=f: kinkgrad.stationarity(f, x, radius=radius))
        keep = localset.sort_orderings, localset.sort_oracle, localset.near_oracle
        localset.sort_orderings = localset.sort_oracle = localset.near_oracle = (
            lambda *a: None)
        try:
            sec0, _, rep0 = measure(lambda x=x, f=f: kinkgrad.stationarity(f, x, radius=radius))
        finally:
            localset.sort_orderings, localset.sort_oracle, localset.near_oracle = keep
        gt = timed(lambda x=x, f=f: kinkgrad.grad(f)(x))
        rows.append({"table": "sort near ties" if near else "sort ties", "n": n, "ties": m,
                     "kinks": rep.num_active, "stationarity s": sec, "MB": mb,
                     "grad ms": 1e3 * gt, "verdict": rep.verdict,
                     "bounds": f"[{rep.bounds[0]:.6g}, {rep.bounds[1]:.6g}]", "truth": truth,
                     "generic s": sec0, "generic verdict": rep0.verdict,
                     "generic bounds": f"[{rep0.bounds[0]:.3g}, {rep0.bounds[1]:.3g}]"})
        print(rows[-1], flush=True)
    return rows


def sort_rows(lengths: list[int], ties: list[int]) -> list[dict]:
    """Table 5: w . sort(x) on longer rows (n entries, the m smallest tied): the network has
    n (n - 1) / 2 comparators, its abs form n vectorized rounds."""
    rows = []
    for n in lengths:
        for m in ties:
            rng = np.random.default_rng(n + m)
            x = rng.normal(size=n)
            x[:m] = x.min() - 1.0
            w = rng.standard_normal(n)
            f = lambda v, w=w: knp.sum(knp.sort(v) * w)  # noqa: E731
            truth = float(np.sqrt(m * np.mean(w[:m]) ** 2 + np.sum(w[m:] ** 2)))
            sec, mb, rep = measure(lambda x=x, f=f: kinkgrad.stationarity(f, x))
            gt = timed(lambda x=x, f=f: kinkgrad.grad(f)(x))
            rows.append({"table": "sort rows", "n": n, "ties": m, "kinks": rep.num_active,
                         "stationarity s": sec, "MB": mb, "grad ms": 1e3 * gt,
                         "verdict": rep.verdict,
                         "bounds": f"[{rep.bounds[0]:.6g}, {rep.bounds[1]:.6g}]",
                         "truth": truth})
            print(rows[-1], flush=True)
    return rows


def zero_groups(sizes: list[int], d: int = 10, lam: float = 0.5) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        G = n // d
        xs = np.zeros((G, d))
        xs[: G // 2] = rng.standard_normal((G // 2, d))
        v = rng.standard_normal((G, d))
        v[: G // 2] = xs[: G // 2]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v[G // 2:] *= rng.uniform(0.2, 1.2, (G - G // 2, 1))  # some outside the ball
        c = (xs + lam * v).ravel()  # grad of 1/2 ||x - c||^2 at xs: -lam v
        truth = lam * np.sqrt(np.sum(np.maximum(np.linalg.norm(v[G // 2:], axis=1) - 1,
                                                0.0) ** 2))

        def f(x, c=c, G=G):
            r = x - c
            return 0.5 * knp.sum(r * r) + lam * knp.sum(
                knp.linalg.norm(knp.reshape(x, (G, d)), axis=1))

        x = xs.ravel()
        sec, mb, rep = measure(lambda f=f, x=x: kinkgrad.stationarity(f, x))
        gt = timed(lambda f=f, x=x: kinkgrad.grad(f)(x))
        rows.append({"table": "zero norms", "n": n, "kinks": rep.num_active,
                     "stationarity s": sec, "MB": mb, "grad ms": 1e3 * gt,
                     "ratio": sec / gt, "distance": rep.distance, "closed form": truth,
                     "verdict": rep.verdict})
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = [" | ".join(keys), " | ".join("---" for _ in keys)]
    for r in rows:
        fmt.append(" | ".join(_cell(r.get(k)) for k in keys))
    return "\n".join(fmt)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def plot(out: Path, tables: list[list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lq, mq, nn, st, sr, zn = tables
    ax.loglog([r["kinks"] for r in lq], [r["stationarity s"] for r in lq], "o-",
              label="stationarity, chained LQ (kinks = n - 1)")
    ax.loglog([r["kinks"] for r in lq], [r["grad ms"] / 1e3 for r in lq], "o:",
              label="grad, chained LQ")
    ax.loglog([max(r["kinks"], 1) for r in mq], [r["stationarity s"] for r in mq], "s-",
              label="stationarity, MaxQ n=1000 (t ties)")
    for key, mark in (("certify s", "^-"), ("stationarity s", "v-")):
        pts = [(r["kinks"], r[key]) for r in nn if r.get(key) is not None]
        if pts:
            ax.loglog(*zip(*pts), mark, label=f"{key[:-2]}, ReLU MLP batch")
    ax.loglog([r["kinks"] for r in nn], [r["grad ms"] / 1e3 for r in nn], "^:",
              label="grad, ReLU MLP batch")
    ax.loglog([r["kinks"] for r in st], [r["stationarity s"] for r in st], "d-",
              label="stationarity, sort ties (m = 3..40 of 50)")
    ax.loglog([r["kinks"] for r in sr], [r["stationarity s"] for r in sr], "x-",
              label="stationarity, sort rows (n = 50..300, 5 and 20 ties)")
    ax.loglog([r["kinks"] for r in zn], [r["stationarity s"] for r in zn], "*-",
              label="stationarity, zero groups of Euclidean norms")
    ax.set_xlabel("active kinks")
    ax.set_ylabel("seconds per call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "stationarity.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/out", type=Path)
    ap.add_argument("--cap", default=120.0, type=float,
                    help="stop growing a table once a call takes longer (seconds)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [100, 1000] if args.quick else [100, 1000, 3000, 10000]
    ties = [10, 100] if args.quick else [10, 100, 1000]
    zeros = [8, 32] if args.quick else [8, 32, 64, 128, 256, 400]
    classes = [3, 8, 20] if args.quick else [3, 5, 6, 7, 8, 12, 20, 30, 40]
    near = [5, 12] if args.quick else [3, 6, 12, 20]
    lengths = [100, 200] if args.quick else [50, 100, 200, 300]
    tables = [chained_lq(sizes), maxq_ties(ties), mlp(zeros, args.cap),
              sort_ties(classes) + sort_ties(near, near=True), sort_rows(lengths, [5, 20]),
              zero_groups([100, 1000] if args.quick else [100, 1000, 3000, 10000])]
    for t in tables:
        print()
        print(table(t))
    plot(args.out, tables)
    print(f"\nplot: {args.out / 'stationarity.png'}")


if __name__ == "__main__":
    main()
