"""The dictionary of elementary functions: one file per family, one class per primitive.

Importing this package registers every primitive (see ``primitives/README.md``).
"""

from . import (  # noqa: F401
    arith,
    conv,
    einsum,
    linalg,
    piecewise,
    pool,
    reduce,
    select,
    shape,
    smooth,
    special,
    spectral,
)
