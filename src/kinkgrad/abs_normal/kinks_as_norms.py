"""Every kink of a program as a Euclidean norm of one entry: |z| = ||(z)||_2.

The proximal finishing steps of :mod:`kinkgrad.optimize` keep the Euclidean norms of a
program exact in a conic model and smooth the rest, phi, by a quadratic (f with its norms
frozen, :func:`.zero_norms.freeze`). A program with other kinks besides its norms (an l1
penalty beside a group lasso's norms, the sparse group lasso; a hinge loss with group
norms; total variation with an l1 data term) has a nonsmooth phi, and a quadratic model of
it is wrong across every kink. But each switch z_i of the abs-normal program
(:func:`.expand.expand`, norms kept) enters f as |z_i| = ||(z_i)||_2, the norm of a group of
size one: written so, every kink is a group of :mod:`.zero_norms` (lambda_i = d phi / d |z_i|
and J_i = z_i'(x)) and

    f(y) = phi(y, |z(y)|, ||w(y)||)

has a smooth phi. Where every lambda is nonnegative, f is convex in its kinks, and the
proximal model (phi quadratic) is a second-order cone program: for the sparse group lasso
it is the exact local model, l1 and group terms alike.

Where some group's input depends on a group's output (L != 0 in the abs-normal form, with
the norms counted as switches: a deep ReLU network, nested maxima) a group's Jacobian is
itself set-valued near its kinks and the conic model is not exact (its lambda_k and J_k
count the inner groups' paths twice): the rewrite is then offered only on request
(``nested=True``), for Newton-SQP steps on the manifold of the zero groups, where f with
those groups frozen is smooth near x and the rows of nested zero groups span the same
tangent space whichever sign an inner one takes (:func:`is_nested` tells which).
"""

from __future__ import annotations

from typing import Any

from .._core.program import Var
from .._core.tracer import Trace, Tracer, bind
from ..modes.api import Traced
from ..primitives.linalg import Norm
from ..primitives.shape import Reshape
from ._flat import rebuilt
from .expand import expand
from .zero_norms import _closure, _norms

__all__ = ["is_nested", "kinks_as_norms"]


def kinks_as_norms(tr: Traced, nested: bool = False) -> Traced | None:
    """f's trace with every kink a Euclidean norm of one entry (module docstring): its
    abs-normal program with each ``abs`` equation replaced by ``norm(reshape(z, (..., 1)),
    axis=-1)``, values unchanged. None where the program has no kink besides its Euclidean
    norms, or, unless ``nested``, where some group reads another group's output.

    Raises:
        NotAbsSmoothError: as :func:`.expand.expand` (a tied comparison at the point).
    """
    src = expand(tr, keep_euclidean=True).traced
    if not any(e.prim.name == "abs" and type(e.inputs[0]) is Var for e in src.eqns):
        return None
    new = Trace()
    env: dict[int, Any] = {v.index: new.new_input(src.vals[v.index]) for v in src.in_vars}
    try:
        for eqn in src.eqns:
            args = eqn.args(env)
            if eqn.prim.name == "abs" and type(args[0]) is Tracer:
                col = bind(Reshape.instance, args[0],  # type: ignore[attr-defined]
                           shape=tuple(eqn.out.shape) + (1,))
                res = bind(Norm.instance, col, ord=2, axis=(-1,),  # type: ignore[attr-defined]
                           keepdims=False)
                new.vals[res.var.index] = res.value = src.vals[eqn.out.index]
            else:
                res = bind(eqn.prim, *args, **eqn.params)
            env[eqn.out.index] = res
    finally:
        new.active = False
    out = rebuilt(new, env, src)
    return out if nested or not is_nested(out) else None


def is_nested(tr: Traced) -> bool:
    """Whether some Euclidean norm of ``tr`` reads another one's output."""
    groups = {k for k, _, _ in _norms(tr)}
    return bool(groups & _closure(tr, {tr.eqns[k].out.index for k in groups}, up=False))
