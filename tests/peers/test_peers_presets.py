"""``kink_policy("torch")`` and ``("jax")`` against PyTorch and JAX themselves, and
``("min-norm")`` against the hand-derived minimum-norm element of each primitive's Clarke set.

The truth for the torch and jax presets is the peer library run on the same case at its kink
(peer_table's cases); the truth for "min-norm" is derived by hand below, case by case.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import PolicyError
from kinkgrad.interop.peer_table import CASES, hand_member, tool_available, tool_gradient

BY_NAME = {c.name: c for c in CASES}

# the documented deviation: JAX's Euclidean norm at 0 returns NaN, kinkgrad never does
JAX_DEVIATIONS = {"||x||_2 at 0"}

# min-norm element of each single primitive's Clarke set, derived by hand:
# [0, 1] -> 0, [-1, 1] -> 0, [0.1, 1] -> 0.1, segment (1,0)-(0,1) -> (1/2, 1/2),
# segment (1,2)-(2,1) -> (3/2, 3/2), box/disc -> 0, [-1, 0] -> 0
MIN_NORM = {
    "relu'(0)": 0.0, "abs'(0)": 0.0, "leaky_relu'(0), slope 0.1": 0.1,
    "maximum(x, 0)'(0) (relu spelled as max)": 0.0, "maximum(x1, x2) at x1 = x2 = 0": [0.5, 0.5],
    "max(x) at (1, 1, 0)": [0.5, 0.5, 0.0], "sort(x) . (1, 2) at (0, 0)": [1.5, 1.5],
    "clip(x, -1, 1)'(1)": 0.0, "hinge relu(1 - x)'(1)": 0.0, "||x||_1 at 0": [0.0, 0.0],
    "||x||_2 at 0": [0.0, 0.0],
}


def _kg(case, preset: str) -> np.ndarray:  # noqa: ANN001
    x = np.array(case.point, dtype=np.float64)
    x = x.reshape(()) if len(case.point) == 1 else x
    with kinkgrad.kink_policy(preset):
        return np.asarray(kinkgrad.grad(case.knp)(x), dtype=np.float64)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_torch_preset_reproduces_pytorch(name: str) -> None:
    pytest.importorskip("torch")
    case = BY_NAME[name]
    np.testing.assert_array_equal(_kg(case, "torch"), tool_gradient("PyTorch", case))


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_jax_preset_reproduces_jax(name: str) -> None:
    pytest.importorskip("jax")
    case = BY_NAME[name]
    ours, theirs = _kg(case, "jax"), tool_gradient("JAX", case)
    if name in JAX_DEVIATIONS:
        assert np.all(np.isnan(theirs)) and np.all(np.isfinite(ours))
        assert hand_member(case, ours)
        return
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", sorted(MIN_NORM))
def test_min_norm_preset_picks_the_minimum_norm_element(name: str) -> None:
    g = _kg(BY_NAME[name], "min-norm")
    np.testing.assert_allclose(g, np.asarray(MIN_NORM[name]), rtol=0, atol=1e-15)
    assert hand_member(BY_NAME[name], g)


def test_every_single_primitive_case_has_a_min_norm_entry() -> None:
    composed = {"relu(x) - relu(-x) (= x) at 0", "relu(relu(x)) - relu(-x) (= x) at 0"}
    assert set(MIN_NORM) == set(BY_NAME) - composed


def test_torch_preset_on_reductions_over_an_axis_and_leaky_relu_at_zero() -> None:
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 1.0, 0.0], [2.0, -1.0, 2.0]])
    w = np.array([1.0, 3.0])
    t = torch.tensor(x, requires_grad=True)
    (torch.amax(t, 1) * torch.tensor(w)).sum().backward()
    with kinkgrad.kink_policy("torch"):
        g = kinkgrad.grad(lambda v: knp.sum(knp.max(v, axis=1) * w))(x)
    np.testing.assert_array_equal(g, t.grad.numpy())
    t = torch.tensor(np.array([0.0, -1.0, 2.0]), requires_grad=True)
    torch.nn.functional.leaky_relu(t, 0.2).sum().backward()
    with kinkgrad.kink_policy("torch"):
        g = kinkgrad.grad(lambda v: knp.sum(knp.leaky_relu(v, 0.2)))(np.array([0.0, -1.0, 2.0]))
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=0, atol=1e-15)


def test_torch_preset_reproduces_clamp_with_min_equal_to_max() -> None:
    # torch.clamp's backward passes the gradient where min <= x <= max: at x = min = max too,
    # where the preset gave 0 (the constant's Clarke gradient) instead of PyTorch's 1
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, 0.5, 0.5, 2.0, 0.5])
    for lo, hi in ((0.5, 0.5), (0.5, None), (None, 0.5), (-1.0, 0.5)):
        t = torch.tensor(x, requires_grad=True)
        torch.clamp(t, lo, hi).sum().backward()
        with kinkgrad.kink_policy("torch"):
            g = kinkgrad.grad(lambda v, lo=lo, hi=hi: knp.sum(knp.clip(v, lo, hi)))(x)
        np.testing.assert_array_equal(g, t.grad.numpy(), err_msg=f"clip(x, {lo}, {hi})")
        _, tan = kinkgrad.jvp(lambda v, lo=lo, hi=hi: knp.clip(v, lo, hi), (x,),
                              (np.ones_like(x),), policy=kinkgrad.kink_policy("torch"))
        np.testing.assert_array_equal(tan, t.grad.numpy())


def test_a_preset_combines_with_keys_and_unknown_presets_are_refused() -> None:
    pol = kinkgrad.kink_policy("torch", relu=1.0)
    assert pol.relu == 1.0 and pol.clip == 1.0 and pol.maximum == "split"
    assert kinkgrad.kink_policy("default") == kinkgrad.KinkPolicy()
    with pytest.raises(PolicyError, match="presets are"):
        kinkgrad.kink_policy("tensorflow")
    with pytest.raises(PolicyError, match="relu"):
        kinkgrad.kink_policy(clip="half")


def test_kinkgrad_info_prints_the_preset_table() -> None:
    from kinkgrad.cli import info_table

    text = info_table()
    assert "min-norm" in text and "max_constant" in text


def test_peer_tools_are_checked_where_installed() -> None:
    # the cross-check above must not silently test nothing on a machine with torch
    assert tool_available("PyTorch") == (pytest.importorskip("torch") is not None)


@pytest.mark.parametrize(("preset", "tool"), [("torch", "torch"), ("jax", "jax")])
def test_clip_with_equal_bounds_at_the_bound_matches_the_peer(preset: str, tool: str) -> None:
    # clip(x, 1/2, 1/2) at 1/2, a kink of both bounds: each peer's gradient, run here (JAX
    # 0.10: minimum(maximum(x, lo), hi), 1/2 * 1/2; PyTorch: clamp's mask lo <= x <= hi, 1)
    lib = pytest.importorskip(tool)
    x = np.float64(0.5)
    with kinkgrad.kink_policy(preset):
        ours = float(kinkgrad.grad(lambda v: knp.clip(v, 0.5, 0.5))(x))
    if tool == "jax":
        theirs = float(lib.grad(lambda v: lib.numpy.clip(v, 0.5, 0.5))(0.5))
    else:
        t = lib.tensor(0.5, dtype=lib.float64, requires_grad=True)
        lib.clamp(t, 0.5, 0.5).backward()
        theirs = float(t.grad)
    assert ours == theirs
