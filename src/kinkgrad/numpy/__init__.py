"""``kinkgrad.numpy`` (import as ``knp``): the NumPy-like functions that trace.

An explicit table: each name maps to a registered primitive (its ``numpy_name``) or to one of
a few *smooth* composites (``mean``, ``var``, ``square``, ...). Every nonsmooth function is
a primitive, so its kink choice is declared by the kink policy (``std`` is ``sqrt(var)``:
differentiating it where it is 0 raises). Integer-valued helpers (``argmax``, ``argmin``,
``shape``) are computed on the value and return NumPy constants. Called on plain arrays outside
a transformation, every function simply computes with NumPy and returns NumPy arrays. Names
not in the table raise :class:`~kinkgrad.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from .. import primitives as _primitives  # noqa: F401  (registers the primitives)
from .._core.primitive import normalize_axis as _normalize_axis
from .._core.primitive import registry as _registry
from .._core.tracer import is_traced as _is_traced
from ..errors import ShapeError as _ShapeError
from ..errors import UnknownNameError as _Unsupported
from ..primitives.linalg import dot
from . import _bare_torch as _bt
from . import linalg
from ._order import argsort, median, percentile, quantile, take_along_axis
from ._order import topk as topk

_P = _registry()

# --- primitives (one per line: the table is the contract) -------------------------------
add = _P["add"]
subtract = _P["sub"]
multiply = _P["mul"]
divide = _P["div"]
true_divide = divide
negative = _P["neg"]
power = _P["pow"]
abs = _P["abs"]  # noqa: A001
absolute = abs
relu = _P["relu"]
leaky_relu = _P["leaky_relu"]
maximum = _P["maximum"]
minimum = _P["minimum"]
clip = _P["clip"]
max = _P["max"]  # noqa: A001
min = _P["min"]  # noqa: A001
amax = max
amin = min
sum = _P["sum"]  # noqa: A001
prod = _P["prod"]
cumsum = _P["cumsum"]
sort = _P["sort"]
exp = _P["exp"]
log = _P["log"]
log1p = _P["log1p"]
sqrt = _P["sqrt"]
tanh = _P["tanh"]
sin = _P["sin"]
cos = _P["cos"]
sigmoid = _P["sigmoid"]
softplus = _P["softplus"]
logsumexp = _P["logsumexp"]
erf = _P["erf"]
logaddexp = _P["logaddexp"]
einsum = _P["einsum"]
matmul = _P["matmul"]
conv2d = _P["conv2d"]
max_pool2d = _P["max_pool2d"]
reshape = _P["reshape"]
transpose = _P["transpose"]
concatenate = _P["concatenate"]
stack = _P["stack"]
broadcast_to = _P["broadcast_to"]
getitem = _P["getitem"]
where = _P["where"]
greater = _P["greater"]
greater_equal = _P["greater_equal"]
less = _P["less"]
less_equal = _P["less_equal"]
equal = _P["equal"]
not_equal = _P["not_equal"]

# --- NumPy constants and array creation (constants, never traced) -----------------------
pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis
float16, float32, float64 = _np.float16, _np.float32, _np.float64
zeros, ones, full, eye, arange, linspace = (_np.zeros, _np.ones, _np.full, _np.eye, _np.arange,
                                            _np.linspace)


def _value(x: Any) -> Any:
    # NOTE: read without marking the trace (Tracer.value does): the *_like constants take
    # the shape and dtype only, the same at every point
    return x._value if _is_traced(x) else x


def zeros_like(x: Any, dtype: Any = None) -> Any:
    """A constant array of zeros shaped like x (traced or not): no derivative flows."""
    return _bt.like(x, 0, dtype) if _bt.is_torch(x) else _np.zeros_like(_value(x), dtype)


def ones_like(x: Any, dtype: Any = None) -> Any:
    """A constant array of ones shaped like x (traced or not): no derivative flows."""
    return _bt.like(x, 1, dtype) if _bt.is_torch(x) else _np.ones_like(_value(x), dtype)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Any:
    """A constant array shaped like x (traced or not): no derivative flows."""
    if _bt.is_torch(x):
        return _bt.like(x, fill_value, dtype)
    return _np.full_like(_value(x), fill_value, dtype=dtype)

ndarray = _np.ndarray


def _holds_traced(x: Any) -> bool:
    return any(_is_traced(e) or (isinstance(e, (list, tuple)) and _holds_traced(e)) for e in x)


def asarray(x: Any, dtype: Any = None) -> Any:
    """NumPy's asarray for constants; a traced value is returned as it is (``dtype`` may only
    name its own dtype); a list or tuple (nested too) holding traced values is stacked along a
    new leading axis, ``knp.asarray([x[0], x[1]])`` = ``knp.stack([x[0], x[1]])``, as
    ``jnp.asarray`` does; constant entries join as constants."""
    if _is_traced(x):
        return x if dtype is None else x.astype(dtype)
    if isinstance(x, (list, tuple)) and _holds_traced(x):
        return stack([asarray(e, dtype) for e in x])
    return _bt.asarray(x, dtype) if _bt.is_torch(x) else _np.asarray(x, dtype=dtype)


array = asarray


def shape(x: Any) -> tuple:
    return tuple(x.shape) if _is_traced(x) else _np.shape(x)


def ndim(x: Any) -> int:
    return len(shape(x))


# --- integer helpers: computed on the value, returned as NumPy constants (not traced) -------
def _concrete(x: Any, how: Any = None) -> Any:
    """The value of x as a NumPy array (a traced value's current value, a tensor's copy); on
    a traced value the read is recorded with what it decides, ``how`` (``Trace.read``)."""
    if _is_traced(x):
        x.trace.read(x.var.index, how)
    v = x._value if _is_traced(x) else x
    v = getattr(v, "tensor", v)  # a torch-backed array of the torch backend
    if hasattr(v, "detach"):  # a torch tensor (on any device)
        v = v.detach().cpu().numpy()
    elif type(v).__module__.startswith("cupy"):
        v = v.get()  # a CuPy array: copied to the host
    return _np.asarray(v)


def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Index of the largest entry (of the flattened x when ``axis`` is None), the first one at
    ties, as NumPy's. Integer valued, so not differentiable: on a traced value it is computed
    on the current value and returned as a NumPy integer constant, usable as an index
    (``x[knp.argmax(x)]``, whose derivative is then that of the selected entry). The
    set-valued answers (``in_clarke``, ``stationarity``, ...) hold for f only where that
    index holds near x: at a tie (or within a radius of one) they raise or say "undecided"
    (:mod:`kinkgrad.abs_normal._reads`); ``knp.max`` has the kink kinkgrad sees. On a bare
    torch tensor: a torch integer tensor on its device."""
    if _bt.is_torch(x):
        return _bt.arg_reduce(x, axis, keepdims, largest=True)
    return _np.argmax(_concrete(x, ("argmax", axis)), axis=axis, keepdims=keepdims)


