"""``knp.linalg``: ``norm`` with declared derivatives at kinks: vector norms (ord 1, 2, inf)
and, over two axes as NumPy reads them, matrix norms (ord 1, -1, inf, -inf, 'fro', 'nuc', 2;
see ``primitives/_matnorm.py`` and ``primitives/spectral.py``)."""

from __future__ import annotations

from typing import Any

from .._core.primitive import registry

norm = registry()["norm"]


def __getattr__(name: str) -> Any:
    from ..errors import UnknownNameError as UnsupportedOperationError

    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedOperationError(
        f"kinkgrad.numpy.linalg.{name} does not exist; only linalg.norm (vector ord 1, 2, inf; "
        "matrix ord 1, -1, inf, -inf, 'fro', 'nuc', 2) is provided."
    )
