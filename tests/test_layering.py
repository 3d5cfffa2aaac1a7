"""Layering: every module of kinkgrad imports only from its own layer or from a lower one.

The layers are the table in the docstring of ``kinkgrad/_core/__init__.py`` (parsed here, so
the documentation and the check cannot drift apart). Every import statement counts, at
module level and inside functions and classes alike: a lazy import still makes the lower
layer depend on the upper one (and hides an import circle until some call runs it). An
upward import that is needed anyway goes into ``ALLOWED`` below, with its reason; an entry
that is no longer needed fails the check too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kinkgrad
import kinkgrad._core

ROOT = Path(kinkgrad.__file__).parent
FACADE = "__init__"  # how the table names the package's own __init__.py (the public facade)

# (importer, imported) -> why the upward import is needed. Keep it empty if at all possible.
ALLOWED: dict[tuple[str, str], str] = {}


# ------------------------------------------------------------------ the checker
def layer_table(doc: str) -> dict[str, int]:
    """``{name: rank}`` from the rows ``rank  name, name, ...  description`` of the table."""
    table: dict[str, int] = {}
    for line in doc.splitlines():
        m = re.match(r"^\s*(\d+)\s{2,}(\S.*?)\s{2,}\S", line)
        if m:
            for name in m.group(2).split(","):
                table[name.strip()] = int(m.group(1))
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """Rank of a module: its entry or its nearest enclosing package's (``kinkgrad`` itself is
    the facade); None when the table does not place it."""
    if module == "kinkgrad":
        return table.get(FACADE)
    parts = module.split(".")[1:]
    for k in range(len(parts), 0, -1):
        rank = table.get(".".join(parts[:k]))
        if rank is not None:
            return rank
    return None


def package_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """``{module name: (source, is a package)}`` for every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path.read_text(encoding="utf-8"), is_pkg)
    return out


def imports_of(module: str, source: str, is_pkg: bool, known: set[str]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement of the package in ``source``,
    relative ones resolved; ``from p import name`` imports ``p.name`` when that is a module."""
    package = module if is_pkg else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0]
                      == "kinkgrad"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "kinkgrad":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if sub in known else target, node.lineno))
    return found


def upward_imports(sources: dict[str, tuple[str, bool]], table: dict[str, int]
                   ) -> list[tuple[str, int, str, int, int]]:
    """``(importer, line, imported, importer's rank, imported's rank)`` for every import of a
    module from a higher layer."""
    known = set(sources)
    bad = []
    for mod, (src, is_pkg) in sources.items():
        rank = layer_of(mod, table)
        for target, line in imports_of(mod, src, is_pkg, known):
            trank = layer_of(target, table)
            if rank is not None and trank is not None and trank > rank:
                bad.append((mod, line, target, rank, trank))
    return bad


TABLE = layer_table(kinkgrad._core.__doc__ or "")


# ------------------------------------------------------------------ the package
def test_the_table_places_every_module():
    assert TABLE.get(FACADE) is not None and TABLE.get("_core") == 1, TABLE
    sources = package_sources()
    missing = sorted(m for m in sources if layer_of(m, TABLE) is None)
    assert not missing, (
        f"modules without a layer: {missing}; add each to the layer table in the docstring of "
        "src/kinkgrad/_core/__init__.py")


def test_no_upward_imports():
    bad = [b for b in upward_imports(package_sources(), TABLE) if (b[0], b[2]) not in ALLOWED]
    lines = [f"{mod} (line {line}, layer {r}) imports {target} (layer {tr})"
             for mod, line, target, r, tr in bad]
    assert not lines, ("upward imports (a layer may import only its own or lower layers; "
                       "see src/kinkgrad/_core/__init__.py):\n" + "\n".join(lines))


def test_allowed_exceptions_are_still_needed():
    used = {(mod, target) for mod, _, target, _, _ in upward_imports(package_sources(), TABLE)}
    assert not set(ALLOWED) - used, f"stale entries in ALLOWED: {sorted(set(ALLOWED) - used)}"


# ------------------------------------------------------------------ the checker can fail
_FAKE = {
    "kinkgrad": ("", True),
    "kinkgrad.numpy": ("", True),
    "kinkgrad.modes": ("", True),
    "kinkgrad.modes.api": ("", False),
    "kinkgrad._core": ("", True),
    "kinkgrad._core.pytree": ("", False),
    "kinkgrad._core.tracer": (
        "from . import pytree\n"                       # same layer: fine
        "from ..errors import KinkgradError\n"         # lower: fine
        "def f():\n"
        "    from .. import numpy as knp\n"             # lazy, upward: flagged
        "class T:\n"
        "    def g(self):\n"
        "        import kinkgrad.modes.api\n"           # in a method, upward: flagged
        , False),
    "kinkgrad.primitives.fake": ("from kinkgrad import grad\n", False),  # the facade: flagged
    "kinkgrad.abs_normal.fake": ("from ..modes.api import trace\n", False),  # downward
}


def test_checker_flags_upward_imports_at_any_depth():
    table = {"errors": 0, "_core": 1, "primitives": 2, "numpy": 3, "modes": 4,
             "abs_normal": 5, FACADE: 7}
    bad = {(mod, target, line) for mod, line, target, _, _ in upward_imports(_FAKE, table)}
    assert bad == {("kinkgrad._core.tracer", "kinkgrad.numpy", 4),
                   ("kinkgrad._core.tracer", "kinkgrad.modes.api", 7),
                   ("kinkgrad.primitives.fake", "kinkgrad", 1)}


@pytest.mark.parametrize(("module", "rank"), [
    ("kinkgrad", 7), ("kinkgrad._core.tracer", 1), ("kinkgrad.modes", 4),
    ("kinkgrad.abs_normal.certify", 5), ("kinkgrad.nowhere", None)])
def test_layer_of(module, rank):
    table = {"_core": 1, "modes": 4, "abs_normal": 5, FACADE: 7}
    assert layer_of(module, table) == rank


# ------------------------------------------------------------ what replaced upward imports
def test_the_traced_array_gets_its_methods_from_the_knp_layer():
    from kinkgrad._core.tracer import Tracer

    for name in ("__add__", "__rmatmul__", "__getitem__", "__eq__", "__array_ufunc__",
                 "__array_function__", "sum", "reshape", "ravel"):
        assert getattr(Tracer, name).__module__ == "kinkgrad.numpy._methods", name
    assert isinstance(Tracer.T, property) and isinstance(Tracer.at, property)


def test_primitives_reach_each_other_through_the_registry():
    from kinkgrad._core.primitive import ops, registry

    assert ops.abs is registry()["abs"] and ops.getitem is registry()["getitem"]
    with pytest.raises(AttributeError, match="no_such_primitive"):
        ops.no_such_primitive  # noqa: B018
