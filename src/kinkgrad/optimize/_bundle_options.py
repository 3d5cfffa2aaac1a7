"""The bundle method's options (:func:`kinkgrad.optimize.bundle.run`): their ranges."""

from __future__ import annotations

from .._core.checks import is_int, is_real
from .common import check_option

__all__ = ["check_options"]


def check_options(bundle_size: object, gamma: object, m_serious: object, radius: object,
                  metric: object, finish: object) -> None:
    """KinkgradError naming the first option of the bundle method out of its range."""
    for ok, name, value, fix in (
            (is_int(bundle_size) and bundle_size >= 1, "bundle_size", bundle_size,
             "pass an integer >= 1"),
            (is_real(gamma) and gamma >= 0, "gamma", gamma, "pass a finite number >= 0"),
            (is_real(m_serious) and 0 < m_serious < 1, "m_serious", m_serious,
             "pass a number in (0, 1)"),
            (radius is None or (is_real(radius) and radius > 0), "radius", radius,
             "pass a finite number > 0 or None"),
            (metric in ("bfgs", "scalar"), "metric", metric, "choose 'bfgs' or 'scalar'"),
            (isinstance(finish, bool), "finish", finish, "pass True or False")):
        check_option("bundle", ok, name, value, fix)  # type: ignore[arg-type]
