"""Keeping the devices fed: a background thread takes the next training
batch from the iterator's shared memory, copies each device's slice to that
device (through pinned memory for GPUs) and hands it over one step ahead,
so the copy overlaps the current step instead of following it. The pinned
buffers are allocated once per device and reused: MXNet 1.9 does not pool
pinned memory, and allocating and freeing it every step can stall the GPU."""
import queue
import threading

import mxnet as mx


class DeviceFeeder(object):
    """Endless training batches for `contexts`, from step `start_step` on.

    Each item is what `Module.forward_backward` takes: one DataBatch on the
    device, or a list of per-device DataBatches.
    """

    def __init__(self, iterator, contexts, start_step=0, staged=('gpu',)):
        self.iterator, self.contexts = iterator, list(contexts)
        self.staged = staged                # device types copied through pinned memory
        self.staging = {}                   # (device id, 'data' | 'label') -> pinned NDArray
        per_pass = iterator.num_batches
        iterator.seek(start_step // per_pass, start_step % per_pass)
        self.slice = iterator.batch_size // len(self.contexts)
        self._queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='device-feeder', daemon=True)
        self._thread.start()

    def _copy(self, array, ctx, part):
        if ctx.device_type not in self.staged:
            return mx.nd.array(array, ctx=ctx)
        key = (ctx.device_id, part)
        stage = self.staging.get(key)
        if stage is None or stage.shape != array.shape:
            stage = self.staging[key] = mx.nd.empty(array.shape, mx.cpu_pinned(ctx.device_id),
                                                    dtype=array.dtype)
        stage[:] = array            # waits until the last copy out of it has been made
        return stage.copyto(ctx)

    def _to_devices(self, batch):
        parts = []
        for k, ctx in enumerate(self.contexts):
            rows = slice(k * self.slice, (k + 1) * self.slice)
            parts.append(mx.io.DataBatch(data=[self._copy(batch.data[rows], ctx, 'data')],
                                         label=[self._copy(batch.label[rows], ctx, 'label')]))
        return parts[0] if len(parts) == 1 else parts

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    batch = self.iterator.next_batch()
                except StopIteration:
                    self.iterator.reset()
                    continue
                item = self._to_devices(batch)
                batch.release()
                self._put(('batch', item))
        except BaseException as err:  # handed to the training loop, which raises it
            self._put(('error', err))

    def next(self):
        kind, item = self._queue.get()
        if kind == 'error':
            raise item
        return item

    def close(self):
        self._stop.set()
        try:
            self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=30)
