"""ESSH face detector (docs/protocol.md, "The ESSH detector"): boxes, scores
and 5 points."""
import collections
import os

import cv2
import mxnet as mx
import numpy as np

import cython_ext

from .base import Detections, Detector

STRIDES = (32, 16, 8)
ANCHOR_SCALES = {32: (32, 16), 16: (8, 4), 8: (2, 1)}
BASE_SIZE = 16
PIXEL_MEANS = (123.68, 116.779, 103.939)    # R, G, B
PRE_NMS_TOP = 1000
NMS_THRESHOLD = 0.3


def base_anchors(scales, base=BASE_SIZE):
    """(A, 4) squares of side base*s centred on ((base-1)/2, (base-1)/2)."""
    centre = (base - 1) / 2.0
    half = np.array([(base * s - 1) / 2.0 for s in scales], dtype=np.float32)
    return np.stack([centre - half, centre - half, centre + half, centre + half],
                    axis=1).astype(np.float32)


def _anchor_geometry(anchors):
    """Width, height and centre of anchors with the +1 convention."""
    widths = anchors[:, 2] - anchors[:, 0] + 1.0
    heights = anchors[:, 3] - anchors[:, 1] + 1.0
    centre_x = anchors[:, 0] + 0.5 * (widths - 1.0)
    centre_y = anchors[:, 1] + 0.5 * (heights - 1.0)
    return widths, heights, centre_x, centre_y


def decode_boxes(anchors, deltas):
    """Box regression with the +1 convention (x1, y1, x2, y2)."""
    widths, heights, cx, cy = _anchor_geometry(anchors)
    px = deltas[:, 0] * widths + cx
    py = deltas[:, 1] * heights + cy
    pw = np.exp(deltas[:, 2]) * widths
    ph = np.exp(deltas[:, 3]) * heights
    return np.stack([px - 0.5 * (pw - 1.0), py - 0.5 * (ph - 1.0),
                     px + 0.5 * (pw - 1.0), py + 0.5 * (ph - 1.0)], axis=1)


def decode_landmarks(anchors, deltas):
    """(N, 10) points: x = dx w + cx, y = dy h + cy with the anchor's w, h, cx, cy."""
    widths, heights, cx, cy = _anchor_geometry(anchors)
    out = np.empty_like(deltas)
    out[:, 0::2] = deltas[:, 0::2] * widths[:, None] + cx[:, None]
    out[:, 1::2] = deltas[:, 1::2] * heights[:, None] + cy[:, None]
    return out


class ESSHDetector(Detector):
    """ESSH from `prefix-symbol.json` + `prefix-%04d.params` on `ctx`:
    boxes, scores and five points. One bound executor per image shape is
    kept for the last EXECUTORS shapes, so memory stays bounded over a
    folder of photos of many sizes."""
    box_shift = 0.0         # the original's crop of an ESSH box: 1.2 x, centred
    EXECUTORS = 4

    def __init__(self, prefix, epoch=0, ctx=None, threshold=0.4, scales=(1.0,)):
        super(ESSHDetector, self).__init__(threshold)
        self.ctx, self.scales = ctx or mx.cpu(), scales
        for path in ('%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch)):
            if not os.path.isfile(path):
                raise FileNotFoundError('ESSH detector file %s does not exist (download it with '
                                        '`python -m tools.download essh`)' % path)
        self.sym, self.arg_params, self.aux_params = mx.model.load_checkpoint(prefix, epoch)
        self._executors = collections.OrderedDict()
        self._anchors = {s: base_anchors(ANCHOR_SCALES[s]) for s in STRIDES}

    def _executor(self, shape):
        exe = self._executors.pop(shape, None)
        if exe is None:
            while len(self._executors) >= self.EXECUTORS:
                self._executors.popitem(last=False)
            exe = self.sym.simple_bind(self.ctx, data=shape, grad_req='null')
            exe.copy_params_from(self.arg_params, self.aux_params, allow_extra_params=True)
        self._executors[shape] = exe
        return exe

    def _forward(self, image_rgb):
        data = image_rgb.astype(np.float32) - np.array(PIXEL_MEANS, dtype=np.float32)
        data = data.transpose(2, 0, 1)[None]
        exe = self._executor(data.shape)
        exe.forward(is_train=False, data=mx.nd.array(data, ctx=self.ctx))
        return [o.asnumpy() for o in exe.outputs]

    def _proposals(self, image_rgb, scale, strides):
        """(boxes+score+landmarks rows) of one scale, in original pixels."""
        if scale != 1.0:
            image_rgb = cv2.resize(image_rgb, None, fx=scale, fy=scale,
                                   interpolation=cv2.INTER_LINEAR)
        height, width = image_rgb.shape[:2]
        outputs = self._forward(image_rgb)
        rows = []
        for i, stride in enumerate(STRIDES):
            if stride not in strides:
                continue
            cls, bbox, lmk = outputs[3 * i:3 * i + 3]
            num_anchors = len(ANCHOR_SCALES[stride])
            h, w = cls.shape[2], cls.shape[3]
            scores = cls[0, num_anchors:].transpose(1, 2, 0).reshape(-1)
            deltas = bbox[0].transpose(1, 2, 0).reshape(-1, 4)
            points = lmk[0].transpose(1, 2, 0).reshape(-1, 10)
            anchors = cython_ext.anchors_plane(h, w, stride, self._anchors[stride]).reshape(-1, 4)
            order = np.argsort(-scores, kind='stable')[:PRE_NMS_TOP]
            boxes = decode_boxes(anchors[order], deltas[order])
            marks = decode_landmarks(anchors[order], points[order])
            boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width - 1)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height - 1)
            marks[:, 0::2] = np.clip(marks[:, 0::2], 0, width - 1)
            marks[:, 1::2] = np.clip(marks[:, 1::2], 0, height - 1)
            rows.append(np.hstack([boxes / scale, scores[order, None], marks / scale]))
        return rows

    def detect_rows(self, img_bgr, threshold=0.4, scales=(1.0,)):
        """The contract of docs/protocol.md: rows (x1, y1, x2, y2,
        score, 5 x (x, y)), best first; (0, 15) when there is no face."""
        image_rgb = np.ascontiguousarray(img_bgr[:, :, ::-1])
        rows = []
        for k, scale in enumerate(scales):
            strides = STRIDES if (len(scales) == 1 or k < len(scales) - 1) else STRIDES[1:]
            rows += self._proposals(image_rgb, float(scale), strides)
        if not rows:
            return np.zeros((0, 15), dtype=np.float32)
        dets = np.vstack(rows).astype(np.float32)
        dets = dets[np.argsort(-dets[:, 4], kind='stable')]
        keep = cython_ext.nms(np.ascontiguousarray(dets[:, :5]), NMS_THRESHOLD)
        dets = dets[keep]
        return dets[dets[:, 4] >= threshold]

    def _detect(self, image_bgr):
        rows = self.detect_rows(image_bgr, self.threshold, self.scales).astype(np.float64)
        return Detections(rows[:, :4], rows[:, 4], rows[:, 5:].reshape(-1, 5, 2))
