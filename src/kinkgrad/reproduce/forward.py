"""Experiment ``forward``: forward mode is dimension dependent.

Paper A's second claim: the full conservative gradient by forward mode needs p directional
passes, a cost of about p * omega_f * cost(program); the forward methods that guarantee Clarke
elements (lexicographic / LD derivatives) carry the same dimension factor. Here the same
programs as in ``cheap`` are differentiated three ways:

* backward mode, ``kinkgrad.value_and_grad`` (one reverse sweep);
* forward mode, the p unit tangents pushed through ``kinkgrad.jvp`` in batches of at most 256
  directions per sweep (each batch is one forward sweep of matrix products);
* the lexicographic directional derivative ``kinkgrad.ld_derivative(f, x, M)`` with M = I_p
  (p tangents in one sweep, kinks resolved lexicographically), whose row f'(x; I) is a
  lexicographic subgradient, an element of the Clarke subdifferential.

The cost model (``kinkgrad.cost``) gives backward and forward-mode operation counts for every p
up to 10^5; the times are measured up to the dimensions where p x p tangent blocks still fit.
Checks: the forward-mode gradient equals the backward one (both use the kink policy's choices,
so they are the same element of the conservative gradient); at the networks' generic (smooth)
points the LD row equals the gradient; on the separable DAG programs, whose points have
coordinates exactly at kinks, the LD row with M = I is the vector of right derivatives, so its
sum must equal the one-sided directional derivative along the all-ones direction, checked by a
one-sided finite difference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import kinkgrad

from .common import interleaved, pyplot, single_thread, status
from .programs import by_name

NAME = "forward"
TITLE = "Forward mode is dimension dependent"
CLAIM = """Paper A, claim 2: getting the full gradient by forward mode takes p directional
passes, so its cost grows like p times the cost of the program, and the forward methods that
guarantee Clarke elements (lexicographic / LD derivatives) have the same dimension-dependent
overhead; backward mode does not. `model fwd/f` and `model bwd/f` are the cost model's
operation counts divided by the function's; times are medians with BLAS on one thread (forward
mode: p unit tangents through `kinkgrad.jvp`, at most 256 per sweep; LD: `kinkgrad.ld_derivative`
with M = I_p in one sweep; its time includes the function's check that M has full rank, an
SVD of the p x p matrix, about 0.5 s at p = 1000 on one core)."""

PROGRAMS = ("mlp-relu-squared", "mlp-maxpool-hinge", "dag-relu", "dag-absmax")
MODEL_DIMS = (10, 100, 1_000, 10_000, 100_000)
FULL_TIMED = (10, 30, 100, 300, 1_000, 3_000)
QUICK_TIMED = (10, 100, 300, 1_000)
LD_MAX, QUICK_LD_MAX = 1_000, 300  # p x p tangents of every node in one sweep
CHUNK = 256


def forward_gradient(f: Callable, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """The full gradient of scalar ``f`` at x by forward mode: the p unit tangents pushed
    through :func:`kinkgrad.jvp` in batches of ``chunk`` directions (one sweep per batch).

    Returns J e_i for every i, an element of the same conservative gradient that backward mode
    returns under the same kink policy.
    """
    p = x.size
    g = np.empty(p, dtype=x.dtype)
    for s in range(0, p, chunk):
        e = min(p, s + chunk)
        T = np.zeros((p, e - s), dtype=x.dtype)
        T[np.arange(s, e), np.arange(e - s)] = 1.0
        _, t = kinkgrad.jvp(f, (x,), (T,))
        g[s:e] = np.asarray(t).reshape(-1)
    return g


def _ld_fn() -> Callable | None:
    try:
        from kinkgrad.abs_normal import ld_derivative
    except ImportError:
        return None
    return ld_derivative


def _ld_row(ld: Callable, f: Callable, x: np.ndarray) -> np.ndarray:
    """The LD derivative f'(x; I) of scalar f as a flat row of length p."""
    return np.asarray(ld(f, x, np.eye(x.size, dtype=x.dtype)), dtype=float).reshape(-1)


def _ld_check(name: str, f: Callable, x: np.ndarray, g: np.ndarray, ld: np.ndarray) -> bool:
    if name.startswith("mlp-"):
        return bool(np.allclose(ld, g, rtol=1e-8, atol=1e-10))
    t = 1e-7  # separable program: sum of right derivatives = f'(x; 1)
    one_sided = (f(x + t) - f(x)) / t
    return bool(np.isclose(ld.sum(), one_sided, rtol=1e-4, atol=1e-4 * x.size))


