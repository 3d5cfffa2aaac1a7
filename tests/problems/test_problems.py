"""kinkgrad.problems against an independent 1-based loop transcription of the published formulas.

The reference functions below are written from the Fortran test set (tnsunc.f, subroutine FUNC;
Haarala 2003) and NonOpt's problem classes, one term at a time with 1-based indices, in plain
Python floats; they share no code with the module under test. Expected f(x0) values are closed
forms derived by hand from the formulas and the published starting points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kinkgrad
from kinkgrad import problems
from kinkgrad.errors import KinkgradError

NAMES = ("maxq", "mxhilb", "chained-lq", "chained-cb3-1", "chained-cb3-2", "active-faces",
         "brown2", "chained-mifflin2", "chained-crescent-1", "chained-crescent-2")
# Chained Mifflin 2 is labelled nonconvex in the references but is convex: each term is
# -a + h(a^2 + b^2 - 1) with h(y) = 2y + 1.75|y| = max(0.25y, 3.75y) convex and nondecreasing.
CONVEX = {"maxq", "mxhilb", "chained-lq", "chained-cb3-1", "chained-cb3-2", "chained-mifflin2"}
DIMS = (2, 3, 10, 50)


# --- independent reference: x is a 1-based accessor X(i) -------------------------------------
def ref_f(name: str, x: np.ndarray) -> float:
    n = len(x)
    X = [None] + [float(v) for v in x]  # noqa: N806  (X[1..n] as in the paper)
    pairs = range(1, n)  # i = 1..n-1
    if name == "maxq":
        return max(X[i] ** 2 for i in range(1, n + 1))
    if name == "mxhilb":
        return max(abs(sum(X[j] / (i + j - 1) for j in range(1, n + 1))) for i in range(1, n + 1))
    if name == "chained-lq":
        return sum(max(-X[i] - X[i + 1], -X[i] - X[i + 1] + (X[i] ** 2 + X[i + 1] ** 2 - 1))
                   for i in pairs)

    def cb3(i: int) -> tuple[float, float, float]:
        return (X[i] ** 4 + X[i + 1] ** 2, (2 - X[i]) ** 2 + (2 - X[i + 1]) ** 2,
                2 * math.exp(-X[i] + X[i + 1]))

    def crescent(i: int) -> tuple[float, float]:
        return (X[i] ** 2 + (X[i + 1] - 1) ** 2 + X[i + 1] - 1,
                -X[i] ** 2 - (X[i + 1] - 1) ** 2 + X[i + 1] + 1)

    if name == "chained-cb3-1":
        return sum(max(cb3(i)) for i in pairs)
    if name == "chained-cb3-2":
        return max(sum(cb3(i)[k] for i in pairs) for k in range(3))
    if name == "active-faces":
        g = lambda y: math.log(abs(y) + 1)  # noqa: E731
        return max(g(-sum(X[1:])), max(g(X[i]) for i in range(1, n + 1)))
    if name == "brown2":
        return sum(abs(X[i]) ** (X[i + 1] ** 2 + 1) + abs(X[i + 1]) ** (X[i] ** 2 + 1)
                   for i in pairs)
    if name == "chained-mifflin2":
        return sum(-X[i] + 2 * (X[i] ** 2 + X[i + 1] ** 2 - 1)
                   + 1.75 * abs(X[i] ** 2 + X[i + 1] ** 2 - 1) for i in pairs)
    if name == "chained-crescent-1":
        return max(sum(crescent(i)[k] for i in pairs) for k in range(2))
    if name == "chained-crescent-2":
        return sum(max(crescent(i)) for i in pairs)
    raise AssertionError(name)


def ref_x0(name: str, n: int) -> np.ndarray:
    """STARTX of tnsunc.f, loop by loop (N/2 is Fortran integer division)."""
    x = np.empty(n)
    for i in range(1, n + 1):
        odd = i % 2 == 1
        x[i - 1] = {"maxq": i if i <= n // 2 else -i, "mxhilb": 1.0, "chained-lq": -0.5,
                    "chained-cb3-1": 2.0, "chained-cb3-2": 2.0, "active-faces": 1.0,
                    "brown2": -1.0 if odd else 1.0, "chained-mifflin2": -1.0,
                    "chained-crescent-1": -1.5 if odd else 2.0,
                    "chained-crescent-2": -1.5 if odd else 2.0}[name]
    return x


def f_x0_closed_form(name: str, n: int) -> float:
    """f(x0) by hand: at x0 every chained term takes one of at most two values."""
    odd_pairs, even_pairs = n // 2, (n - 1) // 2  # pairs (x_i, x_i+1) with i odd / even
    return {"maxq": float(n * n), "mxhilb": sum(1.0 / j for j in range(1, n + 1)),
            "chained-lq": n - 1.0, "chained-cb3-1": 20.0 * (n - 1),
            "chained-cb3-2": 20.0 * (n - 1), "active-faces": math.log(n + 1.0),
            "brown2": 2.0 * (n - 1), "chained-mifflin2": 4.75 * (n - 1),
            "chained-crescent-1": 4.25 * odd_pairs + 7.75 * even_pairs,
            "chained-crescent-2": 4.25 * odd_pairs + 7.75 * even_pairs}[name]


def fd_grad(name: str, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for k in range(len(x)):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (ref_f(name, x + e) - ref_f(name, x - e)) / (2 * h)
    return g


# --- tests --------------------------------------------------------------------------------------
def test_names_and_metadata():
    assert problems.NAMES == NAMES
    for name in NAMES:
        p = problems.get(name, 7)
        assert (p.name, p.n, p.convex) == (name, 7, name in CONVEX)
        assert isinstance(p.title, str) and p.title
    table = problems.describe()
    assert all(name in table for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", DIMS)
def test_x0_and_f_x0(name, n):
    p = problems.get(name, n)
    x0 = p.x0
    assert x0.dtype == np.float64 and x0.shape == (n,)
    np.testing.assert_array_equal(x0, ref_x0(name, n))
    x0[:] = 123.0  # a fresh array each time: the problem is unchanged
    np.testing.assert_array_equal(p.x0, ref_x0(name, n))
    expected = f_x0_closed_form(name, n)
    assert float(p.f(p.x0)) == pytest.approx(expected, rel=1e-13)
    assert ref_f(name, p.x0) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", DIMS)
def test_f_matches_reference_at_random_points(name, n):
    rng = np.random.default_rng(100 * sum(map(ord, name)) + n)
    f = problems.get(name, n).f
    for scale in (0.1, 1.0, 3.0):
        x = scale * rng.normal(size=n)
        assert float(f(x)) == pytest.approx(ref_f(name, x), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", (2, 3, 10))
def test_f_star_at_x_star(name, n):
    p = problems.get(name, n)
    if name == "chained-mifflin2":
        assert p.x_star is None and p.f_star is None  # published only for n = 50, 200, 1000
        return
    expected = {"chained-lq": -(n - 1) * math.sqrt(2.0), "chained-cb3-1": 2.0 * (n - 1),
                "chained-cb3-2": 2.0 * (n - 1)}.get(name, 0.0)
    assert p.f_star == pytest.approx(expected, rel=1e-15, abs=0.0)
    xs = p.x_star
    assert xs.dtype == np.float64 and xs.shape == (n,)
    assert float(p.f(xs)) == pytest.approx(expected, rel=1e-10, abs=0.0)
    assert ref_f(name, xs) == pytest.approx(expected, rel=1e-10, abs=0.0)
    # x_star beats x0 and random points (f* is the minimum)
    rng = np.random.default_rng(n)
    for x in (p.x0, *rng.normal(size=(20, n))):
        assert ref_f(name, x) >= expected - 1e-12 * abs(expected)


def test_mifflin2_published_values():
    for n, v in ((50, -34.795), (200, -140.86), (1000, -706.55)):
        p = problems.get("chained-mifflin2", n)
        assert p.f_star == v and p.x_star is None
        assert float(p.f(p.x0)) > v
    assert problems.get("chained-mifflin2", 51).f_star is None


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_finite_differences(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    p = problems.get(name, 10)
    for _ in range(3):
        x = rng.normal(size=10)
        g = kinkgrad.grad(p.f)(x)
        np.testing.assert_allclose(g, fd_grad(name, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_grad_finite_at_and_near_x_star(name):
    p = problems.get(name, 50)
    x = p.x_star if p.x_star is not None else p.x0
    rng = np.random.default_rng(1)
    for y in (x, x + 1e-8 * rng.normal(size=50), x + 1e-4 * rng.normal(size=50)):
        v, g = kinkgrad.value_and_grad(p.f)(y)
        assert np.isfinite(v) and np.all(np.isfinite(g))
        assert float(v) == pytest.approx(ref_f(name, y), rel=1e-12, abs=1e-15)


def test_brown2_grad_at_zero_base():
    """|t|^s at t = 0 has partials 0 in t (s > 1) and in s; at s = 1 the module picks 0."""
    f = problems.get("brown2", 4).f
    np.testing.assert_array_equal(kinkgrad.grad(f)(np.zeros(4)), np.zeros(4))
    x = np.array([0.0, 0.5, 0.0, -2.0])
    np.testing.assert_allclose(kinkgrad.grad(f)(x), fd_grad("brown2", x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CONVEX))
def test_midpoint_convexity(name):
    rng = np.random.default_rng(7)
    for n in (2, 3, 10, 50):
        f = problems.get(name, n).f
        for _ in range(20):
            x, y = rng.normal(scale=2.0, size=(2, n))
            lhs, rhs = float(f((x + y) / 2)), (float(f(x)) + float(f(y))) / 2
            assert lhs <= rhs + 1e-12 * max(1.0, abs(rhs))


@pytest.mark.parametrize("name", sorted(set(NAMES) - CONVEX))
def test_nonconvex_flag_has_a_witness(name):
    rng = np.random.default_rng(3)
    f = problems.get(name, 3).f
    pairs = rng.normal(scale=1.5, size=(2000, 2, 3))
    assert any(float(f((x + y) / 2)) > (float(f(x)) + float(f(y))) / 2 + 1e-9 for x, y in pairs)


def test_large_n_is_vectorised():
    for name in NAMES:
        p = problems.get(name, 4000)
        v, g = kinkgrad.value_and_grad(p.f)(p.x0)
        assert float(v) == pytest.approx(f_x0_closed_form(name, 4000), rel=1e-12)
        assert g.shape == (4000,) and np.all(np.isfinite(g))


@pytest.mark.parametrize("name", ["nope", "", "maxq2", None, 3])
def test_unknown_name_raises(name):
    with pytest.raises(KinkgradError, match=r"problems\.get.*chained-crescent-2"):
        problems.get(name, 10)


def test_name_spelling_is_normalised():
    assert problems.get("Chained_LQ", 4).name == "chained-lq"


@pytest.mark.parametrize("n", [1, 0, -3, 2.5, 10.0, "10", True, None])
def test_bad_n_raises(n):
    with pytest.raises(KinkgradError, match=r"problems\.get.*integer >= 2"):
        problems.get("maxq", n)


def test_odd_n_maxq_follows_fortran_integer_division():
    np.testing.assert_array_equal(problems.get("maxq", 5).x0, [1, 2, -3, -4, -5])
    assert problems.get("maxq", np.int64(6)).n == 6
