"""NumPy scalars beside tensors on the torch backend.

``torch._numpy`` takes a Python float, int or bool beside a tensor as a weak scalar (NEP 50)
and looks its dtype up by ``type(x)``; ``np.float64`` and ``np.int64``'s subclasses of them
(``np.float64`` is a ``float``) missed that table, so ``knp.maximum(t, np.float64(0))`` and
``t * np.float64(2)`` in a function differentiated on tensors raised ``KeyError: <class
'numpy.float64'>``. The lookup is given the Python type they derive from; it changes nothing
for the types it knew.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["accept_numpy_scalars"]


def accept_numpy_scalars(dtypes_impl: types.ModuleType) -> None:
    """Make ``dtypes_impl._dtype_for_scalar`` (torch._numpy's) accept subclasses of bool,
    int, float and complex (once)."""
    lookup = getattr(dtypes_impl, "_dtype_for_scalar", None)
    if lookup is None or getattr(lookup, "_kinkgrad", False):
        return

    def dtype_for_scalar(py_type: Any) -> Any:
        try:
            return lookup(py_type)
        except KeyError:
            for base in (bool, int, float, complex):
                if isinstance(py_type, type) and issubclass(py_type, base):
                    return lookup(base)
            raise

    dtype_for_scalar._kinkgrad = True  # type: ignore[attr-defined]
    dtypes_impl._dtype_for_scalar = dtype_for_scalar
