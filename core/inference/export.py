"""Export a checkpoint's prediction to ONNX, verified against MXNet."""
import contextlib
import json
import logging
import os
import tempfile

import mxnet as mx
import numpy as np

from data.files import write_atomic
from symbol import inference_symbol

from core.inference import rewrites
from core.plumbing.checkpoint import fit_params
from core.plumbing.devices import confirm_onnx_providers, onnx_providers

log = logging.getLogger(__name__)

UNSUPPORTED = {'_contrib_DeformableConvolution': 'deformable convolution',
               'DeformableConvolution': 'deformable convolution'}
TOLERANCE = 1e-4


class ExportError(ValueError):
    """The network cannot be expressed in ONNX, or the export does not match."""


def check_exportable(pred):
    """Raise ExportError naming the layers ONNX cannot express."""
    nodes = json.loads(pred.tojson())['nodes']
    bad = ['%s (%s)' % (n['name'], UNSUPPORTED[n['op']]) for n in nodes if n['op'] in UNSUPPORTED]
    if bad:
        raise ExportError('ONNX cannot express %d layer(s) of this network: %s. Export a '
                          'net_dcn = 0 model, or run it with the MXNet backend.'
                          % (len(bad), ', '.join(bad[:5]) + (' ...' if len(bad) > 5 else '')))


def ort_session(path, threads=None, gpu=-1):
    """An ONNX Runtime session: on GPU `gpu` when onnxruntime-gpu is there
    (else the CPU, said once), on the CPU with every usable core (or
    `threads`)."""
    import onnxruntime as ort
    from data.workers import usable_cpus
    providers, warning = onnx_providers(gpu, ort.get_available_providers())
    if warning:
        log.warning(warning)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cpus()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads that wait sleep rather than spin: the photo pipeline detects the
    # next photos on the same cores meanwhile.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = ort.InferenceSession(path, options, providers=providers)
    fallback = confirm_onnx_providers(session, gpu)
    if fallback:
        log.warning(fallback)
    return session


@contextlib.contextmanager
def quiet_root_logger(level=logging.WARNING):
    """Third-party tools that talk on the root logger (MXNet's exporter at
    INFO, ONNX Runtime's quantizer at WARNING) are quiet below `level`
    unless debugging."""
    root = logging.getLogger()
    previous = root.level
    if previous < level and not log.isEnabledFor(logging.DEBUG):
        root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(previous)


def mxnet_forward(pred, params, data):
    args = {k: params[k] for k in pred.list_arguments() if k != 'data'}
    args['data'] = mx.nd.array(data)
    aux = {k: params[k] for k in pred.list_auxiliary_states()}
    exe = pred.bind(mx.cpu(), args=args, aux_states=aux, grad_req='null')
    return exe.forward(is_train=False)[0].asnumpy()


def export(sym, arg_params, aux_params, out_path, batch=1, input_size=128, seed=0,
           source='checkpoint'):
    """Write the prediction of `sym` as ONNX at `out_path`.

    batch is an int or 'dynamic'. Weights are initializers, not graph inputs,
    so ONNX Runtime can fold BatchNorm. Parameters that do not fit the
    network are named (missing, unexpected, mis-shaped) with `source`. The
    file is only written when ONNX Runtime reproduces MXNet within 1e-4 on a
    random input; returns the maximum absolute difference.
    """
    import onnx
    pred = inference_symbol(sym)
    check_exportable(pred)
    dynamic = batch == 'dynamic'
    shape = (1 if dynamic else int(batch), 3, input_size, input_size)
    arg_params, aux_params = fit_params(pred, arg_params, aux_params, shape, None, source=source)
    params = dict(arg_params, **aux_params)
    directory = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp, quiet_root_logger():
        raw = os.path.join(tmp, 'raw.onnx')
        mx.onnx.export_model(pred, params, in_shapes=[shape], in_types=[np.float32],
                             onnx_file_path=raw, dynamic=dynamic,
                             dynamic_input_shapes=[('batch', 3, input_size, input_size)]
                             if dynamic else None)
        model = onnx.load(raw)
        initializers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        rewrites.apply(model, rewrites.EXPORT)
        onnx.checker.check_model(model)
        final = os.path.join(tmp, 'final.onnx')
        onnx.save(model, final)
        test_batch = 2 if dynamic else shape[0]
        data = np.random.RandomState(seed).uniform(0, 255, (test_batch,) + shape[1:])
        data = data.astype(np.float32)
        session = ort_session(final)
        ours = session.run(None, {session.get_inputs()[0].name: data})[0]
        reference = mxnet_forward(pred, params, data)
        if not np.isfinite(reference).all():
            raise ExportError('the network gives values that are not finite (its weights hold '
                              'NaN or infinity); nothing to export, nothing written')
        diff = float(np.abs(ours - reference).max())
        if not diff <= TOLERANCE:
            raise ExportError('ONNX Runtime output differs from MXNet by %.3g (> %g); nothing '
                              'written' % (diff, TOLERANCE))
        write_atomic(out_path, model.SerializeToString())
    return diff
