"""Hand-computed numbers, asserted with no helper in between (autograd's test_direct.py).

Each expected value is worked out in the comment next to it from the definition of the
function and the kink convention of kinkgrad/kinks.py.
"""

from __future__ import annotations

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import grad, kink_policy


def test_relu_derivative_at_zero_default_and_declared():
    assert grad(knp.relu)(0.0) == 0.0  # relu'(0) = 0 by default
    with kink_policy(relu=1.0):
        assert grad(knp.relu)(0.0) == 1.0  # the context manager
    assert grad(knp.relu, policy=kink_policy(relu=1.0))(0.0) == 1.0  # the keyword
    assert grad(knp.relu, policy=kink_policy(relu=0.25))(0.0) == 0.25
    assert grad(knp.relu)(-3.0) == 0.0 and grad(knp.relu)(2.0) == 1.0


def test_abs_derivative_at_zero():
    assert grad(knp.abs)(0.0) == 0.0  # agnostic default
    assert grad(knp.abs, policy=kink_policy(abs=-1.0))(0.0) == -1.0
    assert grad(knp.abs)(-2.0) == -1.0


def test_max_ties_first_and_split():
    x = np.array([1.0, 3.0, 3.0])
    assert grad(knp.max)(x).tolist() == [0.0, 1.0, 0.0]  # first maximiser gets it all
    with kink_policy(max="split"):
        assert grad(knp.max)(x).tolist() == [0.0, 0.5, 0.5]
    # min over rows: row [2, 2] ties; column weights of the first minimiser
    y = np.array([[2.0, 2.0], [1.0, 4.0]])
    assert grad(lambda a: knp.sum(knp.min(a, axis=1)))(y).tolist() == [[1, 0], [1, 0]]


def test_maximum_of_a_value_with_itself_has_derivative_one():
    x = np.array([0.5, -2.0])
    # maximum(x, x) = x: "first" gives (1, 0), "split" (1/2, 1/2); both sum to 1
    assert grad(lambda a: knp.sum(knp.maximum(a, a)))(x).tolist() == [1.0, 1.0]
    with kink_policy(max="split"):
        assert grad(lambda a: knp.sum(knp.maximum(a, a)))(x).tolist() == [1.0, 1.0]
    # minimum(a, b) at a tie: the first operand gets the derivative
    g = grad(lambda a, b: knp.minimum(a, b), argnums=(0, 1))(1.0, 1.0)
    assert (float(g[0]), float(g[1])) == (1.0, 0.0)


def test_sort_ties():
    w = np.array([1.0, 2.0, 3.0])
    x = np.array([2.0, 2.0, 1.0])
    f = lambda a: knp.sum(knp.sort(a) * w)  # noqa: E731
    # sort(x) = [1, 2, 2]; stable order: x[2] -> weight 1, x[0] -> 2, x[1] -> 3
    assert grad(f)(x).tolist() == [2.0, 3.0, 1.0]
    with kink_policy(sort="split"):  # the tied pair shares (2 + 3) / 2
        assert grad(f)(x).tolist() == [2.5, 2.5, 1.0]


def test_clip_at_a_bound():
    x = np.array([-1.0, 1.0, 0.0, 2.0])
    f = lambda a: knp.sum(knp.clip(a, -1.0, 1.0))  # noqa: E731
    assert grad(f)(x).tolist() == [0.0, 0.0, 1.0, 0.0]  # default clip'(bound) = relu'(0) = 0
    assert grad(f, policy=kink_policy(clip=1.0))(x).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert grad(f, policy=kink_policy("torch"))(x).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_norms_at_zero_are_finite():
    z = np.zeros(3)
    for ord in (None, 2, 1, np.inf):
        g = grad(lambda a, o=ord: knp.linalg.norm(a, ord=o))(z)
        assert g.tolist() == [0.0, 0.0, 0.0], ord  # zero vector: in every unit ball
    # ord 1 at 0 follows abs'(0); ord inf the abs sign and the max tie rule
    assert grad(lambda a: knp.linalg.norm(a, ord=1), policy=kink_policy(abs=1.0))(z).tolist() \
        == [1.0, 1.0, 1.0]
    assert grad(lambda a: knp.linalg.norm(a, ord=np.inf),
                policy=kink_policy(abs=1.0))(z).tolist() == [1.0, 0.0, 0.0]
    assert grad(lambda a: knp.linalg.norm(a, ord=np.inf),
                policy=kink_policy(abs=1.0, max="split"))(np.zeros(4)).tolist() == [0.25] * 4
    # away from 0: x / ||x|| = (3, 4) / 5
    assert grad(knp.linalg.norm)(np.array([3.0, 4.0])).tolist() == [0.6, 0.8]


