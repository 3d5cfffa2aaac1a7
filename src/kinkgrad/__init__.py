"""kinkgrad: algorithmic differentiation of nonsmooth programs.

Trace a NumPy-style function (``import kinkgrad.numpy as knp``), get a conservative gradient
cheaply (``grad``), a certificate or a guaranteed Clarke gradient when it matters
(``certify``, ``clarke_grad``), exact directional derivatives (``directional``), the
abs-normal form (``abs_normal_form``) and cost reports (``cost``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import primitives as _primitives  # noqa: F401  (registers the dictionary)
from . import problems as problems
from ._core.program import Program as Program
from .abs_normal import abs_normal_form as abs_normal_form
from .abs_normal import certify as certify
from .abs_normal import clarke_grad as clarke_grad
from .abs_normal import directional as directional
from .abs_normal import in_clarke as in_clarke
from .abs_normal import ld_derivative as ld_derivative
from .abs_normal import minimality as minimality
from .abs_normal import stationarity as stationarity
from .abs_normal import subdifferential as subdifferential
from .cost import cost as cost
from .debugging import debug_print as debug_print
from .errors import KinkgradError as KinkgradError
from .kinks import KinkPolicy as KinkPolicy
from .kinks import kink_policy as kink_policy
from .modes.api import grad as grad
from .modes.api import jacobian as jacobian
from .modes.api import jvp as jvp
from .modes.api import trace as trace
from .modes.api import value_and_grad as value_and_grad
from .modes.api import vjp as vjp
from .modes.rounding import rounding_error as rounding_error
from .modes.vmap import per_example_grad as per_example_grad
from .modes.vmap import vmap as vmap
from .optimize import minimize as minimize

try:
    __version__ = _version("kinkgrad")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+local"

__all__ = [
    "KinkPolicy",
    "KinkgradError",
    "Program",
    "abs_normal_form",
    "certify",
    "clarke_grad",
    "cost",
    "debug_print",
    "directional",
    "grad",
    "in_clarke",
    "jacobian",
    "jvp",
    "kink_policy",
    "ld_derivative",
    "minimality",
    "minimize",
    "per_example_grad",
    "problems",
    "rounding_error",
    "stationarity",
    "subdifferential",
    "trace",
    "value_and_grad",
    "vjp",
    "vmap",
    "__version__",
]


def __dir__() -> list[str]:
    """The public surface only (no ``annotations``, ``PackageNotFoundError``, ...)."""
    subpackages = ["abs_normal", "errors", "extend", "hardness", "interop", "nn", "numpy",
                   "optimize", "problems", "testing"]
    return sorted(set(__all__) | set(subpackages))
