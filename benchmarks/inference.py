"""CPU inference speed of a network: MXNet Module, hybridized Gluon (static
allocation) and ONNX Runtime, at batch 1 and 8, with FLOPs counted from the
graph and ratios against the plain MXNet Module measured in the same run.

    python -m benchmarks.inference                      # hg2d3-cab, random weights
    python -m benchmarks.inference --model sat2d3-cab
    python -m benchmarks.inference --prefix ./models/model-hg2d3-cab/model --epoch 0
"""
import argparse
import json
import os
import tempfile
import time

import mxnet as mx
import numpy as np

from core.checkpoint import load_checkpoint
from core.onnx_export import export, ort_session
from symbol import get_symbol, inference_symbol, param_shapes, to_gluon
from core.config import published_config


CONV_OPS = ('Convolution', 'Deconvolution', '_contrib_DeformableConvolution')


def count_flops(pred, input_size=128):
    """Multiply-adds x 2 of the (de)convolutions, per face."""
    shape = (1, 3, input_size, input_size)
    internals = pred.get_internals()
    outputs = dict(zip(internals.list_outputs(), internals.infer_shape(data=shape)[1]))
    weights = dict(zip(pred.list_arguments(), pred.infer_shape(data=shape)[0]))
    flops = 0
    for node in json.loads(pred.tojson())['nodes']:
        if node['op'] not in CONV_OPS:
            continue
        weight = weights[node['name'] + '_weight']
        out = outputs[node['name'] + '_output']
        macs = int(np.prod(out[2:])) * int(np.prod(weight))
        if node['op'] == 'Deconvolution':      # weight (Cin, Cout, k, k) applied per input pixel
            stride = [int(v) for v in node['attrs']['stride'].strip('()').split(',')]
            macs //= stride[0] * stride[1]
        flops += 2 * macs
    return flops


def timed(fn, batch, seconds=8.0, warmup=2):
    """Median seconds per call of fn() over repeated calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def runners(sym, arg_params, aux_params, batch, onnx_path, input_size):
    pred = inference_symbol(sym)
    data = np.random.RandomState(0).uniform(0, 255, (batch, 3, input_size, input_size))
    data = data.astype(np.float32)
    module = mx.mod.Module(pred, data_names=['data'], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[('data', data.shape)], for_training=False)
    module.set_params(arg_params, aux_params, allow_extra=True)
    batch_data = mx.io.DataBatch([mx.nd.array(data)])

    def run_module():
        module.forward(batch_data, is_train=False)
        module.get_outputs()[0].wait_to_read()
    names = set(pred.list_arguments()) | set(pred.list_auxiliary_states())
    net = to_gluon(sym, {k: v for k, v in arg_params.items() if k in names},
                   {k: v for k, v in aux_params.items() if k in names},
                   data_shape=data.shape)
    net.hybridize(static_alloc=True, static_shape=True)
    nd_data = mx.nd.array(data)

    def run_gluon():
        net(nd_data).wait_to_read()
    session = ort_session(onnx_path)
    name = session.get_inputs()[0].name

    def run_onnx():
        session.run(None, {name: data})
    return [('MXNet Module', run_module), ('Gluon hybridized', run_gluon),
            ('ONNX Runtime', run_onnx)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default='hg2d3-cab', help='published configuration name')
    parser.add_argument('--prefix', help='checkpoint prefix (instead of random weights)')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--batches', default='1,8')
    parser.add_argument('--seconds', type=float, default=8.0, help='timing per measurement')
    args = parser.parse_args(argv)
    if args.prefix:
        sym, arg_params, aux_params = load_checkpoint(args.prefix, args.epoch)
        title = '%s-%04d' % (args.prefix, args.epoch)
    else:
        cfg = published_config(args.model)
        sym = get_symbol(cfg)
        shapes = param_shapes(sym, (1, 3, 128, 128), (1, 68, 64, 64))
        rng = np.random.RandomState(0)
        aux_names = set(sym.list_auxiliary_states())
        arg_params = {k: mx.nd.array(rng.normal(0, 0.05, s)) for k, s in shapes.items()
                      if k not in aux_names}
        aux_params = {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('var')
                                     else rng.normal(0, 0.05, s))
                      for k, s in shapes.items() if k in aux_names}
        title = '%s (random weights)' % args.model
    gflop = count_flops(inference_symbol(sym)) / 1e9
    print('%s: %.2f GFLOP per 128x128 face; %d cores' % (title, gflop, os.cpu_count()))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, 'model.onnx')
        export(sym, arg_params, aux_params, onnx_path, 'dynamic')
        for batch in [int(b) for b in args.batches.split(',')]:
            print('\nbatch %d' % batch)
            print('  %-18s %10s %9s %9s %10s' % ('runtime', 'ms/face', 'faces/s', 'GFLOP/s',
                                                 'vs Module'))
            baseline = None
            for label, fn in runners(sym, arg_params, aux_params, batch, onnx_path, 128):
                per_face = timed(fn, batch, args.seconds) / batch
                baseline = baseline or per_face
                print('  %-18s %10.1f %9.2f %9.1f %9.2fx' % (label, per_face * 1e3, 1 / per_face,
                                                             gflop / per_face,
                                                             baseline / per_face))


if __name__ == '__main__':
    main()
