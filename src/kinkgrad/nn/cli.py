"""``kinkgrad train``: train a ReLU network on a scikit-learn dataset from the command line.

Prints a progress bar per epoch (stderr), a final table (stdout) and, with ``--json``, one
JSON object on the last line of stdout with at least ``train_loss``, ``test_accuracy``,
``kinks_hit``, ``certified_fraction`` and ``seconds``.

Examples:
    kinkgrad train --dataset digits --model mlp --epochs 15 --json
    kinkgrad train --model cnn --dtype float16 --relu0 1
    kinkgrad train --gradient clarke --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence

from ..errors import KinkgradError
from .train import DTYPES, TrainConfig, TrainResult, train

__all__ = ["main", "parser", "format_table"]


def _relu0(text: str) -> float:
    val = float(text)
    if not 0.0 <= val <= 1.0:
        raise argparse.ArgumentTypeError("relu'(0) must lie in the Clarke range [0, 1]")
    return val


def _count(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            val = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if val < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {val}")
        return val

    return parse


def _positive(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(val) and val > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return val


def _save_path(text: str) -> str:
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
    return text


def parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="kinkgrad train",
        description="Train a ReLU network with kinkgrad's backward mode, counting the kinks "
        "hit and certifying generalized gradients.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,  # every option shows its default
    )
    p.add_argument("--dataset", choices=["digits", "breast_cancer"], default=d.dataset,
                   help="scikit-learn dataset: digits (8x8 images, 10 classes) or "
                   "breast_cancer (30 features, 2 classes)")
    p.add_argument("--model", choices=["mlp", "cnn"], default=d.model,
                   help="mlp: dense ReLU layers (--hidden); cnn: conv + max-pool (digits only)")
    p.add_argument("--epochs", type=_count(1), default=d.epochs, help="passes over the data")
    p.add_argument("--batch", type=_count(1), default=d.batch, help="mini-batch size")
    p.add_argument("--lr", type=_positive, default=d.lr, help="learning rate")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype,
                   help="floating-point type of the parameters and the data (float16 hits "
                   "ReLU kinks far more often)")
    p.add_argument(
        "--relu0",
        type=_relu0,
        default=d.relu0,
        help="relu'(0), the kink policy's choice in [0, 1]",
    )
    p.add_argument(
        "--gradient",
        choices=["conservative", "clarke"],
        default=d.gradient,
        help="conservative: plain backward mode; clarke: kinkgrad.clarke_grad per "
        "batch (a guaranteed limiting gradient), with its overhead reported",
    )
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seeds the initialisation, the batch order and clarke's directions")
    p.add_argument(
        "--optimizer",
        choices=["sgd", "vanilla", "adam"],
        default=d.optimizer,
        help="sgd (with --momentum), vanilla (plain SGD) or adam",
    )
    p.add_argument("--momentum", type=float, default=d.momentum,
                   help="momentum of --optimizer sgd")
    p.add_argument("--loss", choices=["cross_entropy", "mse", "l1", "hinge"], default=d.loss,
                   help="training loss (mse and l1 against one-hot labels; multiclass hinge)")
    p.add_argument(
        "--hidden",
        type=_count(1),
        nargs="+",
        default=list(d.hidden),
        help="hidden layer sizes of the mlp",
    )
    p.add_argument(
        "--certify-every",
        type=_count(0),
        default=d.certify_every,
        metavar="K",
        help="run kinkgrad.certify on every K-th batch (0: never; the default, as 1: every "
        "batch; certifying a batch costs more than its gradient); "
        "certified_fraction is over the batches checked",
    )
    p.add_argument(
        "--save", metavar="PATH", type=_save_path,
        help="save the trained parameters (.npz; None: not saved)"
    )
    p.add_argument("--no-progress", action="store_true",
                   help="no progress reports (a bar per epoch on a terminal, a plain line per "
                   "epoch in a log)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the results on the last line",
    )
    return p


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(res: TrainResult) -> str:
    """The final table: one row per epoch, then the run's totals."""
    lines = [
        f"{'epoch':>5s} {'train loss':>11s} {'test loss':>10s} {'test acc':>9s} "
        f"{'kinks':>9s} {'seconds':>8s}"
    ]
    for h in res.history:
        lines.append(
            f"{h['epoch']:>5d} {h['train_loss']:>11.4f} {h['test_loss']:>10.4f} "
            f"{h['test_accuracy']:>9.4f} {h['kinks']:>9d} {h['seconds']:>8.2f}"
        )
    s = res.summary()
    lines.append("")
    rows = [
        ("model", f"{res.config.model} {res.model!r}"),
        ("dataset / dtype", f"{res.config.dataset} / {res.config.dtype}"),
        ("relu'(0) / gradient", f"{res.config.relu0:g} / {res.config.gradient}"),
        ("test accuracy", _fmt(s["test_accuracy"])),
        ("kink entries hit", f"{s['kinks_hit']} in {s['kink_batches']} of {s['batches']} batches"),
        (
            "certified fraction",
            f"{_fmt(s['certified_fraction'])} "
            f"({s['certified_batches']}/{s['certify_checked']} batches "
            f"checked, {s['certify_seconds']:.2f} s)",
        ),
    ]
    if "certify_error" in s:
        rows.append(("certify", s["certify_error"]))
    elif not s["certify_every"]:
        rows.append(
            (
                "certify",
                "off (--certify-every 0)",
            )
        )
    elif s["certify_every"] > 1:
        rows.append(("certify", f"every {s['certify_every']}-th batch"))
    if res.config.gradient == "clarke":
        rows.append(
            (
                "clarke_grad time",
                f"{s['clarke_seconds']:.2f} s vs {s['grad_seconds']:.2f}"
                f" s for backward mode: x{_fmt(s['clarke_time_overhead'])}",
            )
        )
        rows.append(
            ("clarke cost ratio", f"{_fmt(s['clarke_cost_ratio'])} (cost model, relative to grad)")
        )
    rows.append(("seconds", f"{s['seconds']:.2f}"))
    lines += [f"{k:<20s} {v}" for k, v in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kinkgrad train``; returns the exit status."""
    args = parser().parse_args(list(argv) if argv is not None else None)
    cfg = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        dtype=args.dtype,
        relu0=args.relu0,
        gradient=args.gradient,
        seed=args.seed,
        optimizer=args.optimizer,
        momentum=args.momentum,
        loss=args.loss,
        hidden=tuple(args.hidden),
        certify_every=args.certify_every,
        progress=not args.no_progress,
    )
    try:
        res = train(cfg)
    except KinkgradError as exc:
        print(f"kinkgrad train: {exc}")
        if args.json:
            print(json.dumps({"error": str(exc)}))
        return 1
    if args.save:
        from .params import save

        save(args.save, res.params)
    print(format_table(res))
    if args.json:
        print(json.dumps(res.summary()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
