"""The Primitive base class, the registry and the batch-aware array helpers rules share.

A primitive is one elementary function of the dictionary D of paper A (arXiv 2206.01730).
Every rule of a primitive is a method of its class (see ``primitives/README.md``):

``impl``      the NumPy value.
``cost``      arithmetic operations of the function, counted from shapes (paper A's model).
``vjp_cost``  operations of its vector-Jacobian product, cotangent accumulation included.
``jvp_cost``  operations of its Jacobian-vector product for one tangent.
``switch``    the switching quantities z of the op (kinks are the entries with z == 0).
``select``    turns the input values, the kink policy and optionally tangents into the local
              derivative data (a mask, weights or a permutation) and the number of kinks hit.
``jvp``       tangent out from tangents in and the selection.
``vjp``       cotangents in from the cotangent out and the selection.
``abs_form``  the op written with ``abs`` of its switches, for the abs-normal form (paper B).

Batch convention: tangents and cotangents may carry leading batch axes (one per direction or
per cotangent seed). Rules use negative axes and right-aligned broadcasting so the same code
serves a single vector and a batch; ``batch_ndim`` tells how many leading axes there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import KinkgradError, UnsupportedOperationError
from ._signature import checked_call
from .tracer import bind

__all__ = [
    "Primitive",
    "register",
    "registry",
    "ops",
    "bind",
    "batch_ndim",
    "lift",
    "unbroadcast",
    "shape_of",
    "ndim_of",
    "broadcast_view",
    "with_unit_axes",
    "zeros_tangent",
    "MODES",
    "summation_roundings",
]

MODES = ("policy", "directional", "lex")

# NumPy's own, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _ADD_REDUCE = np.ndarray, np.add.reduce

_REGISTRY: dict[str, Primitive] = {}


def registry() -> dict[str, Primitive]:
    """All registered primitives by name (a copy)."""
    return dict(_REGISTRY)


class _Ops:
    """The registered primitives as attributes: ``ops.abs(x)`` is ``registry()["abs"](x)``.

    Rules written with other primitives (the abs forms, ``sort`` of a flattened array) call
    them through this view: ``kinkgrad.numpy`` is a layer above the primitives, which import
    only from the core (see ``_core/__init__.py``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Primitive:
        try:
            return _REGISTRY[name]
        except KeyError:
            raise AttributeError(f"no primitive named {name!r} is registered") from None


ops = _Ops()


class Primitive:
    """Base class of every elementary function. Subclass, fill the rules, decorate with
    :func:`register`.

    Class attributes:
        name: identifier used in printed programs.
        numpy_name: the name under which ``kinkgrad.numpy`` exposes it (None: not exposed).
        policy_key: which entry of the :class:`~kinkgrad.kinks.KinkPolicy` governs its kinks;
            None for smooth primitives.
        omega: the declared bound (cost + vjp_cost) / cost of the cost model; the tests check it
            on random shapes, and ``kinkgrad.cost`` reports the maximum over a program.
        differentiable: False for comparisons (their outputs are boolean, derivative zero).
        switch_lipschitz: L with every switching value of its abs form L-Lipschitz in the
            largest move of its inputs' entries: 1 for relu and abs (an input entry), 2 for
            max, sort, clip (a difference of order statistics); None: not declared.
    """

    name: ClassVar[str] = ""
    numpy_name: ClassVar[str | None] = None
    policy_key: ClassVar[str | None] = None
    omega: ClassVar[float] = 5.0
    differentiable: ClassVar[bool] = True
    is_switch: ClassVar[bool] = False
    switch_lipschitz: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "_kinkgrad_checked", False):
            cls.__call__ = checked_call(call)  # type: ignore[method-assign]
        # a fast path belongs to the rule it shortcuts: a subclass that redefines ``select``
        # or ``vjp`` without redefining the shortcut gets the plain rule
        if "select" in cls.__dict__ and "selection" not in cls.__dict__:
            cls.selection = Primitive.selection  # type: ignore[method-assign]
        if "vjp" in cls.__dict__ and "scales_cotangent" not in cls.__dict__:
            cls.scales_cotangent = False
        if {"vjp", "select", "selection"} & cls.__dict__.keys():
            for flag in ("vjp_reads_args", "vjp_reads_out"):
                if flag not in cls.__dict__:
                    setattr(cls, flag, True)
        # a primitive with neither rule selects nothing (None): the sweeps skip the call
        cls.selects = cls.select is not Primitive.select or \
            cls.selection is not Primitive.selection

    # ---------------------------------------------------------------- value and public call
    # The public function: ``bind(self, *args, **kwargs)`` itself (one frame less on every
    # traced operation); a subclass normalising its arguments defines its own ``__call__``.
    __call__ = bind

    def impl(self, *args: Any, **params: Any) -> np.ndarray:
        raise UnsupportedOperationError(f"{self.name}: the primitive has no impl (its value); "
                                        "define impl(self, *args, **params) in its class.")

    @property
    def nonsmooth(self) -> bool:
        return self.policy_key is not None or self.is_switch

    # ---------------------------------------------------------------- cost model
    # Per output entry: operations of the function, of one input's JVP contribution and of
    # one input's VJP contribution. Subclasses with other shapes of work override the methods.
    c_fn: ClassVar[int] = 1
    c_jvp: ClassVar[int] = 1
    c_vjp: ClassVar[int] = 1

    def cost(self, in_shapes: Sequence[tuple], out_shape: tuple, params: dict) -> int:
        """Arithmetic operations of the function, counted from shapes."""
        return self.c_fn * _size(out_shape)

    def jvp_cost(self, in_shapes: Sequence[tuple], out_shape: tuple, params: dict,
                 needs: Sequence[bool]) -> int:
        """Operations of one Jacobian-vector product (tangents of the inputs in ``needs``)."""
        n = sum(1 for k in needs if k)
        return (self.c_jvp * n + max(n - 1, 0)) * _size(out_shape)

    def vjp_cost(self, in_shapes: Sequence[tuple], out_shape: tuple, params: dict,
                 needs: Sequence[bool]) -> int:
        """Operations of the vector-Jacobian product for the inputs in ``needs``: each
        contribution, its reduction over broadcast axes and its accumulation into the input's
        cotangent (one addition per input entry)."""
        out = _size(out_shape)
        total = 0
        for shape, need in zip(in_shapes, needs):
            if need:
                n_in = _size(shape)
                total += self.c_vjp * out + (out - n_in if n_in != out else 0) + n_in
        return total

    # ---------------------------------------------------------------- rounding
    # Unit roundoffs u (of the output's dtype) one evaluation commits per output entry,
    # relative to |out|: 1 for a correctly rounded operation (+ - * / sqrt), 8 for NumPy's
    # exp, log, tanh, ... (within 4 ulps in its SIMD loops), 0 for an exact one (abs, max,
    # sort, a copy or a view).
    roundings: ClassVar[float] = 1.0

    def rounding(self, args: Sequence[Any], out: Any, params: dict) -> Any:
        """r, per output entry, with |fl(op(args)) - op(args)| <= u r for exact ``args``
        (u: the unit roundoff of ``out``'s dtype); None when the op commits no rounding.
        Default: ``roundings * |out|``; reductions charge their terms' magnitudes
        (:func:`summation_roundings`). ``kinkgrad.rounding_error`` weighs r by |df/d out|."""
        return self.roundings * np.abs(out) if self.roundings else None

    # ---------------------------------------------------------------- kinks
    def switch(self, args: Sequence[Any], out: Any, params: dict) -> np.ndarray | None:
        """Switching quantities z; an entry is at a kink iff z == 0. None when smooth."""
        return None

    def select(
        self,
        policy: Any,
        args: Sequence[Any],
        out: Any,
        params: dict,
        tangents: Sequence[Any] | None = None,
        mode: str = "policy",
    ) -> tuple[Any, int]:
        """Local derivative data and the number of kink entries hit.

        ``mode="policy"``: kinks take the policy's choice. ``mode="directional"``: each
        leading batch entry of ``tangents`` is an independent direction and kinks are resolved
        per direction by the sign of the directional derivative of z (exact one-sided
        derivatives). ``mode="lex"``: one selection for all tangents, kinks resolved by the
        first tangent with a nonzero derivative of z (lexicographic rule); remaining ties take
        the policy's choice.
        """
        return None, 0

    def selection(self, policy: Any, args: Sequence[Any], out: Any, params: dict) -> Any:
        """``select(policy, args, out, params)[0]``: the policy's selection without the count
        of kink entries, which only the kink report reads (a primitive whose count costs a
        pass over the data overrides this; the reverse sweep calls it when no report is
        asked)."""
        return self.select(policy, args, out, params)[0]

    # Whether ``select``/``selection`` compute anything (set for each subclass: False when it
    # inherits both from Primitive, whose selection is None).
    selects: ClassVar[bool] = False

    # ``impl(a, b, **params)`` is bilinear in its two array operands (a product of matrices,
    # a contraction, a convolution): the wide replay (``modes/_wide``) then splits them into
    # float64 slices whose products BLAS computes exactly.
    bilinear: ClassVar[bool] = False

    # A VJP that is ``g * sel`` (elementwise, ``sel`` broadcasting to ``g``): the reverse sweep
    # may then multiply a cotangent array nobody else holds in place instead of allocating.
    scales_cotangent: ClassVar[bool] = False
    # Whether ``select`` (policy mode) and ``vjp`` read the values of the inputs / of the
    # output, beyond their shape, dtype and ndim: a reverse-only trace lets go of a value
    # that no rule reads (see ``Trace``). When in doubt, True.
    vjp_reads_args: ClassVar[bool] = True
    vjp_reads_out: ClassVar[bool] = True
    # With ``vjp_reads_args`` False: the inputs are still read when the sweep resolves kinks
    # beyond the default policy or counts them for a report (relu: the default slope [x > 0]
    # is [out > 0], but x == 0 is not visible in out). See ``Trace(kink_values=...)``.
    kink_reads_args: ClassVar[bool] = False

    # ---------------------------------------------------------------- derivative rules
    def jvp(self, sel: Any, tangents: Sequence[Any], args: Sequence[Any], out: Any,
            params: dict) -> Any:
        raise UnsupportedOperationError(f"{self.name}: the primitive has no jvp rule (forward "
                                        "mode); define jvp(self, sel, tangents, args, out, "
                                        "params) in its class.")

    def vjp(self, sel: Any, g: Any, args: Sequence[Any], out: Any, params: dict,
            needs: Sequence[bool]) -> Sequence[Any]:
        raise UnsupportedOperationError(f"{self.name}: the primitive has no vjp rule (backward "
                                        "mode); define vjp(self, sel, g, args, out, params, "
                                        "needs) in its class.")

    # ---------------------------------------------------------------- abs-normal form
    def abs_form(self, args: Sequence[Any], params: dict) -> Any:
        """The op written with smooth primitives and ``abs`` of its switches (None: smooth,
        the op itself is used)."""
        return None

    # ---------------------------------------------------------------- printing, tests
    def pp_params(self, params: dict) -> str:
        if not params:
            return ""
        inner = ",".join(f"{k}={_pp(v)}" for k, v in params.items())
        return f"[{inner}]"

    def samples(self, rng: np.random.Generator, dtype: Any = np.float64
                ) -> list[tuple[tuple, dict]]:
        """Smooth sample points for the generic rule tests: a list of (args, params)."""
        return []

    def kink_samples(self, rng: np.random.Generator, dtype: Any = np.float64
                     ) -> list[tuple[tuple, dict]]:
        """Points where some entries sit exactly at a kink (nonsmooth primitives)."""
        return []

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def register(cls: type[Primitive]) -> type[Primitive]:
    """Class decorator: instantiate the primitive and add it to the registry."""
    inst = cls()
    if not inst.name:
        raise KinkgradError(f"register: primitive class {cls.__name__} has no name")
    if inst.name in _REGISTRY:
        raise KinkgradError(f"register: a primitive named {inst.name!r} exists already")
    _REGISTRY[inst.name] = inst
    cls.instance = inst  # type: ignore[attr-defined]
    return cls


