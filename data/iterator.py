"""`FaceSegIter`: batches of augmented faces and heatmap targets from a record
set, filled in shared memory by worker processes (`data.workers`).

Every sample's randomness comes from (seed, pass, position in the pass), so a
run is reproducible for a seed whatever the number of workers, and a pass can
be entered at any batch (exact resume).
"""
import logging

import mxnet as mx
import numpy as np

from . import augment
from .batch import FALLBACK_RECORDS, BatchMaker, SharedBuffer, make_slots, slot_bytes, slot_layout
from .recordio import RecordReader
from .workers import WorkerPool

log = logging.getLogger(__name__)


class Batch(object):
    """One batch as NumPy views into a shared slot; the views are only valid
    until `release()` hands the slot back to the workers."""

    def __init__(self, slot, pad, release):
        self.data, self.label, self.valid, self.keys = slot.data, slot.label, slot.valid, slot.keys
        self.points, self.transforms = slot.points, slot.transforms
        self.pad = pad
        self.release = release


class FaceSegIter(mx.io.DataIter):
    """Batches of data (N, 3, S, S) float RGB 0..255 and label (N, 68, L, L)
    heatmaps from `path_imgrec` (+ its .idx), per docs/data.md.

    Training (aug_level > 0) shuffles every pass, appends `exf` shuffled
    copies of the records per pass and drops the last partial batch (as the
    original), so every batch holds real samples only. Evaluation (aug_level
    0) keeps every record in order, crops it with `eval_crop(points) ->
    (align, crop)` (the protocol's) and marks padding and unreadable records
    in `valid`; its batches also carry `points` (68 ground-truth (x, y) in
    the record frame), `transforms` (N, 2, 2, 3) and `keys`.

    `part_index`/`num_parts` give each distributed worker an equal share of
    the records (the remainder is left out), so every worker runs the same
    number of steps.
    """

    def __init__(self, path_imgrec, cfg, batch_size, per_batch_size=None, aug_level=0, exf=1,
                 coherent=False, eval_crop=None, force_mirror=False, workers=0, seed=0,
                 part_index=0, num_parts=1, depth=3):
        super(FaceSegIter, self).__init__(batch_size)
        self.cfg, self.path = cfg, str(path_imgrec)
        reader = RecordReader(self.path, cfg.scheme)
        reader.require_scheme(cfg.scheme)
        share = len(reader.keys) // num_parts
        self.keys = reader.keys[part_index::num_parts][:share]
        if not self.keys:
            raise ValueError('%s holds %d records, fewer than the %d workers sharing it'
                             % (self.path, len(reader.keys), num_parts))
        if num_parts > 1 and len(reader.keys) % num_parts:
            left = len(reader.keys) % num_parts
            log.info('%s: %d record%s left out so that %d workers get %d each', self.path,
                     left, '' if left == 1 else 's', num_parts, share)
        self.part_index, self.num_parts = part_index, num_parts
        self.per_batch_size = per_batch_size or batch_size
        if batch_size % self.per_batch_size:
            raise ValueError('batch_size %d is not a multiple of per_batch_size %d'
                             % (batch_size, self.per_batch_size))
        if aug_level == 0 and eval_crop is None:
            raise ValueError('an evaluation iterator (aug_level 0) needs the protocol\'s eval_crop')
        self.aug_level, self.exf, self.seed = aug_level, max(1, int(exf)), seed
        self.coherent = bool(coherent) and aug_level > 0
        if self.coherent and self.per_batch_size % 2:
            raise ValueError('coherent batches need an even per_batch_size')
        self.mirror = True if force_mirror else (None if aug_level > 0 else False)
        size, label = cfg.input_img_size, cfg.output_label_size
        self.provide_data = [mx.io.DataDesc('data', (batch_size, 3, size, size))]
        self.provide_label = [mx.io.DataDesc('softmax_label',
                                             (batch_size, cfg.num_classes, label, label))]
        layout = slot_layout(batch_size, size, cfg.num_classes, label)
        depth = max(1, depth) if workers > 0 else 1
        self._buffer = SharedBuffer(slot_bytes(layout) * depth)
        self._slots = make_slots(self._buffer, layout, depth)
        self._maker = BatchMaker(reader, cfg, aug_level, seed, eval_crop)
        self._pool = WorkerPool(workers, self._maker, self._buffer, layout, depth) \
            if workers > 0 else None
        self._inflight = {}
        self._explained = False
        self.notices = {'corrupt': 0, 'out_of_crop': 0}    # since the last `log_notices`
        self.epoch = -1
        self.reset()
        if self._num_batches == 0:
            raise ValueError('%s: %d records (x%d) do not fill one batch of %d'
                             % (self.path, self.num_records, self.exf, batch_size))

    @property
    def num_records(self):
        """Records this iterator reads (its share, in distributed runs)."""
        return len(self.keys)

    @property
    def num_batches(self):
        """Batches in one pass over the records (exf copies in training)."""
        return self._num_batches

    # Planning ---------------------------------------------------------------

    def _pass_order(self):
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
        """Entries of one batch (see BatchMaker) and its padding."""
        layout = self._layout()
        start = batch_no * len(layout)
        if self.aug_level == 0:
            positions = range(start, min(start + len(layout), len(self._order)))
            entries = [(int(self._order[p]), index) for p, (index, _) in zip(positions, layout)]
            return entries, self.batch_size - len(entries)
        # A sample's random draws follow its position in the global batch
        # sequence, as if the workers' batches were the device slices of
        # one machine's batch.
        first = (batch_no * self.num_parts + self.part_index) * len(layout)
        entries = []
        for j, (index, pair) in enumerate(layout):
            candidates = np.take(self._order, range(start + j, start + j + FALLBACK_RECORDS),
                                 mode='wrap')
            entries.append((self.epoch, first + j, [int(k) for k in candidates], index, pair,
                            self.mirror))
        return entries, 0

    # Workers ----------------------------------------------------------------

    def _prepare(self, slot, pad):
        slot.valid[:] = False
        if pad:
            slot.data[-pad:] = 0
            slot.label[-pad:] = 0

    def _submit(self):
        """Hand plans to the workers while slots are free; each batch is split
        evenly among them."""
        while self._free and self._next_plan < self._num_batches:
            slot_id = self._free.pop()
            entries, pad = self._plan(self._next_plan)
            self._prepare(self._slots[slot_id], pad)
            chunks = [entries[w::len(self._pool)] for w in range(len(self._pool))]
            token = (self.epoch, self._next_plan)
            for worker, chunk in enumerate(chunks):
                if chunk:
                    self._pool.submit(worker, (token, slot_id, chunk))
            self._inflight[token] = [slot_id, pad, sum(1 for c in chunks if c),
                                     {'corrupt': 0, 'out_of_crop': 0}]
            self._next_plan += 1

    def _wait(self, token):
        """Collect worker replies until batch `token` is complete."""
        while self._inflight[token][2]:
            reply_token, _, stats, error = self._pool.receive()
            if error is not None:
                raise RuntimeError('data worker failed on %s: %s' % (self.path, error))
            entry = self._inflight[reply_token]
            entry[2] -= 1
            for key, value in stats.items():
                entry[3][key] += value

    def _drain(self):
        for token in list(self._inflight):
            self._wait(token)
        self._inflight = {}

    # Passes ------------------------------------------------------------------

    def seek(self, epoch, batch_no=0):
        """Continue with pass `epoch` at batch `batch_no` (exact resume)."""
        if self._pool is not None:
            self._drain()
        self.epoch = epoch
        self._order = self._pass_order()
        per_batch = len(self._layout())
        if self.aug_level == 0:
            self._num_batches = -(-len(self._order) // per_batch)
        else:
            self._num_batches = len(self._order) // per_batch
        self._cursor = self._next_plan = batch_no
        self._free = list(range(len(self._slots)))
        self.epoch_stats = {'corrupt': 0, 'out_of_crop': 0}

    def reset(self):
        self.seek(self.epoch + 1)

    def next_batch(self):
        """The next `Batch` (NumPy views; call its `release()` when done)."""
        if self._cursor >= self._num_batches:
            if self.aug_level == 0:
                self.log_notices('pass %d' % self.epoch)
            raise StopIteration
        token = (self.epoch, self._cursor)
        if self._pool is not None:
            self._submit()
            self._wait(token)
            slot_id, pad, _, stats = self._inflight.pop(token)
        else:
            slot_id = 0
            entries, pad = self._plan(self._cursor)
            self._prepare(self._slots[0], pad)
            stats = self._maker.fill(self._slots[0], entries)
        for key, value in stats.items():
            self.epoch_stats[key] += value
            self.notices[key] += value
        self._cursor += 1

        def release():
            if self._pool is not None and token[0] == self.epoch:
                self._free.append(slot_id)
                self._submit()
        return Batch(self._slots[slot_id], pad, release)

    def next(self):
        batch = self.next_batch()
        out = mx.io.DataBatch(data=[mx.nd.array(batch.data)], label=[mx.nd.array(batch.label)],
                              pad=batch.pad, provide_data=self.provide_data,
                              provide_label=self.provide_label)
        out.valid, out.keys = batch.valid.copy(), batch.keys.copy()
        if self.aug_level == 0:
            out.points, out.transforms = batch.points.copy(), batch.transforms.copy()
        batch.release()
        return out

    def close(self):
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def log_notices(self, when):
        """Say once what happened to samples `when` (a pass, or the steps
        since the last report of a training run), then count afresh."""
        corrupt, redrawn = self.notices['corrupt'], self.notices['out_of_crop']
        if corrupt:
            log.info('%s, %s: %d unreadable record%s skipped (each replaced by the next record)',
                     self.path, when, corrupt, '' if corrupt == 1 else 's')
        if redrawn:
            log.info('%s, %s: %d sample%s taken from the next record because %d random '
                     'rotations and scales all pushed a landmark out of the crop%s',
                     self.path, when, redrawn, '' if redrawn == 1 else 's',
                     augment.DRAW_TRIES, '' if self._explained else
                     ' (faces near the edge of the 384 frame cause this; a few percent is normal, '
                     'a large share means the faces of the set are not centred as the records '
                     'expect)')
            self._explained = True
        self.notices = {key: 0 for key in self.notices}
