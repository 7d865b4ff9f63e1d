"""Heatmap prediction from a resolved checkpoint (core.plumbing.runs.resolve):
(N, 3, S, S) RGB -> (N, P, L, L), run by one of the BACKENDS, MXNet or ONNX
Runtime (loaded when a predictor is made, so that the scripts answer --help
before either loads).
"""
import collections
import hashlib
import json
import logging
import os

import numpy as np

from data.files import write_atomic

from core.inference import rewrites

log = logging.getLogger(__name__)

# What an INT8 export is calibrated on when made for a backend.
INT8_CALIBRATION = 'synthetic:128:seed0'


class MXNetPredictor(object):
    """The checkpoint's prediction (the BlockGrad input, i.e. `heatmap_output`
    for the published models) run by an MXNet Module in fixed-size batches."""
    backend = 'mxnet'

    def __init__(self, checkpoint, ctx=None, batch_size=8):
        import mxnet as mx

        from symbol import inference_symbol

        from core.plumbing.checkpoint import fit_params, load_checkpoint
        sym, arg_params, aux_params = load_checkpoint(checkpoint.prefix, checkpoint.number)
        self.sym = inference_symbol(sym)
        self.batch_size, size = batch_size, checkpoint.input_size
        shape = (batch_size, 3, size, size)
        arg_params, aux_params = fit_params(self.sym, arg_params, aux_params, shape, None,
                                            source=checkpoint.params)
        self.module = mx.mod.Module(self.sym, data_names=['data'], label_names=None,
                                    context=ctx or mx.cpu())
        self.module.bind(data_shapes=[('data', shape)], for_training=False)
        self.module.set_params(arg_params, aux_params)

    def __call__(self, data):
        """Heatmaps in chunks of at most `batch_size`; the module is reshaped
        (sharing its memory) to each chunk's size rather than padded."""
        import mxnet as mx
        data = np.asarray(data, dtype=np.float32)
        out = []
        for start in range(0, len(data), self.batch_size):
            chunk = data[start:start + self.batch_size]
            if self.module.data_shapes[0].shape[0] != len(chunk):
                self.module.reshape([('data', chunk.shape)])
            self.module.forward(mx.io.DataBatch([mx.nd.array(chunk)]), is_train=False)
            out.append(self.module.get_outputs()[0].asnumpy())
        return np.concatenate(out) if out else np.zeros((0,))