def test_norm_selection_at_a_zero_input_under_a_rounded_output():
    # a rewritten program can record ||x|| = 1.4e-14 where its input is exactly 0 (a max's
    # tournament |a - b| recomputed); the selection divided 0 by 0 (NaN, and a
    # RuntimeWarning in minimize on a max-affine + quadratic): x = 0 is the kink
    from kinkgrad.kinks import KinkPolicy
    from kinkgrad.primitives.linalg import Norm

    params = {"ord": 2, "axis": (-1,), "keepdims": False}
    with np.errstate(all="raise"):
        sel, kinks = Norm.instance.select(KinkPolicy(), (np.zeros((1, 1)),),
                                          np.array([1.4e-14]), params)
    assert sel.tolist() == [[0.0]] and kinks == 1


def test_relu_x_minus_relu_minus_x_at_zero_plain_ad():
    # relu(x) - relu(-x) = x, whose Clarke gradient at 0 is {1}; plain backward AD with
    # relu'(0) = 0 returns 1*0 - (-1)*0... = 0 (paper B's classic example)
    assert grad(lambda a: knp.relu(a) - knp.relu(-a))(0.0) == 0.0
    with kink_policy(relu=1.0):  # 1 - (-1)(1) = 2, also not Clarke
        assert grad(lambda a: knp.relu(a) - knp.relu(-a))(0.0) == 2.0
    with kink_policy(relu=0.5):  # 0.5 + 0.5 = 1: the Clarke gradient
        assert grad(lambda a: knp.relu(a) - knp.relu(-a))(0.0) == 1.0


def test_leaky_relu_at_zero():
    assert grad(knp.leaky_relu)(0.0) == 0.01  # alpha (default negative_slope 0.01)
    f = lambda a: knp.leaky_relu(a, 0.25)  # noqa: E731
    assert grad(f)(0.0) == 0.25
    assert grad(f, policy=kink_policy(leaky_relu=1.0))(0.0) == 1.0
    assert grad(f, policy=kink_policy(leaky_relu=0.5))(0.0) == 0.625  # 0.25 + 0.5 * 0.75


def test_kink_report_counts():
    f = lambda x, y: knp.sum(knp.relu(x)) + knp.max(y) + knp.abs(x[1])  # noqa: E731
    x = np.array([0.0, 1.0, 0.0, -1.0])
    y = np.array([2.0, 2.0, 1.0])
    (v, g, rep) = kinkgrad.value_and_grad(f, argnums=(0, 1), report=True)(x, y)
    assert v == 1.0 + 2.0 + 1.0
    assert rep.nonsmooth_nodes == 3  # relu, max, abs
    recs = sorted(rep.records, key=lambda r: r.index)  # the reverse sweep meets max first
    assert [(r.primitive, r.count, r.size) for r in recs] == [("relu", 2, 4), ("max", 1, 3)]
    assert rep.total == 3 and rep.any
    assert g[0].tolist() == [0.0, 2.0, 0.0, 0.0]  # relu'(1) + abs'(1) on entry 1
    assert g[1].tolist() == [1.0, 0.0, 0.0]


def test_jvp_and_cost_by_hand():
    # conservative forward mode uses the same choice: relu'(0) = 0 along any tangent
    _, t = kinkgrad.jvp(knp.relu, (np.array([0.0, 2.0]),), (np.array([5.0, 5.0]),))
    assert t.tolist() == [0.0, 5.0]
    # sum(relu(W x)), W (4, 3): matmul 2*4*3 = 24, relu 4, sum 4
    rep = kinkgrad.cost(lambda x: knp.sum(knp.relu(np.ones((4, 3)) @ x)), np.ones(3))
    assert (rep.function, rep.p) == (32, 3)


def test_kink_report_counts_ties_of_traced_comparisons():
    # relu written with where: at x = 0 the comparison x > 0 is tied (z = x - 0 = 0)
    f = lambda x: knp.sum(knp.where(x > 0, x, 0.0))  # noqa: E731
    g, rep = kinkgrad.grad(f, report=True)(np.array([0.0, 2.0, -1.0]))
    assert g.tolist() == [0.0, 1.0, 0.0]  # the where takes its else branch at the tie
    assert [(r.primitive, r.count, r.size) for r in rep.records] == [("greater", 1, 3)]
    assert rep.nonsmooth_nodes == 1
    _, rep2 = kinkgrad.grad(f, report=True)(np.array([1.0, 2.0, -1.0]))
    assert not rep2.any and rep2.nonsmooth_nodes == 1


def test_policy_values_are_numbers_and_stored_as_floats() -> None:
    import pytest

    with pytest.raises(kinkgrad.KinkgradError, match="must be a number"):
        kinkgrad.kink_policy(relu=True)
    assert kinkgrad.kink_policy(relu=1).relu == 1.0
    assert isinstance(kinkgrad.kink_policy(abs=-1).abs, float)
