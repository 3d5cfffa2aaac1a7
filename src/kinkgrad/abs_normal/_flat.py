"""Shared plumbing: trace ``f`` at a point, flatten the point (a pytree) into one vector.

Every function of this package takes ``x`` as one array or a pytree of arrays (a dict or
tuple of arrays, as network parameters are). Internally the point is the flat vector that
concatenates the raveled leaves in pytree order; gradients are handed back in ``x``'s
structure, directions and matrices use the flat order (documented as ``n = sum of sizes``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import pytree
from .._core.checks import is_int, is_real
from .._core.program import Literal, Var
from .._core.tracer import Trace, Tracer
from ..errors import (
    KinkgradError,
    NonFiniteInputError,
    NonScalarOutputError,
    NotAbsSmoothError,
    ShapeError,
    UnsupportedOperationError,
)
from ..modes.api import Traced, trace_call

__all__ = ["ActiveNames", "FlatSpec", "trace_at", "scalar_output", "check_comparisons",
           "output_slots", "other_arguments", "probe_tangents", "underflow_is_not_an_error",
           "ball_arguments", "gradient_unit", "hull_units", "full_slopes", "full_slope_sweep",
           "terms_size", "sums_rounding", "unit_roundoff"]


def probe_tangents(eqns: list, vals: list, in_slots: list[int], spec: FlatSpec, k: int,
                   policy: Any = None, weights: np.ndarray | None = None) -> dict[int, Any]:
    """Tangents of every slot along k Gaussian directions of x (seed 0; abs'(0) := 0 unless
    ``policy``), one forward sweep: E[(grad v . u)^2] = ||grad v||^2 estimates the norms of
    many rows at once (the near-active filters of :mod:`.stationarity` and
    :mod:`.zero_norms`); with ``weights`` (flat, one per entry of x) the directions' entries
    are scaled by them, and ||grad v * weights|| is estimated."""
    from ..kinks import KinkPolicy
    from ..modes.sweeps import forward_sweep

    U = np.random.default_rng(0).standard_normal((k, spec.n))
    if weights is not None:
        U = U * weights
    tangents = {slot: leaf for slot, leaf in zip(in_slots, spec.split(U))}
    return forward_sweep(eqns, vals, tangents, policy or KinkPolicy(abs=0.0))[0]


def full_slope_sweep(tr: Traced, out: Var) -> dict:
    """The cotangents of every value of f (seed 1 at f) in one reverse sweep where every kink
    passes its full slope (ties split): :func:`gradient_unit`'s, :func:`terms_size`'s and
    the forward-rounding checks' (:mod:`._forward_rounding`) one sweep."""
    from ..modes.sweeps import reverse_sweep

    with np.errstate(all="ignore"):  # NOTE: a size; an overflow to inf is one too
        return reverse_sweep(tr.eqns, tr.vals, {out.index: np.ones((), out.dtype)},
                             full_slopes())


def gradient_unit(tr: Traced, out: Var | None, ct: dict | None = None) -> float:
    """The largest |df/dv| over the program's values v but f: one reverse sweep where every
    kink passes its full slope (ties split; ``ct``: :func:`full_slope_sweep`'s, when known).
    f's gradients and the abs-normal model's vectors
    are rounded sums of such terms, so their rounding is relative to this size, not to the
    vectors' own (0.1 x + 0.2 x - 0.3 x: terms 0.3, gradient 5.6e-17 as computed, 2.8e-17
    exactly); it is 1 for f at unit scale and s for s f. 0 without an output."""
    if out is None:
        return 0.0
    ct = full_slope_sweep(tr, out) if ct is None else ct
    sizes = [float(np.max(np.abs(np.asarray(c, np.float64)), initial=0.0))
             for i, c in ct.items() if i != out.index]  # NOTE: not the seed, 1 at any s
    return max(sizes, default=0.0)


