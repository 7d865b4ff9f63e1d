"""Worker side of the iterator: filling one batch in shared memory. Kept free
of MXNet so that spawned worker processes start fast and never inherit its
threads."""
import logging
import multiprocessing as mp
import signal

import cv2
import numpy as np

from . import augment
from .recordio import RecordError

log = logging.getLogger(__name__)


class Slot(object):
    """One batch's arrays in shared memory; pickling it (to hand it to a
    spawned worker) passes the shared buffer, not copies of the arrays."""

    def __init__(self, batch, size, classes, label):
        self.shapes = [('data', (batch, 3, size, size), np.float32),
                       ('label', (batch, classes, label, label), np.float32),
                       ('points', (batch, classes, 2), np.float64),
                       ('transforms', (batch, 2, 2, 3), np.float64),
                       ('valid', (batch,), np.bool_)]
        nbytes = sum(int(np.prod(s)) * np.dtype(t).itemsize for _, s, t in self.shapes)
        self.buffer = mp.RawArray('b', nbytes)
        self._views()

    def _views(self):
        offset = 0
        for name, shape, dtype in self.shapes:
            count = int(np.prod(shape))
            setattr(self, name, np.frombuffer(self.buffer, dtype=dtype, count=count,
                                              offset=offset).reshape(shape))
            offset += count * np.dtype(dtype).itemsize

    def __getstate__(self):
        return {'shapes': self.shapes, 'buffer': self.buffer}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._views()

    def clear(self):
        for arr in (self.data, self.label, self.points, self.transforms, self.valid):
            arr[...] = 0


class BatchMaker(object):
    """Fills a slot from a batch plan; shared by workers and in-process use."""

    def __init__(self, reader, cfg, aug_level, top_raise, seed):
        self.reader, self.cfg, self.aug_level = reader, cfg, aug_level
        self.top_raise, self.seed = top_raise, seed

    def _face(self, key, stats):
        try:
            return self.reader.read_face(key, self.cfg.label_xfirst)
        except RecordError as err:
            stats['corrupt'] += 1
            if stats['corrupt'] <= 3:
                log.warning('skipping %s', err)
            return None

    def _write(self, slot, index, crop, points, mirrored):
        slot.data[index] = crop.transpose(2, 0, 1)
        slot.label[index] = augment.heatmap_target(points, mirrored, self.cfg)
        slot.valid[index] = True

    def _train_sample(self, slot, plan_entry, stats):
        """Sample at `index` (and its mirror at `pair`); an unusable record is
        replaced by the next record of the epoch order."""
        epoch, position, keys, index, pair, mirror = plan_entry
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
            self._write(slot, index, crop, points, mirrored)
            if pair is not None:
                size = self.cfg.input_img_size
                self._write(slot, pair, crop[:, ::-1], augment.mirror_points(points, size), True)
            return

    def _eval_sample(self, slot, plan_entry, stats):
        _, _, keys, index, _, _ = plan_entry
        face = self._face(keys[0], stats)
        if face is None:
            return
        crop, points, transforms = augment.eval_sample(face[0], face[1], self.top_raise, self.cfg)
        self._write(slot, index, crop, points, False)
        slot.points[index] = face[1]
        slot.transforms[index] = transforms

    def fill(self, slot, plan):
        stats = {'corrupt': 0, 'out_of_crop': 0}
        slot.clear()
        make = self._train_sample if self.aug_level > 0 else self._eval_sample
        for entry in plan:
            make(slot, entry, stats)
        return stats


def worker_loop(maker, slots, tasks, results):
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the main process's to handle
    while True:
        task = tasks.get()
        if task is None:
            return
        token, slot_id, plan = task
        try:
            results.put((token, slot_id, maker.fill(slots[slot_id], plan), None))
        except Exception as err:  # reported to the main process, which raises it
            results.put((token, slot_id, None, '%s: %s' % (type(err).__name__, err)))
