"""Clarke-grade derivatives for abs-smooth programs (paper B, Baumgärtner and Bethke,
arXiv 2407.09639, made usable; see ``README.md`` in this folder for the map to the paper).

* :func:`directional` -- exact one-sided directional derivatives, k directions in one sweep.
* :func:`abs_normal_form` -- z = cz + Z dx + L|z|, y = cy + J dx + Y|z| at a point.
* :func:`clarke_grad` -- a limiting gradient for the price of one gradient (and a JVP).
* :func:`ld_derivative` -- lexicographic directional derivatives.
* :func:`certify` -- is plain backward mode's vector a Clarke gradient (LIKQ, groups)?
* :func:`subdifferential`, :func:`in_clarke` -- all limiting gradients of small programs.
* :func:`stationarity` -- is x (nearly) Clarke stationary? A proven verdict and a descent
  direction.
* :func:`minimality` -- is x first-order minimal (no direction descends)? Proven by
  multipliers or sign patterns, or a descent direction.
"""

from __future__ import annotations

from .certify import CertifyReport as CertifyReport
from .certify import certify as certify
from .clarke import ClarkeInfo as ClarkeInfo
from .clarke import clarke_grad as clarke_grad
from .clarke import ld_derivative as ld_derivative
from .directional import directional as directional
from .form import AbsNormalForm as AbsNormalForm
from .form import abs_normal_form as abs_normal_form
from .minimality import MinimalityReport as MinimalityReport
from .minimality import minimality as minimality
from .stationarity import StationarityReport as StationarityReport
from .stationarity import stationarity as stationarity
from .subdiff import EnumerationLimitError as EnumerationLimitError
from .subdiff import Subdifferential as Subdifferential
from .subdiff import in_clarke as in_clarke
from .subdiff import subdifferential as subdifferential

__all__ = [
    "AbsNormalForm",
    "CertifyReport",
    "ClarkeInfo",
    "EnumerationLimitError",
    "MinimalityReport",
    "StationarityReport",
    "Subdifferential",
    "abs_normal_form",
    "certify",
    "clarke_grad",
    "directional",
    "in_clarke",
    "ld_derivative",
    "minimality",
    "stationarity",
    "subdifferential",
]
