"""What every face detector returns, and the image scaling they share."""
import collections

import cv2
import numpy as np


class Detections(collections.namedtuple('Detections', 'boxes scores points')):
    """Faces of one image, best first: `boxes` (N, 4) x1, y1, x2, y2 in image
    pixels, `scores` (N,) in [0, 1], `points` (N, 5, 2) (eye centres, nose
    tip, mouth corners) or None for detectors that find boxes only."""

    @classmethod
    def empty(cls):
        return cls(np.zeros((0, 4)), np.zeros((0,)), None)

    @classmethod
    def from_boxes(cls, boxes):
        """Detections of given boxes: (N, 4), or (N, 5) with scores."""
        boxes = np.asarray(boxes, dtype=np.float64)
        boxes = boxes.reshape(-1, boxes.shape[-1]) if boxes.size else np.zeros((0, 4))
        scores = boxes[:, 4] if boxes.shape[1] > 4 else np.ones(len(boxes))
        return cls(boxes[:, :4], scores, None)

    def __len__(self):
        return len(self.boxes)

    def select(self, keep):
        return Detections(self.boxes[keep], self.scores[keep],
                          None if self.points is None else self.points[keep])

    def scaled(self, factor):
        """Coordinates divided by `factor` (from a resized image back to the
        original)."""
        return Detections(self.boxes / factor, self.scores,
                          None if self.points is None else self.points / factor)


class Detector(object):
    """A face detector: `detect(image_bgr) -> Detections`.

    Images whose long side is above `max_side` are searched downscaled (and
    those below `min_side` upscaled); the answer is in original pixels.
    Subclasses implement `_detect` on the resized image; `box_scale` and
    `box_shift` say how the protocol's crop (section 4.3) relates to their
    boxes, for detectors without points (two-pass alignment).
    """
    has_points = False
    max_side, min_side = 1600, 0
    box_scale, box_shift = 1.2, 0.045

    def __init__(self, threshold):
        self.threshold = threshold

    def detect(self, image_bgr):
        long_side = float(max(image_bgr.shape[:2]))
        factor = 1.0
        if long_side > self.max_side:
            factor = self.max_side / long_side
        elif self.min_side and long_side < self.min_side:
            factor = self.min_side / long_side
        if factor != 1.0:
            image_bgr = cv2.resize(image_bgr, None, fx=factor, fy=factor,
                                   interpolation=cv2.INTER_AREA if factor < 1 else
                                   cv2.INTER_LINEAR)
        found = self._detect(np.ascontiguousarray(image_bgr)).scaled(factor)
        found = found.select(np.argsort(-found.scores, kind='stable'))
        return found.select(found.scores >= self.threshold)

    def _detect(self, image_bgr):
        raise NotImplementedError
