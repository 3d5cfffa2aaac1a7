"""Every kink as a Euclidean norm of one entry (kinkgrad.abs_normal.kinks_as_norms): the
rewritten trace has f's value, and at a smooth point f's gradient (truths: f itself, central
differences); each switch is one group; nested kinks are refused (None) unless asked for
(nested=True: the same value and gradient), programs without kinks besides their norms
always."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal._flat import FlatSpec, scalar_output, trace_at
from kinkgrad.abs_normal.kinks_as_norms import is_nested, kinks_as_norms
from kinkgrad.abs_normal.zero_norms import _norms
from kinkgrad.kinks import KinkPolicy
from kinkgrad.modes.sweeps import reverse_sweep
from kinkgrad.optimize.oracle import Oracle


def _mixed(x):
    """Norms beside l1 (abs and ord=1), a hinge (maximum), relu and min; no kink reads
    another's output."""
    return (knp.linalg.norm(x[:3]) + 0.5 * knp.linalg.norm(x[3:6] - 1.0)
            + 0.3 * knp.sum(knp.abs(x)) + 0.2 * knp.linalg.norm(x[2:5], 1)
            + knp.maximum(x[0] - 2.0 * x[1], 0.0) + knp.sum(knp.relu(x[4:] + 0.5))
            - 0.1 * knp.minimum(x[6], x[7]))


def _value_and_gradient(tr):
    out, value = scalar_output(tr, "test")
    ct = reverse_sweep(tr.eqns, tr.vals, {out.index: np.ones(out.shape)}, KinkPolicy(),
                       keep={v.index for v in tr.in_vars})
    return value, FlatSpec(tr).join([ct.get(v.index) for v in tr.in_vars])


@pytest.mark.parametrize("seed", range(5))
def test_the_rewritten_trace_has_f_value_and_gradient(seed):
    x = np.random.default_rng(seed).standard_normal(8)  # no kink exactly active
    tr = trace_at(_mixed, x, "test")
    rw = kinks_as_norms(tr)
    assert rw is not None
    value, g = _value_and_gradient(rw)
    assert value == float(_mixed(x))
    h = 1e-6
    fd = np.array([(_mixed(x + h * e) - _mixed(x - h * e)) / (2 * h) for e in np.eye(8)])
    np.testing.assert_allclose(g, fd, atol=1e-6)
    np.testing.assert_allclose(g, kinkgrad.grad(_mixed)(x), rtol=1e-12, atol=1e-14)


def test_each_switch_is_one_group_of_one_entry():
    x = np.zeros(8)  # every kink active: the rewrite is taken at kinks too
    rw = kinks_as_norms(trace_at(_mixed, x, "test"))
    found = _norms(rw)
    sizes = sorted(groups.shape[1] for _, groups, _ in found)
    # 2 user norms (3 entries each); one-entry groups: |x| 8, ||x[2:5]||_1 3, the hinge 1,
    # relu 4, min 1
    assert sizes.count(3) == 2
    assert sum(g.shape[0] for _, g, _ in found if g.shape[1] == 1) == 8 + 3 + 1 + 4 + 1
    values = np.concatenate([s for _, _, s in found])
    assert values.min() == 0.0  # the switches' |z| at the kinks, exactly


def test_refused_without_other_kinks_and_when_nested():
    x = np.linspace(-1.0, 1.0, 6)
    assert kinks_as_norms(trace_at(lambda v: knp.linalg.norm(v[:3]) + knp.sum(v * v), x,
                                   "test")) is None  # a group lasso: nothing to rewrite

    def nested(v):  # the hinge reads a norm's output
        return knp.maximum(knp.linalg.norm(v[:3]) - 1.0, 0.0) + knp.linalg.norm(v[3:])

    assert kinks_as_norms(trace_at(nested, x, "test")) is None

    def relu_net(v):  # relu of relu: a switch reads another switch's output
        return knp.sum(knp.relu(1.0 - knp.relu(v))) + 0.1 * knp.linalg.norm(v)

    assert kinks_as_norms(trace_at(relu_net, x, "test")) is None

    def max_items(v):  # max over 4 items: a tournament, whose second level reads the first
        return knp.max(v[:4]) + knp.linalg.norm(v[4:])

    assert kinks_as_norms(trace_at(max_items, x, "test")) is None


def test_the_oracle_decides_once_and_waits_out_a_point_without_an_abs_form():
    def f(v):  # a nuclear norm, rank-deficient at v = 0 (no abs form there), beside a
        return (knp.linalg.norm(v) + knp.sum(knp.abs(v - 1.0))  # norm and an l1 term
                + knp.linalg.norm(knp.reshape(v, (2, 2)), "nuc"))

    oracle = Oracle(f, np.zeros(4))
    assert oracle.kinks_as_norms is None  # undecided: not at x0
    tr = oracle.group_trace(np.zeros(4))
    assert oracle.kinks_as_norms is None and len(_norms(tr)) == 1  # the plain trace
    tr = oracle.group_trace(np.array([1.5, 0.2, -0.3, 0.7]))
    assert oracle.kinks_as_norms is True and len(_norms(tr)) == 2
    with pytest.raises(kinkgrad.KinkgradError):  # once decided, the point is refused
        oracle.group_trace(np.zeros(4))
    assert Oracle(lambda v: knp.linalg.norm(v) + knp.sum(v * v), np.ones(3)
                  ).kinks_as_norms is False


def _deep(v):  # a switch reads another's output, beside a max tournament and a norm
    return (knp.sum(knp.relu(1.0 - knp.relu(v[:3] - 0.2))) + knp.max(v[2:6])
            + 0.1 * knp.linalg.norm(v))


@pytest.mark.parametrize("seed", range(4))
def test_nested_kinks_on_request_keep_f_value_and_gradient(seed):
    x = np.random.default_rng(seed).standard_normal(6)  # no kink exactly active
    tr = trace_at(_deep, x, "test")
    assert kinks_as_norms(tr) is None
    rw = kinks_as_norms(tr, nested=True)
    assert rw is not None and is_nested(rw)
    value, g = _value_and_gradient(rw)
    assert value == float(_deep(x))
    h = 1e-6
    fd = np.array([(_deep(x + h * e) - _deep(x - h * e)) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(g, fd, atol=1e-6)
    assert not is_nested(kinks_as_norms(trace_at(_mixed, np.ones(8), "test")))


def test_the_oracle_marks_nested_kinks():
    oracle = Oracle(_deep, np.linspace(-1.0, 1.0, 6))
    oracle.group_trace(oracle.x0)
    assert oracle.kinks_as_norms is True and oracle.nested_kinks is True
    oracle = Oracle(_mixed, np.linspace(-1.0, 1.0, 8))
    oracle.group_trace(oracle.x0)
    assert oracle.kinks_as_norms is True and oracle.nested_kinks is False
