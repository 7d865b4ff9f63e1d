"""Face detectors: ESSH from its MXNet checkpoint, and the bundled default."""
from .default import CascadeDetector
from .detector import ESSHDetector

__all__ = ['ESSHDetector', 'CascadeDetector']
