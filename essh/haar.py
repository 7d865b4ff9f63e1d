"""OpenCV's bundled Haar cascades (frontal, and profile on the image and its
mirror): `--detector haar`, and the fallback when libfacedetection cannot
load. Boxes only; scores map the cascade's level weight w to w / (1 + w)."""
import cv2
import numpy as np

import cython_ext

from .base import Detections, Detector

CASCADES = ('haarcascade_frontalface_default.xml', 'haarcascade_profileface.xml')
NMS_OVERLAP = 0.3


class CascadeDetector(Detector):

    def __init__(self, threshold=0.0, min_size=24, neighbours=3):
        super(CascadeDetector, self).__init__(threshold)
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
        for (x, y, w, h), weight in zip(np.asarray(rects).reshape(-1, 4),
                                        np.asarray(weights).reshape(-1)):
            x1 = width - (x + w) if mirrored else x
            rows.append([x1, y, x1 + w - 1, y + h - 1, max(float(weight), 0.0)])
        return rows

    def _detect(self, image_bgr):
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        frontal, profile = self.cascades
        rows = self._run(frontal, gray, False)
        rows += self._run(profile, gray, False) + self._run(profile, gray[:, ::-1].copy(), True)
        if not rows:
            return Detections.empty()
        dets = np.array(rows, dtype=np.float32)
        dets = dets[np.argsort(-dets[:, 4], kind='stable')]
        dets = dets[cython_ext.nms(np.ascontiguousarray(dets), NMS_OVERLAP)]
        return Detections(dets[:, :4].astype(np.float64), dets[:, 4] / (1.0 + dets[:, 4]), None)
