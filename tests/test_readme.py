"""The README's Python examples run as written, and its numbers are what they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run() -> None:
    pytest.importorskip("torch", reason="the README's PyTorch example needs torch")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    # the tour's claims, checked against hand-derived values
    kinkgrad, knp = namespace["kinkgrad"], namespace["knp"]
    F = namespace["F"]
    x = np.zeros(3)
    assert kinkgrad.grad(F)(x).tolist() == [0.0, 0.0, 0.0]
    assert kinkgrad.clarke_grad(F, x)[0].tolist() == [1.0, 1.0, 1.0]
    assert not kinkgrad.certify(F, x).certified
    d = kinkgrad.directional(knp.max, np.ones(3), np.array([[1.0, 0.0], [2.0, -1.0], [0.0, -3.0]]))
    assert d.tolist() == [2.0, 0.0]  # max over each column of D
    assert out.getvalue().splitlines()[:2] == ["0.0", "2.0"]
    # the torch example hits kinks: 8 all-zero rows x 8 first-layer ReLUs with zero bias = 64
    # (counted by hand), certified; the first SGD step moves the biases off 0
    lines = out.getvalue().splitlines()
    i = lines.index("{'1': 64} True")
    assert lines[i + 1:i + 4] == ["0 64", "1 0", "2 0"]


def test_readme_minimize_example_claims() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    block = next(b for b in blocks if "kinkgrad.minimize" in b)
    ns: dict = {}
    exec(compile(block, str(README), "exec"), ns)  # noqa: S102
    res, rep, c = ns["res"], ns["rep"], ns["c"]
    assert res.success and res.stationarity.verdict == "stationary"
    np.testing.assert_allclose(res.x, c, atol=1e-6)  # the minimiser, derived by hand
    assert rep.verdict == "not stationary" and rep.slope < 0
    p = ns["p"]
    assert ns["kinkgrad"].stationarity(p.f, p.x_star, radius=1e-6).verdict == "stationary"
    # sum(x^2 - |x|) at 0: f(t e_1) = t^2 - |t| < 0, so 0 is no minimiser (by hand)
    g, zero = ns["g"], np.zeros(3)
    assert ns["kinkgrad"].stationarity(g, zero).verdict == "stationary"
    assert ns["kinkgrad"].minimality(g, zero).verdict == "not minimal"
    assert res.minimality.verdict == "minimal"  # f is convex: its minimiser is minimal
    # ||d||_1 - ||d||_2 >= 0 for every d (by hand): 0 is first-order minimal for l1 - l2
    assert ns["kinkgrad"].minimality(ns["h"], zero).verdict == "minimal"
