"""Face detectors behind one interface (`essh.base.Detector`: detect(image)
-> Detections) and the table that names them.

    from essh import create
    detector = create()                   # the default: libfacedetection (else Haar)
    found = detector.detect(image_bgr)    # boxes, scores in [0, 1], points or None
    detector = create('essh', 0.5, gpu=0, prefix='essh-model/essh')

Every detector is made the same way: `create(name, threshold, gpu, **options)`,
its factory taking the options it knows (the device where it can use one).
Adding a detector is one module and one entry in DETECTORS.
"""
import logging
import os

from .base import BoxError, Detections, Detector, checked_boxes

log = logging.getLogger(__name__)


# The ESSH checkpoint `python -m tools.download essh` installs.
ESSH_PREFIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'essh-model', 'essh')


def _libfacedetection(gpu=-1, **kwargs):
    from .libfacedetection import LibFaceDetector
    return LibFaceDetector(**kwargs)            # the CPU only


def _haar(gpu=-1, **kwargs):
    from .haar import CascadeDetector
    return CascadeDetector(**kwargs)            # the CPU only


def _essh(gpu=-1, prefix=ESSH_PREFIX, **kwargs):
    import mxnet as mx

    from .detector import ESSHDetector
    return ESSHDetector(prefix, 0, mx.gpu(gpu) if gpu >= 0 else mx.cpu(), **kwargs)


DETECTORS = {'libfacedetection': _libfacedetection, 'haar': _haar, 'essh': _essh}
DEFAULT = 'libfacedetection'
FALLBACK = 'haar'           # when the default cannot load (no wheel for this machine)


def create(name=None, threshold=None, gpu=-1, **kwargs):
    """The detector called `name` (None: the default, or the fallback when
    the default cannot load) on GPU `gpu` where it can use one (-1: the
    CPU); `threshold` (a score in [0, 1]) None keeps its own default. Other
    options go to the detector (ESSH: `prefix`, its checkpoint)."""
    if name is not None and name not in DETECTORS:
        raise ValueError('unknown detector %r; choose one of %s'
                         % (name, ', '.join(DETECTORS)))
    if threshold is not None:
        if not 0 <= threshold <= 1:
            raise ValueError('--threshold %g: a detector\'s scores lie in [0, 1]; give a '
                             'threshold between 0 and 1' % threshold)
        kwargs['threshold'] = threshold
    kwargs['gpu'] = gpu
    if name is not None:
        return DETECTORS[name](**kwargs)
    try:
        return DETECTORS[DEFAULT](**kwargs)
    except (ImportError, OSError) as err:
        log.warning('%s cannot load (%s); using %s', DEFAULT, err, FALLBACK)
        return DETECTORS[FALLBACK](**kwargs)


__all__ = ['DEFAULT', 'DETECTORS', 'BoxError', 'Detections', 'Detector', 'checked_boxes', 'create']
