"""The argument kinds the public functions check: an integer and a real number, neither a
bool (``True`` is an int to Python, never a count or a rate to a user)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["is_int", "is_real"]


def is_int(v: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v: Any, finite: bool = True) -> bool:
    """A Python or NumPy real number (an integer or a float), not a bool; with ``finite``
    also finite."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)) and (not finite or bool(np.isfinite(v))))