def full_slopes() -> Any:
    from ..kinks import KinkPolicy

    return KinkPolicy(relu=1.0, leaky_relu=1.0, abs=1.0, max="split", sort="split", clip=1.0,
                      max_constant=1.0)


def low_slopes() -> Any:
    """Each kink's other extreme choice from :func:`full_slopes`' (relu' 0, abs' -1, a
    tie's first candidate)."""
    from ..kinks import KinkPolicy

    return KinkPolicy(relu=0.0, leaky_relu=0.0, abs=-1.0, max="first", sort="first", clip=0.0,
                      max_constant=0.0)


def terms_size(tr: Traced, out: Var | None, spec: FlatSpec, k: int = 4,
               ct: dict | None = None) -> float:
    """The size of the terms f's gradient sums add up, estimated edge by edge: the largest
    |df/dv| |grad v| over f's values v (|grad v| by k Gaussian probes of one forward sweep,
    :func:`probe_tangents`; an estimate of ||grad v||_2, which bounds each entry's term).

    :func:`gradient_unit` (the largest |df/dv|) over-estimates it where a value has a huge
    adjoint and a tiny gradient: (x0 1e-10) 1e10 - x0 has the adjoint 1e10 at x0 1e-10 and
    terms of size 1, and "inside" at 64 u 1e10 took (1e-5, 0) for a Clarke gradient of
    (x0 1e-10) 1e10 - x0 + |x1|. The smaller of the two is the rounding scale of "inside";
    0 without an output. ``ct``: :func:`full_slope_sweep`'s, when known."""
    if out is None:
        return 0.0
    ct = full_slope_sweep(tr, out) if ct is None else ct
    with np.errstate(all="ignore"):  # NOTE: a size; an overflow to inf is one too
        tan = probe_tangents(tr.eqns, tr.vals, [v.index for v in tr.in_vars], spec, k)
        size = 0.0
        for i, c in ct.items():
            t = tan.get(i)
            if i == out.index or t is None:
                continue
            t = np.asarray(t)
            norm = np.sqrt(np.einsum("k...,k...->...", t, t) / k)  # NOTE: no k-fold copies
            size = max(size, float(np.max(np.abs(c) * norm, initial=0.0)))
    return size


def unit_roundoff(out: Var | None, spec: FlatSpec) -> float:
    """The unit roundoff of the program's lowest precision (its inputs and f)."""
    dtypes = [np.dtype(d) for d in spec.dtypes] + ([np.dtype(out.dtype)] if out is not None
                                                    else [])
    return max([float(np.finfo(d).eps) / 2 for d in dtypes if d.kind == "f"] + [2.0 ** -53])


def hull_units(G: float, out: Var | None, spec: FlatSpec, rtol: float = 1e-7,
               terms: float | None = None) -> tuple[float, float]:
    """The ``unit`` arguments of :func:`.lp.hull_tolerance` for f's sets: (beyond which
    "outside" is proven, within which "inside" holds). With G = :func:`gradient_unit` (an
    over-estimate of the size of the terms of f's gradients) and u the unit roundoff of the
    program's lowest precision (its inputs and f), the vectors err by up to about 64 u G:
    the second is that (as a unit: 64 u G / rtol), the first G or that, whichever is larger
    (a float32 program's sums err by more than 1e-7 G). With ``terms``
    (:func:`terms_size`), the second is 64 u min(G, terms) / rtol. :func:`in_clarke` widens
    the first by the move of the forward values' rounding (:mod:`._forward_rounding`)
    before it answers False."""
    u = unit_roundoff(out, spec)
    tight = 64.0 * u * (G if terms is None else min(G, terms)) / rtol
    return max(G, 64.0 * u * G / rtol), tight


_OWN_TERMS = 16.0  # terms up to this times the vectors' size: their rounding is the vectors' own


