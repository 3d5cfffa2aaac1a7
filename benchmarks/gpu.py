"""kinkgrad's engine and ``clarke_grad_torch`` against plain PyTorch backward, on GPU or CPU.

Part 1: value+gradient of an MLP (the one of ``overhead.py``, 784-512-512-10, batch 256) and a
small CNN, float32, cross-entropy: kinkgrad's engine (``kinkgrad.value_and_grad`` of the model
translated by ``kinkgrad.interop.torch.to_kinkgrad``) on NumPy arrays and on torch tensors of
the benchmark device, against PyTorch's own autograd on the same device.

Part 2: ``clarke_grad_torch`` (a guaranteed Clarke gradient) against plain value+gradient
with PyTorch's backward, for its two laws of random direction (``rank1``, the default, and
``dense``), on an MLP w-w-w-w-10 with batch w (CUDA: w = 4096, float32 and bfloat16; CPU:
``--size``, default 1024) in two states: random weights (few kinks or none: tangents are
formed only for the samples that hit one) and the same network with one dead unit per hidden
layer (weights and bias 0: a kink in every layer for every sample, so every tangent is
formed for every sample); and a small CNN. The issue's
target on CUDA: at most 1.7x plain backward on the MLP at batch and width 4096. Cost model,
in matrix products of one layer: plain 3 per layer (2 for the first); the tangent adds 1 per
layer after the first with ``rank1`` and 2 per layer (1 for the first) with ``dense``.

On a machine without CUDA every row is labelled ``cpu``: CPU ratios say nothing precise
about GPU ratios. Usage: ``python benchmarks/gpu.py [--repeat R] [--size W] [--out DIR]
[--device cpu|cuda] [--threads T] [--skip-part1] [--skip-part2] [--torch-fast-ab]``
(``--threads`` limits torch's and, through threadpoolctl, NumPy's BLAS threads;
``--torch-fast-ab`` adds the engine on torch tensors with the backend's fast paths off,
interleaved with it on). Prints tables, writes ``gpu.json`` and ``gpu.png``; never asserts
on time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import kinkgrad
from kinkgrad.interop.torch import clarke_grad_torch, to_kinkgrad


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fns: dict[str, Callable[[], object]], device: torch.device, repeat: int,
           warmup: int = 3) -> dict[str, float]:
    """Wall time (s) of each function, timed in interleaved rounds so that load from other
    processes hits every contender alike: the minimum over rounds (the least disturbed run;
    the median is stored under ``name + " median"``)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    out = {k: min(v) for k, v in times.items()}
    out.update({k + " median": statistics.median(v) for k, v in times.items()})
    return out


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn(channels: int) -> nn.Sequential:
    c = channels
    return nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * c * 7 * 7, 10))


def plain_fn(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor
             ) -> Callable[[], object]:
    params = list(model.parameters())

    def run() -> object:
        return torch.autograd.grad(loss_fn(model(x), y), params)

    return run


def forward_fn(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor
               ) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return loss_fn(model(x), y)

    return run


def clarke_fn(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
              direction: str = "rank1") -> Callable[[], object]:
    def run() -> object:
        return clarke_grad_torch(model, loss_fn, (x, y), seed=0, direction=direction)

    return run


