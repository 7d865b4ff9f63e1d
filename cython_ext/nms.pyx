# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Greedy NMS with the +1 area convention of the ESSH detector (IoU in double,
like the NumPy version, so both keep the same boxes)."""
import numpy as np
cimport numpy as np

np.import_array()


def nms(np.ndarray[np.float32_t, ndim=2] dets, double thresh):
    """Indices kept by greedy NMS over rows (x1, y1, x2, y2, score), best
    first; a box is suppressed when its IoU with a kept box exceeds thresh."""
    cdef np.ndarray[np.float64_t, ndim=1] x1 = dets[:, 0].astype(np.float64)
    cdef np.ndarray[np.float64_t, ndim=1] y1 = dets[:, 1].astype(np.float64)
    cdef np.ndarray[np.float64_t, ndim=1] x2 = dets[:, 2].astype(np.float64)
    cdef np.ndarray[np.float64_t, ndim=1] y2 = dets[:, 3].astype(np.float64)
    cdef np.ndarray[np.float64_t, ndim=1] areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    cdef np.ndarray[np.intp_t, ndim=1] order = np.argsort(-dets[:, 4], kind='stable')
    cdef int n = dets.shape[0]
    cdef np.ndarray[np.uint8_t, ndim=1] suppressed = np.zeros(n, dtype=np.uint8)
    cdef int _i, _j, i, j
    cdef double ix1, iy1, ix2, iy2, iarea, w, h, inter, ovr
    keep = []
    for _i in range(n):
        i = order[_i]
        if suppressed[i]:
            continue
        keep.append(i)
        ix1, iy1, ix2, iy2, iarea = x1[i], y1[i], x2[i], y2[i], areas[i]
        for _j in range(_i + 1, n):
            j = order[_j]
            if suppressed[j]:
                continue
            w = max(0.0, min(ix2, x2[j]) - max(ix1, x1[j]) + 1)
            h = max(0.0, min(iy2, y2[j]) - max(iy1, y1[j]) + 1)
            inter = w * h
            ovr = inter / (iarea + areas[j] - inter)
            if not ovr <= thresh:   # NaN overlaps (degenerate boxes) suppress, as in NumPy
                suppressed[j] = 1
    return keep
