"""Flatten and unflatten pytrees.

A pytree is a leaf (an array or a number) or a nesting of tuples, lists, dicts (sorted keys),
namedtuples and dataclass instances (every field, in declaration order); ``None`` is an empty
node. Gradients come back in the same containers: a namedtuple of arrays gives a namedtuple
of gradients, a dataclass a dataclass of the same class (rebuilt field by field, without
calling ``__init__`` or ``__post_init__``).

Constant leaves. Inside a differentiated argument, a leaf that is not floating point (an
integer index array, a boolean mask, an int such as a layer count, a string) is a
*constant* of the program, as JAX's integer inputs are: it is passed to the function as it
is and nothing is differentiated with respect to it. Its entry in a gradient is an array of
zeros with its shape and dtype for a numeric leaf (JAX returns float0 zeros, a dtype NumPy
does not have; an integer zero keeps the gradient's structure and leaf shapes those of the
argument, so optimizers can zip parameters and gradients; ``kinkgrad.nn``'s optimizers leave
such leaves unchanged), and ``None`` for a non-numeric one. A treedef marks such a leaf with a
``("const", Constant)`` node.
"""

from __future__ import annotations

import dataclasses
from itertools import islice
from typing import Any

import numpy as np

__all__ = ["flatten", "unflatten", "LEAF", "Constant", "mark_constants", "match",
           "input_leaves", "input_count", "constants", "same_constant", "describe"]

LEAF = "*"


class Constant:
    """A constant leaf held in a treedef; equal only to itself, so treedefs compare cheaply."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def zero(self) -> Any:
        """The leaf's gradient entry: zeros of its shape and dtype (None if not numeric)."""
        kind = np.asarray(self.value).dtype.kind
        return np.zeros(np.shape(self.value), np.asarray(self.value).dtype) \
            if kind in "biuf" else None

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


# Types that are leaves, tested first by exact type (the traced array registers itself)
_LEAF_TYPES: set[type] = {np.ndarray, float}


def register_leaf_type(t: type) -> None:
    """Make instances of ``t`` (exactly) leaves without the container tests."""
    _LEAF_TYPES.add(t)


