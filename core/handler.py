"""Landmarks on photos (PIPELINE.md section 5): detect, align, crop, predict,
decode, map back to photo pixels."""
import os

import cv2
import mxnet as mx
import numpy as np

from data import geometry
from data.images import to_bgr8
from data.landmarks import five_points

from . import protocol
from .predictor import make_predictor
from .protocol import DEFAULT_TOP_RAISE, box_crop, landmark_box

MAX_DETECT_SIDE = 1600      # larger photos are downscaled for detection
ESSH_PREFIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'essh-model', 'essh')
# The cascade's boxes are tighter than ESSH's: the first-pass crop widens them.
CASCADE_BOX_SCALE = 1.6


def plausible_five(five, box):
    """Whether 5 points look like a face in `box`: eye distance 20-80% of
    the box side, the mouth below the eyes by 0.5-2 eye distances. A first
    pass failing this is kept as the answer rather than re-aligned."""
    side = max(box[2] - box[0], box[3] - box[1])
    eyes = five[1] - five[0]
    distance = np.linalg.norm(eyes)
    if not 0.2 * side < distance < 0.8 * side:
        return False
    normal = np.array([-eyes[1], eyes[0]]) / distance
    drop = np.dot((five[3] + five[4]) / 2 - (five[0] + five[1]) / 2, normal)
    return 0.5 * distance < drop < 2.0 * distance


class Handler(object):
    """Face alignment on photos.

        handler = Handler('models/model-hg2d3-cab/model', 0, ctx_id=-1)
        landmarks = handler.get_landmark(cv2.imread('photo.jpg'))   # (faces, 68, 2)

    `detector` is 'default' (OpenCV cascades, bundled), 'essh' (needs
    essh-model/essh-0000.params) or any object with `detect(img_bgr)`;
    `backend` 'mxnet' or 'onnx' (ONNX Runtime).
    """

    def __init__(self, prefix, epoch=0, ctx_id=-1, detector='default', decoder='subpixel',
                 predictor=None, input_size=128, backend='mxnet'):
        ctx = mx.cpu() if ctx_id < 0 else mx.gpu(ctx_id)
        self.predictor = predictor or make_predictor(prefix, epoch, ctx, backend, input_size)
        self.input_size, self.decoder = input_size, decoder
        if detector == 'essh':
            from essh import ESSHDetector
            detector = ESSHDetector(ESSH_PREFIX, 0, ctx_id)
        elif detector == 'default':
            from essh import CascadeDetector
            detector = CascadeDetector()
        self.detector = detector
        self.last_detections = np.zeros((0, 5))

    # Pieces -----------------------------------------------------------------

    def detect(self, image_bgr):
        """Detections in photo pixels; big photos are searched downscaled."""
        scale = min(1.0, MAX_DETECT_SIDE / float(max(image_bgr.shape[:2])))
        small = image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale,
                                                          interpolation=cv2.INTER_AREA)
        dets = np.array(self.detector.detect(small), dtype=np.float64)
        dets[:, :4] /= scale
        if dets.shape[1] == 15:
            dets[:, 5:] /= scale
        return dets

    def _predict(self, image_rgb, transforms):
        """Points (photo pixels) for each chain of transforms photo -> crop."""
        if not transforms:
            return np.zeros((0, 68, 2))
        crops = []
        for chain in transforms:
            current = image_rgb
            for matrix, size in chain:
                current = geometry.warp(current, matrix, size)
            crops.append(current.transpose(2, 0, 1))
        heatmaps = self.predictor(np.array(crops, dtype=np.float32))
        crop_points = protocol.decode(heatmaps, self.input_size, self.decoder)
        out = []
        for chain, points in zip(transforms, crop_points):
            for matrix, _ in reversed(chain):
                points = geometry.apply(geometry.invert(matrix), points)
            out.append(points)
        return np.array(out)

    # Public API -------------------------------------------------------------

    def get_landmark(self, image):
        """(faces, 68, 2) landmarks in photo pixels (x, y) of a BGR image (or
        grey, BGRA, 16-bit: converted); detections in `last_detections`."""
        image_bgr = to_bgr8(image)
        image_rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        dets = self.detect(image_bgr)
        self.last_detections = dets
        size, frame = self.input_size, geometry.RECORD_SIZE
        if dets.shape[1] == 15:
            fives = [d[5:].reshape(5, 2) for d in dets]
            first = [None] * len(dets)
        else:
            first = self._predict(image_rgb, [[(box_crop(d, size, CASCADE_BOX_SCALE), size)]
                                              for d in dets])
            fives = [five_points(p) for p in first]
        chains = []
        for five, points in zip(fives, first):
            align = geometry.umeyama(five, geometry.TEMPLATE_384)
            box = self._box_in_frame(image_rgb, align, points)
            chains.append([(align, frame), (box_crop(box, size), size)])
        result = self._predict(image_rgb, chains)
        for k, (det, points) in enumerate(zip(dets, first)):
            if points is not None and not plausible_five(fives[k], det):
                result[k] = points
        return result

    def _box_in_frame(self, image_rgb, align, first_points):
        """Box in the aligned 384 frame: ESSH detects again and keeps the box
        nearest the centre (section 5.3); with the default detector, the box
        of the first prediction carried into that frame."""
        if first_points is not None:
            return landmark_box(geometry.apply(align, first_points), DEFAULT_TOP_RAISE)
        aligned = geometry.warp(image_rgb, align, geometry.RECORD_SIZE)
        dets = self.detector.detect(np.ascontiguousarray(aligned[:, :, ::-1]))
        if not len(dets):
            return landmark_box(geometry.NEUTRAL_FACE, DEFAULT_TOP_RAISE)
        centres = (dets[:, :2] + dets[:, 2:4]) / 2
        return dets[np.argmin(np.linalg.norm(centres - geometry.RECORD_SIZE / 2, axis=1))]
