"""Ties: all-equal rows, ties created by float16 rounding, maximum(x, x), clip with lo == hi,
norm-inf ties of opposite signs. Gradients are checked against hand-computed policy values
and the kink report against an independent count done here with plain NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad.numpy as knp
from kinkgrad import grad, kink_policy, value_and_grad


def _report(f, x, **kw):
    _, g, rep = value_and_grad(f, report=True, **kw)(x)
    return g, rep


def _row_ties(x: np.ndarray, axis: int) -> int:
    """Independent count: rows (along axis) whose maximum occurs more than once."""
    m = np.max(x, axis=axis, keepdims=True)
    return int(np.count_nonzero(np.sum(x == m, axis=axis) > 1))


def _adjacent_ties(x: np.ndarray) -> int:
    """Independent count: equal neighbours after sorting along the last axis."""
    s = np.sort(x, axis=-1)
    return int(np.count_nonzero(s[..., 1:] == s[..., :-1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_max_min_of_all_equal_rows(dtype):
    x = np.full((3, 4), 1.5, dtype)
    f = lambda a: knp.sum(knp.max(a, axis=1))  # noqa: E731
    g, rep = _report(f, x)
    first = np.zeros((3, 4))
    first[:, 0] = 1  # the first maximiser of each row
    assert g.dtype == dtype and g.tolist() == first.tolist()
    assert rep.total == _row_ties(x, 1) == 3
    g = grad(f, policy=kink_policy(max="split"))(x)
    assert g.tolist() == np.full((3, 4), 0.25).tolist()
    g = grad(lambda a: knp.sum(knp.min(a, axis=0)))(x)
    assert g.tolist() == [[1] * 4, [0] * 4, [0] * 4]


def test_sort_of_all_equal_rows():
    x = np.full((2, 4), -2.0)
    w = np.array([1.0, 2.0, 4.0, 8.0])
    g, rep = _report(lambda a: knp.sum(knp.sort(a) * w), x)
    assert g.tolist() == [w.tolist()] * 2  # stable order: the identity permutation
    assert rep.total == _adjacent_ties(x) == 6
    g = grad(lambda a: knp.sum(knp.sort(a) * w), policy=kink_policy(sort="split"))(x)
    assert g.tolist() == [[3.75] * 4] * 2  # the mean of w over the tie group


def test_ties_created_by_float16_rounding():
    raw = np.array([1.0, 1.0 + 2.0 ** -12, 1.0 - 2.0 ** -13, 0.5])  # distinct in float64
    assert _row_ties(raw, 0) == 0
    x = raw.astype(np.float16)  # 1 + 2^-12 and 1 - 2^-13 round to 1.0 (spacing 2^-10, 2^-11)
    assert x.tolist() == [1.0, 1.0, 1.0, 0.5]
    g, rep = _report(knp.max, x)
    assert g.dtype == np.float16 and g.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert rep.total == _row_ties(x, 0) == 1
    g, rep = _report(lambda a: knp.sum(knp.relu(a - np.float16(1.0))), x)
    assert rep.total == int(np.count_nonzero(x - np.float16(1.0) == 0)) == 3
    assert g.tolist() == [0.0, 0.0, 0.0, 0.0]
    g, rep = _report(lambda a: knp.sum(knp.sort(a) * np.arange(4, dtype=np.float16)), x)
    assert rep.total == _adjacent_ties(x) == 2
    assert g.tolist() == [1.0, 2.0, 3.0, 0.0]


@pytest.mark.parametrize("prim", [knp.maximum, knp.minimum])
def test_maximum_of_a_value_with_itself(prim):
    x = np.array([-1.5, 0.0, 2.0, -0.0])
    for tie in ("first", "split"):
        g, rep = _report(lambda a: knp.sum(prim(a, a)), x, policy=kink_policy(max=tie))
        assert g.tolist() == [1.0] * 4  # prim(x, x) = x, whatever the split
        assert rep.total == 4


def test_clip_with_equal_bounds_is_constant():
    x = np.array([-1.0, 0.5, 0.5, 2.0])
    for s in (0.0, 0.5, 1.0):
        g, rep = _report(lambda a: knp.sum(knp.clip(a, 0.5, 0.5)), x, policy=kink_policy(clip=s))
        # by hand: 0 off the point; at x = lo = hi both bounds are kinks, and the abs form
        # min(max(x, lo), hi) multiplies their slopes, s * s (PyTorch's clamp, s = 1: 1). The
        # default s = 0 gives 0, the only generalized derivative of the constant (Clarke)
        assert g.tolist() == [0.0, s * s, s * s, 0.0]
        assert rep.total == int(np.count_nonzero(x == 0.5)) == 2
    g = grad(lambda a: knp.sum(knp.clip(a, 0.5, 0.5)))(x)
    assert g.tolist() == [0.0] * 4


@pytest.mark.parametrize("x,first,split", [
    ([-2.0, 2.0, 1.0], [-1.0, 0.0, 0.0], [-0.5, 0.5, 0.0]),
    ([2.0, -2.0, -2.0], [1.0, 0.0, 0.0], [1 / 3, -1 / 3, -1 / 3]),
    ([0.0, -0.0], [0.0, 0.0], [0.0, 0.0]),  # all |x_i| = 0: abs'(0) = 0 by default
])
def test_norm_inf_with_tied_opposite_signs(x, first, split):
    x = np.array(x)
    g, rep = _report(lambda a: knp.linalg.norm(a, np.inf), x)
    assert g.tolist() == first
    assert rep.total == _row_ties(np.abs(x), 0)
    g = grad(lambda a: knp.linalg.norm(a, np.inf), policy=kink_policy(max="split"))(x)
    np.testing.assert_allclose(g, split, rtol=1e-15)


def test_kink_report_counts_ties_across_nodes():
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (5, 6)).astype(np.float64)  # many exact ties and zeros

    def f(a):
        return knp.sum(knp.max(knp.relu(a), axis=1)) + knp.sum(knp.abs(a))

    _, rep = _report(f, x)
    r = np.maximum(x, 0)
    want = int(np.count_nonzero(x == 0)) + _row_ties(r, 1) + int(np.count_nonzero(x == 0))
    assert rep.total == want
    counts = {q.primitive: q.count for q in rep.records}
    assert counts == {k: v for k, v in {"relu": int(np.count_nonzero(x == 0)),
                                       "max": _row_ties(r, 1),
                                       "abs": int(np.count_nonzero(x == 0))}.items() if v}