def sums_rounding(tr: Traced, out: Var | None, spec: FlatSpec, size: float,
                  ct: dict | None = None) -> float:
    """How far (2-norm) the rounding of the sums f's gradients are made of may put the
    model's vectors from f's, where f's terms T = min(:func:`gradient_unit`,
    :func:`terms_size`) exceed ``_OWN_TERMS`` times ``size`` (the size of the model's
    vectors): 64 u T sqrt(n) (each entry errs by up to 64 u T, :func:`hull_units`' "inside"
    scale). Below that it is the vectors' own rounding, which verdicts are not widened by (a
    float32 program keeps its verdicts at float32's spacing; ``_forward_rounding``'s
    ``amplified`` alike): 0. relu(2^60 x1 - 2^60 x1) + relu(x1) - relu(-x1) is x1, but the
    reverse sweep adds its unit terms to 2^59 ones and loses them: the computed set {0} was
    "stationary" and "minimal". 0 without an output."""
    if out is None:
        return 0.0
    ct = full_slope_sweep(tr, out) if ct is None else ct
    terms = gradient_unit(tr, out, ct)
    if terms > _OWN_TERMS * size:  # NOTE: the probes' forward sweep only where it may count
        terms = min(terms, terms_size(tr, out, spec, ct=ct))
    if not terms > _OWN_TERMS * size:
        return 0.0
    return 64.0 * unit_roundoff(out, spec) * terms * float(np.sqrt(spec.n))


def underflow_is_not_an_error(fn: Callable) -> Callable:
    """Decorator of this package's entry points: ``fn`` runs with NumPy's underflow ignored.

    # NOTE: underflow to a subnormal or to 0 is the IEEE result (a norm of subnormal
    # entries, an offset L |z| of tiny kinks), not an error of the program; under a caller's
    # np.errstate(all="raise") it surfaced as a bare FloatingPointError from the abs forms,
    # the offsets and the LPs, where the sweeps already retry it (retry_without_underflow).
    # Overflow, division by zero and invalid operations keep the caller's setting."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


class FlatSpec:
    """The flat layout of the traced point: one slot per leaf, in pytree order."""

    def __init__(self, traced: Traced) -> None:
        self.vars = list(traced.in_vars)
        self.in_tree = traced.in_tree
        self.shapes = [tuple(v.shape) for v in self.vars]
        self.dtypes = [np.dtype(v.dtype) for v in self.vars]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).astype(int)
        self.n = int(self.offsets[-1])
        self.slots = [v.index for v in self.vars]

    # ------------------------------------------------------------------ flat <-> leaves
    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """Leaves (each with the leading batch axes of ``flat``) of a ``batch + (n,)`` array,
        rounded to the leaves' dtypes (a float64 1e-45 is float32's 0 or a subnormal: not
        an error, also where the caller's NumPy raises on underflow)."""
        flat = np.asarray(flat)
        batch = flat.shape[:-1]
        with np.errstate(under="ignore"):
            return [flat[..., a:b].reshape(batch + s).astype(dt, copy=False)
                    for a, b, s, dt in zip(self.offsets[:-1], self.offsets[1:], self.shapes,
                                           self.dtypes)]

    def join(self, leaves: list[Any], batch: tuple = ()) -> np.ndarray:
        """The ``batch + (n,)`` float64 array of leaves (None leaves are zeros)."""
        out = np.zeros(batch + (self.n,))
        for a, b, s, leaf in zip(self.offsets[:-1], self.offsets[1:], self.shapes, leaves):
            if leaf is not None:
                out[..., a:b] = np.broadcast_to(leaf, batch + s).reshape(batch + (b - a,))
        return out

    def tree(self, flat: np.ndarray) -> Any:
        """The vector ``flat`` (shape (n,): a gradient, a direction) as a pytree shaped like
        the traced point, its integer leaves (constants) zeros."""
        return pytree.unflatten(self.in_tree, self.split(flat), constants="zeros")[0]

    def point_tree(self, flat: np.ndarray) -> Any:
        """The point ``flat`` (shape (n,)) as a pytree shaped like the traced point, its
        integer leaves (constants) at their traced values: what ``f`` is called at."""
        return pytree.unflatten(self.in_tree, self.split(flat), constants="values")[0]

    def tree_from_slots(self, ct: dict) -> Any:
        """The pytree of the cotangents a reverse sweep left at the input slots (zeros where
        none arrived), in the leaves' dtypes, without a flat copy."""
        leaves = []
        for slot, shape, dt in zip(self.slots, self.shapes, self.dtypes):
            c = ct.get(slot)
            if c is None:
                c = np.zeros(shape, dt)
            else:
                c = np.asarray(c, dtype=dt)
                if c.shape != shape:
                    c = np.broadcast_to(c, shape).copy()
            leaves.append(c)
        return pytree.unflatten(self.in_tree, leaves, constants="zeros")[0]

    def from_tree(self, g: Any, where: str) -> np.ndarray:
        """A vector given as a pytree like ``x`` or as a flat array of length n."""
        leaves = pytree.match(self.in_tree, (g,))
        if leaves is not None and all(np.shape(a) == s for a, s in zip(leaves, self.shapes)):
            return self.join([np.asarray(a, dtype=np.float64) for a in leaves])
        arr = np.asarray(g, dtype=np.float64)
        if arr.shape == (self.n,):
            return arr.copy()
        raise ShapeError(f"{where}: a vector must have the structure of x (leaf shapes "
                         f"{self.shapes}) or be a flat array of length {self.n}; got "
                         f"shape {np.shape(g)}.")

    def point(self, traced: Traced) -> np.ndarray:
        return self.join([traced.vals[i] for i in self.slots])

    def leaf_of(self, j: int) -> tuple[int, int]:
        """(leaf number, entry within the leaf) of flat coordinate j."""
        leaf = int(np.searchsorted(self.offsets, j, side="right") - 1)
        return leaf, int(j - self.offsets[leaf])


