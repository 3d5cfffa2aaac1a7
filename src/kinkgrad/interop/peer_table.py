"""What each AD tool returns at kinks, and whether it lies in the Clarke subdifferential.

Run ``python -m kinkgrad.interop.peer_table --out docs/peers.md`` (without ``--out`` the
markdown is printed). Tools: kinkgrad's ``grad`` (default kink policy), kinkgrad's
``clarke_grad`` (when present), PyTorch, HIPS autograd and JAX (each only when installed; a
missing tool gets a column saying so, never invented numbers).

Membership is decided twice: by the Clarke subdifferential derived by hand for each case
(written next to it), and by the LP test ``kinkgrad.in_clarke`` on the kinkgrad program when
that is available and the function is abs-smooth at the point. The two must agree (a cell
marked ``!`` would say they do not; the test suite checks there is none).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp

from ._api import lookup

__all__ = ["KinkCase", "CASES", "TOOLS", "tool_gradient", "hand_member", "kinkgrad_member",
           "table_rows", "render", "main"]

_TOL = 1e-9


def _interval(lo: float, hi: float) -> Callable[[np.ndarray], bool]:
    def member(g: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(g)) and lo - _TOL <= float(g) <= hi + _TOL)

    return member


def _segment(a: Any, b: Any) -> Callable[[np.ndarray], bool]:
    """g in [a, b] (a segment in R^n)."""
    a, b = np.asarray(a, float), np.asarray(b, float)

    def member(g: np.ndarray) -> bool:
        g = np.asarray(g, float)
        if not np.all(np.isfinite(g)):
            return False
        d = b - a
        t = float(np.dot(g - a, d) / np.dot(d, d))
        return bool(-_TOL <= t <= 1 + _TOL and np.allclose(a + t * d, g, atol=1e-9))

    return member


def _ball(g: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(g)) and np.linalg.norm(g) <= 1 + _TOL)


def _box(g: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(g)) and np.all(np.abs(g) <= 1 + _TOL))


@dataclass(frozen=True)
class KinkCase:
    """One function at one of its kinks, written once per tool.

    ``knp``, ``torch``, ``autograd`` and ``jax`` map the point (an array of the tool's kind)
    to a scalar; ``member`` decides membership in the hand-derived Clarke subdifferential
    ``clarke`` (shown in the table); ``abs_smooth`` says whether ``kinkgrad.in_clarke`` applies.
    """

    name: str
    point: tuple
    clarke: str
    member: Callable[[np.ndarray], bool]
    knp: Callable
    torch: Callable
    autograd: Callable
    jax: Callable
    abs_smooth: bool = True


_W = np.array([1.0, 2.0])  # sort case: sort(x) . (1, 2)


CASES: list[KinkCase] = [
    KinkCase("relu'(0)", (0.0,), "[0, 1]", _interval(0, 1), knp.relu,
             lambda t, x: t.relu(x), lambda a, x: a.maximum(x, 0.0),
             lambda j, x: j.nn.relu(x)),
    KinkCase("abs'(0)", (0.0,), "[-1, 1]", _interval(-1, 1), knp.abs,
             lambda t, x: t.abs(x), lambda a, x: a.abs(x), lambda j, x: j.numpy.abs(x)),
    KinkCase("leaky_relu'(0), slope 0.1", (0.0,), "[0.1, 1]", _interval(0.1, 1),
             lambda x: knp.leaky_relu(x, 0.1),
             lambda t, x: t.nn.functional.leaky_relu(x, 0.1),
             lambda a, x: a.where(x > 0, x, 0.1 * x), lambda j, x: j.nn.leaky_relu(x, 0.1)),
    KinkCase("maximum(x, 0)'(0) (relu spelled as max)", (0.0,), "[0, 1]", _interval(0, 1),
             lambda x: knp.maximum(x, 0.0), lambda t, x: t.maximum(x, t.zeros_like(x)),
             lambda a, x: a.maximum(x, 0.0), lambda j, x: j.numpy.maximum(x, 0.0)),
    KinkCase("maximum(x1, x2) at x1 = x2 = 0", (0.0, 0.0), "segment (1,0)-(0,1)",
             _segment([1, 0], [0, 1]), lambda x: knp.maximum(x[0], x[1]),
             lambda t, x: t.maximum(x[0], x[1]), lambda a, x: a.maximum(x[0], x[1]),
             lambda j, x: j.numpy.maximum(x[0], x[1])),
    KinkCase("max(x) at (1, 1, 0)", (1.0, 1.0, 0.0), "segment (1,0,0)-(0,1,0)",
             _segment([1, 0, 0], [0, 1, 0]), knp.max, lambda t, x: t.max(x),
             lambda a, x: a.max(x), lambda j, x: j.numpy.max(x)),
    KinkCase("sort(x) . (1, 2) at (0, 0)", (0.0, 0.0), "segment (1,2)-(2,1)",
             _segment([1, 2], [2, 1]), lambda x: knp.sum(knp.sort(x) * _W),
             lambda t, x: (t.sort(x).values * t.tensor(_W)).sum(),
             lambda a, x: a.sum(a.sort(x) * _W),
             lambda j, x: (j.numpy.sort(x) * _W).sum()),
    KinkCase("clip(x, -1, 1)'(1)", (1.0,), "[0, 1]", _interval(0, 1),
             lambda x: knp.clip(x, -1.0, 1.0), lambda t, x: t.clamp(x, -1.0, 1.0),
             lambda a, x: a.clip(x, -1.0, 1.0), lambda j, x: j.numpy.clip(x, -1.0, 1.0)),
    KinkCase("hinge relu(1 - x)'(1)", (1.0,), "[-1, 0]", _interval(-1, 0),
             lambda x: knp.relu(1.0 - x), lambda t, x: t.relu(1.0 - x),
             lambda a, x: a.maximum(1.0 - x, 0.0), lambda j, x: j.nn.relu(1.0 - x)),
    KinkCase("||x||_1 at 0", (0.0, 0.0), "box [-1, 1]^2", _box,
             lambda x: knp.linalg.norm(x, 1), lambda t, x: t.linalg.vector_norm(x, 1),
             lambda a, x: a.sum(a.abs(x)), lambda j, x: j.numpy.linalg.norm(x, 1)),
    KinkCase("||x||_2 at 0", (0.0, 0.0), "unit disc", _ball, knp.linalg.norm,
             lambda t, x: t.linalg.vector_norm(x), lambda a, x: a.linalg.norm(x),
             lambda j, x: j.numpy.linalg.norm(x), abs_smooth=False),
    KinkCase("relu(x) - relu(-x) (= x) at 0", (0.0,), "{1}", _interval(1, 1),
             lambda x: knp.relu(x) - knp.relu(-x), lambda t, x: t.relu(x) - t.relu(-x),
             lambda a, x: a.maximum(x, 0.0) - a.maximum(-x, 0.0),
             lambda j, x: j.nn.relu(x) - j.nn.relu(-x)),
    KinkCase("relu(relu(x)) - relu(-x) (= x) at 0", (0.0,), "{1}", _interval(1, 1),
             lambda x: knp.relu(knp.relu(x)) - knp.relu(-x),
             lambda t, x: t.relu(t.relu(x)) - t.relu(-x),
             lambda a, x: a.maximum(a.maximum(x, 0.0), 0.0) - a.maximum(-x, 0.0),
             lambda j, x: j.nn.relu(j.nn.relu(x)) - j.nn.relu(-x)),
]


# ---------------------------------------------------------------------- tools
def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _point(case: KinkCase) -> np.ndarray:
    x = np.array(case.point, dtype=np.float64)
    return x.reshape(()) if len(case.point) == 1 else x


def _kg_grad(case: KinkCase, x: np.ndarray) -> np.ndarray:
    with kinkgrad.KinkPolicy():
        return np.asarray(kinkgrad.grad(case.knp)(x))


def _kg_clarke(case: KinkCase, x: np.ndarray) -> np.ndarray:
    fn = lookup("clarke_grad")
    if fn is None:
        raise LookupError("kinkgrad.clarke_grad is not available")
    g, _ = fn(case.knp, x, seed=0)
    return np.asarray(g)


def _torch_grad(case: KinkCase, x: np.ndarray) -> np.ndarray:
    torch = _import("torch")
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(case.torch(torch, t), t)
    return g.numpy()


def _autograd_grad(case: KinkCase, x: np.ndarray) -> np.ndarray:
    ag = _import("autograd")
    anp = _import("autograd.numpy")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ag.grad(lambda v: case.autograd(anp, v))(x))


def _jax_grad(case: KinkCase, x: np.ndarray) -> np.ndarray:
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)
    _import("jax.numpy")
    return np.asarray(jax.grad(lambda v: case.jax(jax, v))(jax.numpy.asarray(x)))


TOOLS: dict[str, tuple[str | None, Callable]] = {
    "kinkgrad grad": (None, _kg_grad),
    "kinkgrad clarke_grad": (None, _kg_clarke),
    "PyTorch": ("torch", _torch_grad),
    "autograd (HIPS)": ("autograd", _autograd_grad),
    "JAX": ("jax", _jax_grad),
}


def tool_available(tool: str) -> bool:
    module, _ = TOOLS[tool]
    if tool == "kinkgrad clarke_grad":
        return lookup("clarke_grad") is not None
    return module is None or _import(module) is not None


def tool_gradient(tool: str, case: KinkCase) -> np.ndarray:
    """The gradient ``tool`` returns for ``case`` at its kink (float64)."""
    return np.asarray(TOOLS[tool][1](case, _point(case)), dtype=np.float64)


def hand_member(case: KinkCase, g: np.ndarray) -> bool:
    """Membership in the hand-derived Clarke subdifferential of the case."""
    return case.member(np.asarray(g, dtype=np.float64))


def kinkgrad_member(case: KinkCase, g: np.ndarray) -> bool | None:
    """``kinkgrad.in_clarke`` on the case (None where it is unavailable or not applicable)."""
    fn = lookup("in_clarke")
    if fn is None or not case.abs_smooth or not np.all(np.isfinite(g)):
        return None
    return bool(fn(case.knp, _point(case), np.asarray(g).reshape(np.shape(_point(case)))))


# ---------------------------------------------------------------------- rendering
def _fmt(g: np.ndarray) -> str:
    def one(v: float) -> str:
        return "nan" if np.isnan(v) else f"{v + 0.0:.3g}"  # + 0.0: no "-0"

    g = np.asarray(g)
    return one(float(g)) if g.size == 1 else "(" + ", ".join(one(float(v)) for v in g.ravel()) + ")"


def table_rows(tools: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: for each case, each tool's gradient and its Clarke membership."""
    tools = list(TOOLS) if tools is None else tools
    header = ["function at a kink", "Clarke subdifferential", *tools]
    rows = []
    for case in CASES:
        row = [case.name, case.clarke]
        for tool in tools:
            if not tool_available(tool):
                row.append("not installed" if TOOLS[tool][0] else "not available")
                continue
            try:
                g = tool_gradient(tool, case)
            except Exception as exc:  # a peer failing is a finding, shown as such
                row.append(f"error: {type(exc).__name__}")
                continue
            hand = hand_member(case, g)
            lp = kinkgrad_member(case, g)
            mark = "✓" if hand else "✗"
            if lp is not None and lp != hand:
                mark = "!"
            row.append(f"{_fmt(g)} {mark}")
        rows.append(row)
    return header, rows


def _versions() -> str:
    out = []
    for dist in ("kinkgrad", "torch", "autograd", "jax", "numpy"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} not installed")
    return ", ".join(out)


def render() -> str:
    """The markdown page (``docs/peers.md``)."""
    header, rows = table_rows()
    lines = [
        "# What AD tools return at kinks",
        "",
        "Generated by `python -m kinkgrad.interop.peer_table --out docs/peers.md` "
        f"({_versions()}). Each cell is the gradient the tool returns at the kink (float64), "
        "then ✓ if it lies in the Clarke subdifferential and ✗ if not. Membership is checked "
        "against the Clarke set derived by hand (second column)"
        + (" and, for abs-smooth cases, by kinkgrad's LP test `kinkgrad.in_clarke`; a `!` "
           "would mark a disagreement between the two."
           if lookup("in_clarke") is not None else
           "; `kinkgrad.in_clarke` was not available when this table was generated.")
        + " Columns of tools that are not installed say so; no number is filled in for them.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    lines += [
        "",
        "Reading the table:",
        "",
        "- For a single elementary function every finite choice in the table lies in its "
        "Clarke set, and any such choice gives a conservative gradient (Bolte and Pauwels). "
        "Compositions can leave the Clarke subdifferential: `relu(x) - relu(-x)` equals `x`, "
        "whose only Clarke gradient is 1, yet PyTorch's and kinkgrad's plain backward return 0 "
        "(Baumgärtner and Bethke, arXiv 2407.09639). autograd gets 1 there only because its "
        "`maximum` splits ties (1/2 + 1/2); on `relu(relu(x)) - relu(-x)` the split gives "
        "0.75, also outside {1}.",
        "- kinkgrad's `grad` (default policy) takes relu'(0) = 0 for every spelling of a "
        "one-sided kink (relu, maximum with a constant, clip at a bound), gives ties between "
        "traced operands and of `max` to the first maximiser, and never returns NaN; "
        "`kink_policy(\"torch\")` and `kink_policy(\"jax\")` reproduce those libraries' "
        "columns (tests/peers/test_peers_presets.py).",
        "- kinkgrad's `clarke_grad` resolves each kink by the sign of a directional derivative "
        "and returns a limiting gradient, the correct 1 for `relu(x) - relu(-x)`.",
        "- HIPS autograd has no relu: spelled `maximum(x, 0)`, its tie rule splits, so "
        "relu'(0) = 1/2 there; its clip takes slope 0 at the bound; its Euclidean norm returns "
        "NaN at 0.",
        "",
    ]
    if _import("torch") is not None:
        lines += _bridge_section()
    return "\n".join(lines)


def _bridge_section() -> list[str]:
    from ._bridge_demo import bridge_rows

    header, rows = bridge_rows()
    return [
        "## PyTorch models: is PyTorch's own gradient a Clarke gradient?",
        "",
        "`kinkgrad.interop.torch.certify_torch(model, loss_fn, (x, y))` translates the model "
        "(torch.fx) into a kinkgrad program, checks that PyTorch's gradient equals kinkgrad's "
        "plain AD vector under PyTorch's choices at kinks (`kinkgrad.kink_policy(\"torch\")`, "
        "with `max=\"first\"` for max-pooling and `x.max(dim)`; kinkgrad's default policy "
        "differs at clamp bounds and `amax` ties), and certifies it by kinkgrad's abs-smooth "
        "condition, else by the LP "
        "test. `clarke_grad_torch` returns a limiting gradient computed with torch (one forward "
        "pass carrying tangents along a random direction, one backward pass). Tiny float64 "
        "models with weights and data chosen so that pre-activations are exactly 0 or "
        "max-pool windows tie (`kinkgrad/interop/_bridge_demo.py`). The last row is a "
        "convolution whose shared kernel couples two max-pool ties: PyTorch's first-maximiser "
        "choice in both windows is a sign pattern no direction realises.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the markdown to this file (default: print it)")
    args = parser.parse_args(argv)
    page = render()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(page)
        print(f"wrote {args.out}")
    else:
        print(page)


if __name__ == "__main__":
    main()
