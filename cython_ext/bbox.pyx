# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Pairwise IoU of two box sets with the +1 area convention (computed in
double, returned as float32)."""
import numpy as np
cimport numpy as np

np.import_array()


def bbox_overlaps(np.ndarray[np.float32_t, ndim=2] boxes,
                  np.ndarray[np.float32_t, ndim=2] query):
    """(N, K) IoU between boxes (N, 4) and query boxes (K, 4)."""
    cdef int N = boxes.shape[0], K = query.shape[0]
    cdef np.ndarray[np.float64_t, ndim=2] out = np.zeros((N, K), dtype=np.float64)
    cdef double iw, ih, qarea, union
    cdef int k, n
    for k in range(K):
        qarea = (<double>query[k, 2] - query[k, 0] + 1) * (<double>query[k, 3] - query[k, 1] + 1)
        for n in range(N):
            iw = <double>min(boxes[n, 2], query[k, 2]) - max(boxes[n, 0], query[k, 0]) + 1
            if iw > 0:
                ih = <double>min(boxes[n, 3], query[k, 3]) - max(boxes[n, 1], query[k, 1]) + 1
                if ih > 0:
                    union = ((<double>boxes[n, 2] - boxes[n, 0] + 1)
                             * (<double>boxes[n, 3] - boxes[n, 1] + 1)
                             + qarea - iw * ih)
                    out[n, k] = iw * ih / union
    return out.astype(np.float32)
