"""Array backends: the engine runs on NumPy (default) or on torch tensors (CPU or CUDA).

The rules of every primitive are written against NumPy's API through the module-level name
``np``. For torch inputs, kinkgrad evaluates the same rules with ``torch._numpy`` (PyTorch's
NumPy-compatible layer over tensors, which keeps the tensors' device) bound to that name, so
there is one set of rules for every backend. The backend follows the input arrays.

Threads: the binding is process-wide, so calls on different backends in different threads
take turns: calls on one backend share it (several threads at once), and a call on another
backend waits until they are done. The public entry points hold it (``follow_inputs`` and
``on_numpy``); a bare ``kinkgrad.numpy`` function called outside them on NumPy arrays while
another thread runs a torch call does not (holding it costs about 3 us a call, more than
such a call itself), and should not be mixed that way.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import numpy

from ._torch_scalars import accept_numpy_scalars

__all__ = ["namespace_of", "use_namespace", "to_backend", "from_backend", "is_torch", "is_cupy",
           "cupy_numpy", "follow_inputs", "set_torch_fast", "torch_active", "on_numpy",
           "check_torch_dtypes"]

_MODULES = (
    "kinkgrad._core.primitive", "kinkgrad._core.tracer", "kinkgrad._core.program",
    "kinkgrad.modes.sweeps", "kinkgrad.modes.api", "kinkgrad.modes._traced",
    "kinkgrad.modes._nonfinite",
    "kinkgrad.modes._discard", "kinkgrad.modes._finite",
    "kinkgrad.primitives.arith", "kinkgrad.primitives.smooth", "kinkgrad.primitives.piecewise",
    "kinkgrad.primitives._lastaxis",
    "kinkgrad.primitives.reduce", "kinkgrad.primitives.linalg", "kinkgrad.primitives.select",
    "kinkgrad.primitives.shape",
    "kinkgrad.primitives.conv", "kinkgrad.primitives.pool",
    "kinkgrad.primitives.special", "kinkgrad.primitives.einsum", "kinkgrad.primitives.spectral",
)


def is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and type(x).__name__ in ("Tensor", "Parameter")


_TORCH_NS: list[types.ModuleType] = []
_NS_LOCK = threading.RLock()


def is_cupy(x: Any) -> bool:
    """CuPy arrays mirror NumPy's API, so the rules run on them with ``np`` bound to
    :func:`cupy_numpy` (no CUDA machine runs the tests: they check, against CuPy 14.2's
    recorded namespace, that every NumPy name the rules use exists there)."""
    return type(x).__module__.startswith("cupy")


_CUPY_NS: list[types.ModuleType] = []


def cupy_numpy(base: types.ModuleType | None = None) -> types.ModuleType:
    """CuPy's namespace (or ``base``'s) completed with what the rules use and CuPy lacks:
    ``errstate`` (CuPy keeps no floating-point error state; NumPy's context manager leaves
    CuPy arrays alone)."""
    if base is None and _CUPY_NS:
        return _CUPY_NS[0]
    src = importlib.import_module("cupy") if base is None else base
    ns = types.ModuleType("kinkgrad.backends.cupy_numpy")
    ns.__dict__.update({k: v for k, v in vars(src).items() if not k.startswith("__")})
    if not hasattr(src, "errstate"):
        ns.errstate = numpy.errstate
    if base is None:
        _CUPY_NS.append(ns)
    return ns


_TORCH_FAST = [os.environ.get("KINKGRAD_TORCH_FAST", "1") != "0"]


def set_torch_fast(enabled: bool) -> bool:
    """Use (default) or leave out the fast paths of ``_torch_fast`` on torch tensors (the
    plain ``torch._numpy`` functions give the same results, slower); returns the previous
    setting. The environment variable ``KINKGRAD_TORCH_FAST=0`` starts with them off."""
    previous, _TORCH_FAST[0] = _TORCH_FAST[0], bool(enabled)
    return previous


def _torch_numpy() -> types.ModuleType:
    """The namespace the rules run with on torch tensors: by default :func:`_torch_plain`
    with the fast paths of ``_torch_fast`` (hot functions and ``ndarray`` operators calling
    torch directly on the common argument kinds), else :func:`_torch_plain` itself."""
    if not _TORCH_FAST[0]:
        return _torch_plain()
    if len(_TORCH_NS) < 2:
        with _NS_LOCK:  # built once, even when threads ask for it at the same time
            if len(_TORCH_NS) < 2:
                from . import _torch_fast

                _TORCH_NS.append(_torch_fast.install(_torch_plain()))
    return _TORCH_NS[1]


def _torch_plain() -> types.ModuleType:
    """``torch._numpy``'s namespace with what the rules use that it lacks (NumPy's shapes)."""
    if _TORCH_NS:
        return _TORCH_NS[0]
    with _NS_LOCK:
        return _TORCH_NS[0] if _TORCH_NS else _build_torch_plain()


def _build_torch_plain() -> types.ModuleType:
    import torch

    base = importlib.import_module("torch._numpy")
    _cache_signatures(importlib.import_module("torch._numpy._normalizations"))
    accept_numpy_scalars(importlib.import_module("torch._numpy._dtypes_impl"))
    tnp = types.ModuleType("kinkgrad.backends.torch_numpy")
    tnp.__dict__.update({k: v for k, v in vars(base).items() if not k.startswith("__")})

    def lexsort(keys: Any, axis: int = -1) -> Any:
        keys = [tnp.asarray(k).tensor for k in keys]
        idx = torch.argsort(keys[0], dim=axis, stable=True)
        for k in keys[1:]:
            kk = torch.take_along_dim(k, idx, dim=axis)
            idx = torch.take_along_dim(idx, torch.argsort(kk, dim=axis, stable=True), dim=axis)
        return tnp.asarray(idx)

    def partition(a: Any, kth: int, axis: int = -1) -> Any:
        return tnp.sort(a, axis=axis)

    def shape(a: Any) -> tuple:
        s = getattr(a, "shape", None)
        return tuple(s) if s is not None else numpy.shape(a)

    def ndim(a: Any) -> int:
        return len(shape(a))

    def size(a: Any) -> int:
        return int(numpy.prod(shape(a), dtype=numpy.int64))

    def squeeze(a: Any, axis: Any = None) -> Any:
        # torch._numpy mishandles a tuple of negative axes: squeeze by reshaping instead
        a = base.asarray(a)
        shp = tuple(a.shape)
        if axis is None:
            return a.reshape(tuple(d for d in shp if d != 1))
        axes = {int(ax) % len(shp) for ax in (axis if isinstance(axis, tuple) else (axis,))}
        return a.reshape(tuple(d for i, d in enumerate(shp) if i not in axes))

    def prod(a: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        # torch._numpy reduces a product over one axis only: reduce the axes one at a time,
        # the last first so that the other indices stay valid
        if not isinstance(axis, tuple) or len(axis) < 2:
            return base.prod(a, axis=axis, keepdims=keepdims, **kw)
        a = base.asarray(a)
        for ax in sorted((int(x) % a.ndim for x in axis), reverse=True):
            a = base.prod(a, axis=ax, keepdims=keepdims, **kw)
        return a

    tnp.squeeze = squeeze
    tnp.prod = prod
    tnp.lexsort = lexsort
    tnp.partition = partition
    tnp.errstate = numpy.errstate
    tnp.shape, tnp.ndim, tnp.size = shape, ndim, size
    tnp.random = numpy.random
    _TORCH_NS.append(tnp)
    return tnp


def _cache_signatures(normalizations: types.ModuleType) -> None:
    """``torch._numpy`` normalizes the arguments of every call with ``inspect.signature`` of
    the wrapped function, computed anew each time (about a third of the engine's time on an
    MLP on the CPU). A function's signature never changes, so its module gets an ``inspect``
    whose ``signature`` is cached; everything else is the real ``inspect``."""
    import functools
    import inspect

    if getattr(normalizations, "inspect", None) is not inspect:
        return  # already done, or a torch whose module differs: leave it alone
    shim = types.ModuleType("inspect_cached")
    shim.__dict__.update(vars(inspect))
    shim.signature = functools.lru_cache(maxsize=None)(inspect.signature)
    normalizations.inspect = shim


class _Binding:
    """The namespace bound to ``np`` in the rules' modules, how many open blocks use it, and
    the bindings it replaced (to put back when the last block leaves)."""

    __slots__ = ("ns", "count", "saved", "below")

    def __init__(self, ns: types.ModuleType, saved: list, below: _Binding | None) -> None:
        self.ns, self.count, self.saved, self.below = ns, 0, saved, below


_TOP: list[_Binding | None] = [None]
_HOLDS: dict[int, int] = {}  # thread -> open use_namespace blocks
_COND = threading.Condition(threading.Lock())
_NUMPY_TOP = _Binding(numpy, [], None)  # NumPy held while nothing else is bound (reused)
_get_ident = threading.get_ident


def _bind(ns: types.ModuleType) -> list:
    saved = []
    for name in _MODULES:
        mod = sys.modules.get(name) or importlib.import_module(name)
        saved.append((mod, mod.np))
        mod.np = ns
    return saved


def _others_hold(me: int) -> bool:
    return any(n for t, n in _HOLDS.items() if t != me)


_WAITING: set[int] = set()  # threads waiting in _enter for another namespace


def _enter(ns: types.ModuleType) -> _Binding:
    """Hold a binding of ``ns``: share the one in force when it is ``ns``, else wait until no
    other thread holds one and bind ``ns``."""
    # NOTE: no priority for a waiting thread of the other backend: threads that a holder
    # starts and joins (workers inside a NumPy call) would then wait for a thread that waits
    # for the holder. With two threads streaming NumPy calls a torch call got its turn within
    # 0.8 s (the GIL leaves gaps in which no thread is inside a call).
    me = _get_ident()
    with _COND:
        while True:
            top = _TOP[0]
            if top is None and ns is numpy:  # nothing bound: the modules hold NumPy already
                top = _TOP[0] = _NUMPY_TOP
            if top is not None and top.ns is ns:
                break  # share it
            if not _others_hold(me):
                top = _TOP[0] = _Binding(ns, _bind(ns), top)
                break
            if _HOLDS.get(me) and all(t in _WAITING for t, n in _HOLDS.items()
                                      if t != me and n):
                from ..errors import UnsupportedOperationError

                raise UnsupportedOperationError(
                    "kinkgrad: two threads each inside a call on one array backend wait for "
                    "each other to start a call on another (NumPy inside torch, or torch "
                    "inside NumPy); run those nested calls in one thread.")
            _WAITING.add(me)
            try:
                _COND.wait()
            finally:
                _WAITING.discard(me)
        top.count += 1
        _HOLDS[me] = _HOLDS.get(me, 0) + 1
    return top


def _leave(top: _Binding) -> None:
    me = _get_ident()
    with _COND:
        top.count -= 1
        n = _HOLDS[me] - 1
        if n:
            _HOLDS[me] = n
        else:
            del _HOLDS[me]
        if not top.count and _TOP[0] is top:  # the last block out puts back the binding below
            for mod, old in top.saved:
                mod.np = old
            _TOP[0] = top.below
        if _WAITING:
            _COND.notify_all()


@contextlib.contextmanager
def use_namespace(ns: types.ModuleType) -> Iterator[None]:
    """Bind ``np`` in every module holding rules to ``ns`` for the duration of the block.

    Blocks with the same namespace in several threads share the binding (the last one out
    restores); a block with another namespace waits until no other thread is inside one,
    so two threads never run rules on each other's namespace (NumPy calls hold a NumPy
    block, see :func:`on_numpy`)."""
    top = _enter(ns)
    operators = getattr(ns, "_fast_operators", contextlib.nullcontext)
    try:
        with operators():  # the torch fast namespace's ndarray operators
            yield
    finally:
        _leave(top)


def on_numpy(fn: Any) -> Any:
    """Decorator: run ``fn`` holding the NumPy binding, so that a call on torch or CuPy
    arrays in another thread waits for it (and it for them): for the entry points whose
    rules run on NumPy only."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _call_on_numpy(fn, args, kwargs)

    return wrapper


