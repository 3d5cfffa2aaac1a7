"""kinkgrad.rounding_error and the primitives' ``rounding`` rules, against the error actually
made: float32 and float16 evaluations against float64 ones of the same (exactly converted)
inputs, float64 evaluations against long double ones."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.primitive import registry
from kinkgrad.errors import KinkgradError, NonScalarOutputError

_PRIMS = sorted((name, prim) for name, prim in registry().items() if prim.differentiable)
_LONG = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps / 100  # x86's 80-bit


def _points(prim, dtype):
    rng = np.random.default_rng(3)
    return prim.samples(rng, dtype) + prim.kink_samples(rng, dtype)


def _as(args, dtype):
    return [np.asarray(a, dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in args]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name,prim", _PRIMS, ids=[n for n, _ in _PRIMS])
def test_each_rule_bounds_the_error_of_one_evaluation(name, prim, dtype):
    """|fl_low(op(a)) - op(a)| <= u r for inputs exact in the low precision; op(a) from float64
    (its own error, ~1e-16 relative, is allowed for). An op declared exact (r None) must give
    the float64 result itself."""
    points = _points(prim, dtype)
    if not points:
        pytest.skip(f"{name} has no samples")
    checked = 0
    for args, params in points:
        low = _as(args, dtype)
        if not any(isinstance(a, np.ndarray) and a.dtype == dtype for a in low):
            continue
        with np.errstate(all="ignore"):  # float16 samples may overflow an exp: skipped below
            out = np.asarray(prim.impl(*low, **params))
            ref = np.asarray(prim.impl(*_as(low, np.float64), **params), np.float64)
            if out.dtype.kind != "f" or not (np.all(np.isfinite(out))
                                              and np.all(np.isfinite(ref))):
                continue
            r = prim.rounding(low, out, params)
            err = np.abs(out.astype(np.float64) - ref)
        u = np.finfo(out.dtype).eps / 2
        if r is None:
            assert np.array_equal(err, np.zeros_like(err)), (name, params)
        else:
            allowed = u * np.asarray(r, np.float64) + 8 * np.finfo(np.float64).eps * (
                np.abs(ref) + np.asarray(r, np.float64))
            assert np.all(err <= allowed), (name, params, float(np.max(err - allowed)))
        checked += 1
    assert checked or dtype == np.float16, name


def _mlp_loss(p):
    h = knp.relu(p["x"] @ p["w1"])
    return knp.mean(knp.logsumexp(h @ p["w2"], axis=1) - (h @ p["w2"])[:, 0])


def _programs(dtype):
    rng = np.random.default_rng(7)
    mlp = {"x": rng.normal(size=(64, 30)), "w1": rng.normal(size=(30, 40)) / 5,
           "w2": rng.normal(size=(40, 10)) / 6}
    yield "mlp", _mlp_loss, {k: v.astype(dtype) for k, v in mlp.items()}
    img = rng.normal(size=(2, 3, 9, 9)).astype(dtype)
    ker = rng.normal(size=(4, 3, 3, 3)).astype(dtype)
    yield "conv", lambda w: knp.sum(knp.tanh(knp.conv2d(img, w, padding=1)) ** 2), ker
    yield "einsum", (lambda a: knp.sum(knp.abs(knp.einsum("ij,jk->ik", a, a.T) - 1.0))
                     + knp.linalg.norm(a)), rng.normal(size=(20, 30)).astype(dtype)
    for name in kinkgrad.problems.NAMES:
        p = kinkgrad.problems.get(name, 40)
        yield name, p.f, (p.x0 + rng.normal(size=40) * 0.1).astype(dtype)


@pytest.mark.parametrize("case", list(range(13)))
def test_programs_in_float32_err_within_the_estimate(case):
    """Whole programs (an MLP loss, a convolution, einsum with a norm, the ten published
    test problems at perturbed starting points) evaluated in float32: the error against the
    float64 evaluation of the same float32 inputs stays within the estimate."""
    name, f, x32 = list(_programs(np.float32))[case]
    rep = kinkgrad.rounding_error(f, x32)
    x64 = {k: v.astype(np.float64) for k, v in x32.items()} if isinstance(x32, dict) \
        else x32.astype(np.float64)
    truth = float(f(x64))
    assert abs(rep.value - truth) <= rep.error, (name, abs(rep.value - truth), rep.error)
    assert 0 < rep.error < np.inf


@pytest.mark.skipif(not _LONG, reason="long double is not wider than float64 here")
@pytest.mark.parametrize("name", kinkgrad.problems.NAMES)
def test_problems_in_float64_err_within_the_estimate(name):
    """float64 evaluations of the published problems (n = 2000, near their minimisers where
    f's terms cancel, as at the end of a minimization) against long double evaluations."""
    p = kinkgrad.problems.get(name, 2000)
    x = np.ones(2000) if name.startswith("chained-cb3") else np.full(2000, 0.7071067811865476)
    if name not in ("chained-lq", "chained-mifflin2") and not name.startswith("chained-cb3"):
        x = np.zeros(2000)
    x = x + np.random.default_rng(5).normal(size=2000) * 1e-6
    rep = kinkgrad.rounding_error(p.f, x)
    err = abs(np.longdouble(rep.value) - p.f(x.astype(np.longdouble)))
    assert float(err) <= rep.error, (name, float(err), rep.error)


def test_the_estimate_is_not_loose_on_a_systematic_error():
    """sum((1 + x) - 1) with every x_i = 1e-9: each 1 + x_i rounds the same way, so the
    errors add up; the estimate (n u) is within a factor 2 of the actual error."""
    x = np.full(10**4, 1e-9)
    rep = kinkgrad.rounding_error(lambda x: knp.sum((1.0 + x) - 1.0), x)
    actual = 10**4 * abs(float(np.longdouble(1.0) + np.longdouble(1e-9) - (1.0 + 1e-9)))
    assert actual <= rep.error <= 2 * actual
    assert rep.error == pytest.approx(10**4 * np.finfo(float).eps / 2, rel=1e-3)
    assert list(rep.by_primitive)[0] == "add"


def test_exact_programs_and_constant_outputs_have_no_error():
    x = np.array([3.0, -1.5, 0.25, 0.0])
    rep = kinkgrad.rounding_error(
        lambda x: knp.max(knp.relu(knp.sort(knp.abs(x)))[1:]), x)
    assert rep.error == 0.0 and rep.value == 3.0 and rep.digits == np.inf
    assert kinkgrad.rounding_error(lambda x: 2.0, x).error == 0.0


def test_each_node_uses_its_own_unit_roundoff():
    """The same program in float16, float32 and float64: the estimates scale with eps."""
    x = np.linspace(0.1, 3.0, 50)
    reps = [kinkgrad.rounding_error(lambda v: knp.sum(knp.exp(v) * v), x.astype(dt)).error
            for dt in (np.float16, np.float32, np.float64)]
    eps = [np.finfo(dt).eps for dt in (np.float16, np.float32, np.float64)]
    ratios = [r / e for r, e in zip(reps, eps)]
    assert max(ratios) / min(ratios) < 1.5, ratios


def test_bad_input_is_refused_with_the_operation_named():
    with pytest.raises(NonScalarOutputError, match="rounding_error"):
        kinkgrad.rounding_error(lambda x: x * 2.0, np.ones(3))
    with pytest.raises(KinkgradError, match="rounding_error"):
        kinkgrad.rounding_error(lambda x: knp.sum(knp.log(x)), np.array([1.0, np.nan]))


@pytest.mark.parametrize("x", [np.ones(2000, np.float16), np.full(1000, 1e35, np.float32)])
def test_the_estimate_is_finite_where_the_value_is(x):
    # the magnitudes were computed in x's dtype: sum|x| (ceil(log2 m) + 1 + sqrt m) passed
    # float16's 65504 (and float32's 3.4e38) though f(x) is finite: the estimate was inf.
    # Truth: the exact error of the computed sum, from Python's exact rational arithmetic
    from fractions import Fraction

    rep = kinkgrad.rounding_error(knp.sum, x)
    exact = abs(Fraction(float(np.sum(x))) - sum(Fraction(float(v)) for v in x))
    assert np.isfinite(rep.value) and np.isfinite(rep.error) and rep.error >= float(exact)


def test_the_measured_error_is_the_exact_one_where_cancellation_took_the_digits():
    # (1e12 + 0.3) - 1e12 is 0.300048828125 as computed; the exact value (Fractions) is
    # 0.3 (the float 0.3), so the error is known exactly and the wide replay measures it
    from fractions import Fraction

    rep = kinkgrad.rounding_error(lambda x: (1e12 + x[0]) - 1e12, np.array([0.3]))
    exact = abs(Fraction(rep.value) - Fraction(0.3))
    if rep.measured is None:  # long double is float64 here: nothing to measure against
        pytest.skip("no precision wider than float64 on this platform")
    # long double rounds 1e12 + 0.3 too, to within half its spacing there, 2^-25
    assert rep.measured == pytest.approx(float(exact), abs=2.0 ** -25)
    assert rep.error >= rep.measured  # the first-order estimate bounds it here


def test_an_underflow_to_zero_has_no_digits_and_an_exact_zero_all():
    # sum(x * x) at x = 1e-300 underflows to 0 (exactly 1e-599): the estimate is 0 (no
    # rounding of a 0) and digits was inf; the measured error says it kept none
    rep = kinkgrad.rounding_error(lambda x: knp.sum(x * x), np.full(10, 1e-300))
    if rep.measured is None:
        pytest.skip("no precision wider than float64 on this platform")
    assert rep.value == 0.0 and rep.measured > 0 and rep.digits == 0.0
    zero = kinkgrad.rounding_error(lambda x: knp.sum(x * x), np.zeros(10))
    assert zero.measured == 0.0 and zero.digits == float("inf")
    # float32 programs are measured against float64
    rep32 = kinkgrad.rounding_error(lambda x: knp.sum(x * x), np.full(3, 0.1, np.float32))
    x = float(np.float32(0.1))
    assert rep32.measured == pytest.approx(abs(rep32.value - 3 * x * x), rel=1e-6)
