"""Parameter pytrees: seeded initialisation, tree arithmetic, save/load to ``.npz``.

A parameter pytree is what :class:`~kinkgrad.nn.layers.Sequential` builds: a dict mapping a
layer name (``"0_dense"``) to a dict of arrays (``{"W": ..., "b": ...}``). Any pytree that
:mod:`kinkgrad._core.pytree` understands (arrays inside tuples, lists and string-keyed dicts)
works with the functions here, and ``kinkgrad.value_and_grad`` returns gradients with the
same structure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import pytree
from ..errors import KinkgradError

__all__ = [
    "torch_uniform",
    "he_normal",
    "tree_map",
    "tree_leaves",
    "tree_norm",
    "tree_sub",
    "tree_cast",
    "num_params",
    "save",
    "load",
]


# ------------------------------------------------------------------ seeded initialisation
def torch_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, dtype: Any) -> np.ndarray:
    """PyTorch's default for ``Linear``/``Conv2d`` weights and biases: U(-a, a), a = 1/sqrt(fan_in).

    (Kaiming-uniform with negative slope sqrt(5) gives exactly this bound.) Drawn in float64
    from ``rng`` and rounded to ``dtype``, so the same seed gives the same network in every
    precision up to rounding.
    """
    bound = 1.0 / np.sqrt(max(fan_in, 1))
    return _round(rng.uniform(-bound, bound, size=shape), dtype)


def he_normal(rng: np.random.Generator, shape: tuple, fan_in: int, dtype: Any) -> np.ndarray:
    """He (Kaiming) normal initialisation N(0, 2/fan_in), suited to ReLU layers."""
    return _round(rng.normal(size=shape) * np.sqrt(2.0 / max(fan_in, 1)), dtype)


def _round(x: np.ndarray, dtype: Any) -> np.ndarray:
    # NOTE: rounding tiny draws to float16 underflows to subnormals or 0 by design.
    with np.errstate(under="ignore"):
        return x.astype(dtype)


# ------------------------------------------------------------------ tree arithmetic
def tree_leaves(tree: Any) -> list:
    """The arrays of a pytree in the fixed order of :func:`kinkgrad._core.pytree.flatten`."""
    return pytree.flatten(tree)[0]


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` leaf by leaf to one or more pytrees of the same structure."""
    leaves, td = pytree.flatten(tree)
    others = [pytree.flatten(t)[0] for t in rest]
    for o in others:
        if len(o) != len(leaves):
            raise KinkgradError("tree_map: the pytrees have different structures.")
    return pytree.unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])


def tree_sub(a: Any, b: Any) -> Any:
    """Leafwise ``a - b`` computed in float64."""
    return tree_map(lambda x, y: np.asarray(x, np.float64) - np.asarray(y, np.float64), a, b)


def tree_norm(tree: Any) -> float:
    """Euclidean norm of all leaves stacked into one vector (computed in float64)."""
    return float(
        np.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64)))) for x in tree_leaves(tree)))
    )


def tree_cast(tree: Any, dtype: Any) -> Any:
    """Every leaf converted to ``dtype``."""
    return tree_map(lambda x: _round(np.asarray(x), dtype), tree)


def num_params(tree: Any) -> int:
    """Total number of scalar parameters."""
    return int(sum(np.size(x) for x in tree_leaves(tree)))


# ------------------------------------------------------------------ save / load
def _paths(tree: Any, prefix: str, out: list) -> None:
    """Readable key of every leaf, in the order of ``pytree.flatten``."""
    if hasattr(tree, "_fields") or (hasattr(type(tree), "__dataclass_fields__")
                                    and not isinstance(tree, type)):
        raise KinkgradError(
            f"save: a {type(tree).__name__} in the parameters cannot be written without pickle; "
            "save a dict of arrays (namedtuple: p._asdict(); dataclass: dataclasses.asdict(p))."
        )
    if isinstance(tree, (tuple, list)):
        for i, t in enumerate(tree):
            _paths(t, f"{prefix}{i}/", out)
    elif isinstance(tree, dict):
        for k in sorted(tree):
            if not isinstance(k, str) or "/" in k or (not prefix and k == "__treedef__"):
                raise KinkgradError(f"save: parameter key {k!r} must be a string without '/' "
                                    "(and not '__treedef__', the file's own entry).")
            _paths(tree[k], f"{prefix}{k}/", out)
    elif tree is not None:
        out.append(prefix.rstrip("/") or "leaf")


def save(path: str | os.PathLike, params: Any) -> None:
    """Write a parameter pytree to ``path`` (``.npz``, appended if missing): one array per
    leaf, named by its path (``"0_dense/W"``), plus the tree structure as JSON, so
    :func:`load` rebuilds it exactly (same structure, dtypes, shapes and bits)."""
    leaves, td = pytree.flatten(params)
    names: list[str] = []
    _paths(params, "", names)
    arrays = {n: np.asarray(x) for n, x in zip(names, leaves)}
    arrays["__treedef__"] = np.array(json.dumps({"treedef": td, "names": names}))
    np.savez(path, **arrays)


def _detuple(td: Any) -> Any:
    """JSON turns the treedef's tuples into lists; unflatten only indexes them, but the
    dict keys list must stay a list and the children be rebuilt recursively."""
    if td == pytree.LEAF:
        return td
    kind = td[0]
    if kind == "dict":
        return ("dict", list(td[1]), [_detuple(c) for c in td[2]])
    if kind in ("tuple", "list"):
        return (kind, [_detuple(c) for c in td[1]])
    return ("none",)


def load(path: str | os.PathLike) -> Any:
    """Read a parameter pytree written by :func:`save` (no pickle involved). As
    :func:`save` (``np.savez``) appends ``.npz`` to a path without it, ``load("p")`` reads
    ``p.npz`` when ``p`` itself does not exist."""
    if not os.path.exists(path) and os.path.exists(os.fspath(path) + ".npz"):
        path = os.fspath(path) + ".npz"
    with np.load(path, allow_pickle=False) as data:
        if "__treedef__" not in data:
            raise KinkgradError(
                f"load: {os.fspath(path)!r} was not written by "
                "kinkgrad.nn.params.save (no __treedef__ entry)."
            )
        meta = json.loads(str(data["__treedef__"]))
        leaves = [np.array(data[n]) for n in meta["names"]]
    return pytree.unflatten(_detuple(meta["treedef"]), leaves)