def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Index of the smallest entry, the first one at ties; a NumPy constant as ``argmax``."""
    if _bt.is_torch(x):
        return _bt.arg_reduce(x, axis, keepdims, largest=False)
    return _np.argmin(_concrete(x, ("argmin", axis)), axis=axis, keepdims=keepdims)


# --- smooth composites --------------------------------------------------------------------
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean: ``sum(x, axis) / n`` (a smooth composite; float16: ``sum(x / n)``,
    whose partial sums stay within the range: 3,000 entries of 30 summed to inf, NumPy's and
    torch's mean, which sum in float32, give 30)."""
    xs = shape(x)
    n = 1
    for a in _normalize_axis(axis, len(xs)):
        n *= int(xs[a])
    dt = getattr(x, "dtype", None)
    if n and isinstance(dt, _np.dtype) and dt == _np.float16:  # (a torch dtype: not compared)
        return sum(x * (1.0 / float(n)), axis=axis, keepdims=keepdims)
    s = sum(x, axis=axis, keepdims=keepdims)
    if n == 0:
        if int(_np.prod(shape(s), dtype=_np.int64)) == 0:
            return s  # an empty result, as NumPy's
        raise _ShapeError(
            f"mean: the reduced axes of an array of shape {xs} are empty, so the mean is 0/0 "
            "(NumPy returns NaN with a warning); check the shape or reduce over a non-empty axis."
        )
    return s * (1.0 / float(n))


def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Variance ``sum((x - mean(x))**2, axis) / (n - ddof)`` (a smooth composite).

    The data are first shifted by their first entry along ``axis`` (var(x) = var(x - x_0),
    which also avoids cancellation when the mean is large), so that an input constant along
    ``axis`` gives a variance of exactly 0. Derivative: 2 (x - mean(x)) / (n - ddof)."""
    xs = shape(x)
    axes = _normalize_axis(axis, len(xs))
    n = int(_np.prod([xs[a] for a in axes], dtype=_np.int64))
    if n - ddof <= 0:
        s = sum(x, axis=axes, keepdims=keepdims)
        if n == 0 and int(_np.prod(shape(s), dtype=_np.int64)) == 0:
            return s  # an empty result, as NumPy's
        raise _ShapeError(
            f"var: {n} entries along the reduced axes of an array of shape {xs} with ddof={ddof}"
            " leave no degrees of freedom, so the variance is undefined (NumPy returns inf or "
            "NaN with a warning); reduce over more entries or lower ddof."
        )
    if axes:
        x = x - getitem(x, tuple(slice(0, 1) if i - len(xs) in axes else slice(None)
                                 for i in range(len(xs))))
    d = x - mean(x, axis=axes, keepdims=True)
    return sum(d * d, axis=axes, keepdims=keepdims) * (1.0 / float(n - ddof))


def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Standard deviation ``sqrt(var(x, axis, ddof))`` (a composite).

    Derivative (x - mean(x)) / ((n - ddof) std(x)) where std(x) > 0. Where x is constant along
    ``axis`` std is 0 and not differentiable (sqrt at 0, a norm's kink): differentiating there
    raises :class:`~kinkgrad.errors.KinkgradError` from sqrt. Write ``knp.sqrt(knp.var(x) +
    eps)`` to smooth it, or ``knp.linalg.norm(x - knp.mean(x)) / sqrt(n - ddof)`` to take the
    kink policy's choice."""
    return sqrt(var(x, axis=axis, ddof=ddof, keepdims=keepdims))


