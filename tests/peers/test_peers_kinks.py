"""At kinks: what each tool returns, and whether it is a Clarke gradient.

kinkgrad is checked against its *declared* policy (hand-written numbers); peers against the
behaviour documented for them; membership against Clarke sets derived by hand, and against
``kinkgrad.in_clarke`` where that exists.
"""

from __future__ import annotations

import numpy as np
import pytest

from kinkgrad.interop._api import lookup
from kinkgrad.interop.peer_table import (
    CASES,
    hand_member,
    kinkgrad_member,
    render,
    table_rows,
    tool_available,
    tool_gradient,
)

BY_NAME = {c.name: c for c in CASES}

# kinkgrad's default policy, case by case (relu=0, abs=0, leaky slope alpha, max "first",
# ties with a constant and clip bounds take relu'(0) = 0, sort stable, norm "zero")
DECLARED = {
    "relu'(0)": 0.0, "abs'(0)": 0.0, "leaky_relu'(0), slope 0.1": 0.1,
    "maximum(x, 0)'(0) (relu spelled as max)": 0.0,
    "maximum(x1, x2) at x1 = x2 = 0": [1.0, 0.0], "max(x) at (1, 1, 0)": [1.0, 0.0, 0.0],
    "sort(x) . (1, 2) at (0, 0)": [1.0, 2.0], "clip(x, -1, 1)'(1)": 0.0,
    "hinge relu(1 - x)'(1)": 0.0, "||x||_1 at 0": [0.0, 0.0], "||x||_2 at 0": [0.0, 0.0],
    "relu(x) - relu(-x) (= x) at 0": 0.0, "relu(relu(x)) - relu(-x) (= x) at 0": 0.0,
}
# PyTorch 2.x: relu'(0) = 0, abs'(0) = 0, ties of maximum / max-all split evenly,
# clamp'(bound) = 1, norm'(0) = 0 (the "torch" preset)
TORCH = {
    "relu'(0)": 0.0, "abs'(0)": 0.0, "maximum(x1, x2) at x1 = x2 = 0": [0.5, 0.5],
    "max(x) at (1, 1, 0)": [0.5, 0.5, 0.0], "clip(x, -1, 1)'(1)": 1.0,
    "||x||_2 at 0": [0.0, 0.0], "relu(x) - relu(-x) (= x) at 0": 0.0,
}
NOT_CLARKE = {"relu(x) - relu(-x) (= x) at 0", "relu(relu(x)) - relu(-x) (= x) at 0"}


def test_every_declared_case_is_in_the_table() -> None:
    assert set(DECLARED) == set(BY_NAME)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_kinkgrad_grad_returns_its_declared_choice(name: str) -> None:
    g = tool_gradient("kinkgrad grad", BY_NAME[name])
    np.testing.assert_array_equal(g, np.asarray(DECLARED[name]))
    assert hand_member(BY_NAME[name], g) == (name not in NOT_CLARKE)


@pytest.mark.parametrize("name", sorted(TORCH))
def test_pytorch_returns_its_documented_choice(name: str) -> None:
    pytest.importorskip("torch")
    g = tool_gradient("PyTorch", BY_NAME[name])
    np.testing.assert_array_equal(g, np.asarray(TORCH[name]))


def test_autograd_splits_ties_and_returns_nan_for_the_norm_at_zero() -> None:
    pytest.importorskip("autograd")
    assert float(tool_gradient("autograd (HIPS)", BY_NAME["relu'(0)"])) == 0.5
    assert np.all(np.isnan(tool_gradient("autograd (HIPS)", BY_NAME["||x||_2 at 0"])))
    g = tool_gradient("autograd (HIPS)", BY_NAME["relu(relu(x)) - relu(-x) (= x) at 0"])
    assert float(g) == 0.75 and not hand_member(BY_NAME["relu(x) - relu(-x) (= x) at 0"], g)