_REST = {"in_clarke": ", g", "directional": ", D", "ld_derivative": ", M"}


def other_arguments(where: str, name: str, value: Any, expected: str) -> KinkgradError:
    """The error for an argument after x that is not what ``where`` takes there: typically
    another argument of ``f`` passed along, which the abs-smooth functions do not accept."""
    return KinkgradError(
        f"{where}: {name}= must be {expected}, got {type(value).__name__}. {where} works on a "
        f"function of x alone; to use it on one argument of a function of several, close over "
        f"the other arguments: {where}(lambda x: f(x, y), x{_REST.get(where, '')})."
    )


class ActiveNames:
    """A report's ``active``: the names of the switches (and norms) it treated as active,
    formed on first access from its ``_names`` callable."""

    _names: Callable[[], list[str]] | None

    @functools.cached_property
    def active(self) -> list[str]:
        """Names of the switching variables treated as active (formed on first access)."""
        return [] if self._names is None else list(self._names())


def ball_arguments(where: str, radius: Any, tol: Any, seed: Any) -> tuple[float, float]:
    """(radius, tol) as floats after checking them and ``seed`` (radius >= 0 and tol > 0
    finite numbers, seed an integer >= 0), or a KinkgradError naming ``where`` and the fix."""
    for name, v, lo in (("radius", radius, ">= 0"), ("tol", tol, "> 0")):
        if isinstance(v, np.ndarray) and v.size > 1:
            raise other_arguments(where, name, v, "a number")
        if not (is_real(v) and (v >= 0 if lo == ">= 0" else v > 0)):
            raise KinkgradError(f"{where}: {name}={v!r}; pass a finite number {lo}.")
    if not is_int(seed) or seed < 0:
        raise KinkgradError(f"{where}: seed={seed!r}; pass an integer >= 0.")
    return float(radius), float(tol)


