"""Experiment ``directional``: many directional derivatives at once and matrix multiplication.

Paper A relates computing directional derivatives of a nonsmooth program in many directions to
multiplying matrices, in both directions:

* **directional derivatives -> matrix products.** Batching k directions turns every linear
  step of a forward sweep into a matrix product: for F(x) = relu(A x) the k directional
  derivatives at a point cost one (n x n) @ (n x k) product plus elementwise work, and for a
  ReLU network f(x) = W2 relu(W1 x + b1) the exact one-sided derivative along every column of D
  is W2 R(W1 D) with R(u) = u where W1 x + b1 > 0, 0 where < 0 and relu(u) at kinks (z = 0),
  which this module evaluates with explicit NumPy products as an independent oracle.
* **matrix products -> directional derivatives.** For F(x) = relu(A x), positive homogeneity
  gives F'(0; d) = relu(A d), hence F'(0; B) - F'(0; -B) = relu(AB) - relu(-AB) = AB: any
  method computing k directional derivatives of this one-layer ReLU program multiplies
  matrices, so it cannot be cheaper than matrix multiplication. Chained:
  F(x) = A (relu(C x) - relu(-C x)) gives F'(0; B) = A C B.

Directional derivatives are ``kinkgrad.directional(f, x, D)`` (exact one-sided derivatives,
D of shape (n, k) for k directions in one sweep). Every product is compared with
``np.matmul`` (``np.allclose``; integer instances must match exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import kinkgrad.numpy as knp

from .common import Skipped, interleaved, pyplot, single_thread, status

NAME = "directional"
TITLE = "Directional derivatives and matrix multiplication"
CLAIM = """Paper A, claim 4: computing many directional derivatives of a nonsmooth program is
related to (as hard as) matrix multiplication. The timing table compares, for F(x) = relu(A x)
at x = 0 (all n kinks active), `kinkgrad.directional` with the k directions batched in one sweep,
k separate one-direction calls, and NumPy's (n x n) @ (n x k) product alone (medians, BLAS on one
thread). The reduction table runs the reduction both ways on concrete instances and checks every
number against `np.matmul`."""

FULL_N, FULL_KS = 1024, (1, 4, 16, 64, 256, 1024)
QUICK_N, QUICK_KS = 384, (1, 4, 16, 64, 256)


def directional_fn() -> Callable:
    """``kinkgrad.directional`` (from :mod:`kinkgrad.abs_normal`), or :class:`Skipped`."""
    try:
        from kinkgrad.abs_normal import directional
    except ImportError as exc:
        raise Skipped("kinkgrad.directional (src/kinkgrad/abs_normal/) is not available in "
                      f"this tree: {exc}") from exc
    return directional


def _dd(directional: Callable, f: Callable, x: np.ndarray, D: np.ndarray) -> np.ndarray:
    """f'(x; D) as an array of shape out.shape + (k,) (or out.shape for one direction)."""
    return np.asarray(directional(f, x, D), dtype=float)


# ------------------------------------------------------------------ reductions
def matmul_by_directional(A: np.ndarray, B: np.ndarray, directional: Callable | None = None
                          ) -> np.ndarray:
    """A @ B computed as F'(0; B) - F'(0; -B) for the ReLU program F(x) = relu(A x).

    F is positively homogeneous with F'(0; d) = relu(A d), and relu(t) - relu(-t) = t, so the
    difference of the two batched directional derivatives is exactly A B.
    """
    directional = directional or directional_fn()

    def F(x):
        return knp.relu(A @ x)

    x0 = np.zeros(A.shape[1])
    return _dd(directional, F, x0, B) - _dd(directional, F, x0, -B)


def chain_by_directional(A: np.ndarray, C: np.ndarray, B: np.ndarray,
                         directional: Callable | None = None) -> np.ndarray:
    """A @ C @ B as F'(0; B) for F(x) = A (relu(C x) - relu(-C x)) (= A C x, written with
    ReLUs, whose kinks are all active at 0)."""
    directional = directional or directional_fn()

    def F(x):
        z = C @ x
        return A @ (knp.relu(z) - knp.relu(-z))

    return _dd(directional, F, np.zeros(C.shape[1]), B)