def flatten(tree: Any) -> tuple[list, Any]:
    """Leaves in a fixed order and a tree definition to rebuild the structure."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _sorted_keys(tree: dict) -> list:
    """A dict's keys in sorted order (the leaves' fixed order), or a KinkgradError naming
    them where they cannot be ordered (a raw TypeError from ``sorted`` before)."""
    try:
        return sorted(tree)
    except TypeError:
        from ..errors import KinkgradError

        kinds = sorted({type(k).__name__ for k in tree})
        raise KinkgradError(
            f"pytree: the dict keys {list(tree)[:6]} mix types ({', '.join(kinds)}) that "
            "cannot be ordered, and a pytree's leaves follow its sorted keys; use keys of one "
            "type (e.g. all str).") from None


def _flatten(tree: Any, leaves: list) -> Any:
    t = type(tree)
    if t in _LEAF_TYPES:  # the common leaves first
        leaves.append(tree)
        return LEAF
    if t is dict:  # then the common containers, by exact type (subclasses below)
        keys = _sorted_keys(tree)
        return ("dict", keys, _flatten_children([tree[k] for k in keys], leaves))
    if t is tuple:
        return ("tuple", _flatten_children(tree, leaves))
    if isinstance(tree, tuple):
        if hasattr(tree, "_fields"):  # a namedtuple
            return ("namedtuple", t, [_flatten(c, leaves) for c in tree])
        return ("tuple", [_flatten(c, leaves) for c in tree])
    if isinstance(tree, list):
        return ("list", [_flatten(c, leaves) for c in tree])
    if isinstance(tree, dict):
        keys = _sorted_keys(tree)
        return ("dict", keys, [_flatten(tree[k], leaves) for k in keys])
    if tree is None:
        return ("none",)
    if hasattr(t, "__dataclass_fields__") and dataclasses.is_dataclass(tree) \
            and not isinstance(tree, type):
        names = tuple(f.name for f in dataclasses.fields(tree))
        return ("dataclass", t, names, [_flatten(getattr(tree, n), leaves) for n in names])
    leaves.append(tree)
    return LEAF


def _flatten_children(children: Any, leaves: list) -> list:
    # NOTE: a container of leaves (a params dict of arrays) is flattened without a call per
    # leaf: the entry points flatten their arguments on every call
    for c in children:
        if type(c) not in _LEAF_TYPES:
            return [_flatten(c, leaves) for c in children]
    leaves.extend(children)
    return [LEAF] * len(children)


def unflatten(treedef: Any, leaves: list, constants: str = "values") -> Any:
    """Rebuild the structure of ``treedef`` from ``leaves``. Constant nodes (see
    :func:`mark_constants`) give their value (``constants="values"``) or their gradient entry
    (``"zeros"``)."""
    return _unflatten(treedef, iter(leaves), constants == "zeros")


def _unflatten(td: Any, it: Any, zeros: bool) -> Any:
    if type(td) is str:  # LEAF
        return next(it)
    kind = td[0]
    if kind == "tuple":
        children = td[1]
        if children.count(LEAF) == len(children):  # leaves only: no call per leaf
            return tuple(islice(it, len(children)))
        return tuple(_unflatten(c, it, zeros) for c in children)
    if kind == "list":
        return [_unflatten(c, it, zeros) for c in td[1]]
    if kind == "dict":
        children = td[2]
        if children.count(LEAF) == len(children):
            return dict(zip(td[1], islice(it, len(children))))
        return {k: _unflatten(c, it, zeros) for k, c in zip(td[1], children)}
    if kind == "namedtuple":
        return td[1](*(_unflatten(c, it, zeros) for c in td[2]))
    if kind == "dataclass":
        obj = td[1].__new__(td[1])
        for name, c in zip(td[2], td[3]):
            object.__setattr__(obj, name, _unflatten(c, it, zeros))  # frozen ones too
        return obj
    if kind == "const":
        return td[1].zero() if zeros else td[1].value
    return None


def mark_constants(treedef: Any, is_const: list[bool], leaves: list) -> Any:
    """``treedef`` with the leaves flagged in ``is_const`` (leaf order) replaced by constant
    nodes holding them; the remaining leaves keep their order."""
    it = iter(zip(is_const, leaves))

    def walk(td: Any) -> Any:
        if td == LEAF:
            const, leaf = next(it)
            return ("const", Constant(leaf)) if const else LEAF
        kind = td[0]
        if kind in ("tuple", "list"):
            return (kind, [walk(c) for c in td[1]])
        if kind in ("dict", "namedtuple"):
            return (kind, td[1], [walk(c) for c in td[2]])
        if kind == "dataclass":
            return (kind, td[1], td[2], [walk(c) for c in td[3]])
        return td

    return walk(treedef)


def _count(td: Any) -> int:
    if td == LEAF:
        return 1
    if td[0] == "none":
        return 0
    return sum(_count(c) for c in td[-1])


def match(treedef: Any, tree: Any) -> list | None:
    """The leaves of ``tree`` at the non-constant positions of ``treedef`` when ``tree`` has
    that structure (constant positions may hold anything), else None."""
    leaves, td = flatten(tree)
    out: list = []
    it = iter(leaves)

    def walk(a: Any, b: Any) -> bool:  # a: marked treedef, b: treedef of tree
        if a == LEAF:
            if b != LEAF:
                return False
            out.append(next(it))
            return True
        if a[0] == "const":  # anything may stand there: skip its leaves
            for _ in range(_count(b)):
                next(it)
            return True
        if b == LEAF or a[0] != b[0]:
            return False
        if a[0] == "none":
            return True
        if a[1:-1] != b[1:-1] or len(a[-1]) != len(b[-1]):
            return False
        return all(walk(x, y) for x, y in zip(a[-1], b[-1]))

    return out if walk(treedef, td) else None


def input_leaves(treedef: Any, tree: Any) -> list | None:
    """The leaves of ``tree`` at the input (non-constant) positions of ``treedef``, or None
    when ``treedef`` has no constant nodes. A leaf at a constant position must equal the
    constant it was traced with.

    Raises:
        KinkgradError: a constant leaf differs from the traced one.
    """
    consts: list = []
    _collect(treedef, consts)
    if all(c is None for c in consts):
        return None
    all_leaves, _ = flatten(tree)
    if len(consts) != len(all_leaves):
        return all_leaves  # a different structure: the caller's count check says so
    out = []
    for c, leaf in zip(consts, all_leaves):
        if c is None:
            out.append(leaf)
        elif not same_constant(leaf, c.value):
            from ..errors import KinkgradError

            raise KinkgradError(
                "Program: an integer leaf differs from the one the program was traced with "
                f"({np.asarray(c.value).tolist()!r}); integer leaves are constants of a "
                "traced program, so trace again for other indices."
            )
    return out


def same_constant(a: Any, b: Any) -> bool:
    """Is ``a`` the constant ``b`` (the same object, or the same structure with equal
    arrays of the same shape, or equal other leaves)?"""
    if a is b:
        return True
    la, ta = flatten(a)
    lb, tb = flatten(b)
    if ta != tb or len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        try:
            if not (np.shape(x) == np.shape(y) and np.array_equal(x, y)):
                return False
        except (TypeError, ValueError):
            if x is not y and x != y:
                return False
    return True


def constants(treedef: Any) -> list[Constant]:
    """The constant nodes of ``treedef``, in leaf order."""
    found: list = []
    _collect(treedef, found)
    return [c for c in found if c is not None]


def input_count(treedef: Any) -> int:
    """The number of input (non-constant) leaves of ``treedef``."""
    consts: list = []
    _collect(treedef, consts)
    return sum(c is None for c in consts)


def _collect(td: Any, out: list) -> None:
    """Per leaf position of ``td``: None for an input leaf, the Constant for a constant."""
    if td == LEAF:
        out.append(None)
        return
    kind = td[0]
    if kind == "const":
        out.append(td[1])
    elif kind in ("tuple", "list"):
        for c in td[1]:
            _collect(c, out)
    elif kind in ("dict", "namedtuple"):
        for c in td[2]:
            _collect(c, out)
    elif kind == "dataclass":
        for c in td[3]:
            _collect(c, out)


def describe(treedef: Any) -> str:
    """A treedef written like the tree it describes, a leaf as ``*`` (for error messages):
    ``{'a': *, 'b': (*, [*])}``, ``Point(x=*, y=*)``."""
    if treedef == LEAF or treedef[0] == "const":
        return "*"
    kind, children = treedef[0], treedef[-1]
    if kind == "none":
        return "None"
    parts = [describe(c) for c in children]
    if kind == "tuple":
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if kind == "list":
        return "[" + ", ".join(parts) + "]"
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(treedef[1], parts)) + "}"
    names = treedef[2] if kind == "dataclass" else treedef[1]._fields
    return f"{treedef[1].__name__}(" + ", ".join(f"{n}={c}" for n, c in zip(names, parts)) + ")"
