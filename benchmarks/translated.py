"""Translated torch models, value+gradient: kinkgrad's engine on torch tensors and on NumPy
arrays against torch autograd of the same ``nn.Module``, timed in interleaved rounds.

The three contenders run one after the other in every round, so a change of the machine's
speed during the run affects them alike; each figure is the median over rounds of the
per-round ratio to torch autograd. Models as in ``gpu.py`` part 1 (the MLP 784-512-512-10 at
batch 256 and the CNN conv8-pool-conv16-pool-fc at batch 32, float32, cross-entropy).

Usage: ``python benchmarks/translated.py [--rounds R] [--threads T] [--out DIR]``.
Never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
import gpu  # noqa: E402  (the models and torch's step)
import kinkgrad  # noqa: E402
from kinkgrad.interop.torch import to_kinkgrad  # noqa: E402
from overhead import median_ratio, round_times  # noqa: E402


def contenders(model: nn.Module, x: torch.Tensor, y: torch.Tensor
               ) -> dict[str, Callable[[], object]]:
    loss_fn = nn.CrossEntropyLoss()
    f, params = to_kinkgrad(model, loss_fn)
    vg = kinkgrad.value_and_grad(f)
    on_torch = {k: torch.from_numpy(v) for k, v in params.items()}
    xn, yn = x.numpy(), y.numpy()
    return {"engine, torch tensors": lambda: vg(on_torch, x, y),
            "engine, NumPy arrays": lambda: vg(params, xn, yn),
            "torch autograd": gpu.plain_fn(model, loss_fn, x, y)}


def run(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times = round_times(fns, rounds)
    base = times["torch autograd"]
    out = {f"{k} ms": 1e3 * statistics.median(v) for k, v in times.items()}
    out.update({f"{k} ratio": median_ratio(v, base) for k, v in times.items()
                if k != "torch autograd"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed
    models = (("MLP 784-512-512-10, batch 256", gpu.mlp((784, 512, 512, 10)),
               torch.randn(256, 784, generator=gen(0))),
              ("CNN conv8-pool-conv16-pool-fc, batch 32", gpu.cnn(8),
               torch.randn(32, 1, 28, 28, generator=gen(0))))
    rows = []
    print(f"median of {args.rounds} interleaved rounds, {args.threads} thread(s); "
          "ratio: median of per-round ratios to torch autograd")
    print(f"{'model':<42s}{'contender':<24s}{'ms':>9s}{'ratio':>8s}")
    for name, model, x in models:
        y = torch.randint(0, 10, (x.shape[0],), generator=gen(1))
        res = run(contenders(model, x, y), args.rounds)
        for who in ("engine, torch tensors", "engine, NumPy arrays", "torch autograd"):
            ratio = res.get(f"{who} ratio", 1.0)
            print(f"{name:<42s}{who:<24s}{res[who + ' ms']:>9.2f}{ratio:>8.2f}")
            rows.append({"model": name, "contender": who, "ms": res[who + " ms"],
                         "ratio": ratio})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "translated.json"), "w") as fh:
        json.dump({"rounds": args.rounds, "threads": args.threads, "rows": rows}, fh, indent=1)
    plot(rows, os.path.join(args.out, "translated.png"))
    return 0


def plot(rows: list[dict], path: str) -> None:
    """Ratio to torch autograd per model and contender, with the targets of issue 13."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["model"] for r in rows))
    who = ("engine, torch tensors", "engine, NumPy arrays")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k, w in enumerate(who):
        vals = [next(r["ratio"] for r in rows if r["model"] == n and r["contender"] == w)
                for n in names]
        xs = [i + (k - 0.5) * 0.38 for i in range(len(names))]
        ax.bar(xs, vals, 0.38, label=w)
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(1.5, color="tab:blue", ls="--", lw=0.8, label="target on tensors (1.5)")
    ax.axhline(1.3, color="tab:orange", ls="--", lw=0.8, label="target on arrays (CNN, 1.3)")
    ax.set_xticks(range(len(names)), [n.split(",")[0] for n in names])
    ax.set_ylabel("time / torch autograd")
    ax.set_title("Translated models, value+gradient (median of per-round ratios)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
