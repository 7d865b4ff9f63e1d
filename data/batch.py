"""Filling batches: the arrays of one batch in shared memory (`Slot`) and the
code that fills part of a batch from a plan (`BatchMaker`).

Kept free of MXNet: worker processes import this module and nothing heavier.
"""
import logging
import mmap
import os
import tempfile

import numpy as np

from . import augment
from .recordio import RecordError

log = logging.getLogger(__name__)

# A training sample whose record cannot be used is replaced by the next
# record of the epoch order; this many in a row is a broken data set.
FALLBACK_RECORDS = 64


class SharedBuffer(object):
    """Anonymous shared memory: a memfd (or an unlinked temporary file) that
    child processes map through an inherited file descriptor. Nothing is
    named in the file system, so nothing is left behind, however the
    processes end."""

    def __init__(self, nbytes, fd=None):
        self.nbytes = int(nbytes)
        self._file = None
        if fd is None:
            if hasattr(os, 'memfd_create'):
                fd = os.memfd_create('face-batches')
            else:
                self._file = tempfile.TemporaryFile(
                    dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
                fd = self._file.fileno()
            os.ftruncate(fd, self.nbytes)
        self.fd = fd
        self.map = mmap.mmap(fd, self.nbytes)


def slot_layout(batch, size, classes, label):
    """(name, shape, dtype) of the arrays of one batch."""
    return [('data', (batch, 3, size, size), np.float32),
            ('label', (batch, classes, label, label), np.float32),
            ('points', (batch, classes, 2), np.float64),
            ('transforms', (batch, 2, 2, 3), np.float64),
            ('keys', (batch,), np.int64),
            ('valid', (batch,), np.bool_)]


def slot_bytes(layout):
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in layout)


class Slot(object):
    """Numpy views of one batch's arrays at `offset` in a shared buffer."""

    def __init__(self, buffer, offset, layout):
        for name, shape, dtype in layout:
            count = int(np.prod(shape))
            setattr(self, name, np.frombuffer(buffer.map, dtype=dtype, count=count,
                                              offset=offset).reshape(shape))
            offset += count * np.dtype(dtype).itemsize


def make_slots(buffer, layout, count):
    size = slot_bytes(layout)
    return [Slot(buffer, i * size, layout) for i in range(count)]


class BatchMaker(object):
    """Fills entries of a slot from a plan; the same code runs in worker
    processes and in-process.

    A training entry is (epoch, position, candidate keys, index, mirror-pair
    index, mirror); an evaluation entry is (key, index). Evaluation takes the
    protocol's crop as `eval_crop(points) -> (align, crop)`.
    """

    def __init__(self, reader, cfg, aug_level, seed, eval_crop=None):
        self.reader, self.cfg, self.aug_level = reader, cfg, aug_level
        self.seed, self.eval_crop = seed, eval_crop

    def _face(self, key, stats):
        try:
            image, points = self.reader.read_face(key, self.cfg.label_xfirst)
        except RecordError as err:
            stats['corrupt'] += 1
            if stats['corrupt'] <= 3:
                log.warning('skipping %s', err)
            return None
        if not np.isfinite(points).all():
            if self.aug_level == 0:
                raise ValueError('%s record %d has landmarks that are not finite; an evaluation '
                                 'set must have all the points of every face (rebuild it with '
                                 'data.build)' % (self.reader.path, key))
            stats['corrupt'] += 1
            log.warning('skipping %s record %d: its landmarks are not all finite',
                        self.reader.path, key)
            return None
        return image, points

    def _write(self, slot, index, crop, points, mirrored, key):
        slot.data[index] = crop.transpose(2, 0, 1)
        slot.label[index] = augment.heatmap_target(points, mirrored, self.cfg)
        slot.keys[index] = key
        slot.valid[index] = True

    def _train_sample(self, slot, entry, stats):
        """Sample at `index` (and its mirror at `pair`); an unusable record
        is replaced by the next one of the epoch order, never by a blank."""
        epoch, position, keys, index, pair, mirror = entry
        rng = np.random.default_rng([self.seed, epoch, position])
        for key in keys:
            face = self._face(key, stats)
            if face is None:
                continue
            sample = augment.training_sample(face[0], face[1], rng, self.cfg, mirror)
            if sample is None:
                stats['out_of_crop'] += 1
                continue
            crop, points, mirrored = sample
            self._write(slot, index, crop, points, mirrored, key)
            if pair is not None:
                size = self.cfg.input_img_size
                self._write(slot, pair, crop[:, ::-1],
                            augment.mirror_points(points, size, self.cfg.scheme), True,
                            key)
            return
        raise RecordError('%s: none of %d consecutive records (from record %d) gives a '
                          'training sample; the set is damaged'
                          % (self.reader.path, len(keys), keys[0]))

    def _eval_sample(self, slot, entry, stats):
        key, index = entry
        slot.data[index] = 0
        slot.label[index] = 0
        face = self._face(key, stats)
        if face is None:
            return
        image, points = face
        transforms = self.eval_crop(points)
        crop, crop_points = augment.eval_sample(image, points, transforms, self.cfg)
        self._write(slot, index, crop, crop_points, False, key)
        slot.points[index] = points
        slot.transforms[index] = transforms

    def fill(self, slot, entries):
        """Fill the slot entries of a plan; returns the skip counts."""
        stats = {'corrupt': 0, 'out_of_crop': 0}
        make = self._train_sample if self.aug_level > 0 else self._eval_sample
        for entry in entries:
            make(slot, entry, stats)
        return stats
