"""The embedded default face detector: OpenCV's bundled Haar cascades
(frontal, and profile on the image and its mirror), nothing downloaded.

It finds boxes only; the aligner then takes its five points from its own
first prediction (two-pass alignment)."""
import cv2
import numpy as np

import cython_ext

CASCADES = ('haarcascade_frontalface_default.xml', 'haarcascade_profileface.xml')
NMS_OVERLAP = 0.3


class CascadeDetector(object):
    """detect(img_bgr) -> rows (x1, y1, x2, y2, score); score is the
    cascade's level weight."""

    def __init__(self, min_size=24, neighbours=3):
        self.cascades = []
        for name in CASCADES:
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
            if cascade.empty():
                raise RuntimeError('OpenCV cascade %s could not be loaded' % name)
            self.cascades.append(cascade)
        self.min_size, self.neighbours = min_size, neighbours

    def _run(self, cascade, gray, mirrored):
        rects, _, weights = cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.neighbours,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        rows = []
        width = gray.shape[1]
        for (x, y, w, h), score in zip(np.asarray(rects).reshape(-1, 4),
                                       np.asarray(weights).reshape(-1)):
            x1 = width - (x + w) if mirrored else x
            rows.append([x1, y, x1 + w - 1, y + h - 1, float(score)])
        return rows

    def detect(self, img_bgr, threshold=0.0, scales=(1.0,)):
        gray = cv2.equalizeHist(cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY))
        frontal, profile = self.cascades
        rows = self._run(frontal, gray, False)
        rows += self._run(profile, gray, False) + self._run(profile, gray[:, ::-1].copy(), True)
        if not rows:
            return np.zeros((0, 5), dtype=np.float32)
        dets = np.array(rows, dtype=np.float32)
        dets = dets[np.argsort(-dets[:, 4], kind='stable')]
        dets = dets[cython_ext.nms(np.ascontiguousarray(dets), NMS_OVERLAP)]
        return dets[dets[:, 4] >= threshold]

