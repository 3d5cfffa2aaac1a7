"""First-order minimality at certified end points: ``kinkgrad.minimality`` against a sampled test.

Clarke stationarity (what ``minimize`` certifies) is necessary for a local minimiser, not
sufficient. ``kinkgrad.minimality`` decides f'(x; d) >= -tol ||d|| for every d on the same
local model. Its peer here is what a user without it would do: the least secant slope
(f(x + t u) - f(x)) / t over random unit directions u and t = 1e-7 .. 1e-5 (the "sampled
test"; no tool of the field decides first-order minimality).

Tables:

1. A hidden descent: f(x) = sum_{j >= 1} |x_j| + x_0^2 / 2 - delta |x_0| at x = 0, which
   is Clarke stationary and falls only within ~delta of +-e_0: verdicts and seconds by n.
2. The published problems (``kinkgrad.problems``): the bundle method's certified end
   points, then ``minimality`` at the certificate's radius.
3. ReLU networks fitted by least squares (``regression.relu_net``, nested kinks for two
   hidden layers): the bundle method's end points, certified or not.

Usage: ``python benchmarks/minimality.py [--n 50,200] [--samples 200] [--quick] [--out DIR]``.
Never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _out import write_outputs  # noqa: E402

PROBLEMS = ("maxq", "mxhilb", "chained-lq", "chained-cb3-1", "chained-cb3-2", "active-faces",
            "brown2", "chained-mifflin2", "chained-crescent-1", "chained-crescent-2")
NETS = ((100, 8, 0), (100, 8, 1), (100, 8, 2), (100, 8, 3), (100, 8, 6), (100, 10, 5),
        (100, (6, 6), 1), (100, (6, 6), 4), (100, (6, 6), 3), (100, (6, 6), 0),
        (100, (6, 6), 2), (200, 32, 0))


def sampled_least_slope(f: Callable, x: np.ndarray, samples: int, seed: int = 0) -> float:
    """The least (f(x + t u) - f(x)) / t over ``samples`` random unit u and t = 1e-7, 1e-6,
    1e-5 (times 1 + ||x||_inf): the sampled test."""
    rng = np.random.default_rng(seed)
    fx, scale = float(f(x)), 1.0 + float(np.max(np.abs(x), initial=0.0))
    best = np.inf
    for _ in range(samples):
        u = rng.standard_normal(x.size)
        u /= np.linalg.norm(u)
        for t in (1e-7, 1e-6, 1e-5):
            best = min(best, (float(f(x + t * scale * u)) - fx) / (t * scale))
    return best


def hidden_descent(n: int, delta: float = 0.01) -> Callable:
    def f(x: object) -> object:
        return knp.sum(knp.abs(x[1:])) + 0.5 * x[0] ** 2 - delta * knp.abs(x[0])

    return f


def timed(fn: Callable, *args: object, **kw: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def row_text(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_hidden(ns: list[int], samples: int) -> tuple[list[str], list[dict]]:
    lines = ["| n | stationarity | minimality | least slope (bounds) | minimality s | "
             "sampled least slope |", "| --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines))
    kinkgrad.minimality(hidden_descent(3), np.zeros(3))  # first call: imports, not timed
    rows = []
    for n in ns:
        f, x = hidden_descent(n), np.zeros(n)
        st = kinkgrad.stationarity(f, x)
        rep, sec = timed(kinkgrad.minimality, f, x)
        smp = sampled_least_slope(f, x, samples)
        lo, hi = rep.bounds
        rows.append({"table": "hidden", "n": n, "stationarity": st.verdict,
                     "minimality": rep.verdict, "lower": lo, "upper": hi, "seconds": sec,
                     "sampled": smp})
        lines.append(row_text([f"{n:,}", st.verdict, rep.verdict, f"[{lo:.3g}, {hi:.3g}]",
                               f"{sec:.2f}", f"{smp:.3g}"]))
        print(lines[-1], flush=True)
    return lines, rows


def judge(name: str, f: Callable, x0: np.ndarray, samples: int, **kw: object
          ) -> tuple[str, dict]:
    res, t_min = timed(kinkgrad.minimize, f, x0, method="bundle", **kw)
    st = res.stationarity
    rep, sec = timed(kinkgrad.minimality, f, res.x, radius=st.radius)
    smp = sampled_least_slope(f, res.x, samples)
    lo, hi = rep.bounds
    row = {"case": name, "n": int(res.x.size), "minimize_s": t_min, "fun": float(res.fun),
           "stationarity": st.verdict, "distance": st.distance, "radius": st.radius,
           "minimality": rep.verdict, "lower": lo, "upper": hi, "active": rep.num_active,
           "likq": rep.likq, "method": rep.method, "seconds": sec, "sampled": smp}
    text = row_text([name, f"{res.x.size:,}", f"{st.verdict} ({st.distance:.1e})",
                     rep.verdict, f"[{lo:.2e}, {hi:.2e}]", str(rep.num_active),
                     "yes" if rep.likq else "no", rep.method, f"{sec:.2f}", f"{smp:.2e}"])
    print(text, flush=True)
    return text, row


HEAD = ["| case | n | stationarity (distance) | minimality | least slope | active | LIKQ | "
        "by | minimality s | sampled least slope |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="50,200", help="sizes of the published problems")
    ap.add_argument("--samples", type=int, default=200, help="directions of the sampled test")
    ap.add_argument("--quick", action="store_true", help="n = 50, four nets, smaller table 1")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args(argv)
    ns = [50] if args.quick else [int(v) for v in args.n.split(",")]

    print("1. A hidden descent: sum_{j>=1} |x_j| + x_0^2/2 - 0.01 |x_0| at 0 "
          "(least slope -0.01 along +-e_0)")
    text1, rows1 = table_hidden([10, 100, 1000] if args.quick else [10, 100, 1000, 10000],
                                args.samples)
    print("\n2. Published problems, the bundle method's end points")
    print("\n".join(HEAD))
    text2, rows2 = list(HEAD), []
    for n in ns:
        for name in PROBLEMS:
            prob = kinkgrad.problems.get(name, n)
            t, r = judge(name, prob.f, prob.x0, args.samples)
            text2.append(t)
            rows2.append(r)
    print("\n3. ReLU networks (least squares), the bundle method's end points")
    print("\n".join(HEAD))
    from regression import relu_net

    text3, rows3 = list(HEAD), []
    for m, hidden, seed in (NETS[:4] if args.quick else NETS):
        f, x0, _ = relu_net(m, hidden, seed)
        shape = "-".join(map(str, (3, *np.atleast_1d(hidden).tolist(), 1)))
        t, r = judge(f"{shape} m={m} seed {seed}", f, x0, args.samples)
        text3.append(t)
        rows3.append(r)
    text = "\n".join(["## 1. hidden descent", *text1, "", "## 2. published problems", *text2,
                      "", "## 3. ReLU networks", *text3])
    write_outputs(args.out, "minimality", text, rows1 + rows2 + rows3)
    plot(rows1, os.path.join(args.out, "minimality.png"))
    return 0


def plot(rows: list[dict], path: str) -> None:
    """Table 1: minimality's seconds by n, and its least slope against the sampled test's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].loglog(ns, [r["seconds"] for r in rows], "o-", color="tab:red")
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("kinkgrad.minimality, s")
    axes[1].semilogx(ns, [r["upper"] for r in rows], "o-", color="tab:red",
                     label="minimality: descent found")
    axes[1].semilogx(ns, [r["sampled"] for r in rows], "s--", color="tab:gray",
                     label="sampled test: least slope seen")
    axes[1].axhline(0.0, color="k", lw=0.6)
    axes[1].set_yscale("symlog", linthresh=1e-2)
    axes[1].set_xlabel("n")
    axes[1].set_ylabel("least slope")
    axes[1].legend(fontsize=7)
    fig.suptitle("A Clarke-stationary point with one hidden descent direction")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