def directional_by_matmul(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, x: np.ndarray,
                          D: np.ndarray) -> np.ndarray:
    """f'(x; D) for f(x) = W2 relu(W1 x + b1), computed with NumPy matrix products only.

    With z = W1 x + b1 and U = W1 D, the exact one-sided derivative of relu at z along u is u
    (z > 0), 0 (z < 0) or relu(u) (z = 0), so f'(x; D) = W2 R(U).
    """
    z = W1 @ x + b1
    U = W1 @ D
    R = np.where(z[:, None] > 0, U, np.where(z[:, None] < 0, 0.0, np.maximum(U, 0.0)))
    return W2 @ R


def kinked_network(rng: np.random.Generator, n: int = 40, h: int = 32, m: int = 6
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Integer weights and a point x where about half of the h hidden pre-activations are
    exactly 0 (their biases cancel W1 x), so half of the kinks are active."""
    W1 = rng.integers(-3, 4, size=(h, n)).astype(float)
    W2 = rng.integers(-3, 4, size=(m, h)).astype(float)
    x = rng.integers(-2, 3, size=n).astype(float)
    b1 = rng.integers(-2, 3, size=h).astype(float)
    active = rng.random(h) < 0.5
    b1[active] = -(W1 @ x)[active]
    return W1, b1, W2, x, int(np.count_nonzero(W1 @ x + b1 == 0))


def reduction_rows(rng: np.random.Generator, directional: Callable) -> list[dict]:
    """The reductions on concrete instances, each checked against NumPy (one row each)."""
    rows = []

    def add(instance: str, shape: str, got: np.ndarray, want: np.ndarray, exact: bool) -> None:
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        close = bool(np.allclose(got, want, rtol=1e-10, atol=1e-10))
        ok = bool(np.array_equal(got, want)) if exact else close
        rows.append({"table": "reduction checks", "instance": instance, "shapes": shape,
                     "max abs error": err, "np.allclose": close,
                     "exact": bool(np.array_equal(got, want)),
                     "status": status(ok, "does not match NumPy")})

    for m, n, k in ((64, 48, 32), (256, 256, 256)):
        A, B = rng.standard_normal((m, n)), rng.standard_normal((n, k))
        add("AB = F'(0;B) - F'(0;-B), F = relu(Ax), Gaussian", f"({m}x{n})@({n}x{k})",
            matmul_by_directional(A, B, directional), A @ B, exact=False)
    A = rng.integers(-9, 10, (50, 70)).astype(float)
    B = rng.integers(-9, 10, (70, 30)).astype(float)
    add("AB = F'(0;B) - F'(0;-B), F = relu(Ax), integers", "(50x70)@(70x30)",
        matmul_by_directional(A, B, directional), A @ B, exact=True)
    A, C, B = (rng.standard_normal(s) for s in ((20, 30), (30, 40), (40, 25)))
    add("ACB = F'(0;B), F = A(relu(Cx) - relu(-Cx))", "(20x30)@(30x40)@(40x25)",
        chain_by_directional(A, C, B, directional), A @ C @ B, exact=False)

    W1, b1, W2, x, active = kinked_network(rng)
    D = rng.integers(-3, 4, size=(x.size, 16)).astype(float)

    def f(v):
        return W2 @ knp.relu(W1 @ v + b1)

    got = _dd(directional, f, x, D)
    add(f"f'(x;D) by NumPy products, f = W2 relu(W1x+b1), {active} active kinks",
        f"D: {D.shape[0]}x{D.shape[1]}", got, directional_by_matmul(W1, b1, W2, x, D),
        exact=True)
    cols = np.stack([_dd(directional, f, x, D[:, j]) for j in range(D.shape[1])], axis=-1)
    add("batched f'(x;D) = per-direction f'(x;d_j)", f"k = {D.shape[1]}", got, cols, exact=True)
    t = 1e-6  # f is piecewise linear: the one-sided difference quotient is exact for small t
    fd = np.stack([(f(x + t * D[:, j]) - f(x)) / t for j in range(D.shape[1])], axis=-1)
    rows.append({"table": "reduction checks", "instance": "f'(x;D) vs (f(x+tD)-f(x))/t, t=1e-6",
                 "shapes": f"k = {D.shape[1]}", "max abs error": float(np.max(np.abs(got - fd))),
                 "np.allclose": bool(np.allclose(got, fd, rtol=1e-6, atol=1e-6)), "exact": False,
                 "status": status(bool(np.allclose(got, fd, rtol=1e-6, atol=1e-6)),
                                  "finite difference disagrees")})
    return rows


# ------------------------------------------------------------------ timing
def timing_rows(directional: Callable, n: int, ks: tuple[int, ...], rng: np.random.Generator,
                repeat: int) -> list[dict]:
    """For F(x) = relu(A x) at 0: batched vs separate directional derivatives vs A @ D."""
    from .._progress import bar

    A = rng.standard_normal((n, n))
    x0 = np.zeros(n)

    def F(x):
        return knp.relu(A @ x)

    rows = []
    for k in bar(ks, desc="directional", leave=False, unit="k"):
        D = rng.standard_normal((n, k))
        cols = [D[:, j].copy() for j in range(k)]
        t = interleaved({
            "batched": lambda: directional(F, x0, D),  # noqa: B023
            "separate": lambda: [directional(F, x0, d) for d in cols],  # noqa: B023
            "matmul": lambda: A @ D,  # noqa: B023
        }, repeat=repeat, min_time=0.1)
        batched = _dd(directional, F, x0, D)
        sep = np.stack([_dd(directional, F, x0, d) for d in cols], axis=-1)
        ok = np.allclose(batched, sep, rtol=1e-12, atol=1e-12) and np.allclose(
            batched, np.maximum(A @ D, 0.0), rtol=1e-10, atol=1e-10)
        rows.append({"table": "timing: F(x) = relu(Ax) at x = 0", "n": n, "k": k,
                     "matmul ops": 2 * n * n * k, "T batched [ms]": 1e3 * t["batched"],
                     "T separate [ms]": 1e3 * t["separate"], "T A@D [ms]": 1e3 * t["matmul"],
                     "batched / A@D": t["batched"] / t["matmul"],
                     "separate / batched": t["separate"] / t["batched"],
                     "status": status(bool(ok), "batched != separate or != relu(A D)")})
    return rows


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """The timing table and the reduction checks; writes ``directional_matmul.png``."""
    directional = directional_fn()
    rng = np.random.default_rng(5)
    with single_thread():
        rows = timing_rows(directional, QUICK_N if quick else FULL_N,
                           QUICK_KS if quick else FULL_KS, rng, repeat=5 if quick else 7)
    rows += reduction_rows(rng, directional)
    plot([r for r in rows if "k" in r], Path(out_dir) / "directional_matmul.png")
    return rows


def headline(rows: list[dict]) -> str:
    """Batched cost relative to the matrix product, and the reduction checks."""
    tr = [r for r in rows if "k" in r]
    red = [r for r in rows if "instance" in r]
    last = max(tr, key=lambda r: r["k"])
    return (f"k={last['k']}: batched {last['batched / A@D']:.1f}x the A@D time, separate "
            f"{last['separate / batched']:.0f}x batched; reductions match NumPy: "
            f"{sum(r['status'] == 'ok' for r in red)}/{len(red)}")


def plot(rows: list[dict], path: Path) -> None:
    """Times against k (log-log) and the two ratios against k."""
    plt = pyplot()
    rows = sorted(rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    n = rows[0]["n"]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.8))
    a0.plot(ks, [r["T batched [ms]"] for r in rows], "o-", label="kinkgrad.directional, k "
            "directions in one sweep")
    a0.plot(ks, [r["T separate [ms]"] for r in rows], "s--", label="k separate one-direction "
            "calls")
    a0.plot(ks, [r["T A@D [ms]"] for r in rows], "^:", color="k",
            label=f"NumPy ({n}x{n}) @ ({n}xk) alone")
    a0.set_ylabel("time [ms]")
    a0.set_title(f"directional derivatives of relu(Ax) at 0, n = {n}")
    a1.plot(ks, [r["batched / A@D"] for r in rows], "o-", label="batched / matrix product")
    a1.plot(ks, [r["separate / batched"] for r in rows], "s--", label="separate / batched")
    a1.axhline(1.0, color="0.5", lw=0.8)
    a1.set_ylabel("time ratio [s / s]")
    a1.set_title("ratios (BLAS on one thread)")
    for ax in (a0, a1):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of directions k")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
