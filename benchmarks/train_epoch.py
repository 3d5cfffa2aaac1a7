"""One training epoch on digits: kinkgrad against the same network in PyTorch eager (CPU).

Both frameworks start from the same parameters (kinkgrad's seeded initialisation, copied into
torch), see the same mini-batches in the same order and take the same SGD-with-momentum steps
(lr 0.02, momentum 0.9, batch 32, float32, cross-entropy), so the loss after the epoch agrees
up to float32 rounding. kinkgrad's loop is the one ``kinkgrad train`` runs: ``value_and_grad``
with the kink report on, then ``nn.SGD.update``. Epochs are timed in interleaved rounds (one
kinkgrad epoch, one torch epoch, repeat) and the median is reported.

Threads: by default NumPy's BLAS and torch both run on ONE thread (``--threads``). These
matrices are small, and on a shared 2-core machine a multithreaded BLAS call that waits for a
busy core can take 100 times longer than usual, which would measure the machine's load rather
than the frameworks.

Usage: ``python benchmarks/train_epoch.py [--repeat R] [--threads T] [--out DIR]``. Never
asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import kinkgrad
from kinkgrad import nn
from kinkgrad.nn._torch import to_torch
from kinkgrad.reproduce.common import blas_threads

LR, MOMENTUM, BATCH = 0.02, 0.9, 32


def kinkgrad_epoch(
    model: nn.Sequential, params0: dict, X: np.ndarray, y: np.ndarray, order: np.ndarray
) -> float:
    """One epoch of ``kinkgrad train``'s inner loop; returns the mean training loss."""

    def batch_loss(p: dict, xb: np.ndarray, yb: np.ndarray) -> object:
        return nn.cross_entropy(model(p, xb), yb)

    vg = kinkgrad.value_and_grad(batch_loss, report=True)
    opt = nn.SGD(LR, momentum=MOMENTUM)
    params, state, losses = params0, opt.init(params0), []
    with np.errstate(under="ignore"):
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            val, g, _ = vg(params, X[idx], y[idx])
            params, state = opt.update(params, g, state)
            losses.append(float(val))
    return float(np.mean(losses))


def torch_epoch(
    model: nn.Sequential, params0: dict, Xt: object, yt: object, order: np.ndarray
) -> float:
    """The same epoch in PyTorch eager mode."""
    import torch

    tm = to_torch(model, params0)
    opt = torch.optim.SGD(tm.parameters(), lr=LR, momentum=MOMENTUM)
    order_t = torch.from_numpy(order)
    losses = []
    for i in range(0, len(order), BATCH):
        idx = order_t[i : i + BATCH]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def bench(kind: str, repeat: int) -> dict:
    import torch

    ds = nn.load_dataset("digits", dtype=np.float32, images=kind == "cnn")
    model = nn.build_model(kind, ds.sample_shape, ds.n_classes, (128,))
    params0, _ = model.init(0, ds.sample_shape, np.float32)
    order = np.random.default_rng(1).permutation(len(ds.y_train))
    Xt, yt = torch.from_numpy(ds.X_train), torch.from_numpy(ds.y_train)
    times: dict[str, list[float]] = {"kinkgrad": [], "torch": []}
    losses = {}
    for r in range(repeat + 1):  # round 0 is a warm-up
        for name in ("kinkgrad", "torch"):
            t0 = time.perf_counter()
            if name == "kinkgrad":
                losses[name] = kinkgrad_epoch(model, params0, ds.X_train, ds.y_train, order)
            else:
                losses[name] = torch_epoch(model, params0, Xt, yt, order)
            if r:
                times[name].append(time.perf_counter() - t0)
    kg, th = statistics.median(times["kinkgrad"]), statistics.median(times["torch"])
    return {
        "model": kind,
        "network": repr(model),
        "batches": -(-len(order) // BATCH),
        "kinkgrad_s": kg,
        "torch_s": th,
        "ratio": kg / th,
        "loss_kinkgrad": losses["kinkgrad"],
        "loss_torch": losses["torch"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with blas_threads(args.threads):
        rows = [bench(kind, args.repeat) for kind in ("mlp", "cnn")]
    print(
        f"one epoch on digits (1437 samples, batch {BATCH}, float32, SGD momentum), "
        f"median of {args.repeat} interleaved rounds; torch {torch.__version__} and NumPy "
        f"{np.__version__}, {args.threads} thread(s) each"
    )
    print(
        f"{'model':<5s} {'batches':>7s} {'kinkgrad s':>11s} {'torch s':>9s} {'ratio':>7s} "
        f"{'loss kinkgrad':>14s} {'loss torch':>11s}"
    )
    for r in rows:
        print(
            f"{r['model']:<5s} {r['batches']:>7d} {r['kinkgrad_s']:>11.4f} {r['torch_s']:>9.4f} "
            f"{r['ratio']:>7.2f} {r['loss_kinkgrad']:>14.6f} {r['loss_torch']:>11.6f}"
        )
    for r in rows:
        print(f"  {r['model']}: {r['network']}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "train_epoch.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["kinkgrad_s"] * 1e3 for r in rows], 0.4, label="kinkgrad")
    ax.bar(xs + 0.2, [r["torch_s"] * 1e3 for r in rows], 0.4, label="PyTorch eager (CPU)")
    for x, r in zip(xs, rows):
        ax.text(
            x,
            max(r["kinkgrad_s"], r["torch_s"]) * 1e3,
            f"x{r['ratio']:.2f}",
            ha="center",
            va="bottom",
        )
    ax.set_xticks(xs, [r["model"] for r in rows])
    ax.set_ylabel("ms per epoch (digits)")
    ax.set_title("One training epoch, same network and batches")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "train_epoch.png"), dpi=110)
    print(f"wrote {os.path.join(args.out, 'train_epoch.png')} and train_epoch.json")


if __name__ == "__main__":
    main()
