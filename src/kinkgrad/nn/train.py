"""The training loop: mini-batch generalized gradient descent with a kink report per batch.

Each step differentiates the mini-batch loss with ``kinkgrad.value_and_grad(..., report=True)``
under the kink policy ``relu=relu0``: the result is an element of a conservative gradient of
the mini-batch loss (Bolte and Pauwels), and for dense ReLU networks with biases, under this
deterministic and agnostic choice, a Clarke gradient of it (paper B, Baumgärtner and Bethke).
``gradient="clarke"`` replaces it with ``kinkgrad.clarke_grad`` (a limiting gradient whatever
the network, found by resolving kinks along a direction) and measures the overhead.
``certify_every=K`` asks ``kinkgrad.certify`` every K-th batch whether the backpropagated vector
is a certified Clarke gradient (default: every batch for MLPs, where a certificate costs a few
gradients; never for the CNN, where thousands of tied max-pooling windows per batch make one
certificate cost tens of seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import kink_policy, value_and_grad
from .._core import pytree
from .._core.checks import is_int
from ..errors import KinkgradError, NonFiniteInputError
from . import data as data_mod
from .layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential
from .losses import LOSSES
from .optim import make_optimizer

__all__ = ["TrainConfig", "TrainResult", "build_model", "evaluate", "train"]

DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


@dataclass
class TrainConfig:
    """Everything a run depends on (the CLI flags of ``kinkgrad train``)."""

    dataset: str = "digits"
    model: str = "mlp"
    epochs: int = 15
    batch: int = 32
    lr: float = 0.02
    dtype: str = "float32"
    relu0: float = 0.0
    gradient: str = "conservative"
    seed: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.9
    loss: str = "cross_entropy"
    hidden: tuple = (128,)
    certify_every: int | None = None
    progress: bool = True

    def certify_period(self) -> int:
        """``certify_every`` resolved: None means every batch, for the mlp and the cnn (a cnn
        batch of 32 has about 8000 max-pooling windows tied among dead ReLUs; certify sets
        them aside structurally before its sweep, in about 0.1 s a batch instead of 20 s;
        pass 0 to skip certificates)."""
        if self.certify_every is None:
            return 1
        return int(self.certify_every)


@dataclass
class TrainResult:
    """What a run produced: parameters, per-epoch history and counters."""

    config: TrainConfig
    model: Sequential
    params: Any
    history: list = field(default_factory=list)
    kinks_hit: int = 0
    kink_batches: int = 0
    batches: int = 0
    certify_checked: int = 0
    certified: int = 0
    certify_seconds: float = 0.0
    certify_error: str | None = None
    grad_seconds: float = 0.0
    clarke_seconds: float = 0.0
    clarke_cost_ratio: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def certified_fraction(self) -> float | None:
        return self.certified / self.certify_checked if self.certify_checked else None

    def summary(self) -> dict:
        """JSON-ready summary (the object ``kinkgrad train --json`` prints)."""
        last = self.history[-1] if self.history else {}
        out = {
            "train_loss": last.get("train_loss"),
            "test_loss": last.get("test_loss"),
            "test_accuracy": last.get("test_accuracy"),
            "kinks_hit": int(self.kinks_hit),
            "kink_batches": int(self.kink_batches),
            "batches": int(self.batches),
            "certified_fraction": self.certified_fraction,
            "certified_batches": int(self.certified),
            "certify_checked": int(self.certify_checked),
            "certify_seconds": round(self.certify_seconds, 4),
            "seconds": round(self.seconds, 4),
            "grad_seconds": round(self.grad_seconds, 4),
            "certify_every": self.config.certify_period(),
            "config": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()
            },
            "history": self.history,
        }
        if self.certify_error:
            out["certify_error"] = self.certify_error
        if self.config.gradient == "clarke":
            out["clarke_seconds"] = round(self.clarke_seconds, 4)
            out["clarke_time_overhead"] = (
                self.clarke_seconds / self.grad_seconds if self.grad_seconds else None
            )
            out["clarke_cost_ratio"] = (
                float(np.mean(self.clarke_cost_ratio)) if self.clarke_cost_ratio else None
            )
        return out


def build_model(
    name: str, sample_shape: tuple, n_classes: int, hidden: tuple = (128,)
) -> Sequential:
    """``"mlp"``: [Flatten] -> (Dense(h) -> ReLU) per hidden size -> Dense(n_classes).
    ``"cnn"``: Conv2d(16, 3x3, pad 1) -> ReLU -> MaxPool2d(2) -> Flatten -> Dense(64) -> ReLU
    -> Dense(n_classes), for ``(1, 8, 8)`` digits."""
    if name == "mlp":
        layers: list = [Flatten()] if len(sample_shape) > 1 else []
        for h in hidden:
            layers += [Dense(h), ReLU()]
        return Sequential(*layers, Dense(n_classes))
    if name == "cnn":
        if len(sample_shape) != 3:
            raise KinkgradError("the cnn model needs image inputs (digits); use --model mlp.")
        return Sequential(
            Conv2d(16, 3, padding=1),
            ReLU(),
            MaxPool2d(2),
            Flatten(),
            Dense(64),
            ReLU(),
            Dense(n_classes),
        )
    raise KinkgradError(f"unknown model {name!r}; choose 'mlp' or 'cnn'.")


def evaluate(
    model: Sequential,
    params: Any,
    X: np.ndarray,
    y: np.ndarray,
    loss: str = "cross_entropy",
    batch: int = 512,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(X, y)`` (plain NumPy forward passes)."""
    total, correct = 0.0, 0
    with np.errstate(under="ignore"):
        for i in range(0, len(y), batch):
            z = model(params, X[i : i + batch])
            total += float(LOSSES[loss](z, y[i : i + batch])) * len(z)
            correct += int(np.sum(np.argmax(z, axis=1) == y[i : i + batch]))
    return total / len(y), correct / len(y)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A bar per epoch on a terminal, one plain line per epoch in a log (kinkgrad._progress)."""
    from .._progress import bar

    return bar(total=total, desc=desc, unit="batch", enabled=enabled)


def _certify_batch(f: Callable, params: Any, res: TrainResult) -> None:
    try:
        from ..abs_normal import certify
    except ImportError as exc:
        res.certify_error = f"kinkgrad.abs_normal.certify is not available ({exc})"
        return
    t0 = time.perf_counter()
    rep = certify(f, params)
    res.certify_seconds += time.perf_counter() - t0
    res.certify_checked += 1
    res.certified += bool(rep.certified)


def _clarke_step(f: Callable, params: Any, seed: int, res: TrainResult) -> Any:
    from ..abs_normal import clarke_grad

    t0 = time.perf_counter()
    g, info = clarke_grad(f, params, seed=seed)
    res.clarke_seconds += time.perf_counter() - t0
    ratio = getattr(info, "cost_ratio", None)
    if ratio is not None:
        res.clarke_cost_ratio.append(float(ratio))
    return g


def train(
    config: TrainConfig,
    dataset: data_mod.Dataset | None = None,
    probe: Callable[..., None] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``.

    Args:
        config: the run's settings.
        dataset: preloaded data (else loaded from ``config``).
        probe: called after each gradient as ``probe(step, params, batch_loss, xb, yb, grads,
            report)`` before the update (the ReLU'(0) study uses it).

    Returns:
        A :class:`TrainResult`. Its gradients were elements of a conservative gradient of each
        mini-batch loss (``gradient="conservative"``) or limiting gradients of it
        (``"clarke"``).
    """
    if config.gradient not in ("conservative", "clarke"):
        raise KinkgradError(f"gradient={config.gradient!r}: use 'conservative' or 'clarke'.")
    if config.dtype not in DTYPES:
        raise KinkgradError(f"dtype={config.dtype!r}: use one of {sorted(DTYPES)}.")
    if config.loss not in LOSSES:
        raise KinkgradError(f"loss={config.loss!r}: use one of {sorted(LOSSES)}.")
    def count(v: Any, least: int) -> bool:
        return is_int(v) and v >= least

    if not (count(config.epochs, 1) and count(config.batch, 1)):
        raise KinkgradError(f"epochs={config.epochs}, batch={config.batch}: pass integers "
                            ">= 1.")
    if not (config.certify_every is None or count(config.certify_every, 0)):
        raise KinkgradError(f"certify_every={config.certify_every!r}: pass an integer >= 0 "
                            "(0: never) or None (every batch).")
    hidden = tuple(np.atleast_1d(config.hidden).tolist())  # an int: one hidden layer
    if not all(count(h, 1) for h in hidden):
        raise KinkgradError(f"hidden={config.hidden!r}: pass a tuple of layer sizes >= 1, "
                            "e.g. (64,) or (64, 32).")
    t_start = time.perf_counter()
    dtype = DTYPES[config.dtype]
    ds = dataset or data_mod.load(config.dataset, dtype=dtype, images=config.model == "cnn")
    model = build_model(config.model, ds.sample_shape, ds.n_classes, hidden)
    params, _ = model.init(config.seed, ds.sample_shape, dtype)
    opt = make_optimizer(config.optimizer, config.lr, config.momentum)
    state = opt.init(params)
    policy = kink_policy(relu=float(config.relu0))
    loss_fn = LOSSES[config.loss]

    def batch_loss(p: Any, xb: np.ndarray, yb: np.ndarray) -> Any:
        return loss_fn(model(p, xb), yb)

    vg = value_and_grad(batch_loss, report=True, policy=policy)
    res = TrainResult(config, model, params)
    every = config.certify_period()
    rng = np.random.default_rng(config.seed + 1)
    n_batches = -(-len(ds.y_train) // config.batch)
    step = 0
    # NOTE: gradual underflow (exp of very negative logits in float16/float32) is benign and
    # expected in low precision; overflow and invalid operations still raise or warn.
    with np.errstate(under="ignore"), policy:
        for epoch in range(config.epochs):
            bar = _progress(n_batches, f"epoch {epoch + 1}/{config.epochs}", config.progress)
            losses, kinks_epoch, t_epoch = [], 0, time.perf_counter()
            for idx in data_mod.batches(len(ds.y_train), config.batch, rng):
                xb, yb = ds.X_train[idx], ds.y_train[idx]
                t0 = time.perf_counter()
                try:
                    val, g, rep = vg(params, xb, yb)
                except NonFiniteInputError as exc:  # NOTE: the parameters overflowed, not
                    if _all_finite(params):          # the data (grad's advice, clean the
                        raise                        # input, would mislead)
                    raise KinkgradError(
                        f"training diverged at epoch {epoch + 1}, step {step + 1}: the "
                        "parameters are no longer finite; lower --lr or use a wider "
                        "--dtype.") from exc
                res.grad_seconds += time.perf_counter() - t0
                res.kinks_hit += rep.total
                res.kink_batches += rep.total > 0
                kinks_epoch += rep.total

                def f(p: Any, xb: np.ndarray = xb, yb: np.ndarray = yb) -> Any:
                    return batch_loss(p, xb, yb)

                if config.gradient == "clarke":
                    g = _clarke_step(f, params, config.seed * 100003 + step, res)
                if every and step % every == 0 and res.certify_error is None:
                    _certify_batch(f, params, res)
                if probe is not None:
                    probe(step, params, batch_loss, xb, yb, g, rep)
                try:
                    params, state = opt.update(params, g, state)
                except FloatingPointError as exc:  # NOTE: under np.errstate(over="raise")
                    raise KinkgradError(
                        f"training diverged at epoch {epoch + 1}, step {step + 1}: the "
                        "parameters' update overflows; lower --lr or use a wider --dtype."
                    ) from exc
                losses.append(float(val))
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses):.4f}", kinks=kinks_epoch)
            test_loss, test_acc = evaluate(model, params, ds.X_test, ds.y_test, config.loss)
            res.history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(np.mean(losses)),
                    "test_loss": test_loss,
                    "test_accuracy": test_acc,
                    "kinks": int(kinks_epoch),
                    "seconds": round(time.perf_counter() - t_epoch, 4),
                }
            )
            if bar is not None:
                bar.set_postfix(
                    loss=f"{np.mean(losses):.4f}", kinks=kinks_epoch, test_acc=f"{test_acc:.4f}"
                )
                bar.close()
            if not np.isfinite(np.mean(losses)):
                raise KinkgradError(
                    f"training diverged at epoch {epoch + 1} (loss "
                    f"{np.mean(losses)}); lower --lr or use a wider --dtype."
                )
    res.params, res.batches = params, step
    res.seconds = time.perf_counter() - t_start
    return res


def _all_finite(params: Any) -> bool:
    """Every floating-point parameter entry finite."""
    return all(np.all(np.isfinite(np.asarray(p))) for p in pytree.flatten(params)[0]
               if np.asarray(p).dtype.kind == "f")
