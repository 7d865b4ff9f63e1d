"""Heatmap prediction from a checkpoint: (N, 3, S, S) RGB -> (N, 68, L, L)."""
import os

import mxnet as mx
import numpy as np

from symbol import inference_symbol

from .checkpoint import fit_params, load_checkpoint


class MXNetPredictor(object):
    """The checkpoint's prediction (the BlockGrad input, i.e. `heatmap_output`
    for the published models) run by an MXNet Module in fixed-size batches."""

    def __init__(self, prefix, epoch, ctx=None, batch_size=8, input_size=128):
        sym, arg_params, aux_params = load_checkpoint(prefix, epoch)
        self.sym = inference_symbol(sym)
        self.batch_size, self.input_size = batch_size, input_size
        shape = (batch_size, 3, input_size, input_size)
        arg_params, aux_params = fit_params(self.sym, arg_params, aux_params, shape, None,
                                            source='%s-%04d.params' % (prefix, epoch))
        self.module = mx.mod.Module(self.sym, data_names=['data'], label_names=None,
                                    context=ctx or mx.cpu())
        self.module.bind(data_shapes=[('data', shape)], for_training=False)
        self.module.set_params(arg_params, aux_params)

    def __call__(self, data):
        data = np.asarray(data, dtype=np.float32)
        out = []
        for start in range(0, len(data), self.batch_size):
            chunk = data[start:start + self.batch_size]
            padded = np.zeros((self.batch_size,) + chunk.shape[1:], np.float32)
            padded[:len(chunk)] = chunk
            self.module.forward(mx.io.DataBatch([mx.nd.array(padded)]), is_train=False)
            out.append(self.module.get_outputs()[0].asnumpy()[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0,))


class OnnxPredictor(object):
    """The same prediction run by ONNX Runtime (threads = cores). The model is
    exported next to the checkpoint (PREFIX-%04d.onnx, dynamic batch) the
    first time, or whenever the parameters are newer."""

    def __init__(self, prefix, epoch, input_size=128):
        from .onnx_export import export, ort_session
        path = '%s-%04d.onnx' % (prefix, epoch)
        params = '%s-%04d.params' % (prefix, epoch)
        if not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(params):
            sym, arg_params, aux_params = load_checkpoint(prefix, epoch)
            export(sym, arg_params, aux_params, path, 'dynamic', input_size)
        self.session = ort_session(path)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, data):
        data = np.ascontiguousarray(data, dtype=np.float32)
        return self.session.run(None, {self.input_name: data})[0]


BACKENDS = ('mxnet', 'onnx')


def make_predictor(prefix, epoch, ctx=None, backend='mxnet', input_size=128):
    """A predictor of the chosen backend ('mxnet' or 'onnx')."""
    if backend == 'onnx':
        return OnnxPredictor(prefix, epoch, input_size)
    if backend != 'mxnet':
        raise ValueError('backend must be one of %s, got %r' % (BACKENDS, backend))
    return MXNetPredictor(prefix, epoch, ctx, input_size=input_size)
