"""The reverse-only trace of ``value_and_grad`` lets go of values no reverse rule reads, as
each primitive declares (``vjp_reads_args``, ``vjp_reads_out``). A wrong declaration would
hand a rule a stand-in instead of a value. For every registered primitive at its samples, its
inputs are made intermediates that die (``a + 0.0``) and its output is consumed by an ``add``
(which reads no values), so every value a declaration allows to go is let go; the gradient
must then be exactly the one of ``vjp`` on the full trace (which keeps every value and is
itself checked against finite differences in ``test_rules.py``)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from _registry_cases import CASES, output_weights, sample
from kinkgrad._core.tracer import Dropped, bind
from kinkgrad.modes.api import trace_call


def _wrapped(prim: object, args: tuple, params: dict, pos: list, w: np.ndarray):
    def f(*diff: object) -> object:
        full = list(args)
        for p, d in zip(pos, diff):
            full[p] = d + 0.0  # an intermediate that dies inside bind
        return knp.sum((bind(prim, *full, **params) + 0.0) * w)

    return f


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_gradient_with_values_let_go_equals_the_full_trace(name, index):
    prim, args, params, pos = sample(name, index)
    if not pos:
        pytest.skip("no differentiable input")
    w = output_weights(prim, args, params)
    f = _wrapped(prim, args, params, pos, w)
    diff = [args[p] for p in pos]
    nums = tuple(range(len(diff)))
    got = kinkgrad.grad(f, argnums=nums)(*diff)
    _, vjp_fn = kinkgrad.vjp(f, *diff)
    want = vjp_fn(np.float64(1.0))
    for g, t in zip(got, want):
        np.testing.assert_array_equal(g, t)
    # the declarations were exercised: what they allow to go is gone
    tr = trace_call(f, tuple(diff), {}, list(nums), "test", reverse_only=True,
                    kink_values=False)  # the default policy, no kink report
    eqn = next(e for e in tr.eqns if e.prim is prim)
    assert (type(tr.vals[eqn.out.index]) is Dropped) == (not prim.vjp_reads_out)
    if prim.kink_reads_args:  # a report or another policy reads the inputs: kept then
        kept = trace_call(f, tuple(diff), {}, list(nums), "test", reverse_only=True)
        e = next(e for e in kept.eqns if e.prim is prim)
        assert all(type(kept.vals[i.index]) is not Dropped for i in e.inputs
                   if hasattr(i, "index"))
    if not prim.vjp_reads_args:
        assert all(type(tr.vals[i.index]) is Dropped for i in eqn.inputs
                   if hasattr(i, "index") and i.index not in {v.index for v in tr.in_vars})
