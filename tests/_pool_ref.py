"""A plain-NumPy reference of ``F.max_pool2d`` written from the definition (a loop over
output positions, the window gathered by explicit indices; no shared code with the
primitive)."""

from __future__ import annotations

import numpy as np


def max_pool2d_ref(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple = (0, 0),
                   dilation: tuple = (1, 1)) -> np.ndarray:
    """``y[n, c, p, q] = max_{i, j} xpad[n, c, p sh + i dh, q sw + j dw]`` (-inf padding)."""
    x = np.asarray(x, np.float64)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.empty((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            rows = [p * sh + i * dh for i in range(kh) for _ in range(kw)]
            cols = [q * sw + j * dw for _ in range(kh) for j in range(kw)]
            y[:, :, p, q] = xp[:, :, rows, cols].max(axis=-1)
    return y
