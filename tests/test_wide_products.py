"""The wide replay's products of matrices (``modes/_wide._sliced_product``): float64 slices
of long double operands whose BLAS products are exact, against exact rational products."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal._flat import trace_at
from kinkgrad.abs_normal._membership import UndecidedError
from kinkgrad.modes import _wide

_LONG = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps / 100
pytestmark = pytest.mark.skipif(not _LONG, reason="long double is not wider than float64 here")


def _step(f, x, name):
    tr = trace_at(f, x, "test")
    e = next(q for q in tr.eqns if q.prim.name == name)
    return e, [np.asarray(a, np.longdouble) for a in e.args(tr.vals)]


def _exact(e, args):
    """The step on the operands as Fractions: numpy's object arrays sum exactly."""
    obj = [np.vectorize(lambda v: Fraction(*v.as_integer_ratio()), otypes=[object])(a)
           for a in args]
    return e.prim.impl(*obj, **e.params) if e.prim.name != "conv2d" else None


def _rel(v, exact, scale):
    return max(float(abs(Fraction(*a.as_integer_ratio()) - b)) / s
               for a, b, s in zip(v.reshape(-1), exact.reshape(-1), scale.reshape(-1)))


@pytest.mark.parametrize("m,k,n,spread", [(3, 5, 4, 0.0), (7, 40, 3, 30.0), (2, 300, 2, 5.0),
                                          (4, 1000, 3, 2.0)])
def test_sliced_products_of_matrices_reach_long_double_accuracy(m, k, n, spread):
    rng = np.random.default_rng(k)
    a = rng.standard_normal((m, k)) * np.exp(rng.uniform(-spread, spread, (m, k)))
    b = rng.standard_normal((k, n)) * np.exp(rng.uniform(-spread, spread, (k, n)))
    a[0, :4], a[0, 4:] = [1e16, 3.0, -1e16, -3.5], 0.0  # float64: 0.5 or 0; exactly -0.5
    b[:4, 0] = 1.0
    e, args = _step(lambda x: knp.sum(x.reshape(m, k) @ b), a.reshape(-1), "matmul")
    v, _ = _wide._sliced_product(e, args, (m, n))
    exact = _exact(e, args)
    # long double's own product errs by up to k 2^-64 |a||b|, float64's by k 2^-53 |a||b|
    assert _rel(v, exact, np.abs(a) @ np.abs(b)) <= k * 2.0 ** -62
    assert exact[0, 0] == Fraction(-1, 2)  # float64 makes it 0.5, 0 or -0.5 by its order
    assert v[0, 0] == -0.5  # the cancelling row


def test_sliced_einsum_and_stacked_products():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 50)) * 1e8
    b = rng.standard_normal((2, 50, 4))
    for f, name in [(lambda x: knp.sum(x.reshape(2, 3, 50) @ b), "matmul"),
                    (lambda x: knp.sum(knp.einsum("sij,sjk->sik", x.reshape(2, 3, 50), b)),
                     "einsum")]:
        e, args = _step(f, a.reshape(-1), name)
        v, _ = _wide._sliced_product(e, args, (2, 3, 4))
        exact = _exact(e, args)
        assert _rel(v, exact, np.abs(a) @ np.abs(b)) <= 50 * 2.0 ** -62  # entries alike


def test_sliced_convolution_against_an_exact_one():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 5)) * np.exp(rng.uniform(-5, 5, (1, 2, 5, 5)))
    w = rng.standard_normal((3, 2, 3, 3))
    e, args = _step(lambda z: knp.sum(knp.conv2d(z.reshape(1, 2, 5, 5), w, padding=1)),
                    x.reshape(-1), "conv2d")
    v, _ = _wide._sliced_product(e, args, (1, 3, 5, 5))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for o, p, q in [(0, 0, 0), (1, 2, 3), (2, 4, 4)]:
        exact = sum(Fraction(float(xp[0, c, p + i, q + j])) * Fraction(float(w[o, c, i, j]))
                    for c in range(2) for i in range(3) for j in range(3))
        size = sum(abs(xp[0, c, p + i, q + j] * w[o, c, i, j])
                   for c in range(2) for i in range(3) for j in range(3))
        assert abs(Fraction(*v[0, o, p, q].as_integer_ratio()) - exact) <= 18 * 2.0 ** -62 * size


