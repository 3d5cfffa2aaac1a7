"""The traced array and the trace that records equations while the function runs.

Tracing is eager: each primitive computes its NumPy value as it is recorded, so a trace is at
the same time the forward pass. Python control flow on a traced value raises
:class:`~kinkgrad.errors.TracerBoolConversionError`: branches must be visible to kinkgrad
(``knp.where`` on a traced comparison), because that is where the kinks are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends._bare import on_inputs_backend
from ..errors import (
    IndexRangeError,
    KinkgradError,
    NestedTransformError,
    ShapeError,
    TracerBoolConversionError,
    UnknownNameError,
    UnsupportedOperationError,
)
from .program import Equation, Literal, Var
from .pytree import register_leaf_type

__all__ = ["Dropped", "Trace", "Tracer", "bind", "is_traced"]

_NDARRAY = np.ndarray  # NumPy's, kept when ``np`` is rebound to another backend
_FOREIGN = ("torch", "cupy")  # modules of the arrays a bare call runs on their own backend


class Dropped:
    """The stand-in for a value a reverse-only trace let go: its shape, dtype and ndim (all
    that the rules of the equations around it read, see ``Primitive.vjp_reads_args``)."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, var: Var) -> None:
        self.shape, self.dtype, self.ndim = var.shape, var.dtype, len(var.shape)


class Trace:
    """Records equations and keeps every slot's value (the forward pass).

    ``reverse_only=True`` (``value_and_grad``): a value no reverse rule reads (declared by the
    primitives' ``vjp_reads_args``/``vjp_reads_out``) is let go as soon as its traced array
    is garbage, as hand-written code frees a temporary, so the forward pass reuses memory
    that is still in cache; :meth:`restore` recomputes such values for the error paths.
    ``kink_values=False``: the sweep runs on the default kink policy without a kink report,
    so the inputs of a primitive declaring ``kink_reads_args`` (relu) may go too."""

    __slots__ = ("eqns", "vals", "active", "needed", "kink_values", "values_read", "decisions")

    def __init__(self, reverse_only: bool = False, kink_values: bool = True) -> None:
        self.eqns: list[Equation] = []
        self.vals: list[Any] = []
        self.active = True
        self.needed: set[int] | None = set() if reverse_only else None
        self.kink_values = kink_values
        # the slots whose value code outside the engine read (Tracer.value: knp.argmax,
        # argmin, argsort, where(cond), an inspection in f): the program may hold constants
        # computed from them, which belong to the traced point alone (see modes/vmap.py)
        self.values_read: set[int] = set()
        # what was decided on them: (slot, how), how a knp helper's (kind, axis) whose margin
        # abs_normal._reads checks, or None for a bare Tracer.value (a decision it cannot see)
        self.decisions: set[tuple[int, Any]] = set()

    def read(self, slot: int, how: Any = None) -> None:
        """Record that code outside the engine read slot ``slot``'s value, to decide ``how``
        (``("argmax", axis)``, ``("argmin", axis)``, ``("argsort", axis)``, ``("nonzero",
        None)``; None: unknown)."""
        self.values_read.add(slot)
        self.decisions.add((slot, how))

    def new_input(self, value: np.ndarray) -> Tracer:
        var = Var(len(self.vals), value.shape, value.dtype)
        self.vals.append(value)
        if self.needed is not None:
            self.needed.add(var.index)
        return Tracer(value, self, var)

    def restore(self) -> None:
        """Recompute every value let go (in program order: an equation's inputs first)."""
        vals = self.vals
        for eqn in self.eqns:
            if type(vals[eqn.out.index]) is Dropped:
                args = eqn.args(vals)
                with np.errstate(all="ignore"):  # as computed the first time
                    vals[eqn.out.index] = np.asarray(eqn.prim.impl(*args, **eqn.params))


def is_traced(x: Any) -> bool:
    return type(x) is Tracer


def _misfit(prim: Any, vals: Any, exc: Exception) -> ShapeError:
    """The ShapeError of a primitive whose operands NumPy refused (shapes, an index: then an
    IndexRangeError, an IndexError too)."""
    shapes = ", ".join(str(np.shape(v)) for v in vals)
    if isinstance(exc, IndexError) and not isinstance(exc, ValueError):  # NOTE: AxisError
        return IndexRangeError(f"{prim.name}: operands of shapes {shapes} do not fit ({exc}); "
                               "index within the shape.")
    return ShapeError(f"{prim.name}: operands of shapes {shapes} do not fit ({exc}); reshape, "
                      "transpose or index them so that they fit.")


