"""`FaceSegIter`: batches of augmented faces and heatmap targets from a record
set, built by worker processes into shared memory.

Every sample's randomness comes from (seed, epoch, position in the epoch), so a
run is reproducible for a seed whatever the number of workers.
"""
import logging
import multiprocessing as mp
import os

import mxnet as mx
import numpy as np

from . import augment
from .batch import BatchMaker, Slot, worker_loop
from .recordio import RecordReader

log = logging.getLogger(__name__)


class FaceSegIter(mx.io.DataIter):
    """Batches of data (N, 3, S, S) float RGB 0..255 and label (N, 68, L, L)
    heatmaps from `path_imgrec` (+ its .idx), per PIPELINE.md section 2.

    aug_level 0 gives the evaluation crop of section 4, in record order, and
    each batch also carries `points` (N, 68, 2) ground truth (x, y) in the
    record frame, `transforms` (N, 2, 2, 3) = (alignment, crop) matrices and
    `valid` (N,) (False for padding and unreadable records).
    `part_index`/`num_parts` give each distributed worker its own share.
    """

    def __init__(self, batch_size, per_batch_size=0, path_imgrec=None, aug_level=0,
                 force_mirror=False, exf=1, use_coherent=0, cfg=None, workers=None, seed=0,
                 prefetch=2, top_raise=None, part_index=0, num_parts=1):
        super(FaceSegIter, self).__init__(batch_size)
        if cfg is None:
            from core.config import load_config
            cfg, _ = load_config()
        self.cfg = cfg
        self.reader = RecordReader(path_imgrec)
        self.keys = self.reader.keys[part_index::num_parts]
        if len(self.keys) == 0:
            raise ValueError('%s holds no records' % path_imgrec)
        self.per_batch_size = per_batch_size or batch_size
        if batch_size % self.per_batch_size:
            raise ValueError('batch_size %d is not a multiple of per_batch_size %d'
                             % (batch_size, self.per_batch_size))
        self.aug_level, self.exf, self.seed = aug_level, max(1, exf), seed
        self.coherent = bool(use_coherent) and aug_level > 0
        if self.coherent and self.per_batch_size % 2:
            raise ValueError('coherent batches need an even per_batch_size')
        self.mirror = True if force_mirror else (None if aug_level > 0 else False)
        name = os.path.splitext(os.path.basename(str(path_imgrec)))[0]
        if top_raise is None:
            top_raise = augment.TOP_RAISE.get(name, augment.DEFAULT_TOP_RAISE)
        size, label = cfg.input_img_size, cfg.output_label_size
        self.provide_data = [mx.io.DataDesc('data', (batch_size, 3, size, size))]
        self.provide_label = [mx.io.DataDesc('softmax_label',
                                             (batch_size, cfg.num_classes, label, label))]
        self.workers = os.cpu_count() if workers is None else workers
        self._maker = BatchMaker(self.reader, cfg, aug_level, top_raise, seed)
        self._slots = [Slot(batch_size, size, cfg.num_classes, label)
                       for _ in range(max(1, self.workers) * prefetch)]
        self._procs = []
        self.epoch = -1
        self.epoch_stats = {'corrupt': 0, 'out_of_crop': 0}
        self.reset()

    # Planning ---------------------------------------------------------------

    def _epoch_order(self):
        keys = np.array(self.keys)
        if self.aug_level == 0:
            return keys
        rng = np.random.default_rng([self.seed, self.epoch])
        return np.concatenate([rng.permutation(keys) for _ in range(self.exf)])

    def _layout(self):
        """(index, mirror-pair index) of each base sample within a batch."""
        if not self.coherent:
            return [(i, None) for i in range(self.batch_size)]
        half = self.per_batch_size // 2
        return [(d + j, d + j + half) for d in range(0, self.batch_size, self.per_batch_size)
                for j in range(half)]

    def _plan(self, batch_no):
        layout = self._layout()
        start = batch_no * len(layout)
        plan = []
        for (index, pair), position in zip(layout, range(start, len(self._order))):
            if self.aug_level:
                fallbacks = np.take(self._order, range(position, position + 8), mode='wrap')
            else:
                fallbacks = [self._order[position]]
            plan.append((self.epoch, position, [int(k) for k in fallbacks], index, pair,
                         self.mirror))
        pad = len(layout) - len(plan)
        return plan, pad * (2 if self.coherent else 1)

    # Workers ----------------------------------------------------------------

    def _start(self):
        if self._procs or self.workers <= 0:
            return
        context = mp.get_context('spawn')
        self._tasks, self._results = context.Queue(), context.Queue()
        for _ in range(self.workers):
            proc = context.Process(target=worker_loop,
                                   args=(self._maker, self._slots, self._tasks, self._results),
                                   daemon=True)
            proc.start()
            self._procs.append(proc)

    def close(self):
        """Stop the worker processes."""
        for _ in self._procs:
            self._tasks.put(None)
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs = []

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _submit(self):
        while self._free and self._next_plan < self._num_batches:
            slot_id = self._free.pop()
            plan, pad = self._plan(self._next_plan)
            self._pending[self._next_plan] = (slot_id, pad)
            self._tasks.put(((self.epoch, self._next_plan), slot_id, plan))
            self._next_plan += 1

    def _collect(self, batch_no):
        while batch_no not in self._done:
            (epoch, number), slot_id, stats, error = self._results.get()
            if error is not None:
                raise RuntimeError('data worker failed on %s: %s' % (self.reader.path, error))
            if epoch == self.epoch:
                self._done[number] = stats
            else:
                self._free.append(slot_id)
        return self._done.pop(batch_no)

    # DataIter ---------------------------------------------------------------

    @property
    def num_batches(self):
        """Batches in the current epoch."""
        return self._num_batches

    def reset(self):
        if self.epoch >= 0 and self._procs:
            for number in list(self._pending):
                if number >= self._cursor:
                    self._collect(number)
        self.epoch += 1
        self._order = self._epoch_order()
        per_batch = len(self._layout())
        self._num_batches = -(-len(self._order) // per_batch)
        self._cursor, self._next_plan = 0, 0
        self._pending, self._done = {}, {}
        self._free = list(range(len(self._slots)))
        self.epoch_stats = {'corrupt': 0, 'out_of_crop': 0}

    def next(self):
        if self._cursor >= self._num_batches:
            self._log_epoch()
            raise StopIteration
        if self.workers > 0:
            self._start()
            self._submit()
            stats = self._collect(self._cursor)
            slot_id, pad = self._pending.pop(self._cursor)
        else:
            slot_id = 0
            plan, pad = self._plan(self._cursor)
            stats = self._maker.fill(self._slots[0], plan)
        for key, value in stats.items():
            self.epoch_stats[key] += value
        slot = self._slots[slot_id]
        batch = mx.io.DataBatch(data=[mx.nd.array(slot.data)], label=[mx.nd.array(slot.label)],
                                pad=pad, provide_data=self.provide_data,
                                provide_label=self.provide_label)
        batch.valid = slot.valid.copy()
        if self.aug_level == 0:
            batch.points, batch.transforms = slot.points.copy(), slot.transforms.copy()
        if self.workers > 0:
            self._free.append(slot_id)
        self._cursor += 1
        return batch

    def _log_epoch(self):
        if any(self.epoch_stats.values()):
            log.info('%s epoch %d: %d unreadable records skipped, %d records skipped after %d '
                     'draws left the crop', self.reader.path, self.epoch,
                     self.epoch_stats['corrupt'], self.epoch_stats['out_of_crop'],
                     augment.DRAW_TRIES)
