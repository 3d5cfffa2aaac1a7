"""The dictionary of elementary functions: one file per family, one class per primitive.

Importing this package registers every primitive (see ``primitives/README.md``).
"""

from . import arith, linalg, piecewise, reduce, select, shape, smooth  # noqa: F401
from . import conv  # noqa: F401