def measure(name: str, p: int, timed: bool, repeat: int = 3, ld_max: int = LD_MAX) -> dict:
    """Model counts for one program at dimension p, and with ``timed`` the three timings and
    the agreement checks."""
    f, x = by_name(name).build(p)
    rep = kinkgrad.cost(f, x)
    row: dict = {"program": name, "p": p, "model bwd/f": rep.backward_ratio,
                 "model fwd/f": rep.forward_ratio}
    if not timed:
        return row
    vg = kinkgrad.value_and_grad(f)
    fns = {"f": lambda: f(x), "bwd": lambda: vg(x), "fwd": lambda: forward_gradient(f, x)}
    ld = _ld_fn() if p <= ld_max else None
    if ld is not None:
        fns["ld"] = lambda: _ld_row(ld, f, x)
    t = interleaved(fns, repeat=repeat, min_time=0.02)
    g = vg(x)[1]
    ok_fwd = bool(np.allclose(forward_gradient(f, x), g, rtol=1e-9, atol=1e-12))
    row.update({"T f [ms]": 1e3 * t["f"], "T bwd [ms]": 1e3 * t["bwd"],
                "T fwd [ms]": 1e3 * t["fwd"], "T LD [ms]": 1e3 * t["ld"] if "ld" in t else None,
                "fwd/bwd time": t["fwd"] / t["bwd"],
                "LD/bwd time": t["ld"] / t["bwd"] if "ld" in t else None})
    why = [] if ok_fwd else ["forward gradient != backward gradient"]
    if ld is not None and not _ld_check(name, f, x, g, _ld_row(ld, f, x)):
        why.append("LD row check failed")
    row["status"] = status(not why, "; ".join(why))
    return row


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """Model ratios for p up to 10^5 and timings of backward / forward / LD for moderate p;
    writes ``forward_vs_p.png``."""
    from .._progress import bar

    timed_dims = QUICK_TIMED if quick else FULL_TIMED
    dims = sorted(set(MODEL_DIMS) | set(timed_dims))
    jobs = [(n, p) for n in PROGRAMS for p in dims]
    with single_thread():
        rows = [measure(n, p, p in timed_dims, repeat=3 if quick else 5,
                        ld_max=QUICK_LD_MAX if quick else LD_MAX)
                for n, p in bar(jobs, desc="forward", leave=False, unit="program")]
    plot(rows, Path(out_dir) / "forward_vs_p.png")
    return rows


def headline(rows: list[dict]) -> str:
    """Growth of the forward/backward time ratio and of the model ratios over p."""
    timed = [r for r in rows if r.get("T fwd [ms]") is not None]
    pmax = max(r["p"] for r in timed)
    fr = [r["fwd/bwd time"] for r in timed if r["p"] == pmax]
    big = max(r["p"] for r in rows)
    mf = [r["model fwd/f"] for r in rows if r["p"] == big]
    mb = [r["model bwd/f"] for r in rows if r["p"] == big]
    return (f"T(fwd)/T(bwd) at p={pmax}: {min(fr):.0f}-{max(fr):.0f}x; model at p={big}: "
            f"fwd/f {min(mf):.3g}-{max(mf):.3g}, bwd/f {min(mb):.2f}-{max(mb):.2f}")


def plot(rows: list[dict], path: Path) -> None:
    """Log-log plots against p: model cost ratios (left), measured times (right)."""
    plt = pyplot()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = dict(zip(PROGRAMS, ("tab:blue", "tab:green", "black", "tab:gray")))
    for name in PROGRAMS:
        rs = sorted((r for r in rows if r["program"] == name), key=lambda r: r["p"])
        c = colors[name]
        ps = [r["p"] for r in rs]
        a0.plot(ps, [r["model fwd/f"] for r in rs], color=c, marker="o", ms=4,
                label=f"{name}: forward mode (p JVPs)")
        a0.plot(ps, [r["model bwd/f"] for r in rs], color=c, marker="s", ms=4, ls="--",
                label=f"{name}: backward mode")
        tr = [r for r in rs if r.get("T fwd [ms]") is not None]
        tp = [r["p"] for r in tr]
        a1.plot(tp, [r["T fwd [ms]"] / 1e3 for r in tr], color=c, marker="o", ms=4,
                label=f"{name}: forward mode")
        lr = [r for r in tr if r.get("T LD [ms]") is not None]
        if lr:
            a1.plot([r["p"] for r in lr], [r["T LD [ms]"] / 1e3 for r in lr], color=c,
                    marker="^", ms=5, ls=":", label=f"{name}: LD derivative, M = I")
        a1.plot(tp, [r["T bwd [ms]"] / 1e3 for r in tr], color=c, marker="s", ms=4, ls="--",
                label=f"{name}: backward mode")
    a0.set_title("cost model: operations / operations of the function")
    a0.set_ylabel("cost ratio [ops / ops]")
    a1.set_title("measured time of the full gradient (BLAS on one thread)")
    a1.set_ylabel("time [s]")
    for ax in (a0, a1):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input dimension p [number of inputs]")
        ax.grid(True, which="both", alpha=0.3)
    a0.legend(fontsize=7, loc="upper left")
    a1.legend(fontsize=7, loc="upper left")
    fig.suptitle("Forward mode and LD derivatives grow with p; backward mode does not")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