def _fingerprint(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_source(checkpoint, kind):
    """What an ONNX export of `checkpoint` is made from, and with which
    revision of the graph rewrites; a cached export with another record is
    made again."""
    source = {'params': os.path.basename(checkpoint.params),
              'params_sha256': _fingerprint(checkpoint.params),
              'input_size': checkpoint.input_size, 'kind': kind, 'batch': 'dynamic',
              'rewrites': rewrites.REVISION}
    if kind == 'int8':
        source['calibration'] = INT8_CALIBRATION
    return source


def cached_onnx(checkpoint, kind, make):
    """PREFIX-NNNN[-kind].onnx beside the checkpoint, made by `make(path)`
    when absent or made from something else (its record, PATH.json, says)."""
    suffix = '' if kind == 'fp32' else '-' + kind
    path = '%s-%04d%s.onnx' % (checkpoint.prefix, checkpoint.number, suffix)
    record_path = path + '.json'
    source = onnx_source(checkpoint, kind)
    try:
        with open(record_path) as f:
            fresh = json.load(f) == source and os.path.isfile(path)
    except (OSError, ValueError):
        fresh = False
    if not fresh:
        log.info('exporting %s to %s', checkpoint.params, path)
        make(path)
        write_atomic(record_path, json.dumps(source, indent=1, sort_keys=True))
    return path


class OnnxRunner(object):
    """An ONNX file run by ONNX Runtime: (N, 3, S, S) -> the first output.

    A single face runs on one session using every core. On the CPU a batch
    of several faces is split across one single-thread session per core,
    run side by side: the cores stay busy through the network's many small
    layers, where one session's threads wait for each other (measured by
    `python -m benchmarks.inference`). Those sessions are made at the
    first batch, so single-face work (video tracking) never holds them."""

    def __init__(self, path, gpu=-1):
        from core.inference.export import ort_session
        from data.workers import usable_cpus
        self.path = path
        self.session = ort_session(path, gpu=gpu)
        self.input_name = self.session.get_inputs()[0].name
        on_cpu = self.session.get_providers()[0] == 'CPUExecutionProvider'
        self.lane_count = usable_cpus() if on_cpu else 1
        self._lanes, self._pool = None, None

    def _run(self, session, data):
        return session.run(None, {self.input_name: data})[0]

    def __call__(self, data):
        data = np.ascontiguousarray(data, dtype=np.float32)
        if len(data) < 2 or self.lane_count < 2:
            return self._run(self.session, data)
        if self._lanes is None:
            from concurrent.futures import ThreadPoolExecutor

            from core.inference.export import ort_session
            self._lanes = [ort_session(self.path, threads=1) for _ in range(self.lane_count)]
            self._pool = ThreadPoolExecutor(self.lane_count)
        parts = [part for part in np.array_split(data, self.lane_count) if len(part)]
        running = [self._pool.submit(self._run, lane, np.ascontiguousarray(part))
                   for lane, part in zip(self._lanes, parts)]
        return np.concatenate([future.result() for future in running])


class OnnxPredictor(OnnxRunner):
    """The same prediction run by ONNX Runtime, from an export cached beside
    the checkpoint (FP32, or INT8 calibrated on synthetic faces and checked
    against FP32); `gpu` >= 0 uses the CUDA provider when onnxruntime-gpu is
    installed."""

    def __init__(self, checkpoint, gpu=-1, int8=False):
        from core.inference.export import export
        from core.plumbing.checkpoint import load_checkpoint
        self.backend = 'onnx-int8' if int8 else 'onnx'
        path = cached_onnx(checkpoint, 'fp32', lambda out: export(
            *load_checkpoint(checkpoint.prefix, checkpoint.number), out_path=out, batch='dynamic',
            input_size=checkpoint.input_size, source=checkpoint.params))
        if int8:
            from core.inference.quantize import quantize
            path = cached_onnx(checkpoint, 'int8',
                               lambda out, fp32=path: quantize(fp32, out, checkpoint.cfg))
        super(OnnxPredictor, self).__init__(path, gpu)


def auto_backend(checkpoint, gpu):
    """(backend name, why): ONNX Runtime on the CPU when the network exports
    exactly, MXNet on a GPU or for deformable networks."""
    from core.inference.export import ExportError, check_exportable
    from core.plumbing.checkpoint import load_symbol, symbol_path
    from symbol import inference_symbol
    if gpu is not None and gpu >= 0:
        return 'mxnet', 'MXNet on GPU %d' % gpu
    try:
        check_exportable(inference_symbol(load_symbol(symbol_path(checkpoint.prefix))))
    except ExportError:
        return 'mxnet', 'MXNet (the network has layers ONNX cannot express)'
    return 'onnx', 'ONNX Runtime on the CPU'


def _mxnet(checkpoint, gpu):
    from core.plumbing.devices import inference_context
    return MXNetPredictor(checkpoint, inference_context(gpu))


Backend = collections.namedtuple('Backend', 'name about make')
# The inference backends, by name: what each is and how it is made from a
# resolved checkpoint and `--gpu`. Scripts, benchmarks and docs read this.
BACKENDS = collections.OrderedDict((b.name, b) for b in (
    Backend('mxnet', 'MXNet Module (CPU, or GPU with --gpu)', _mxnet),
    Backend('onnx', 'ONNX Runtime FP32 (exported beside the checkpoint)',
            lambda checkpoint, gpu: OnnxPredictor(checkpoint, gpu)),
    Backend('onnx-int8', 'ONNX Runtime INT8 (calibrated, checked against FP32)',
            lambda checkpoint, gpu: OnnxPredictor(checkpoint, gpu, int8=True)),
))
# What a script's --backend takes: a backend, or `auto` (auto_backend).
BACKEND_CHOICES = ('auto',) + tuple(BACKENDS)


def make_predictor(checkpoint, backend='auto', gpu=-1):
    """A predictor of `backend` (a name of BACKEND_CHOICES) for a resolved
    Checkpoint."""
    if backend not in BACKEND_CHOICES:
        raise ValueError('backend must be one of %s, got %r' % (', '.join(BACKEND_CHOICES),
                                                                backend))
    if backend == 'auto':
        backend, why = auto_backend(checkpoint, gpu)
        log.info('backend: %s', why)
    return BACKENDS[backend].make(checkpoint, gpu)