# ---------------------------------------------------------------------- part 1
def _plain_torch_numpy(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with the backend's fast paths off (plain ``torch._numpy``)."""
    from kinkgrad import backends

    def run() -> object:
        prev = backends.set_torch_fast(False)
        try:
            return fn()
        finally:
            backends.set_torch_fast(prev)

    return run


def part1(device: torch.device, repeat: int, ab: bool = False) -> list[dict]:
    """Value+gradient: kinkgrad's engine (NumPy; torch tensors on ``device``) vs torch. With
    ``ab``, also the engine on torch tensors with plain ``torch._numpy`` (the backend's fast
    paths off), timed interleaved with the default (fast paths on)."""
    rows = []
    loss_fn = nn.CrossEntropyLoss()
    for name, model, x in (("MLP 784-512-512-10, batch 256", mlp((784, 512, 512, 10)),
                            torch.randn(256, 784, generator=torch.Generator().manual_seed(0))),
                           ("CNN conv8-pool-conv16-pool-fc, batch 32", cnn(8),
                            torch.randn(32, 1, 28, 28,
                                        generator=torch.Generator().manual_seed(0)))):
        y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
        f, params = to_kinkgrad(model, loss_fn)
        vg = kinkgrad.value_and_grad(f)
        xn, yn = x.numpy(), y.numpy()
        md = model.to(device)
        xd, yd = x.to(device), y.to(device)
        pd = {k: torch.from_numpy(v).to(device) for k, v in params.items()}
        on_torch = f"kinkgrad engine, torch tensors ({device.type})"
        fns = {"kinkgrad engine, NumPy arrays (cpu)": functools.partial(vg, params, xn, yn),
               on_torch: functools.partial(vg, pd, xd, yd),
               f"torch autograd ({device.type})": plain_fn(md, loss_fn, xd, yd)}
        groups = [[k] for k in fns]
        if ab:  # interleaved with the fast-path row (same library threads)
            plain = on_torch.replace("tensors", "tensors, plain torch._numpy")
            fns[plain] = _plain_torch_numpy(fns[on_torch])
            groups = [[k] for k in fns if k not in (on_torch, plain)] + [[on_torch, plain]]
        # timed one after the other, not interleaved: NumPy's BLAS threads and torch's
        # OpenMP threads spin-wait after their work and slow each other down when alternated
        t: dict[str, float] = {}
        for group in groups:
            t.update(timeit({k: fns[k] for k in group}, device, repeat))
        base = t[f"torch autograd ({device.type})"]
        rows += [{"part": 1, "model": name, "what": k, "seconds": t[k],
                  "median_s": t[k + " median"], "ratio": t[k] / base} for k in fns]
    return rows


# ---------------------------------------------------------------------- part 2
def _dead_units(model: nn.Sequential, width: int) -> nn.Sequential:
    """The same network with unit 0 of every hidden layer dead (weights and bias 0): its
    pre-activation is exactly 0 for every sample, a kink in every layer."""
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear) and m.out_features == width:
                m.weight[0] = 0.0
                m.bias[0] = 0.0
    return model


def part2(device: torch.device, repeat: int, dtypes: list[torch.dtype], w: int) -> list[dict]:
    b = w
    cb, cc = (256, 64) if device.type == "cuda" else (32, 8)
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    for dtype in dtypes:
        torch.manual_seed(0)
        net = mlp((w, w, w, w, 10))
        dead = mlp((w, w, w, w, 10))
        dead.load_state_dict(net.state_dict())
        x, y = torch.randn(b, w), torch.randint(0, 10, (b,))
        cases = {
            f"MLP {w}-{w}-{w}-{w}-10, batch {b}, random weights": (net, x, y),
            f"MLP {w}-{w}-{w}-{w}-10, batch {b}, kinks in every layer": (
                _dead_units(dead, w), x, y),
            f"CNN conv{cc}-pool-conv{2 * cc}-pool-fc, batch {cb}, 28x28": (
                cnn(cc), torch.randn(cb, 1, 28, 28), torch.randint(0, 10, (cb,))),
        }
        for name, (model, xc, yc) in cases.items():
            model = model.to(device=device, dtype=dtype)
            xc, yc = xc.to(device=device, dtype=dtype), yc.to(device)
            _, info = clarke_grad_torch(model, loss_fn, (xc, yc), seed=0)
            t = timeit({"forward": forward_fn(model, loss_fn, xc, yc),
                        "plain": plain_fn(model, loss_fn, xc, yc),
                        "rank1": clarke_fn(model, loss_fn, xc, yc, "rank1"),
                        "dense": clarke_fn(model, loss_fn, xc, yc, "dense")}, device, repeat)
            rows.append({"part": 2, "what": name, "device": str(device),
                         "dtype": str(dtype).removeprefix("torch."),
                         "kinks": info.total_kinks, "forward_s": t["forward"],
                         "plain_s": t["plain"], "rank1_s": t["rank1"], "dense_s": t["dense"],
                         "ratio": t["rank1"] / t["plain"],
                         "ratio_median": t["rank1 median"] / t["plain median"],
                         "ratio_dense": t["dense"] / t["plain"]})
    return rows