def _call_on_numpy(fn: Any, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)`` holding the NumPy binding."""
    top = _enter(numpy)
    try:
        return fn(*args, **kwargs)
    finally:
        _leave(top)


# the torch dtypes torch._numpy (the namespace the rules run with) has a dtype for
_TORCH_NUMPY_DTYPES = ("float16", "float32", "float64", "complex64", "complex128", "int8",
                       "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")
_TORCH_OK: list[frozenset] = []


def check_torch_dtypes(leaves: list, where: str) -> None:
    """Refuse a torch tensor whose dtype the torch backend has no NumPy dtype for (bfloat16,
    float8, ...): an UnsupportedOperationError naming the dtype and the conversion."""
    if not _TORCH_OK:
        import torch

        _TORCH_OK.append(frozenset(getattr(torch, n) for n in _TORCH_NUMPY_DTYPES))
    ok = _TORCH_OK[0]
    for x in leaves:
        if is_torch(x) and x.dtype not in ok:
            from ..errors import UnsupportedOperationError

            name = str(x.dtype).removeprefix("torch.")
            raise UnsupportedOperationError(
                f"{where}: a torch tensor of dtype {name} (shape {tuple(x.shape)}); kinkgrad's "
                "torch backend runs on torch._numpy, which has no NumPy dtype for it. Convert "
                "the tensor (x.float() or x.double(); a model: copy.deepcopy(model).float()) "
                "and cast the gradient back if needed (g.to(torch." + name + ")).")


def torch_active() -> bool:
    """Whether the rules run on torch's namespace now (a call on torch tensors is in
    progress)."""
    top = _TOP[0]
    return top is not None and any(top.ns is t for t in _TORCH_NS)


def namespace_of(leaves: list) -> types.ModuleType:
    return _torch_numpy() if any(is_torch(x) for x in leaves) else numpy


def to_backend(x: Any) -> Any:
    if is_torch(x):
        return _torch_numpy().asarray(x.detach())
    return x


def from_backend(x: Any) -> Any:
    tensor = getattr(x, "tensor", None)
    return tensor if tensor is not None else x


def _device_of(leaves: list) -> Any:
    for x in leaves:
        if is_torch(x):
            return x.device
    return None


def _unwrap_tree(tree: Any) -> Any:
    from .._core import pytree

    if isinstance(tree, (tuple, list, dict)):
        leaves, td = pytree.flatten(tree)
        return pytree.unflatten(td, [_unwrap_tree(x) for x in leaves])
    if callable(tree) and getattr(tree, "_kinkgrad_backend_fn", False):
        return tree
    return from_backend(tree)


_PLAIN = frozenset({numpy.ndarray, float, int, bool, type(None), str})


def _all_plain(tree: Any) -> bool:
    """True when every leaf of ``tree`` is a NumPy array or a Python scalar, checked through
    plain tuples, lists and dicts without building a treedef (False: look closer)."""
    t = type(tree)
    if t in _PLAIN:
        return True
    if t is dict:
        tree = tree.values()
    elif t is not tuple and t is not list:
        return False
    for x in tree:
        if type(x) not in _PLAIN and not _all_plain(x):
            return False
    return True


def follow_inputs(fn: Any) -> Any:
    """Decorator: run ``fn`` on the backend of its array arguments.

    NumPy inputs (the default) run with NumPy and cost nothing extra. When an argument leaf is
    a torch tensor, ``np`` is bound to the torch namespace for the call, tensor factories
    create on the input's device, differentiated inputs become torch-backed arrays, and every
    array in the result is returned as a ``torch.Tensor``. Functions returned by ``fn`` (the
    ``vjp_fn`` of ``vjp``) follow their own inputs in the same way.
    """
    import functools

    from .._core import pytree

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _all_plain(args) and _all_plain(kwargs):  # NumPy arrays and Python numbers
            return _call_on_numpy(fn, args, kwargs)  # torch calls in other threads wait
        leaves = pytree.flatten((args, kwargs))[0]
        if all(type(x) in _PLAIN for x in leaves):  # inside namedtuples and dataclasses
            return _call_on_numpy(fn, args, kwargs)
        device = _device_of(leaves)
        if device is None:
            cp = next((x for x in leaves if is_cupy(x)), None)
            if cp is not None:  # on the first CuPy input's device
                with cp.device, use_namespace(cupy_numpy()):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)
        import torch

        check_torch_dtypes(leaves, getattr(wrapper, "__name__", "kinkgrad"))
        # kinkgrad computes its own derivatives: tensors enter detached from torch's autograd
        args, kwargs = pytree.unflatten(pytree.flatten((args, kwargs))[1], [
            x.detach() if is_torch(x) else x for x in leaves])
        # factories follow the inputs' device; when that is already torch's default device
        # the device mode (a Python hook on every torch call) is left out
        on = contextlib.nullcontext() if device == torch.get_default_device() \
            else torch.device(device)
        with use_namespace(_torch_numpy()), on:
            out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            out = tuple(follow_inputs(o) if callable(o) and not isinstance(o, type) else o
                        for o in out)
        return _unwrap_tree(out)

    wrapper._kinkgrad_backend_fn = True  # type: ignore[attr-defined]
    return wrapper
