# cython: language_level=3, boundscheck=False, wraparound=False
"""Anchor planes: every base anchor shifted to every cell of a feature map."""
import numpy as np
cimport numpy as np

np.import_array()


def anchors_plane(int height, int width, int stride, np.ndarray[np.float32_t, ndim=2] base):
    """(height, width, A, 4) anchors: base anchor a shifted by
    (x * stride, y * stride) for cell (y, x)."""
    cdef int A = base.shape[0]
    cdef np.ndarray[np.float32_t, ndim=4] out = np.zeros((height, width, A, 4), dtype=np.float32)
    cdef int a, x, y
    cdef float sx, sy
    for y in range(height):
        sy = y * stride
        for x in range(width):
            sx = x * stride
            for a in range(A):
                out[y, x, a, 0] = base[a, 0] + sx
                out[y, x, a, 1] = base[a, 1] + sy
                out[y, x, a, 2] = base[a, 2] + sx
                out[y, x, a, 3] = base[a, 3] + sy
    return out
