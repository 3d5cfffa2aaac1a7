"""Nonsmooth minimization with a certified verdict (``kinkgrad.minimize``).

* :mod:`.bundle` -- proximal bundle method for nonconvex functions (default);
* :mod:`.abs_linear` -- successive abs-linear minimization (Griewank and Walther);
* :mod:`.gradient_sampling` -- gradient sampling (Burke, Lewis and Overton);
* :mod:`.oracle` -- counted evaluations of f, Clarke gradients, abs-normal forms;
* :mod:`.common` -- result record, callback and progress bar, the simplex QP.
"""

from __future__ import annotations

from .api import METHODS as METHODS
from .api import minimize as minimize

__all__ = ["METHODS", "minimize"]
