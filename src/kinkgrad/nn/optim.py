"""Optimizers on parameter pytrees: SGD (with momentum) and Adam, PyTorch's update rules.

Functional: ``state = opt.init(params)``; ``params, state = opt.update(params, grads, state)``.
The update arithmetic and the optimizer state are kept in at least float32 (float16
parameters are updated in float32 and rounded back once per step, like PyTorch's
``p.add_(..)`` on a half tensor up to double rounding); the parameters keep their dtype, so the
network is evaluated and differentiated in the precision chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core import pytree
from .._core.checks import is_real
from ..errors import KinkgradError

__all__ = ["SGD", "Adam", "make_optimizer"]


def _constant(p: Any) -> bool:
    """An integer or boolean leaf (an index array in the params): a constant, never updated
    (its gradient entry is zeros, see kinkgrad._core.pytree)."""
    return np.asarray(p).dtype.kind != "f"


def _state(state: Any, keys: tuple, where: str) -> None:
    """A KinkgradError unless ``state`` is a dict holding ``keys`` (KeyError before)."""
    if not isinstance(state, dict) or not all(k in state for k in keys):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise KinkgradError(f"{where}.update: state must be the dict that {where}.init(params) "
                            f"returned (keys {list(keys)}), got {have}.")


def _work(x: np.ndarray) -> np.dtype:
    return np.promote_types(np.asarray(x).dtype, np.float32)


class SGD:
    """Stochastic gradient descent: ``v <- mu v + g + wd p``; ``p <- p - lr v``
    (``mu = 0``: plain SGD ``p <- p - lr g``). With a conservative (or Clarke) gradient of
    the mini-batch loss this is the stochastic generalized gradient method of paper B.
    """

    def __init__(self, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        if not (is_real(lr) and lr > 0 and is_real(momentum) and 0 <= momentum < 1
                and is_real(weight_decay) and weight_decay >= 0):
            raise KinkgradError(
                f"SGD: need a finite lr > 0, 0 <= momentum < 1 and weight_decay >= 0, got "
                f"lr={lr!r}, momentum={momentum!r}, weight_decay={weight_decay!r}."
            )
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)

    def init(self, params: Any) -> dict:
        leaves, _ = pytree.flatten(params)
        return {"step": 0, "v": [np.zeros(np.shape(p), _work(p)) for p in leaves]}

    def update(self, params: Any, grads: Any, state: dict) -> tuple[Any, dict]:
        _state(state, ("step", "v"), "SGD")
        leaves, td, gl = _matched(params, grads, state["v"], "SGD")
        new, vs = [], []
        for p, g, v in zip(leaves, gl, state["v"]):
            if _constant(p):
                new.append(p)
                vs.append(v)
                continue
            w = _work(p)
            g = np.asarray(g, w)
            if self.weight_decay:
                g = g + self.weight_decay * np.asarray(p, w)
            if self.momentum:
                v = self.momentum * v + g if state["step"] else g.copy()
                step = v
            else:
                step = g
            vs.append(v)
            new.append((np.asarray(p, w) - self.lr * step).astype(np.asarray(p).dtype))
        return pytree.unflatten(td, new), {"step": state["step"] + 1, "v": vs}


def _matched(params: Any, grads: Any, slots: list, where: str) -> tuple[list, Any, list]:
    """(parameter leaves, their tree, gradient leaves) after checking that the gradients
    have the parameters' structure and shapes and the state one slot per leaf (a missing
    gradient dropped its parameter, a (4,) gradient broadcast into a (3, 4) one)."""
    leaves, td = pytree.flatten(params)
    gl, gtd = pytree.flatten(grads)
    if gtd != td or len(slots) != len(leaves):
        raise KinkgradError(
            f"{where}.update: the gradients (or the optimizer state) do not have the "
            f"parameters' structure, {pytree.describe(td)}; pass grads as kinkgrad.grad "
            "returns them for these parameters, and a state from init(params).")
    for k, (p, g) in enumerate(zip(leaves, gl)):
        if np.shape(g) != np.shape(p):
            raise KinkgradError(
                f"{where}.update: parameter leaf {k} has shape {np.shape(p)} and its gradient "
                f"{np.shape(g)}; pass the gradient of these parameters (kinkgrad.grad).")
    return leaves, td, gl


class Adam:
    """Adam (Kingma and Ba) with bias correction, as ``torch.optim.Adam``:
    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``."""

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and is_real(lr) and lr > 0
                and all(is_real(b) and 0 <= b < 1 for b in betas)
                and is_real(eps, finite=False) and eps > 0):
            raise KinkgradError(f"Adam: need a finite lr > 0, 0 <= betas < 1 and eps > 0, got "
                                f"lr={lr!r}, betas={betas!r}, eps={eps!r}.")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)

    def init(self, params: Any) -> dict:
        leaves, _ = pytree.flatten(params)
        return {
            "step": 0,
            "m": [np.zeros(np.shape(p), _work(p)) for p in leaves],
            "v": [np.zeros(np.shape(p), _work(p)) for p in leaves],
        }

    def update(self, params: Any, grads: Any, state: dict) -> tuple[Any, dict]:
        _state(state, ("step", "m", "v"), "Adam")
        leaves, td, gl = _matched(params, grads, state["m"], "Adam")
        t = state["step"] + 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        new, ms, vs = [], [], []
        for p, g, m, v in zip(leaves, gl, state["m"], state["v"]):
            if _constant(p):
                new.append(p)
                ms.append(m)
                vs.append(v)
                continue
            w = _work(p)
            g = np.asarray(g, w)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (g * g)
            denom = np.sqrt(v / c2) + self.eps
            new.append((np.asarray(p, w) - self.lr * (m / c1) / denom).astype(np.asarray(p).dtype))
            ms.append(m)
            vs.append(v)
        return pytree.unflatten(td, new), {"step": t, "m": ms, "v": vs}


def make_optimizer(name: str, lr: float, momentum: float = 0.9) -> SGD | Adam:
    """``"sgd"`` (with ``momentum``), ``"vanilla"`` (SGD without momentum) or ``"adam"``."""
    if name == "sgd":
        return SGD(lr, momentum=momentum)
    if name == "vanilla":
        return SGD(lr)
    if name == "adam":
        return Adam(lr)
    raise KinkgradError(f"optimizer {name!r}: choose 'sgd', 'vanilla' or 'adam'.")
