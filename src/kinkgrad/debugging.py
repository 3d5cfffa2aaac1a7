"""Look at traced values without changing what the program is.

Reading ``Tracer.value`` inside f is recorded (``Trace.values_read``): a branch, an index or
a constant computed from it is fixed at the traced point, kinkgrad cannot see where that
changes, and every set-valued answer (``in_clarke``, ``stationarity``, ...) refuses.
Printing decides nothing, so :func:`debug_print` shows the concrete values of the point being
traced and records no read, as ``jax.debug.print`` does for JAX's tracers.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ._core import pytree
from ._core.tracer import is_traced

__all__ = ["debug_print"]


def _concrete(tree: Any) -> Any:
    """``tree`` with each traced array replaced by its value at the traced point (unrecorded)."""
    leaves, treedef = pytree.flatten(tree)
    return pytree.unflatten(treedef, [leaf._value if is_traced(leaf) else leaf
                                      for leaf in leaves])


def debug_print(fmt: str, *args: Any, file: TextIO | None = None, **kwargs: Any) -> None:
    """Print ``fmt.format(*args, **kwargs)``, with every traced array (also inside lists,
    tuples, dicts: pytrees) shown by its concrete value at the point being traced.

    Unlike reading ``x.value`` in f, this records nothing: the traced program, and so every
    answer about f (``in_clarke``, ``certify``, ``stationarity``, ...), is the same as without
    the call. It prints each time f is traced (once per ``grad``, ``certify``, ...; a
    :class:`~kinkgrad.Program` replays its equations without calling f, so it prints only while
    it is recorded, and ``vmap`` traces f at one example and replays the program over the
    batch, so it prints that example's values), and works on plain arrays too::

        >>> import numpy as np, kinkgrad as kg, kinkgrad.numpy as knp
        >>> def f(x):
        ...     z = x - 1.0
        ...     kg.debug_print("z = {}", z)
        ...     return knp.sum(knp.relu(z))
        >>> kg.in_clarke(f, np.array([1.0, 2.0]), np.array([0.5, 1.0]))
        z = [0. 1.]
        True
    """
    print(fmt.format(*_concrete(list(args)), **_concrete(dict(kwargs))),
          file=sys.stdout if file is None else file)
