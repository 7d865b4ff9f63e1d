"""Face detectors behind one interface (`essh.base.Detector`: detect(image)
-> Detections) and the table that names them.

    from essh import create
    detector = create()                   # the default: libfacedetection (else Haar)
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


DETECTORS = {'libfacedetection': _libfacedetection, 'haar': _haar, 'essh': _essh}
DEFAULT = 'libfacedetection'
FALLBACK = 'haar'           # when the default cannot load (no wheel for this machine)


def create(name=None, threshold=None, **kwargs):
    """The detector called `name` (None: the default, or the fallback when
    the default cannot load); `threshold` None keeps its own default. ESSH
    takes `prefix` (its checkpoint) and `ctx`."""
    if name is not None and name not in DETECTORS:
        raise ValueError('unknown detector %r; choose one of %s'
                         % (name, ', '.join(DETECTORS)))
    if threshold is not None:
        kwargs['threshold'] = threshold
    if name is not None:
        return DETECTORS[name](**kwargs)
    try:
        return DETECTORS[DEFAULT](**kwargs)
    except (ImportError, OSError) as err:
        log.warning('%s cannot load (%s); using %s', DEFAULT, err, FALLBACK)
        return DETECTORS[FALLBACK](**kwargs)


__all__ = ['DEFAULT', 'DETECTORS', 'BoxError', 'Detections', 'Detector', 'checked_boxes', 'create']