# ---------------------------------------------------------------------- output
def print_tables(rows1: list[dict], rows2: list[dict], device_name: str) -> None:
    print(f"device: {device_name}")
    print("\nPart 1: value+gradient, float32 (ratio to torch autograd on the same device)")
    print(f"{'model':40s} {'what':42s} {'ms':>9s} {'ratio':>7s}")
    for r in rows1:
        print(f"{r['model']:40s} {r['what']:42s} {1e3 * r['seconds']:9.2f} {r['ratio']:7.2f}")
    print("\nPart 2: clarke_grad_torch / plain value+grad (target <= 1.7 on CUDA, MLP 4096)")
    print(f"{'model':58s} {'dtype':>9s} {'kinks':>6s} {'plain ms':>9s} {'rank1 ms':>9s} "
          f"{'dense ms':>9s} {'rank1':>6s} {'(med)':>6s} {'dense':>6s}")
    for r in rows2:
        print(f"{r['what']:58s} {r['dtype']:>9s} {r['kinks']:6d} {1e3 * r['plain_s']:9.2f} "
              f"{1e3 * r['rank1_s']:9.2f} {1e3 * r['dense_s']:9.2f} {r['ratio']:6.2f} "
              f"{r['ratio_median']:6.2f} {r['ratio_dense']:6.2f}")
    print("(times: minimum over interleaved rounds; ratios of minima, (med): of medians)")


def plot(rows2: list[dict], path: str, device_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['what'].split(',')[0]}\n{r['what'].split(', ')[-1]}\n{r['dtype']}"
              for r in rows2]
    xs = np.arange(len(rows2))
    fig, ax = plt.subplots(figsize=(2.0 + 1.8 * len(rows2), 3.8))
    ax.bar(xs - 0.2, [r["ratio"] for r in rows2], 0.4, color="tab:blue", label="rank1")
    ax.bar(xs + 0.2, [r["ratio_dense"] for r in rows2], 0.4, color="tab:orange",
           label="dense")
    ax.axhline(1.7, color="tab:red", ls="--", label="target 1.7 (CUDA)")
    ax.set_xticks(xs, labels, fontsize=6)
    ax.set_ylabel("clarke_grad_torch / plain backward")
    ax.set_title(f"time ratio on {device_name}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=0,
                    help="MLP width and batch of part 2 (default: 4096 on CUDA, 1024 on CPU)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default)")
    ap.add_argument("--skip-part1", action="store_true")
    ap.add_argument("--skip-part2", action="store_true")
    ap.add_argument("--torch-fast-ab", action="store_true",
                    help="part 1 also times the engine on torch tensors with plain torch._numpy "
                         "(the backend's fast paths off), interleaved with the default")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        try:  # NumPy's BLAS threads too
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = (torch.cuda.get_device_name(device) if cuda
            else f"cpu ({torch.get_num_threads()} threads; NOT GPU numbers)")
    dtypes = [torch.float32, torch.bfloat16] if cuda else [torch.float32]
    rows1 = [] if args.skip_part1 else part1(device, args.repeat, args.torch_fast_ab)
    rows2 = [] if args.skip_part2 else part2(device, args.repeat, dtypes,
                                             args.size or (4096 if cuda else 1024))
    print_tables(rows1, rows2, name)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu.json"), "w") as fh:
        json.dump({"device": name, "part1": rows1, "part2": rows2}, fh, indent=1)
    if rows2:
        plot(rows2, os.path.join(args.out, "gpu.png"), name)
    print(f"\nwrote {args.out}/gpu.json" + (" and gpu.png" if rows2 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
