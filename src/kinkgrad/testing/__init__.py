"""Public checkers for users and primitive authors (like ``autograd.test_util``).

* :func:`check_grads`: forward (JVP) and backward (VJP) mode against central differences at a
  smooth point (one with a margin from every kink).
* :func:`check_transpose`: the transposition identity <v, J u> = <J^T v, u> between the JVP and
  the VJP, single and batched; it holds at kinks too, because both read the same selection.
* :func:`check_kinks` (``testing/_kinks.py``): the generic kink checks of one primitive at its
  ``kink_samples``: the switch is zero exactly where the primitive is not differentiable; for
  every kink policy the Jacobian equals the declared one and the VJP agrees;
  ``mode="directional"`` gives the exact one-sided derivative; the abs form evaluates to
  ``impl``.

The truths are independent of the rules under test: central and one-sided differences of
``impl``, and, for the declared kink choice, differences taken inside the smooth pieces the
policy names. Example: relu'(0) = s means J = s J_+ + (1 - s) J_-, where J_+ and J_- are the
derivatives at 0 + delta and 0 - delta. On the dyadic kink samples of the built-in primitives
(entries on a 1/8 grid) those differences are exact in floating point.

Every checker raises ``AssertionError`` saying what differs, where and under which policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from ..kinks import KinkPolicy
from ..modes.api import jvp, vjp
from ._kinks import _EXACT, _RTOL, _dname, _fail, _scale
from ._kinks import KINK_ORACLES as KINK_ORACLES
from ._kinks import POLICY_OPTIONS as POLICY_OPTIONS
from ._kinks import check_kinks as check_kinks
from ._kinks import declared_jacobian as declared_jacobian
from ._kinks import policy_options as policy_options

__all__ = ["check_grads", "check_transpose", "check_kinks", "policy_options", "POLICY_OPTIONS",
           "KINK_ORACLES", "declared_jacobian"]


def _leaves(tree: Any) -> list:
    return [np.asarray(x, np.float64) for x in pytree.flatten(tree)[0]]


# ---------------------------------------------------------------------- functions of arrays
def check_grads(f: Callable, *args: Any, modes: Sequence[str] = ("fwd", "rev"),
                eps: float = 1e-6, atol: float | None = None, rtol: float | None = None,
                policy: KinkPolicy | None = None, seed: int = 0) -> None:
    """Check ``kinkgrad.jvp`` ("fwd") and ``kinkgrad.vjp`` ("rev") of ``f`` against central
    differences (f(x + eps u) - f(x - eps u)) / (2 eps) along a random direction u.

    The differences are taken in float64 at the given point, so float32/float16 inputs check
    the low-precision AD against a float64 truth (default tolerances grow with the dtype).
    Use a point with a margin larger than ``eps`` from every kink: there the conservative
    gradient is the gradient. Raises ``AssertionError`` with the largest deviation.

    Examples:
        >>> import numpy as np, kinkgrad.numpy as knp
        >>> from kinkgrad.testing import check_grads, check_transpose
        >>> f = lambda x: knp.sum(knp.relu(x) * knp.exp(x))
        >>> check_grads(f, np.array([0.5, -1.0, 2.0]))      # passes silently
        >>> check_transpose(f, np.array([0.0, 1.0, -2.0]))  # also at a kink
    """
    leaves, tree = pytree.flatten(args)
    name = _dname(leaves)
    rtol = _RTOL[name] if rtol is None else rtol
    rng = np.random.default_rng(seed)
    u = [rng.standard_normal(np.shape(x)).astype(np.asarray(x).dtype) for x in leaves]
    x64 = [np.asarray(x, np.float64) for x in leaves]

    def at(s: float) -> list:
        pts = pytree.unflatten(tree, [x + s * np.asarray(d, np.float64) for x, d in zip(x64, u)])
        return [np.asarray(o, np.float64) for o in pytree.flatten(f(*pts))[0]]

    fd = [(p - m) / (2 * eps) for p, m in zip(at(eps), at(-eps))]
    scale = max([_scale(d) for d in fd] + [1.0])
    tol = rtol * scale if atol is None else atol
    if "fwd" in modes:
        t = _leaves(jvp(f, args, pytree.unflatten(tree, u), policy=policy)[1])
        for k, (a, b) in enumerate(zip(t, fd)):
            err = float(np.max(np.abs(a - b), initial=0))
            if err > tol:
                _fail(f"check_grads: forward mode (JVP) differs from central differences by "
                      f"{err:.3g} > {tol:.3g} at output leaf {k}")
    if "rev" in modes:
        out, fn = vjp(f, *args, policy=policy)
        outs, otree = pytree.flatten(out)
        v = [rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype) for o in outs]
        cts = _leaves(fn(pytree.unflatten(otree, v)))
        lhs = sum(float(np.sum(c * np.asarray(d, np.float64))) for c, d in zip(cts, u))
        rhs = sum(float(np.sum(np.asarray(w, np.float64) * d)) for w, d in zip(v, fd))
        mag = sum(float(np.sum(np.abs(np.asarray(w, np.float64)))) for w in v) * scale
        if abs(lhs - rhs) > (rtol * max(mag, 1.0) if atol is None else atol):
            _fail(f"check_grads: backward mode (VJP) differs from central differences: "
                  f"<vjp(v), u> = {lhs:.10g} but <v, FD(u)> = {rhs:.10g}")


def check_transpose(f: Callable, *args: Any, policy: KinkPolicy | None = None, batch: int = 3,
                    rtol: float | None = None, seed: int = 0) -> None:
    """Check <v, J u> (JVP) = <J^T v, u> (VJP) for random u, v, and that a batch of
    ``batch`` tangents or cotangents (on a trailing axis, :mod:`kinkgrad.modes.directions`)
    gives the single results.

    J is the conservative Jacobian element both modes use under ``policy``, so the identity
    holds exactly (to rounding) also at kinks.
    """
    leaves, tree = pytree.flatten(args)
    rtol = _EXACT[_dname(leaves)] if rtol is None else rtol
    rng = np.random.default_rng(seed)
    out, fn = vjp(f, *args, policy=policy)
    outs, otree = pytree.flatten(out)
    us = [[rng.standard_normal((batch,) + np.shape(x)).astype(np.asarray(x).dtype)
           for x in leaves]]
    vs = [[rng.standard_normal((batch,) + np.shape(o)).astype(np.asarray(o).dtype)
           for o in outs]]
    ts = [_leaves(jvp(f, args, pytree.unflatten(tree, [u[k] for u in us[0]]), policy=policy)[1])
          for k in range(batch)]
    cs = [_leaves(fn(pytree.unflatten(otree, [v[k] for v in vs[0]]))) for k in range(batch)]
    for k in range(batch):
        lhs = [np.asarray(v[k], np.float64) * t for v, t in zip(vs[0], ts[k])]
        rhs = [c * np.asarray(u[k], np.float64) for c, u in zip(cs[k], us[0])]
        a, b = sum(float(x.sum()) for x in lhs), sum(float(x.sum()) for x in rhs)
        # NOTE: J u may cancel to rounding (logaddexp of two copies of x at 0): differences
        # below rtol |v| |u| are rounding at unit Jacobian scale
        unit = np.sqrt(sum(float(np.sum(np.square(np.asarray(v[k], np.float64))))
                           for v in vs[0]) * sum(float(np.sum(np.square(np.asarray(
                               u[k], np.float64)))) for u in us[0]))
        scale = max(sum(float(np.abs(x).sum()) for x in lhs + rhs), unit, 1e-300)
        if abs(a - b) > rtol * scale:
            _fail(f"check_transpose: <v, J u> = {a!r} (JVP) but <J^T v, u> = {b!r} (VJP); "
                  f"relative gap {abs(a - b) / scale:.3g}")
    if batch < 2:
        return
    bt = _leaves(jvp(f, args, pytree.unflatten(tree, [np.moveaxis(u, 0, -1) for u in us[0]]),
                     policy=policy)[1])
    bc = _leaves(fn(pytree.unflatten(otree, [np.moveaxis(v, 0, -1) for v in vs[0]])))
    for what, got, want in (("tangents", bt, [np.stack(t, axis=-1) for t in zip(*ts)]),
                            ("cotangents", bc, [np.stack(c, axis=-1) for c in zip(*cs)])):
        for g, w in zip(got, want):
            if g.shape != w.shape or not np.allclose(g, w, rtol=0, atol=rtol * _scale(w)):
                _fail(f"check_transpose: a batch of {batch} {what} differs from {batch} "
                      "single passes")


