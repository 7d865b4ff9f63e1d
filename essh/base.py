"""What every face detector returns, and the image scaling they share."""
import collections

import cv2
import numpy as np


class BoxError(ValueError):
    """A face box that cannot be used; the message says which and why."""


def _show(box):
    return '[%s]' % ', '.join('%g' % v for v in box)


def checked_boxes(boxes, width=None, height=None):
    """(boxes (N, 4 or 5) x1, y1, x2, y2 [score], indices of clipped boxes).

    Every box must be 4 finite numbers (a 5th is its score) with x2 > x1 and
    y2 > y1 (BoxError otherwise). Given the image size, a box reaching out of
    the image is clipped to it, and one with no part inside is refused.
    """
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise BoxError('boxes must be lists of 4 numbers [x1, y1, x2, y2] (or 5, with a score), '
                       'got %r' % (boxes,))
    if array.size == 0:
        return np.zeros((0, 4)), []
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise BoxError('a box is 4 numbers [x1, y1, x2, y2] (or 5, with a score), got %r'
                       % (boxes,))
    for box in array:
        if not np.isfinite(box).all():
            raise BoxError('box %s has a value that is not a number' % _show(box))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise BoxError('box %s is empty or inverted (it needs x2 > x1 and y2 > y1)'
                           % _show(box))
    clipped = []
    if width is not None:
        for k, box in enumerate(array):
            if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
                raise BoxError('box %s lies outside the %dx%d image' % (_show(box), width,
                                                                        height))
            inside = np.clip(box[:4], 0, [width - 1, height - 1, width - 1, height - 1])
            if not np.array_equal(inside, box[:4]):
                clipped.append(k)
                array[k, :4] = inside
    return array, clipped


class Detections(collections.namedtuple('Detections', 'boxes scores points')):
    """Faces of one image, best first: `boxes` (N, 4) x1, y1, x2, y2 in image
    pixels, `scores` (N,) in [0, 1], `points` (N, 5, 2) (eye centres, nose
    tip, mouth corners) or None for detectors that find boxes only."""

    @classmethod
    def empty(cls):
        return cls(np.zeros((0, 4)), np.zeros((0,)), None)

    @classmethod
    def from_boxes(cls, boxes):
        """Detections of boxes that passed `checked_boxes`: (N, 4), or (N, 5)
        with scores."""
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
