"""Experiment ``hardness``: one subgradient is cheap, two are NP-hard (paper A, claim 5).

Runs :func:`kinkgrad.hardness.run_scaling` (random 3-SAT formulas at the phase transition,
m = round(4.26 n) clauses, reduced to linear ReLU networks with weights in {-1, 0, 1}; the
question "does the Clarke subdifferential at 0 have two distinct elements?" answered by a SAT
solver on the formula, by the exact MILP and by exact enumeration of limiting gradients) and,
on the same networks (rebuilt from the seeds that ``run_scaling`` documents), times one
conservative gradient ``kinkgrad.grad`` and one Clarke gradient ``kinkgrad.clarke_grad`` at
x = 0, where every ReLU of the network sits at its kink. The cost model's count for value
and gradient (``grad ops (model)``) grows linearly with the network. Checks: the three
decisions agree; the Clarke gradient returned at 0 is one of the limiting gradients that the
enumeration finds (where it ran). The column ``AD set singleton`` reports whether paper A's
autodiff conservative gradient D^a_F(0) is a single vector (it is not, even for unsatisfiable
formulas, so AD alone cannot decide the question).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .common import Skipped, pyplot, single_thread, status

NAME = "hardness"
TITLE = "NP-hardness of two subgradients, made concrete"
CLAIM = """Paper A, claim 5: for linear ReLU networks with weights in {-1, 0, 1}, finding ONE
element of the Clarke subdifferential at 0 costs one backward pass, but deciding whether there
are TWO distinct elements is NP-hard. The networks come from random 3-SAT formulas near the
phase transition (the reduction of `kinkgrad.hardness`, which that package documents as the
project's own construction, not the paper's): the formula is satisfiable iff the network has
two Clarke subgradients at 0. Times in seconds; `t_grad` is `kinkgrad.grad` and `t_clarke` is
`kinkgrad.clarke_grad` at x = 0 (all ReLUs at their kink)."""

RATIO, SEED = 4.26, 0


def _hardness() -> Any:
    try:
        import kinkgrad.hardness as hardness

        hardness.run_scaling  # noqa: B018 - fails early when the module is incomplete
    except (ImportError, AttributeError) as exc:
        raise Skipped(f"kinkgrad.hardness.run_scaling is not available: {exc}") from exc
    return hardness


def _clarke_fn() -> Callable | None:
    try:
        from kinkgrad.abs_normal import clarke_grad
    except ImportError:
        return None
    return clarke_grad


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def gradient_rows(hardness: Any, n: int, trial: int, enumerate_set: bool) -> dict:
    """kinkgrad.grad / clarke_grad timings and checks on formula ``trial`` at ``n``."""
    import kinkgrad

    cnf = hardness.random_ksat(n, max(1, int(round(RATIO * n))), k=min(3, n),
                               seed=SEED + 1000 * n + trial)
    net = hardness.network_from_cnf(cnf)
    f = net.as_traced_function()
    x0 = np.zeros(n)
    g = kinkgrad.grad(f)
    row: dict = {"neurons": net.n_neurons, "grad ops (model)": kinkgrad.cost(f, x0).backward,
                 "t_grad": _median_time(lambda: g(x0), 5)}
    singleton, _ = hardness.autodiff_conservative_set_is_singleton(net)
    row["AD set singleton"] = bool(singleton)
    clarke = _clarke_fn()
    if clarke is None:
        row["t_clarke"] = None
        return row
    row["t_clarke"] = _median_time(lambda: clarke(f, x0, seed=0), 5)
    if enumerate_set:
        gc = np.asarray(clarke(f, x0, seed=0)[0], dtype=float)
        lim = hardness.limiting_gradients_at_zero(net)
        if lim.complete:
            row["clarke in limiting set"] = bool(np.any(np.all(
                np.isclose(lim.gradients, gc[None, :], atol=1e-9), axis=1)))
    return row


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """The scaling sweep merged with the gradient timings; writes ``hardness_scaling.png``."""
    from .._progress import bar

    hardness = _hardness()
    n_values = hardness.QUICK_N_VALUES if quick else hardness.FULL_N_VALUES
    trials, enum_max = (2, 4) if quick else (3, 5)
    scaling = hardness.run_scaling(n_values=n_values, ratio=RATIO, trials=trials, seed=SEED,
                                   enumeration_max_n=enum_max, progress=True)
    rows = []
    with single_thread():
        for r in bar(scaling, desc="grad timings", leave=False):
            extra = gradient_rows(hardness, r["n"], r["trial"], r.get("enum") is not None)
            row = {k: r.get(k) for k in ("n", "m", "trial")}
            row["neurons"] = extra.pop("neurons")
            if r.get("n_neurons") not in (None, row["neurons"]):
                raise RuntimeError("rebuilt network differs from run_scaling's")
            row.update({k: r.get(k) for k in ("sat", "milp", "enum", "t_sat", "t_milp",
                                               "t_enum")})
            row.update(extra)
            why = [] if r.get("agree") else ["SAT / MILP / enumeration disagree"]
            if row.get("clarke in limiting set") is False:
                why.append("clarke_grad(0) is not a limiting gradient")
            row["status"] = status(not why, "; ".join(why))
            rows.append(row)
    plot(rows, Path(out_dir) / "hardness_scaling.png")
    return rows


def headline(rows: list[dict]) -> str:
    """Agreement count and the time growth of the exact deciders vs the gradients."""
    agree = sum(1 for r in rows if r["status"] == "ok")
    nmax = max(r["n"] for r in rows)
    last = [r for r in rows if r["n"] == nmax]

    def med(key: str) -> str:
        v = [r[key] for r in last if r.get(key) is not None]
        return f"{statistics.median(v):.2g}s" if v else "-"

    return (f"{agree}/{len(rows)} formulas: SAT = MILP = enumeration; at n={nmax}: MILP "
            f"{med('t_milp')}, SAT {med('t_sat')}, grad {med('t_grad')}, "
            f"clarke_grad {med('t_clarke')}")


def plot(rows: list[dict], path: Path) -> None:
    """Median time per method against the number of variables n (log scale)."""
    plt = pyplot()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.8))
    ns = sorted({r["n"] for r in rows})
    labels = {"t_sat": "SAT solver (python-sat) on the formula",
              "t_milp": "exact MILP (HiGHS) on the network",
              "t_enum": "exact enumeration of limiting gradients",
              "t_grad": "kinkgrad.grad at 0 (one conservative gradient)",
              "t_clarke": "kinkgrad.clarke_grad at 0 (one Clarke gradient)"}
    styles = {"t_sat": "o-", "t_milp": "s-", "t_enum": "^-", "t_grad": "x--", "t_clarke": "D--"}
    for key, label in labels.items():
        pts = [(n, statistics.median(v)) for n in ns
               if (v := [r[key] for r in rows if r["n"] == n and r.get(key) is not None])]
        if pts:
            a0.plot(*zip(*pts), styles[key], label=label)
        if key in ("t_grad", "t_clarke"):
            nn = [(r["neurons"], r[key]) for r in rows if r.get(key) is not None]
            if nn:
                a1.plot(*zip(*sorted(nn)), styles[key][0], label=label)
    a0.set_xlabel("number of variables n of the 3-SAT formula (m = 4.26 n clauses)")
    a0.set_ylabel("time [s] (median over formulas)")
    a0.set_title("deciding 'two Clarke subgradients at 0?' vs one gradient")
    a1.set_xlabel("network size [ReLU neurons]")
    a1.set_ylabel("time [s]")
    a1.set_title("one gradient at 0 against the network size")
    a0.set_yscale("log")
    a1.set_ylim(bottom=0)
    for ax in (a0, a1):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