def _pp(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(_pp(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)}" if v.size > 4 else np.array2string(v, separator=",")
    return str(v)


def summation_roundings(m: int) -> float:
    """Roundings charged to each term's magnitude in a sum of m terms: ceil(log2 m) + 1, the
    bound of pairwise summation (NumPy's order along a contiguous axis), plus sqrt(m), the
    typical error of a sequential order (BLAS's products, cumsum), whose worst case m - 1 is
    a bound on adversarial data. An estimate for ``rounding_error``, not a proof."""
    m = max(int(m), 1)
    return float(np.ceil(np.log2(m)) + 1.0 + np.sqrt(m)) if m > 1 else 0.0


def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


# -------------------------------------------------------------------- batch-aware helpers
def batch_ndim(t: Any, shape: tuple) -> int:
    """Number of leading batch axes of ``t`` relative to an unbatched ``shape``."""
    return np.ndim(t) - len(shape)


def lift(t: Any, shape: tuple, out_ndim: int) -> Any:
    """Insert unit axes after the batch axes of ``t`` (unbatched ``shape``) so that it
    broadcasts right-aligned against an output of rank ``out_ndim``."""
    extra = out_ndim - len(shape)
    if extra <= 0:
        return t
    nb = np.ndim(t) - len(shape)
    if nb == 0:
        return t
    t = np.asarray(t)
    return t.reshape(t.shape[:nb] + (1,) * extra + t.shape[nb:])


def shape_of(x: Any) -> tuple:
    """``np.shape(x)``; an array's (or a let-go value's) ``shape`` attribute directly.

    # NOTE: the rules of the reverse sweep run between large array operations that evict
    # the interpreter's data from the caches, so each Python-level NumPy helper they call
    # (np.shape, np.expand_dims, np.broadcast_to) costs several times its warm time there;
    # the hot rules use attributes and C-level calls instead."""
    try:
        return x.shape
    except AttributeError:
        return np.shape(x)


def ndim_of(x: Any) -> int:
    """``np.ndim(x)`` without NumPy's dispatch (which sends a traced array through its
    ``__array_function__``, several Python frames); see :func:`shape_of`."""
    return len(shape_of(x))


def with_unit_axes(shape: tuple, axis: tuple) -> tuple:
    """``shape`` with a 1 inserted at each of the (negative, sorted) ``axis`` of the result:
    the kept-dims shape of a reduction's (batched) output, ``np.expand_dims`` as a shape."""
    n = len(shape) + len(axis)
    dims = iter(shape)
    return tuple(1 if p - n in axis else next(dims) for p in range(n))


def broadcast_view(x: Any, shape: tuple) -> Any:
    """``np.broadcast_to(x, shape)``: a read-only view; for a contiguous NumPy array built by
    the ndarray constructor with zero strides (no Python layers, see :func:`shape_of`)."""
    if type(x) is _NDARRAY and x.flags.c_contiguous and 0 < x.size and x.ndim <= len(shape):
        lead = len(shape) - x.ndim
        strides = [0] * lead
        for d, t, st in zip(x.shape, shape[lead:], x.strides):
            if d == t:
                strides.append(st)
            elif d == 1:
                strides.append(0)
            else:
                break
        else:
            view = _NDARRAY(shape, x.dtype, x, 0, tuple(strides))
            view.flags.writeable = False
            return view
    return np.broadcast_to(x, shape)


def unbroadcast(g: Any, shape: tuple, out_shape: tuple) -> Any:
    """Sum a (batched) cotangent of an output of ``out_shape`` down to an input ``shape``."""
    shape = tuple(shape)
    if tuple(out_shape) == shape:
        return g
    if type(g) is not _NDARRAY:
        g = np.asarray(g)
    on_numpy = type(g) is _NDARRAY  # then ufunc.reduce: ndarray.sum adds a Python layer
    nb = g.ndim - len(out_shape)
    lead = len(out_shape) - len(shape)
    if lead > 0:
        axes = tuple(range(nb, nb + lead))
        g = _ADD_REDUCE(g, axis=axes) if on_numpy else g.sum(axis=axes)
    axes = tuple(nb + i for i, s in enumerate(shape) if s == 1 and g.shape[nb + i] != 1)
    if axes:
        g = _ADD_REDUCE(g, axis=axes, keepdims=True) if on_numpy else g.sum(axis=axes,
                                                                          keepdims=True)
    return g


def normalize_axis(axis: Any, ndim: int) -> tuple:
    """An axis argument as a sorted tuple of negative axes (None: all axes).

    Negative axes address the same dimension of a value and of its batched tangents."""
    if axis is None:
        return tuple(range(-ndim, 0))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            from ..errors import ShapeError

            if ndim == 0:
                raise ShapeError(f"axis {a} is out of bounds: a 0-d array has no axes; reshape "
                                 "it to (1,) first or pass axis=None.")

            raise ShapeError(f"axis {a} is out of bounds for an array of dimension {ndim}; "
                             f"use an axis in [-{ndim}, {ndim - 1}].")
        out.append(int(a) - ndim if a >= 0 else int(a))
    return tuple(sorted(set(out)))


def resolve_signs(z: Any, dz: Any, mode: str) -> Any:
    """Signs of switching values z, with zeros resolved by tangents dz (leading batch axis).

    ``policy``: sign(z) (0 at kinks). ``directional``: per direction k, sign(z) where z != 0
    and sign(dz[k]) at kinks (shape (K,) + z.shape). ``lex``: the first nonzero among
    sign(z), sign(dz[0]), sign(dz[1]), ... (shape z.shape). Remaining zeros are unresolved.
    """
    s = np.sign(z)
    if mode == "policy" or dz is None:
        return s
    if mode == "directional":
        return np.where(s != 0, s, np.sign(dz))
    for k in range(np.shape(dz)[0]):
        undecided = s == 0
        if not undecided.any():
            break
        s = np.where(undecided, np.sign(dz[k]), s)
    return s


def zeros_tangent(shape: tuple, dtype: Any, like: Any | None, batch: tuple = ()) -> np.ndarray:
    """A zero (batched) tangent, used where a rule needs a materialised zero."""
    return np.zeros(batch + tuple(shape), dtype=dtype)


