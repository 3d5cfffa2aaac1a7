"""Per-example gradients on digits: ``kinkgrad.vmap(kinkgrad.grad(loss))`` against a loop of
``kinkgrad.grad`` and against ``torch.func.vmap(torch.func.grad(...))`` (CPU).

The models are ``kinkgrad train``'s MLP (64-128-10) and CNN (conv16-relu-pool-dense64-10),
float32, cross-entropy of one example (``loss(params, x, y) =
cross_entropy(model(params, x[None]), y[None])``); torch.func gets the same network
(``kinkgrad.nn._torch.to_torch``) through ``functional_call``. One batch of B examples per
call; the three are timed in interleaved rounds (median), and the per-example gradients are
checked against each other before timing. Threads: one BLAS / torch thread by default.

Usage: ``python benchmarks/per_example.py [--batch B] [--repeat R] [--threads T]``. Never
asserts on time.
"""

from __future__ import annotations

import argparse

import numpy as np

import kinkgrad
from kinkgrad import nn
from kinkgrad.nn._torch import to_torch
from kinkgrad.reproduce.common import blas_threads, interleaved


def bench(kind: str, batch: int, repeat: int) -> dict:
    import torch
    from torch.func import functional_call, grad, vmap

    ds = nn.load_dataset("digits", dtype=np.float32, images=kind == "cnn")
    model = nn.build_model(kind, ds.sample_shape, ds.n_classes, (128,))
    params, _ = model.init(0, ds.sample_shape, np.float32)
    X, Y = ds.X_train[:batch], ds.y_train[:batch]

    def loss(p: dict, x: np.ndarray, y: np.ndarray) -> object:
        return nn.cross_entropy(model(p, x[None]), y[None])

    per_example = kinkgrad.vmap(kinkgrad.grad(loss), in_axes=(None, 0, 0))
    one = kinkgrad.grad(loss)

    def loop() -> list:
        return [one(params, X[b], Y[b]) for b in range(batch)]

    tm = to_torch(model, params)
    tparams = {k: v.detach() for k, v in tm.named_parameters()}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def tloss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(tm, p, (x[None],))
        return torch.nn.functional.cross_entropy(out, y[None])

    tper = vmap(grad(tloss), in_dims=(None, 0, 0))
    # the same numbers first: kinkgrad's first layer weight against torch's (transposed for
    # Dense: kinkgrad stores W as (in, out))
    g = per_example(params, X, Y)
    tg = tper(tparams, Xt, Yt)
    first = next(k for k in model.keys() if k is not None)
    kw = g[first]["W"]
    tw = next(v for k, v in tg.items() if k.endswith("weight")).numpy()
    if kind == "mlp":
        tw = np.swapaxes(tw, 1, 2)
    err = float(np.max(np.abs(kw - tw)) / max(np.max(np.abs(tw)), 1e-30))
    t = interleaved({"kinkgrad vmap(grad)": lambda: per_example(params, X, Y),
                     "kinkgrad loop of grad": loop,
                     "torch.func vmap(grad)": lambda: tper(tparams, Xt, Yt)}, repeat)
    return {"model": kind, "batch": batch, "rel_err_vs_torch": err, **t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with blas_threads(args.threads), np.errstate(under="ignore"):
        rows = [bench(kind, args.batch, args.repeat) for kind in ("mlp", "cnn")]
    names = ["kinkgrad vmap(grad)", "kinkgrad loop of grad", "torch.func vmap(grad)"]
    print(f"per-example gradients, digits, batch {args.batch}, float32, {args.threads} "
          f"thread(s), median of {args.repeat} interleaved rounds (ms; ratio to torch.func)")
    for r in rows:
        base = r["torch.func vmap(grad)"]
        cells = "  ".join(f"{n}: {r[n] * 1e3:7.2f} ({r[n] / base:4.2f})" for n in names)
        print(f"{r['model']:<4s} {cells}  max rel. diff vs torch {r['rel_err_vs_torch']:.1e}")


if __name__ == "__main__":
    main()