def bind(prim: Any, *args: Any, **params: Any) -> Any:
    """Apply a primitive: NumPy value outside a trace, a recorded equation inside one."""
    # NOTE: this runs once per traced operation, between array operations that evict the
    # interpreter's data from the caches: one pass over the operands, no comprehensions
    # (each is a frame of its own), attributes read once
    trace = None
    for a in args:
        if type(a) is Tracer:
            trace = a.trace
            break
    if trace is None:
        for a in (*args, *params.values()):  # NOTE: a torch tensor or CuPy array (an operand,
            if type(a) is not _NDARRAY and type(a).__module__.startswith(_FOREIGN):  # or
                return on_inputs_backend(prim, args, params)  # clip's bound) outside every
        try:  # entry point
            return prim.impl(*args, **params)
        except (ValueError, IndexError) as exc:  # NOTE: free until raised (CPython 3.11)
            raise _misfit(prim, args, exc) from exc
    needed = trace.needed
    reads = needed is not None and (prim.vjp_reads_args or (
        prim.kink_reads_args and trace.kink_values))
    vals, ins = [], []
    for a in args:
        if type(a) is Tracer:
            if a.trace is not trace:
                raise NestedTransformError(
                    f"{prim.name}: operands come from two different traces (a nested "
                    "transformation, or a traced value kept from an earlier call); kinkgrad "
                    "computes first-order derivatives of one trace at a time."
                )
            var = a.var
            vals.append(a._value)
            ins.append(var)
            if reads:
                needed.add(var.index)  # type: ignore[union-attr]
        else:
            vals.append(a)
            ins.append(Literal(a))
    if not trace.active:
        raise KinkgradError(
            f"{prim.name}: a traced value escaped from a finished transformation (stored in a "
            "global or a closure); return it from the function instead."
        )
    try:
        out = prim.impl(*vals, **params)
    except FloatingPointError as exc:  # only under np.errstate(... = "raise")
        out = retry_without_underflow(exc, prim.name, "value", prim.impl, *vals, **params)
    except (ValueError, IndexError) as exc:
        raise _misfit(prim, vals, exc) from exc
    if type(out) is not _NDARRAY and not isinstance(out, (np.ndarray, np.generic)):
        out = np.asarray(out)
    tv = trace.vals
    var = Var(len(tv), tuple(out.shape), out.dtype)
    tv.append(out)
    if needed is not None and prim.vjp_reads_out:
        needed.add(var.index)
    trace.eqns.append(Equation(prim, ins, var, params))
    return Tracer(out, trace, var)


def retry_without_underflow(exc: FloatingPointError, name: str, what: str, fn: Any,
                            *args: Any, **kwargs: Any) -> Any:
    """Handle a FloatingPointError raised by a rule under ``np.errstate(... = "raise")``.

    # NOTE: underflow to a subnormal or to 0 is the IEEE result a rule relies on (the
    # exp(-|x|) of a stable sigmoid, the scaled sum of squares of a norm at tiny vectors), not
    # an error of the program, so the rule is run again with underflow ignored. This costs
    # nothing on the path without floating-point errors. Overflow, division by zero and invalid
    # operations become a KinkgradError naming the primitive instead of a bare NumPy error.
    """
    if "underflow" in str(exc):
        with np.errstate(under="ignore"):
            try:
                return fn(*args, **kwargs)
            except FloatingPointError as again:
                exc = again
    from ..errors import NonFiniteInputError

    raise NonFiniteInputError(
        f"{name}: the {what} is not finite ({exc}); rescale the input or guard that operation "
        "(knp.clip its argument, add an offset) so that it stays in the range of the dtype."
    ) from exc


def _bool_error(what: str) -> TracerBoolConversionError:
    return TracerBoolConversionError(
        f"{what} of a traced value: Python control flow cannot see the kink. Write the branch "
        "with knp.where(cond, a, b) on a traced comparison, or with knp.relu / knp.maximum / "
        "knp.minimum / knp.clip / knp.abs."
    )