@pytest.mark.parametrize("tool", ["PyTorch", "autograd (HIPS)", "JAX"])
def test_single_primitives_are_clarke_and_compositions_may_not_be(tool: str) -> None:
    if not tool_available(tool):
        pytest.skip(f"{tool} is not installed")
    for case in CASES:
        g = tool_gradient(tool, case)
        if case.name in NOT_CLARKE or not np.all(np.isfinite(g)):
            continue
        assert hand_member(case, g), (tool, case.name, g)
    g = tool_gradient(tool, BY_NAME["relu(relu(x)) - relu(-x) (= x) at 0"])
    assert not hand_member(BY_NAME["relu(relu(x)) - relu(-x) (= x) at 0"], g)


def test_hand_sets_accept_and_reject_the_right_points() -> None:
    c = BY_NAME
    assert hand_member(c["relu'(0)"], np.float64(0.3))
    assert not hand_member(c["relu'(0)"], np.float64(1.01))
    assert hand_member(c["maximum(x1, x2) at x1 = x2 = 0"], np.array([0.25, 0.75]))
    assert not hand_member(c["maximum(x1, x2) at x1 = x2 = 0"], np.array([0.5, 0.6]))
    assert not hand_member(c["max(x) at (1, 1, 0)"], np.array([0.5, 0.4, 0.1]))
    assert hand_member(c["||x||_2 at 0"], np.array([0.6, -0.8]))
    assert not hand_member(c["||x||_2 at 0"], np.array([0.8, -0.8]))
    assert not hand_member(c["||x||_2 at 0"], np.array([np.nan, 0.0]))
    assert hand_member(c["||x||_1 at 0"], np.array([1.0, -1.0]))
    assert not hand_member(c["sort(x) . (1, 2) at (0, 0)"], np.array([1.0, 1.0]))


def test_in_clarke_agrees_with_the_hand_derived_sets() -> None:
    if lookup("in_clarke") is None:
        pytest.skip("kinkgrad.in_clarke is not available yet")
    probes = {
        "relu'(0)": [0.0, 0.5, 1.0, 1.5, -0.2], "abs'(0)": [-1.0, 0.3, 1.2],
        "maximum(x1, x2) at x1 = x2 = 0": [[0.5, 0.5], [1.0, 0.0], [1.0, 1.0], [0.5, 0.4]],
        "max(x) at (1, 1, 0)": [[0.3, 0.7, 0.0], [0.5, 0.5, 0.1]],
        "sort(x) . (1, 2) at (0, 0)": [[1.5, 1.5], [1.0, 1.0]],
        "clip(x, -1, 1)'(1)": [0.0, 1.0, -0.5], "hinge relu(1 - x)'(1)": [-0.5, 0.5],
        "||x||_1 at 0": [[1.0, -1.0], [1.5, 0.0]],
        "relu(x) - relu(-x) (= x) at 0": [1.0, 0.0, 0.5],
        "relu(relu(x)) - relu(-x) (= x) at 0": [1.0, 0.75],
    }
    for name, gs in probes.items():
        for g in gs:
            g = np.asarray(g, dtype=np.float64)
            assert kinkgrad_member(BY_NAME[name], g) == hand_member(BY_NAME[name], g), (name, g)


def test_kinkgrad_clarke_grad_is_always_a_clarke_gradient() -> None:
    if not tool_available("kinkgrad clarke_grad"):
        pytest.skip("kinkgrad.clarke_grad is not available yet")
    for case in CASES:
        assert hand_member(case, tool_gradient("kinkgrad clarke_grad", case)), case.name


def test_table_has_every_case_and_no_disagreement() -> None:
    pytest.importorskip("torch")
    header, rows = table_rows()
    assert header[2:] == ["kinkgrad grad", "kinkgrad clarke_grad", "PyTorch",
                          "autograd (HIPS)", "JAX"]
    assert [r[0] for r in rows] == [c.name for c in CASES]
    assert not any(cell.endswith("!") for r in rows for cell in r)
    torch_col = [r[4] for r in rows]
    assert torch_col[-2].endswith("✗") and torch_col[0] == "0 ✓"
    page = render()
    assert "\\|\\|x\\|\\|_2 at 0" in page and "| relu'(0) | [0, 1] |" in page
