"""Arguments a kinkgrad function does not take: a ``KinkgradError`` naming the function and
what it supports, instead of Python's ``TypeError`` naming an internal class
(``Sort.__call__() got an unexpected keyword argument 'order'``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import KinkgradError, UnsupportedOperationError

__all__ = ["checked_call", "signature_error"]


def _supported(fn: Callable, skip_self: bool) -> str:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "?"
    if skip_self and params:
        params = params[1:]
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}="
                     for p in params if p.kind not in (p.VAR_KEYWORD,))


def signature_error(name: str, fn: Callable, args: tuple, kwargs: dict,
                    skip_self: bool = False) -> UnsupportedOperationError | None:
    """The error for a call of ``fn`` whose arguments do not bind (None when they do: the
    ``TypeError`` came from inside and is not about the arguments)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
        return None
    except TypeError as exc:
        why = str(exc)
    except ValueError:
        return None
    takes = _supported(fn, skip_self)
    extra = [k for k in kwargs if k not in takes.replace("=", "").split(", ")]
    if not extra:
        return UnsupportedOperationError(f"knp.{name}: {why}; it takes ({takes}).")
    return UnsupportedOperationError(
        f"knp.{name}: the keyword argument{'s' if len(extra) > 1 else ''} "
        f"{', '.join(e + '=' for e in extra)} {'are' if len(extra) > 1 else 'is'} not "
        f"supported; it takes ({takes}). NumPy options such as order=, initial=, where=, "
        "out=, dtype= have no traced rule: compute the same thing from supported calls (e.g. "
        "knp.maximum(knp.max(x), c) for initial=c), or apply them to constants outside the "
        "traced function."
    )


def checked_call(call: Callable) -> Callable:
    """Wrap a primitive's ``__call__`` so that arguments it does not take raise
    :func:`signature_error` (the normal path costs one frame and a ``try``)."""

    @functools.wraps(call)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(self, *args, **kwargs)
        except TypeError as exc:
            if isinstance(exc, KinkgradError):
                raise
            err = signature_error(self.numpy_name or self.name, call, (self, *args), kwargs,
                                  skip_self=True)
            if err is None:
                raise
            raise err from None

    checked._kinkgrad_checked = True  # type: ignore[attr-defined]
    return checked
