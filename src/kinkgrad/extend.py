"""The public API for primitive authors (like ``autograd.extend`` and ``jax.extend``).

A primitive is one elementary function of the dictionary D of paper A: one class whose
methods are all its rules (see ``primitives/README.md`` for the record). Registering it makes
it show up in programs, in the cost report, in ``kinkgrad info`` and in the generic checks of
:mod:`kinkgrad.testing`; adding it to ``kinkgrad.numpy`` is the one extra line that gives it a
``knp`` name.

Walk-through: the hinge h(x) = max(1 - x, 0), written as a primitive whose kink at x = 1
follows the ``relu`` entry of the kink policy (slope -s at the kink, s in [0, 1]).

1. **Value and cost.** ``impl`` computes with NumPy; ``c_fn``, ``c_jvp`` and ``c_vjp`` give the
   operations per output entry (override ``cost``/``jvp_cost``/``vjp_cost`` for other shapes
   of work) and ``omega`` bounds (cost + vjp_cost) / cost.
2. **Kinks.** ``switch`` returns the switching values z = 1 - x (a kink where z == 0);
   ``select`` turns z, the policy and, in the directional and lexicographic modes, the
   tangents into the local derivative data, once per node; ``resolve_signs`` does the
   per-direction (``"directional"``) or lexicographic (``"lex"``) sign resolution.
3. **Derivatives.** ``jvp`` and ``vjp`` apply that data to tangents and cotangents, which may
   carry leading batch axes (use negative axes, ``lift`` and ``unbroadcast``). ``vjp``
   returns a tuple with one cotangent per input, each of the input's shape behind the batch
   axes (None: not needed, or zero); ``jvp`` returns the output's tangent (None: zero);
   ``select`` returns the pair (data, number of kinks hit). A primitive registered here has
   these forms checked at every call: a rule that breaks them raises a KinkgradError naming
   it (a wrong form was silently misread: a bare array as a tuple of its entries).
4. **Abs form.** ``abs_form`` writes the op with ``knp.abs`` of its switches,
   h(x) = (z + |z|) / 2, for the abs-normal form of paper B.
5. **Samples.** ``samples`` (smooth points) and ``kink_samples`` (points on a kink, dyadic so
   that differences are exact) feed :func:`kinkgrad.testing.check_kinks` and friends.

Examples:
    >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
    >>> from kinkgrad.extend import Primitive, register, resolve_signs, unregister
    >>> @register
    ... class Hinge(Primitive):
    ...     '''max(1 - x, 0); at x = 1 the slope is -s, s the policy's relu value.'''
    ...     name, policy_key, c_vjp, omega = "hinge_example", "relu", 2, 4.0
    ...     def impl(self, x):
    ...         return np.maximum(1 - x, 0)
    ...     def switch(self, args, out, params):
    ...         return 1 - np.asarray(args[0])
    ...     def select(self, policy, args, out, params, tangents=None, mode="policy"):
    ...         z = 1 - np.asarray(args[0])
    ...         dz = None if tangents is None else -tangents[0]
    ...         s = resolve_signs(z, dz, mode)
    ...         slope = np.where(s > 0, -1.0, np.where(s < 0, 0.0, -policy.relu))
    ...         return slope.astype(np.result_type(args[0])), int(np.count_nonzero(z == 0))
    ...     def jvp(self, sel, tangents, args, out, params):
    ...         return sel * tangents[0]
    ...     def vjp(self, sel, g, args, out, params, needs):
    ...         return (g * sel,)
    ...     def abs_form(self, args, params):
    ...         z = 1 - args[0]
    ...         return (z + knp.abs(z)) * 0.5
    ...     def samples(self, rng, dtype=np.float64):
    ...         return [((np.array([-1.0, 0.5, 2.0], dtype),), {})]
    ...     def kink_samples(self, rng, dtype=np.float64):
    ...         return [((np.array([1.0, 0.5, 1.0, 2.0], dtype),), {})]
    >>> hinge = Hinge.instance
    >>> kinkgrad.grad(lambda x: knp.sum(hinge(x)))(np.array([0.0, 1.0, 3.0])).tolist()
    [-1.0, -0.0, 0.0]
    >>> with kinkgrad.kink_policy(relu=1.0):   # the kink at x = 1 takes slope -1
    ...     kinkgrad.grad(lambda x: knp.sum(hinge(x)))(np.array([0.0, 1.0, 3.0])).tolist()
    [-1.0, -1.0, 0.0]
    >>> from kinkgrad.testing import check_grads, check_kinks
    >>> check_grads(lambda x: knp.sum(hinge(x) ** 2), np.array([-1.0, 0.5, 2.0]))
    >>> check_kinks(hinge)   # switch, every policy, VJP, directional mode, abs form
    1
    >>> unregister("hinge_example")
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._core import primitive as _primitive
from ._core.primitive import Primitive as Primitive
from ._core.primitive import batch_ndim as batch_ndim
from ._core.primitive import lift as lift
from ._core.primitive import normalize_axis as normalize_axis
from ._core.primitive import registry as registry
from ._core.primitive import resolve_signs as resolve_signs
from ._core.primitive import unbroadcast as unbroadcast
from ._core.tracer import bind as bind
from .errors import KinkgradError

__all__ = ["Primitive", "register", "unregister", "registry", "bind", "lift", "unbroadcast",
           "normalize_axis", "resolve_signs", "batch_ndim"]


def unregister(name: str) -> None:
    """Remove the primitive ``name`` from the registry (tests and interactive sessions).

    Programs already traced keep working; new calls of the primitive still run, but it no
    longer appears in ``kinkgrad info``, the registry or the generic tests.
    """
    if name not in _primitive._REGISTRY:
        raise KinkgradError(f"unregister: no primitive named {name!r}; see registry().")
    del _primitive._REGISTRY[name]


def register(cls: type[Primitive]) -> type[Primitive]:
    """Class decorator: register a user primitive (as the built-in ones are), with the forms
    of its ``vjp``, ``jvp`` and ``select`` results checked at every call (module docstring)."""
    from dataclasses import fields

    from .kinks import KinkPolicy

    keys = sorted(f.name for f in fields(KinkPolicy) if not f.name.startswith("_"))
    key = getattr(cls, "policy_key", None)
    if key is not None and key not in keys:  # NOTE: an unknown key was accepted and its
        # kinks then followed no entry (check_kinks skipped the declared-choice check)
        raise KinkgradError(f"register: {cls.__name__}.policy_key={key!r} is no entry of the "
                            f"kink policy; use one of {', '.join(keys)}, or None.")
    for name, check in (("vjp", _vjp_form), ("jvp", _jvp_form), ("select", _select_form)):
        rule = cls.__dict__.get(name)
        if rule is not None:
            setattr(cls, name, _checked(rule, check, name))
    return _primitive.register(cls)


_ARGS = {"vjp": ("sel", "g", "args", "out"), "jvp": ("sel", "tangents", "args", "out")}


def _checked(rule: Any, check: Any, name: str) -> Any:
    """``rule`` (the primitive's ``name`` rule) followed by ``check(primitive, {argument
    name: value}, result)``."""
    names = _ARGS.get(name, ())

    @functools.wraps(rule)
    def checked(self: Primitive, *a: Any, **kw: Any) -> Any:
        res = rule(self, *a, **kw)
        check(self, {**dict(zip(names, a)), **kw}, res)
        return res

    return checked


def _what(v: object) -> str:
    return f"a {type(v).__name__}" + (f" of shape {np.shape(v)}" if hasattr(v, "shape") else "")


def _vjp_form(self: Primitive, a: dict, cts: Any) -> None:
    g, args, out = a["g"], a["args"], a["out"]
    if not isinstance(cts, (tuple, list)) or len(cts) != len(args):
        got = f"{len(cts)} cotangents" if isinstance(cts, (tuple, list)) else _what(cts)
        raise KinkgradError(f"{self.name}.vjp returned {got}; it must return a tuple of "
                            f"{len(args)} (one per input, None where not needed).")
    nb = np.ndim(g) - np.ndim(out)
    for k, (c, x) in enumerate(zip(cts, args)):
        if c is not None and tuple(np.shape(c)) != tuple(np.shape(g)[:nb]) + np.shape(x):
            raise KinkgradError(
                f"{self.name}.vjp: the cotangent of input {k} has shape {np.shape(c)}; it "
                f"must have the input's shape {np.shape(x)} behind the cotangent's batch "
                f"axes {np.shape(g)[:nb]} (unbroadcast a broadcast input).")


def _jvp_form(self: Primitive, a: dict, t: Any) -> None:
    first = next(((x, y) for x, y in zip(a["tangents"], a["args"]) if x is not None), None)
    if t is None or first is None:
        return
    want = tuple(np.shape(first[0])[:np.ndim(first[0]) - np.ndim(first[1])]) + \
        tuple(np.shape(a["out"]))
    try:
        ok = np.broadcast_shapes(np.shape(t), want) == want
    except ValueError:
        ok = False
    if not ok:
        raise KinkgradError(
            f"{self.name}.jvp returned a tangent of shape {np.shape(t)}; it must broadcast "
            f"to the output's shape {np.shape(a['out'])} behind the tangents' batch axes, "
            f"{want}.")


def _select_form(self: Primitive, a: dict, res: Any) -> None:
    if not (isinstance(res, tuple) and len(res) == 2):
        raise KinkgradError(f"{self.name}.select returned {_what(res)}; it must return the "
                            "pair (data, number of kinks hit).")