class Tracer:
    """A traced array: a value, the trace that owns it and its slot.

    Its NumPy-style methods (``x.sum()``, ``x.T``, ``x.at[i].set(v)``), operators and
    ``__array_ufunc__``/``__array_function__`` dispatch are written with ``kinkgrad.numpy``,
    the layer above the core, and bound to this class when that module is imported (see
    ``kinkgrad/numpy/_methods.py``). Defined here: shape and dtype, the conversions that
    raise (``bool``, ``float``, ``np.asarray``), and the operations that have no derivative.
    """

    __slots__ = ("_value", "trace", "var")
    __array_priority__ = 1000
    _namespace: Any = None  # the module the methods call into (set by kinkgrad.numpy)

    def __init__(self, value: Any, trace: Trace, var: Var) -> None:
        self._value = value
        self.trace = trace
        self.var = var

    @property
    def value(self) -> Any:
        """The current (concrete) value, for inspection and integer helpers: not
        differentiated. Reading it is recorded (``Trace.values_read``): whatever is computed
        from it (``knp.argmax(x)``, an index, a Python decision) is a constant of this point
        only, so the program is not the function at other points: the set-valued answers
        (``in_clarke``, ``stationarity``, ...) then refuse, since kinkgrad cannot see where
        that decision changes (``knp.argmax`` and its kin record theirs and are checked,
        :mod:`kinkgrad.abs_normal._reads`)."""
        self.trace.read(self.var.index)
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    def __del__(self) -> None:
        # NOTE: a dead traced array can have no later consumer; if none of its consumers'
        # reverse rules (nor its own) reads the value, a reverse-only trace lets it go
        tr = self.trace
        if tr.needed is not None and tr.active and self.var.index not in tr.needed:
            tr.vals[self.var.index] = Dropped(self.var)

    # ---------------------------------------------------------------- array attributes
    @property
    def shape(self) -> tuple:
        return self.var.shape

    @property
    def dtype(self) -> np.dtype:
        return self.var.dtype

    @property
    def ndim(self) -> int:
        return len(self.var.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.var.shape, dtype=np.int64))

    def __len__(self) -> int:
        if not self.var.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.var.shape[0]

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        from .program import aval_str

        return f"Traced<{aval_str(self.shape, self.dtype)}>"

    # ---------------------------------------------------------------- forbidden conversions
    def __bool__(self) -> bool:
        raise _bool_error("bool()")

    def __float__(self) -> float:
        raise _bool_error("float()")

    def __int__(self) -> int:
        raise _bool_error("int()")

    def __index__(self) -> int:
        raise _bool_error("using as an index")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise UnsupportedOperationError(
            "np.asarray/np.array of a traced value would drop it from the trace. To build an "
            "array from traced values (a list argument is a pytree: each entry is traced on "
            "its own, as in JAX) use knp.stack([...]) or knp.asarray([...]); otherwise keep "
            "the value as it is and use kinkgrad.numpy functions (kinkgrad.debug_print to "
            "look at it)."
        )

    def item(self, *args: Any) -> Any:
        raise TracerBoolConversionError(
            ".item() on a traced value: while a function is traced its values are symbols of "
            "the program, not concrete numbers, so a Python float cannot carry a derivative. "
            "Return the traced scalar itself (knp.sum(...) or x[i] give a 0-d traced value); "
            "to look at it use kinkgrad.debug_print(\"{}\", x), which records no read."
        )

    tolist = item

    def __hash__(self) -> int:
        return id(self)

    # ---------------------------------------------------------------- methods
    def copy(self) -> Tracer:
        return self  # traced values are immutable: a copy is the same value

    def astype(self, dtype: Any, copy: bool = True) -> Tracer:
        if np.dtype(dtype) == self.dtype:
            return self
        raise UnsupportedOperationError(
            f"astype: casting a traced {self.dtype.name} value to {np.dtype(dtype).name} is not a "
            "primitive; cast the argument before calling the transformation, or let NumPy's "
            "type promotion widen it (float32 * float64 -> float64)."
        )

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails; dunders stay plain AttributeErrors so that
        # protocol probes (hasattr(x, "__dlpack__")) keep working
        if name.startswith("__"):
            raise AttributeError(name)
        # the knp namespace that bound the methods (kinkgrad/numpy/_methods.py attach())
        knp = type(self)._namespace
        fix = (f"call the kinkgrad.numpy function instead: knp.{name}(x, ...)"
               if hasattr(knp, name) else  # never suggest a knp function that does not exist
               "kinkgrad.numpy has no such function either; write it from the functions "
               "`kinkgrad info` lists")
        raise UnknownNameError(f"a traced array has no attribute or method .{name}; {fix}.")

    # ---------------------------------------------------------------- operators
    def __pos__(self) -> Any: return self

    def __setitem__(self, idx: Any, value: Any) -> None:
        raise UnsupportedOperationError(
            "x[i] = v: traced arrays are immutable (the program records values, not memory); "
            "write y = x.at[i].set(v) (or .add(v)), as in JAX, or build the array with "
            "knp.where / knp.concatenate / knp.stack.")

    def _jump(self, op: str) -> Any:
        raise UnsupportedOperationError(
            f"x {op} c: floor division and modulo jump at every multiple of c, where no "
            "generalized (Clarke) derivative exists; compute them outside the traced function "
            "on plain arrays, or write the piece you need with knp.where on a comparison.")

    def __floordiv__(self, o: Any) -> Any: return self._jump("//")
    def __rfloordiv__(self, o: Any) -> Any: return self._jump("//")
    def __mod__(self, o: Any) -> Any: return self._jump("%")
    def __rmod__(self, o: Any) -> Any: return self._jump("%")
    def __divmod__(self, o: Any) -> Any: return self._jump("divmod")

    # ---------------------------------------------------------------- protocols
    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        """A torch function met a traced value: kinkgrad cannot see inside torch's ops."""
        name = getattr(func, "__name__", repr(func))
        raise UnsupportedOperationError(
            f"torch.{name} was called on a value kinkgrad is tracing; kinkgrad differentiates "
            f"functions written with kinkgrad.numpy (knp.{name} where it exists), and those "
            "run on torch tensors too. For a torch.nn model use kinkgrad.interop.torch."
        )


register_leaf_type(Tracer)  # a traced array is a leaf of the pytrees it appears in
