"""Experiment ``cheap``: the nonsmooth cheap gradient principle, counted and timed.

Paper A's first claim: for programs over a dictionary of locally Lipschitz definable elementary
functions, backward mode returns an element of a conservative gradient at a cost at most
omega_b times the cost of the program, with omega_b depending on the dictionary only, not on
the input dimension p. kinkgrad's cost model (:func:`kinkgrad.cost`) gives every primitive a
declared omega with cost + vjp_cost <= omega * cost, so ``backward <= bound * function`` with
``bound`` the largest omega among the primitives the program uses. This experiment checks that
inequality numerically on every program class of :mod:`kinkgrad.reproduce.programs` at input
dimensions from 10 to 10^5 (a violation is a FAIL row), and times
``kinkgrad.value_and_grad`` against evaluating the same function with NumPy and against the
traced forward pass alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import kinkgrad

from .common import fmt_p, interleaved, pyplot, single_thread, status
from .programs import ACTIVATIONS, LOSSES, ProgramClass, program_classes

NAME = "cheap"
TITLE = "Cheap gradient principle, measured"
CLAIM = """Paper A, claim 1 (and claim 3 for feedforward networks): backward mode computes an
element of a conservative gradient at a cost of at most omega_b times the cost of the program,
independently of the input dimension p. `backward_ratio` is the cost model's
(function + VJPs) / function in arithmetic operations; `bound` is the model's omega (the
largest declared per-primitive omega among the primitives used). `T(v+g)/T(f)` divides the
median time of `kinkgrad.value_and_grad` (interleaved rounds, BLAS on one thread) by the time
of the same function evaluated with plain NumPy; `T(v+g)/T(trace)` divides it by the time of
kinkgrad's recorded forward pass alone, so it isolates the reverse sweep. At small p both are
dominated by Python overhead per node, not by arithmetic; the arithmetic regime is p >= 10^4.
The paper's own constants could not be read here (only its abstract, introduction and its
section on linear ReLU networks were reachable), so the bound is kinkgrad's declared omega."""

FULL_DIMS = (10, 100, 1_000, 10_000, 100_000)
QUICK_DIMS = (10, 1_000, 100_000)


def measure(pc: ProgramClass, p: int, repeat: int = 5) -> dict:
    """Cost model and timings of one program class at input dimension p (one result row)."""
    f, x = pc.build(p)
    rep = kinkgrad.cost(f, x)
    holds = rep.backward <= rep.bound * rep.function
    vg = kinkgrad.value_and_grad(f)
    t = interleaved({"f": lambda: f(x), "trace": lambda: kinkgrad.trace(f, x),
                     "vg": lambda: vg(x)}, repeat=repeat, min_time=0.05)
    return {
        "program": pc.name, "p": p, "function ops": rep.function, "backward ops": rep.backward,
        "backward_ratio": rep.backward_ratio, "bound": rep.bound,
        "forward_ratio": rep.forward_ratio,
        "T f [ms]": 1e3 * t["f"], "T trace [ms]": 1e3 * t["trace"], "T v+g [ms]": 1e3 * t["vg"],
        "T(v+g)/T(f)": t["vg"] / t["f"], "T(v+g)/T(trace)": t["vg"] / t["trace"],
        "status": status(holds, f"backward_ratio {rep.backward_ratio:.3f} > bound {rep.bound}"),
    }


def run(out_dir: Path, quick: bool = False, dims: tuple[int, ...] | None = None) -> list[dict]:
    """Measure every program class at every dimension; write ``cheap_ratios.png``.

    Returns one row per (program class, p) with the cost-model counts, ratios, bound, timings
    and a status that is ``FAIL`` when the model's backward ratio exceeds the bound.
    """
    from .._progress import bar

    dims = dims or (QUICK_DIMS if quick else FULL_DIMS)
    classes = program_classes(dag_seeds=(0,) if quick else (0, 1, 2))
    jobs = [(pc, p) for p in dims for pc in classes]
    with single_thread():
        rows = [measure(pc, p, repeat=3 if quick else 7)
                for pc, p in bar(jobs, desc="cheap", leave=False, unit="program")]
    rows.sort(key=lambda r: (r["program"], r["p"]))
    plot(rows, Path(out_dir) / "cheap_ratios.png")
    return rows