def test_a_heavy_product_that_cancels_is_checked():
    # a pre-activation 1e16 + 3 - 1e16 - 3.5 is 0.5 in float64 and -0.5 exactly, in a product
    # of matrices heavy enough to be replayed by BLAS: relu is inactive in f, whose gradient
    # is 0 near w; the computed model's is X^T 1 (1e16 entries), and in_clarke(f, w, 0)
    # was a proven False, certify True ("no kinks")
    x = np.zeros((400, 1000))
    x[:, :4] = [1e16, 3.0, -1e16, -3.5]

    def f(w):
        return knp.sum(knp.relu(x @ w.reshape(1000, 20)))

    w = np.ones(20000)
    assert (x @ w.reshape(1000, 20))[0, 0] == 0.5  # the premise
    try:
        assert kinkgrad.in_clarke(f, w, np.zeros(20000))
    except UndecidedError:
        pass
    rep = kinkgrad.certify(f, w)
    assert not rep.certified and rep.condition == "undecided", rep.reason


def test_a_non_finite_operand_or_too_many_terms_falls_back():
    e, args = _step(lambda x: knp.sum(x.reshape(2, 3) @ np.ones((3, 2))), np.ones(6), "matmul")
    args[0][0, 0] = np.inf
    assert _wide._sliced_product(e, args, (2, 2)) is None


def test_entries_far_below_their_rows_and_columns_keep_their_float64_product():
    # the entry 2^-940 = 2^-470 2^-470 in a row holding 2^450 (|a| |b| underflows in the
    # scales' units): the slices cannot hold it, and the replay gave 0 (a switching value
    # of 0 in f where the program computes it exactly), now its float64 product
    a = np.array([[2.0 ** 450, 2.0 ** -470, 1.0]])
    b = np.array([[0.0, 1.0], [2.0 ** -470, 1.0], [0.0, 1.0]])
    e, args = _step(lambda x: knp.sum(x.reshape(1, 3) @ b), a.reshape(-1), "matmul")
    v, unit = _wide._sliced_product(e, args, (1, 2))
    assert v[0, 0] == 2.0 ** -940
    assert v[0, 1] == np.longdouble(2.0 ** 450) + np.longdouble(2.0 ** -470) + 1
    # and the replay's error estimate gives that entry float64's unit roundoff, not long
    # double's (its error is float64's)
    assert unit[0, 0] == np.finfo(np.float64).eps / 2
    assert unit[0, 1] == np.finfo(np.longdouble).eps / 2


@pytest.mark.parametrize("case", ["underflowing", "random", "spread"])
def test_float64_operands_are_cut_in_float64_to_the_same_slices(case, monkeypatch):
    # operands exact in float64 are scaled and sliced in float64 (SIMD): the result must be
    # the long double path's bit for bit; 2^-80 in a row holding 2^1000 underflowed in
    # float64's scaling (2^-1081) and its entry's only term was lost (0 for 2^-80)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((6, 40)), rng.standard_normal((40, 5))
    if case == "underflowing":
        a[:, 0], a[:, 1] = 2.0 ** 1000, 2.0 ** -80
        b[0, :], b[2:, 0], b[1, 0] = 0.0, 0.0, 1.0
    elif case == "spread":
        a *= np.exp(rng.uniform(-300, 300, a.shape))
    e, args = _step(lambda x: knp.sum(x.reshape(a.shape) @ b), a.reshape(-1), "matmul")
    with np.errstate(all="ignore"):  # NOTE: as wide_values runs it (underflows: the case)
        got, unit = _wide._sliced_product(e, args, (6, 5))
        monkeypatch.setattr(_wide, "_narrowed", lambda x: x)
        want, unit_ld = _wide._sliced_product(e, args, (6, 5))
    assert np.array_equal(got, want) and np.array_equal(unit, unit_ld)
    if case == "underflowing":
        assert got[0, 0] == 2.0 ** -80
