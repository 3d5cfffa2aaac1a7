"""A plain-NumPy reference of ``F.conv2d`` written from the definition (a loop over output
positions and kernel offsets, no window views, no shared code with the primitive)."""

from __future__ import annotations

import numpy as np


def conv2d_ref(x: np.ndarray, w: np.ndarray, stride: tuple = (1, 1), padding: tuple = (0, 0),
               dilation: tuple = (1, 1), groups: int = 1) -> np.ndarray:
    """``y[n, o, p, q] = sum_{c, i, j} xpad[n, g(o) Cg + c, p sh + i dh, q sw + j dw]
    w[o, c, i, j]``, accumulated in float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for oc in range(o):
        c0 = (oc // og) * cg
        for p in range(oh):
            for q in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        y[:, oc, p, q] += xp[:, c0:c0 + cg, p * sh + i * dh,
                                             q * sw + j * dw] @ w[oc, :, i, j]
    return y