def headline(rows: list[dict]) -> str:
    """Largest model ratio against the bound, and the measured ratios at the largest p."""
    worst = max(rows, key=lambda r: r["backward_ratio"] / r["bound"])
    pmax = max(r["p"] for r in rows)
    at = [r["T(v+g)/T(f)"] for r in rows if r["p"] == pmax]
    return (f"model backward_ratio <= {max(r['backward_ratio'] for r in rows):.2f} "
            f"(bound {worst['bound']:g} at worst); T(v+g)/T(f) at p={fmt_p(pmax)}: median "
            f"{np.median(at):.2f}, max {max(at):.2f}")


def notes(rows: list[dict]) -> str:
    """A per-class summary: the largest model ratio over p against the bound, and the measured
    time ratio at the smallest and the largest p."""
    out = []
    for name in sorted({r["program"] for r in rows}):
        rs = sorted((r for r in rows if r["program"] == name), key=lambda r: r["p"])
        out.append({"program": name, "max backward_ratio over p": max(r["backward_ratio"]
                                                                      for r in rs),
                    "bound": rs[0]["bound"],
                    f"T(v+g)/T(f) at p={fmt_p(rs[0]['p'])}": rs[0]["T(v+g)/T(f)"],
                    f"T(v+g)/T(f) at p={fmt_p(rs[-1]['p'])}": rs[-1]["T(v+g)/T(f)"],
                    "holds at every p": all(r["status"] == "ok" for r in rs)})
    from .report import markdown_table

    return "Per program class:\n\n" + markdown_table(out)


def _style(name: str) -> dict:
    colors = dict(zip(ACTIVATIONS, ("tab:blue", "tab:orange", "tab:green", "tab:red",
                                    "tab:purple")))
    markers = dict(zip(LOSSES, ("o", "s", "^", "D")))
    if name.startswith("mlp-"):
        _, act, loss = name.split("-", 2)
        return {"color": colors.get(act, "k"), "marker": markers.get(loss, "x"), "lw": 1.0,
                "ms": 4}
    return {"color": "k" if "relu" in name else "0.5", "marker": "x", "lw": 1.6, "ms": 6,
            "ls": "--"}


def _family(name: str) -> str:
    if name.startswith("mlp-"):
        return "MLPs"
    return "DAG {+, *, abs, max}" if "absmax" in name else "DAG {+, *, relu}"


def plot(rows: list[dict], path: Path) -> None:
    """Two panels against p (log scale): the model's backward ratio with the bound, and the
    measured time ratio T(v+g)/T(f)."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    names = sorted({r["program"] for r in rows})
    for name in names:
        rs = sorted((r for r in rows if r["program"] == name), key=lambda r: r["p"])
        ps = [r["p"] for r in rs]
        st = _style(name)
        axes[0].plot(ps, [r["backward_ratio"] for r in rs], **st)
        axes[1].plot(ps, [r["T(v+g)/T(f)"] for r in rs], **st)
    for b in sorted({r["bound"] for r in rows}):
        who = sorted({_family(r["program"]) for r in rows if r["bound"] == b})
        axes[0].axhline(b, color="crimson", ls=":", lw=1.5)
        axes[0].annotate(f"bound omega = {b:g}: " + ", ".join(who), (min(r["p"] for r in rows), b),
                         textcoords="offset points", xytext=(2, 3), color="crimson", fontsize=8)
    axes[0].set_ylim(0, max(r["bound"] for r in rows) * 1.15)
    axes[0].set_title("cost model: (function + backward sweep) / function")
    axes[0].set_ylabel("backward_ratio [ops / ops]")
    axes[1].set_yscale("log")
    axes[1].axhline(1.0, color="0.6", lw=0.8)
    axes[1].set_title("measured: T(value_and_grad) / T(NumPy value)")
    axes[1].set_ylabel("time ratio [s / s]")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("input dimension p [number of inputs]")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=_style(f"mlp-{a}-squared")["color"], lw=2, label=f"MLP {a}")
               for a in ACTIVATIONS]
    handles += [Line2D([], [], color="0.3", marker=_style(f"mlp-relu-{lo}")["marker"], ls="",
                       label=f"loss: {lo}") for lo in LOSSES]
    handles += [Line2D([], [], **_style("dag-relu"), label="random DAG {+, *, relu}"),
                Line2D([], [], **_style("dag-absmax"), label="random DAG {+, *, abs, max}")]
    fig.legend(handles=handles, loc="center right", fontsize=9, frameon=True)
    fig.suptitle("Nonsmooth cheap gradient principle: backward cost / function cost vs input "
                 "dimension")
    fig.tight_layout(rect=(0, 0, 0.82, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
