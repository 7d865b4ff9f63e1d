"""Detector helpers: NMS, anchor planes and box overlaps.

The Cython versions are built by `make`; when they are not built the NumPy
versions below are used, which give identical results.
"""
import numpy as np


def nms_numpy(dets, thresh):
    """Indices kept by greedy NMS (+1 area convention), best score first;
    suppresses IoU > thresh. Ties keep their input order."""
    dets = np.asarray(dets, dtype=np.float32)
    boxes = dets[:, :4].astype(np.float64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-dets[:, 4], kind='stable')
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        with np.errstate(divide='ignore', invalid='ignore'):   # degenerate boxes give NaN
            ovr = inter / (areas[i] + areas[rest] - inter)
        order = rest[ovr <= thresh]
    return keep


def anchors_plane_numpy(height, width, stride, base):
    """(height, width, A, 4) anchors: base shifted by (x*stride, y*stride)."""
    base = np.asarray(base, dtype=np.float32)
    ys, xs = np.meshgrid(np.arange(height) * stride, np.arange(width) * stride, indexing='ij')
    shifts = np.stack([xs, ys, xs, ys], axis=-1).astype(np.float32)
    return shifts[:, :, None, :] + base[None, None, :, :]


def bbox_overlaps_numpy(boxes, query):
    """(N, K) IoU with the +1 area convention (double inside, float32 out)."""
    boxes = np.asarray(boxes, dtype=np.float32).astype(np.float64)
    query = np.asarray(query, dtype=np.float32).astype(np.float64)
    iw = (np.minimum(boxes[:, None, 2], query[None, :, 2])
          - np.maximum(boxes[:, None, 0], query[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], query[None, :, 3])
          - np.maximum(boxes[:, None, 1], query[None, :, 1]) + 1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_q = (query[:, 2] - query[:, 0] + 1) * (query[:, 3] - query[:, 1] + 1)
    union = area_b[:, None] + area_q[None, :] - inter
    return np.where(inter > 0, inter / union, 0).astype(np.float32)


try:
    from ._nms import nms
    from ._anchors import anchors_plane
    from ._bbox import bbox_overlaps
    BUILT = True
except ImportError:
    nms, anchors_plane, bbox_overlaps = nms_numpy, anchors_plane_numpy, bbox_overlaps_numpy
    BUILT = False
