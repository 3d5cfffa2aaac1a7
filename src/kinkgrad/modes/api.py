"""The functional transformations: trace, grad, value_and_grad, vjp, jvp, jacobian.

Signatures follow JAX (``argnums``, ``has_aux``, pytrees). Each transformation traces the
function once (the trace is the forward pass) and runs one sweep over the recorded program.

Kink convention: at a kink every nonsmooth primitive uses the choice of the kink policy in
force (the ``policy=`` argument, else the innermost ``with kink_policy(...)``, else the
defaults of :mod:`kinkgrad.kinks`). Whatever the policy, the result of ``grad`` is an element
of a conservative gradient of the traced program (Bolte and Pauwels 2021); it equals the
gradient wherever the program is differentiable and no kink is hit. Whether it is also a
Clarke gradient is what :func:`kinkgrad.certify` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Program, Var, snapshot
from ..backends import follow_inputs, on_numpy
from ..errors import (
    KinkgradError,
    NonFiniteInputError,
    NonScalarOutputError,
    ShapeError,
)
from ..kinks import KinkPolicy, KinkReport, resolve_policy
from ._discard import finite_or_discarding, guarded_reverse
from ._inputs import distinct_argnums, normalize_argnums, repeat_entries, require_callable
from ._nonfinite import (
    check_inputs_finite,
    finite,
    finite_results,
    grads_tree,
    nonfinite_culprit,
    nonfinite_gradient,
    require_finite,
)
from ._replay import traced_or_replayed
from ._traced import Traced, trace_call
from .directions import (
    check_batch_axis,
    from_leading,
    refuse_nonfinite,
    tangents_to_leading,
    to_leading,
)
from .sweeps import forward_sweep

__all__ = ["trace", "grad", "value_and_grad", "vjp", "jvp", "jacobian", "Traced", "trace_call"]

_NDARRAY, _DEFAULT_POLICY = np.ndarray, KinkPolicy()  # NumPy's own; see Trace(kink_values)


def _scalar_out(tr: Traced, where: str) -> tuple[Any, Any]:
    if len(tr.outs) != 1:
        raise NonScalarOutputError(f"{where}: the function returned {len(tr.outs)} arrays; it "
                                   "must return one scalar. Use kinkgrad.vjp or jacobian.")
    val = tr.out_values()[0]
    if (val.size if type(val) is _NDARRAY else np.size(val)) != 1:
        raise NonScalarOutputError(
            f"{where}: the function returned an array of shape {np.shape(val)}; it must return "
            "a scalar. Reduce it (knp.sum / knp.mean) or use kinkgrad.jacobian or vjp."
        )
    dt = getattr(val, "dtype", None)  # NumPy's, torch._numpy's (.kind) or torch's
    if not (isinstance(val, float) if dt is None else getattr(dt, "kind", "f" if getattr(
            dt, "is_floating_point", True) else "?") == "f"):  # NOTE: a comparison or a
        # count has no derivative (its gradient came out as zeros)
        raise NonScalarOutputError(
            f"{where}: the function returned a value of type "
            f"{getattr(val, 'dtype', type(val).__name__)}; it must return a real "
            "floating-point scalar (a comparison or a count has no derivative).")
    if not finite(val):
        tr.trace.restore()  # the culprit's search reads every value
        check_inputs_finite(tr, where)
        raise NonFiniteInputError(nonfinite_culprit(tr, where))
    return tr.outs[0], val


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   policy: KinkPolicy | None = None, report: bool = False) -> Callable:
    """Value and conservative gradient of a scalar function, by backward mode.

    Returns an element of a conservative gradient of the traced program: the gradient at
    differentiable points reached without hitting a kink, and at kinks the product of the
    Clarke elements chosen by the kink policy (see :mod:`kinkgrad.kinks`). Cost: one forward
    pass and one reverse sweep, at most ``omega`` times the program's cost
    (``kinkgrad.cost``), whatever the input dimension.

    Args:
        f: function of NumPy-like arrays written with ``kinkgrad.numpy``; returns a scalar.
        argnums: which positional arguments to differentiate (int or tuple of ints; a
            position named twice gets its gradient at both entries, as in JAX).
        has_aux: ``f`` returns ``(value, aux)``; aux is passed through.
        policy: kink policy for this call (default: the one in force).
        report: also return a :class:`~kinkgrad.kinks.KinkReport` of the kinks the gradient
            passed through.

    Returns:
        A function returning ``(value, grad)``, ``((value, aux), grad)`` with ``has_aux``, and
        with ``report=True`` one more element, the kink report, at the end.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> v, g = kinkgrad.value_and_grad(lambda x: knp.sum(knp.relu(x)))(np.array([-1., 0., 2.]))
        >>> float(v), g.tolist()
        (2.0, [0.0, 0.0, 1.0])
    """
    require_callable(f, "value_and_grad")
    nums, single = normalize_argnums(argnums, "value_and_grad")

    @follow_inputs
    def vg(*args: Any, **kwargs: Any) -> Any:
        pol = resolve_policy(policy)
        diff, picks = distinct_argnums(nums, len(args))  # (0, 0): trace x once, repeat its grad
        # inputs are tested for NaN/inf only on a non-finite result (a pass costs ~5%)
        tr = traced_or_replayed(f, args, kwargs, diff, "value_and_grad", has_aux,
                                check_finite=False, reverse_only=True,
                                kink_values=report or pol != _DEFAULT_POLICY)
        out, val = _scalar_out(tr, "grad")
        rep = KinkReport() if report else None
        if type(out) is Var:
            seed = np.ones(out.shape, out.dtype) if out.shape else np.array(1, out.dtype)
            ct = guarded_reverse(tr, {out.index: seed}, pol, "grad", report=rep, check=False,
                                 keep={v.index for v in tr.in_vars})
        else:
            ct = {}
        if rep is not None:  # the reverse sweep meets nodes last to first: report in program order
            rep.records.sort(key=lambda r: r.index)
        g = grads_tree(tr, ct, single)
        if not all(finite(c) for c in ct.values()):  # a where's other branch may be the cause
            ct = finite_or_discarding(ct, tr, {out.index: seed}, pol,  # type: ignore[union-attr]
                                      keep={v.index for v in tr.in_vars})
            g = grads_tree(tr, ct, single)
            if not all(finite(c) for c in ct.values()):
                check_inputs_finite(tr, "value_and_grad")
                raise NonFiniteInputError(nonfinite_gradient(tr, out, pol))
        if picks is not None:
            g = repeat_entries(g, picks)
        value = np.asarray(val)[()]
        head = (value, tr.aux) if has_aux else value
        return (head, g, rep) if report else (head, g)

    vg.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return vg


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         policy: KinkPolicy | None = None, report: bool = False) -> Callable:
    """Conservative gradient of a scalar function by backward mode (see
    :func:`value_and_grad` for the set the result belongs to and the kink convention).

    Returns a function with the same arguments as ``f`` returning the gradient (same pytree
    structure as the differentiated arguments); ``(grad, aux)`` with ``has_aux``; and with
    ``report=True`` the kink report appended.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> f = lambda x: knp.relu(x) - knp.relu(-x)   # equals x; Clarke gradient at 0 is 1
        >>> float(kinkgrad.grad(f)(np.float64(0.0)))   # plain AD returns 0 (relu'(0) = 0)
        0.0
    """
    require_callable(f, "grad")
    vg = value_and_grad(f, argnums, has_aux, policy, report)

    def g(*args: Any, **kwargs: Any) -> Any:
        res = vg(*args, **kwargs)
        if has_aux:
            out = (res[1], res[0][1])
            return (*out, res[2]) if report else out
        return (res[1], res[2]) if report else res[1]

    g.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    g.grad_of = None if has_aux or report else (f, argnums, policy)  # type: ignore[attr-defined]
    return g


@follow_inputs
def vjp(f: Callable, *primals: Any, has_aux: bool = False, policy: KinkPolicy | None = None
        ) -> tuple:
    """``(value, vjp_fn)``: ``vjp_fn(cotangent)`` returns a tuple with one cotangent per
    primal, an element of a conservative Jacobian (transposed) applied to the cotangent.

    ``vjp_fn(W, batch_axis=-1)``: a cotangent with one extra trailing axis of length k is k
    cotangents, J^T W in one sweep, returned with the same trailing axis (``batch_axis=0``:
    on a leading axis), the convention of :mod:`kinkgrad.modes.directions`. The cotangent has
    the pytree structure of the output (the same containers and dict keys, as in JAX)."""
    require_callable(f, "vjp")
    pol = resolve_policy(policy)
    nums = list(range(len(primals)))
    tr = traced_or_replayed(f, primals, {}, nums, "vjp", has_aux)
    values = pytree.unflatten(tr.out_tree, [np.asarray(v) for v in tr.out_values()])

    def vjp_fn(cotangent: Any, batch_axis: int = -1) -> tuple:
        axis = check_batch_axis(batch_axis, "vjp_fn")
        cts, td = pytree.flatten(cotangent)
        if td != tr.out_tree:  # the same containers and dict keys, not only as many leaves
            raise KinkgradError(
                "vjp_fn: the cotangent must have the structure of the output, "
                f"{pytree.describe(tr.out_tree)}, got {pytree.describe(td)}; pass one "
                "cotangent array per output array in the same containers (same dict keys).")
        seeds: dict[int, Any] = {}
        batched = None
        for o, c in zip(tr.outs, cts):
            if type(o) is Var:
                c = np.asarray(c, dtype=o.dtype)
                refuse_nonfinite([c], "vjp_fn", "the cotangent")
                lead, b = to_leading(c, o.shape, axis, "vjp_fn", "cotangent", np)
                if batched is not None and b != batched:
                    raise ShapeError("vjp_fn: every cotangent leaf or none has the batch axis.")
                batched, c = b, (lead if b else c)
                seeds[o.index] = seeds[o.index] + c if o.index in seeds else c
        keep = {v.index for v in tr.in_vars}
        batch = (next(iter(seeds.values())).shape[0],) if batched else ()

        def leaves_of(ct: dict) -> list:
            out = []
            for v in tr.in_vars:
                c = ct.get(v.index)
                c = (np.zeros(batch + tuple(v.shape), v.dtype) if c is None
                     else np.broadcast_to(np.asarray(c, v.dtype), batch + tuple(v.shape)))
                out.append(from_leading(c, True, axis, np) if batched else c)
            return out

        ct = guarded_reverse(tr, seeds, pol, "vjp", keep=keep, check=False)
        leaves = finite_results(tr, ct, seeds, pol, keep, leaves_of, "vjp", "cotangent")
        return tuple(pytree.unflatten(tr.in_tree, leaves, constants="zeros"))

    return (values, vjp_fn, tr.aux) if has_aux else (values, vjp_fn)


@follow_inputs
def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any],
        policy: KinkPolicy | None = None, batch_axis: int = -1) -> tuple:
    """Forward mode: ``(value, tangent_out)`` for ``f(*primals)``.

    Conservative (linear) forward mode: at kinks the policy's choice is used, so the result is
    J t for an element J of the conservative Jacobian that backward mode uses (it is not the
    one-sided directional derivative at a kink; see :func:`kinkgrad.directional`). Tangents
    with one extra trailing axis of length k are k directions (the columns of a matrix T),
    pushed through in one pass of matrix products; the output tangent J T then has a trailing
    axis k. ``batch_axis=0`` puts the batch first in both. The convention is the one of
    :mod:`kinkgrad.modes.directions`. The tangents have the pytree structure of the primals
    (the same containers and dict keys, as in JAX); the entry beside an integer leaf of a
    container (a constant) is ignored.
    """
    require_callable(f, "jvp")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise KinkgradError(
            f"jvp: primals and tangents must be tuples (or lists) with one entry per argument "
            f"of f, got {type(primals).__name__} and {type(tangents).__name__}; write "
            "kinkgrad.jvp(f, (x,), (t,)) for one argument."
        )
    axis = check_batch_axis(batch_axis, "jvp")
    pol = resolve_policy(policy)
    nums = list(range(len(primals)))
    tr = traced_or_replayed(f, tuple(primals), {}, nums, "jvp")
    t_tree, p_tree = pytree.flatten(tuple(tangents))[1], pytree.flatten(tuple(primals))[1]
    if t_tree != p_tree:  # the same containers and dict keys, not only as many leaves
        raise KinkgradError(
            f"jvp: tangents must have the same structure as primals, {pytree.describe(p_tree)}"
            f", got {pytree.describe(t_tree)}; pass one tangent array per primal array in the "
            "same containers (same dict keys).")
    # the leaves at the inputs (a tangent beside an integer leaf of a container is ignored)
    pl, tl = pytree.match(tr.in_tree, tuple(primals)), pytree.match(tr.in_tree, tuple(tangents))
    ts, batched, k = tangents_to_leading(pl, tl, axis, np)  # type: ignore[arg-type]
    tan, _ = forward_sweep(tr.eqns, tr.vals, {v.index: t for v, t in zip(tr.in_vars, ts)}, pol)
    return _tangent_outputs(tr, tan, batched, k, axis)


def _tangent_outputs(tr: Traced, tan: dict, batched: bool, k: int, axis: int) -> tuple:
    require_finite(tr, [tan[o.index] for o in tr.outs if type(o) is Var and o.index in tan]
                   + [np.asarray(v) for v in tr.out_values()], "jvp", "tangent", tan)
    vals, touts = [], []
    for o, val in zip(tr.outs, tr.out_values()):
        val = np.asarray(val)
        t = tan.get(o.index) if type(o) is Var else None
        if t is None:
            t = np.zeros((k,) + val.shape, dtype=val.dtype if val.dtype.kind == "f" else float)
        t = from_leading(t, batched, axis, np)
        vals.append(val[()])
        touts.append(t)
    return (pytree.unflatten(tr.out_tree, vals), pytree.unflatten(tr.out_tree, touts))


def jacobian(f: Callable, mode: str = "rev", argnums: int | Sequence[int] = 0,
             policy: KinkPolicy | None = None) -> Callable:
    """Full Jacobian of ``f`` with respect to one array argument, shape ``out.shape +
    in.shape``: ``mode="rev"`` uses one batched reverse sweep (m cotangents), ``"fwd"`` one
    batched forward sweep (n tangents). Both return the same element of the conservative
    Jacobian under the same policy. A tuple ``argnums`` gives a tuple of Jacobians."""
    require_callable(f, "jacobian")
    if mode not in ("rev", "fwd"):
        raise KinkgradError(f"jacobian: mode={mode!r}; use 'rev' or 'fwd'.")
    nums, single = normalize_argnums(argnums, "jacobian")
    if not single:  # as JAX: one Jacobian per argument, in a tuple
        parts = [jacobian(f, mode, a, policy) for a in nums]

        def several(*args: Any) -> tuple:
            return tuple(j(*args) for j in parts)

        return several
    argnums = nums[0]

    @follow_inputs
    def jac(*args: Any) -> np.ndarray:
        pol = resolve_policy(policy)
        tr = traced_or_replayed(f, args, {}, [argnums], "jacobian")
        if len(tr.in_vars) != 1 or len(tr.outs) != 1:
            raise KinkgradError("jacobian: differentiate one array argument of a function "
                                "returning one array.")
        xv, out = tr.in_vars[0], tr.outs[0]
        val = np.asarray(tr.out_values()[0])
        n, m = int(np.prod(xv.shape, dtype=np.int64)), val.size
        if type(out) is not Var:
            return np.zeros(val.shape + tuple(xv.shape), dtype=xv.dtype)
        if mode == "fwd":
            eye = np.eye(n, dtype=xv.dtype).reshape((n,) + tuple(xv.shape))
            tan, _ = forward_sweep(tr.eqns, tr.vals, {xv.index: eye}, pol)
            t = tan.get(out.index)
            if t is None:
                return np.zeros(val.shape + tuple(xv.shape), dtype=xv.dtype)
            jac = np.moveaxis(np.reshape(t, (n, m)), 0, -1).reshape(val.shape + tuple(xv.shape))
            jac = jac if jac.dtype == xv.dtype else jac.astype(xv.dtype)  # as mode="rev"
            require_finite(tr, [jac], "jacobian", "Jacobian", tan)
            return jac
        seeds, keep = {out.index: np.eye(m, dtype=out.dtype).reshape((m,) + val.shape)}, {xv.index}

        def jac_of(ct: dict) -> list:
            c = ct.get(xv.index)
            if c is None:
                return [np.zeros(val.shape + tuple(xv.shape), dtype=xv.dtype)]
            c = np.broadcast_to(c, (m,) + tuple(xv.shape))
            return [np.asarray(c, dtype=xv.dtype).reshape(val.shape + tuple(xv.shape))]

        ct = guarded_reverse(tr, seeds, pol, "jacobian", keep=keep, check=False)
        return finite_results(tr, ct, seeds, pol, keep, jac_of, "jacobian", "Jacobian")[0]

    return jac


@on_numpy
def trace(f: Callable, *args: Any, argnums: int | Sequence[int] | None = None,
          **kwargs: Any) -> Program:
    """Trace ``f`` at ``args`` into a :class:`~kinkgrad.Program` (printable, re-evaluable,
    differentiable, costed). By default every argument with a floating-point leaf is an input
    (its integer leaves are constants); other arguments (integer labels, say) are baked in
    as constants, and so are keyword arguments (``kinkgrad.trace(f, x, axis=0)`` calls
    ``f(x, axis=0)``). The program may be called with all those arguments again (the baked
    ones unchanged) or with its inputs alone; the transformations of a Program replay it.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> print(kinkgrad.trace(lambda x: knp.sum(knp.relu(x) * 2.0), np.ones(3)))
        { lambda ; a:f64[3]. let
            b:f64[3] = relu a
            c:f64[3] = mul b 2
            d:f64[] = sum[axis=(-1),keepdims=False] c
          in (d) }
    """
    require_callable(f, "trace")
    if argnums is None:
        nums = [i for i, a in enumerate(args)  # integer leaves beside float ones: constants
                if any(np.asarray(x).dtype.kind == "f" for x in pytree.flatten(a)[0])]
    else:  # an argument named twice is one input
        nums = distinct_argnums(normalize_argnums(argnums, "trace")[0], len(args))[0]
    tr = trace_call(f, args, kwargs, nums, "trace", check_finite=False)
    prog = tr.program()
    prog.call_arity = len(args)
    prog.input_positions = [a % len(args) for a in nums]
    prog.baked = {i: snapshot(a) for i, a in enumerate(args) if i not in prog.input_positions}
    prog.baked_keywords = {k: snapshot(v) for k, v in kwargs.items()}
    for c in pytree.constants(prog.in_tree):  # integer leaves: compared with their traced value
        c.value = snapshot(c.value)
    return prog
