"""The least an eager Python tape can do: a reference point for kinkgrad's per-operation cost.

A traced array with a value and a slot, a tape of ``(vjp, input slots, output slot)`` tuples,
one reverse loop; only the operations of the overhead benchmark's MLP, no kink selection, no
pytrees, no error handling, no thread gate, nothing let go early. Like kinkgrad it tests each
returned gradient for NaN/inf (one dot product), so the two differ by the machinery only.

It is not a library: it answers "how close to hand-written NumPy can any eager tape written in
Python come on this machine?", which is the floor for kinkgrad's engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Tape:
    __slots__ = ("vals", "nodes")

    def __init__(self) -> None:
        self.vals: list = []
        self.nodes: list = []

    def leaf(self, v: np.ndarray) -> TArray:
        self.vals.append(v)
        return TArray(v, len(self.vals) - 1, self)

    def record(self, out: Any, saved: Any, vjp: Any, *ins: int) -> TArray:
        self.vals.append(saved)
        self.nodes.append((vjp, ins, len(self.vals) - 1))
        return TArray(out, len(self.vals) - 1, self)


class TArray:
    __slots__ = ("v", "i", "tape")

    def __init__(self, v: Any, i: int, tape: Tape) -> None:
        self.v, self.i, self.tape = v, i, tape

    def __matmul__(self, o: TArray) -> TArray:
        out = self.v @ o.v
        return self.tape.record(out, (self.v, o.v), _matmul_vjp, self.i, o.i)

    def __add__(self, o: TArray) -> TArray:
        out = self.v + o.v
        return self.tape.record(out, o.v.ndim, _add_vjp, self.i, o.i)

    def __sub__(self, o: TArray) -> TArray:
        return self.tape.record(self.v - o.v, None, _sub_vjp, self.i, o.i)

    def pick(self, rows: np.ndarray, cols: np.ndarray) -> TArray:
        """``self[rows, cols]``"""
        return self.tape.record(self.v[rows, cols], (self.v.shape, rows, cols), _pick_vjp,
                                self.i)


def relu(x: TArray) -> TArray:
    out = np.maximum(x.v, 0)
    return x.tape.record(out, out, _relu_vjp, x.i)


def logsumexp_rows(x: TArray) -> TArray:
    m = x.v.max(axis=1, keepdims=True)
    e = np.exp(x.v - m)
    s = e.sum(axis=1, keepdims=True)
    return x.tape.record(np.log(s[:, 0]) + m[:, 0], e / s, _lse_vjp, x.i)


def mean(x: TArray) -> TArray:
    return x.tape.record(x.v.mean(), x.v.shape, _mean_vjp, x.i)


def _matmul_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    a, b = saved
    return (g @ b.T if needs[0] else None, a.T @ g)


def _add_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    return (g, g.sum(axis=0) if g.ndim > saved else g)


def _sub_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    return (g, -g)


def _relu_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    return (g * (saved > 0),)


def _lse_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    return (saved * g[:, None],)


def _pick_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    shape, rows, cols = saved
    z = np.zeros(shape, g.dtype)
    np.add.at(z, (rows, cols), g)
    return (z,)


def _mean_vjp(g: np.ndarray, saved: Any, needs: tuple) -> tuple:
    return (np.full(saved, g / np.prod(saved), dtype=np.result_type(g)),)


def value_and_grad(params: dict, x: np.ndarray, y: np.ndarray, n_layers: int
                   ) -> tuple[float, dict]:
    """The overhead benchmark's MLP loss (ReLU layers, mean cross-entropy) and its gradient
    with respect to ``params`` (``W0, b0, ...``)."""
    tape = Tape()
    p = {k: tape.leaf(v) for k, v in params.items()}
    h = tape.leaf(x)
    x_slot = h.i  # a constant: no gradient
    for i in range(n_layers):
        h = h @ p[f"W{i}"] + p[f"b{i}"]
        if i < n_layers - 1:
            h = relu(h)
    out = mean(logsumexp_rows(h) - h.pick(np.arange(x.shape[0]), y))
    ct: dict[int, Any] = {out.i: np.ones((), out.v.dtype)}
    for vjp, ins, j in reversed(tape.nodes):
        g = ct.pop(j, None)
        if g is None:
            continue
        needs = tuple(i != x_slot for i in ins)
        for i, c in zip(ins, vjp(g, tape.vals[j], needs)):
            if c is not None and i != x_slot:
                ct[i] = c if i not in ct else ct[i] + c
    grads = {k: ct[t.i] for k, t in p.items()}
    for c in grads.values():
        flat = c.reshape(-1)
        if not np.isfinite(np.dot(flat, flat)) and not np.isfinite(c).all():
            raise FloatingPointError("non-finite gradient")
    return float(out.v), grads