def _check_arity(f: Callable, x: Any, where: str) -> None:
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):  # a builtin or an object without a signature
        return
    try:
        sig.bind(x)
    except TypeError:
        raise KinkgradError(
            f"{where}: f{sig} cannot be called with x alone. {where} works on a function of x "
            "alone; to use it on one argument of a function of several, close over the other "
            f"arguments: {where}(lambda x: f(x, y), x{_REST.get(where, '')})."
        ) from None


def trace_at(f: Callable, x: Any, where: str, radius: float | None = 0.0) -> Traced:
    """Trace ``f`` at ``x`` (a pytree of float arrays), refusing tied comparisons, and
    decisions f took on traced values (``knp.argmax``) that may change within ``radius`` of
    x (:func:`._reads.check_reads`; None: not checked, for a caller that only steps).

    The abs-smooth layer works on NumPy arrays (its LPs run in SciPy's HiGHS), so array
    types of other backends are refused with the fix rather than converted behind the user's
    back; ``kinkgrad.interop.torch`` has the torch-native ``clarke_grad_torch``."""
    from ..backends import is_cupy, is_torch

    if any(is_torch(leaf) or is_cupy(leaf) for leaf in pytree.flatten(x)[0]):
        raise UnsupportedOperationError(
            f"{where}: the abs-smooth layer (certificates, LPs with SciPy's HiGHS, "
            "enumeration) works on NumPy arrays; pass x.detach().cpu().numpy() (a pytree of "
            "NumPy arrays), or use kinkgrad.interop.torch.clarke_grad_torch / certify_torch "
            "for torch models."
        )
    _check_arity(f, x, where)
    tr = trace_call(f, (x,), {}, [0], where)
    if radius is not None:
        from ._reads import check_reads

        check_reads(tr, where, radius)
    from .where_ties import rewrite_tied_wheres

    tr = rewrite_tied_wheres(tr, where)  # a where tied at x with agreeing branches
    from ..modes._discard import domain_message

    msg = domain_message(tr, where)  # an infinite local derivative (sqrt at 0) that is used
    if msg is not None:
        raise NonFiniteInputError(msg)
    return tr


def check_comparisons(tr: Traced, where: str) -> None:
    """Raise NotAbsSmoothError when a traced comparison is tied (a possible jump)."""
    for eqn in tr.eqns:
        if eqn.prim.is_switch:
            args = eqn.args(tr.vals)
            try:
                eqn.prim.abs_form(args, eqn.params)
            except NotAbsSmoothError as exc:
                raise NotAbsSmoothError(f"{where}: {exc}") from None


def output_slots(tr: Traced) -> list[tuple[Any, np.ndarray]]:
    """(output Var or None for a constant output, value) for every output leaf."""
    res = []
    for o, v in zip(tr.outs, tr.out_values()):
        res.append((o if type(o) is Var else None, np.asarray(v)))
    return res


def scalar_output(tr: Traced, where: str) -> tuple[Var | None, float]:
    """The single scalar output of ``f`` (its Var, None when it does not depend on x)."""
    outs = output_slots(tr)
    if len(outs) != 1 or outs[0][1].size != 1:
        shapes = [tuple(v.shape) for _, v in outs]
        raise NonScalarOutputError(
            f"{where}: the function must return one scalar; it returned arrays of shapes "
            f"{shapes}. Reduce the output (knp.sum, knp.mean) first.")
    var, val = outs[0]
    return var, float(val.reshape(()))


def rebuilt(new: Trace, env: dict, src: Traced) -> Traced:
    """The Traced of a program re-traced from ``src``: ``new`` holds the equations bound
    while replaying it, ``env`` maps src's slots to the new values (Tracers or constants:
    an output that became constant is a Literal)."""
    outs = []
    for o in src.outs:
        val = env[o.index] if type(o) is Var else o
        if type(val) is Tracer:
            outs.append(val.var)
        else:
            outs.append(Literal(np.asarray(val)) if type(o) is Var else val)
    return Traced(new, [env[v.index].var for v in src.in_vars], src.in_tree, outs,
                  src.out_tree, src.aux)
