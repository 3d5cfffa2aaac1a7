"""The CuPy path without a GPU: every NumPy name the rules use exists in CuPy.

The rules run on CuPy arrays with ``np`` bound to CuPy's namespace (completed by
``kinkgrad.backends.cupy_numpy``). No CUDA machine runs these tests, so the independent truth
is CuPy's own public namespace, recorded from the cupy-cuda12x 14.2.0 wheel in
``tests/data/cupy_namespace.txt``: (1) a static scan of the rule modules for ``np.<name>``;
(2) every registered rule run with ``np`` bound to NumPy restricted to those names, which also
catches names reached at run time.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import types

import numpy as np
import pytest

import kinkgrad
from _registry_cases import CASES, output_weights, sample, weighted_output
from kinkgrad.backends import _MODULES, cupy_numpy, use_namespace

NAMES = pathlib.Path(__file__).parent / "data" / "cupy_namespace.txt"


def cupy_names() -> set[str]:
    lines = NAMES.read_text().splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def names_used_by_rules() -> dict[str, set[str]]:
    """``np.<a>`` and ``np.<a>.<b>`` in every module whose ``np`` the backends rebind
    (type annotations aside: they are never evaluated)."""
    used: dict[str, set[str]] = {}
    for name in _MODULES:
        tree = ast.parse(pathlib.Path(importlib.import_module(name).__file__).read_text())
        notes = [n.annotation for n in ast.walk(tree) if isinstance(n, (ast.arg, ast.AnnAssign))
                 and n.annotation is not None]
        notes += [n.returns for n in ast.walk(tree)
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns]
        skip = {id(m) for a in notes for m in ast.walk(a)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "np":
                used.setdefault(node.attr, set()).add(name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "np" \
                    and node.value.attr in ("random", "linalg"):
                used.setdefault(f"{node.value.attr}.{node.attr}", set()).add(name)
    return used


def restricted_numpy() -> types.ModuleType:
    """NumPy cut down to the names CuPy has (submodules cut down too), as ``cupy_numpy``
    completes it."""
    have = cupy_names()
    ns = types.ModuleType("numpy_as_cupy")
    for n in have:
        if "." not in n and hasattr(np, n):
            setattr(ns, n, getattr(np, n))
    for sub in ("random", "linalg"):
        mod = types.ModuleType(f"numpy_as_cupy.{sub}")
        for n in have:
            if n.startswith(sub + ".") and hasattr(getattr(np, sub), n.split(".")[1]):
                setattr(mod, n.split(".")[1], getattr(getattr(np, sub), n.split(".")[1]))
        setattr(ns, sub, mod)
    return cupy_numpy(ns)


def test_the_recorded_namespace_is_cupys() -> None:
    names = cupy_names()
    assert len(names) > 500 and {"ndarray", "matmul", "lexsort", "random.default_rng"} <= names
    assert "errstate" not in names  # the one name the backend has to supply


def test_every_name_the_rules_use_exists_in_cupy() -> None:
    completed = cupy_names() | set(vars(cupy_numpy(types.ModuleType("empty"))))
    missing = {n: sorted(m) for n, m in names_used_by_rules().items() if n not in completed}
    assert not missing, f"NumPy names the rules use that CuPy lacks: {missing}"


@pytest.mark.parametrize(("name", "index"), CASES)
def test_every_rule_runs_with_only_cupys_names(name: str, index: int) -> None:
    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no differentiable input")
    f = weighted_output(prim, args, params, pos, output_weights(prim, args, params))

    argnums = tuple(range(len(pos)))
    want = kinkgrad.value_and_grad(f, argnums=argnums)(*[args[p] for p in pos])
    with use_namespace(restricted_numpy()):
        got = kinkgrad.value_and_grad(f, argnums=argnums)(*[args[p] for p in pos])
        tangents = kinkgrad.jvp(f, tuple(args[p] for p in pos),
                                tuple(np.ones_like(args[p]) for p in pos))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert np.isfinite(tangents[1])