def square(x: Any) -> Any:
    """``x * x`` (the primitive, not the operator: a bare tensor's ``*`` kept autograd)."""
    return multiply(x, x)


def expand_dims(x: Any, axis: int) -> Any:
    s = list(shape(x))
    axis = axis % (len(s) + 1)
    return reshape(x, tuple(s[:axis] + [1] + s[axis:]))


def squeeze(x: Any, axis: Any = None) -> Any:
    s = shape(x)
    if axis is None:
        return reshape(x, tuple(d for d in s if d != 1))
    axes = {a % len(s) for a in ((axis,) if isinstance(axis, int) else axis)}
    return reshape(x, tuple(d for i, d in enumerate(s) if i not in axes))


def ravel(x: Any) -> Any:
    return reshape(x, (-1,))


def swapaxes(x: Any, a: int, b: int) -> Any:
    axes = list(range(ndim(x)))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, tuple(axes))


def outer(a: Any, b: Any) -> Any:
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x - logsumexp(x))`` along ``axis`` (smooth)."""
    return exp(subtract(x, logsumexp(x, axis=axis, keepdims=True)))


def log_softmax(x: Any, axis: int = -1) -> Any:
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))


_HELPERS = ("argmax", "argmin", "argsort", "shape", "ndim")
# nonsmooth composites: linear maps of sort, whose kink choice is sort's (see _order.py)
_SORT_COMPOSITES = ("median", "quantile", "percentile", "topk")
_COMPOSITES = ("mean", "var", "std", "square", "expand_dims", "squeeze", "ravel", "swapaxes",
               "outer", "softmax", "log_softmax", "dot", "asarray", "array",
               "take_along_axis")


def _ufunc_table() -> dict:
    return {_np.add: add, _np.subtract: subtract, _np.multiply: multiply,
            _np.divide: divide, _np.negative: negative, _np.power: power,
            _np.absolute: abs, _np.maximum: maximum, _np.minimum: minimum, _np.exp: exp,
            _np.log: log, _np.log1p: log1p, _np.sqrt: sqrt, _np.tanh: tanh, _np.sin: sin,
            _np.cos: cos, _np.matmul: matmul, _np.greater: greater,
            _np.greater_equal: greater_equal, _np.less: less, _np.less_equal: less_equal,
            _np.equal: equal, _np.not_equal: not_equal, _np.square: square,
            _np.positive: lambda x: x, _np.logaddexp: logaddexp}


def _function_table() -> dict:
    return {_np.sum: sum, _np.prod: prod, _np.cumsum: cumsum, _np.mean: mean, _np.var: var,
            _np.std: std, _np.max: max, _np.amax: max, _np.min: min, _np.amin: min,
            _np.argmax: argmax, _np.argmin: argmin, _np.clip: clip, _np.sort: sort,
            _np.where: where, _np.dot: dot,
            _np.matmul: matmul, _np.reshape: reshape, _np.transpose: transpose,
            _np.concatenate: concatenate, _np.stack: stack, _np.broadcast_to: broadcast_to,
            _np.linalg.norm: linalg.norm, _np.expand_dims: expand_dims, _np.squeeze: squeeze,
            _np.ravel: ravel, _np.swapaxes: swapaxes, _np.outer: outer, _np.shape: shape,
            _np.ndim: ndim, _np.asarray: asarray, _np.array: asarray,
            _np.zeros_like: zeros_like, _np.ones_like: ones_like, _np.full_like: full_like,
            _np.einsum: einsum, _np.median: median, _np.quantile: quantile,
            _np.percentile: percentile, _np.argsort: argsort,
            _np.take_along_axis: take_along_axis}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise _Unsupported(
        f"kinkgrad.numpy.{name} does not exist: kinkgrad traces only functions it has rules "
        "for. Run `kinkgrad info` for the list, write it from those, or register a primitive "
        "with kinkgrad.extend."
    )


def __dir__() -> list[str]:
    """The traced namespace: functions, constants and dtypes (no imported helpers)."""
    hidden = {"annotations", "Any", "Callable", "Sequence"}
    return sorted(n for n, v in globals().items()
                  if not n.startswith("_") and n not in hidden
                  and (not isinstance(v, type(_np)) or n == "linalg"))


# --- the traced array's methods and operators are the functions above, bound now ------------
import sys as _sys  # noqa: E402

from . import _methods  # noqa: E402

_methods.attach(_sys.modules[__name__])
