"""CPU inference speed of a network: MXNet Module, hybridized Gluon (static
allocation), ONNX Runtime FP32 and INT8, at batch 1 and 8, with operations
counted from the graph, ratios against the plain MXNet Module measured in
the same run, and the machine's measured peak for reference.

    python -m benchmarks.inference                      # hg2d3-cab, random weights
    python -m benchmarks.inference --model sat2d3-cab
    python -m benchmarks.inference --prefix ./models/model-hg2d3-cab/model
"""
import argparse
import json
import os
import tempfile
import time

import mxnet as mx
import numpy as np

from benchmarks.models import random_checkpoint
from core.checkpoint import load_checkpoint
from core.onnx_export import export, ort_session
from core.predictor import resolve
from core.quantize import quantize
from data.workers import usable_cpus
from symbol import inference_symbol, to_gluon


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


def measured_peaks(threads, size=1024, seconds=2.0):
    """(FP32 GFLOP/s of a float32 matrix product, INT8 GOPS of ONNX
    Runtime's MatMulInteger (UINT8 x INT8, the VNNI path)) on this machine."""
    import onnx
    from onnx import TensorProto, helper
    rng = np.random.RandomState(0)
    a = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    fp32 = timed(lambda: a @ a, 1, seconds)
    weights = rng.randint(-127, 127, (size, size)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node('MatMulInteger', ['a', 'b'], ['c'])], 'peak',
        [helper.make_tensor_value_info('a', TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info('c', TensorProto.INT32, [size, size])],
        [helper.make_tensor('b', TensorProto.INT8, [size, size], weights.tobytes(), raw=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'peak.onnx')
        onnx.save(model, path)
        session = ort_session(path, threads)
        data = rng.randint(0, 255, (size, size)).astype(np.uint8)
        int8 = timed(lambda: session.run(None, {'a': data}), 1, seconds)
    ops = 2.0 * size ** 3
    return ops / fp32 / 1e9, ops / int8 / 1e9


def runners(sym, arg_params, aux_params, batch, onnx_paths, input_size):
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
    found = [('MXNet Module', run_module), ('Gluon hybridized', run_gluon)]
    for label, path in onnx_paths:
        session = ort_session(path)
        found.append((label, lambda s=session: s.run(None, {s.get_inputs()[0].name: data})))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default='hg2d3-cab', help='published configuration name')
    parser.add_argument('--prefix', help='checkpoint prefix (instead of random weights)')
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--batches', default='1,8')
    parser.add_argument('--seconds', type=float, default=8.0, help='timing per measurement')
    args = parser.parse_args(argv)
    threads = usable_cpus()
    fp32_peak, int8_peak = measured_peaks(threads)
    print('this machine (%d cores): measured peak %.0f GFLOP/s FP32 (matrix product), %.0f GOPS '
          'INT8 (ONNX Runtime MatMulInteger)' % (threads, fp32_peak, int8_peak))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = resolve(args.prefix or random_checkpoint(args.model, tmp), args.epoch)
        sym, arg_params, aux_params = load_checkpoint(checkpoint.prefix, checkpoint.number)
        size = checkpoint.input_size
        gflop = count_flops(inference_symbol(sym), size) / 1e9
        print('%s: %.2f GFLOP per %dx%d face' % (
            checkpoint.prefix if args.prefix else '%s (random weights)' % args.model, gflop,
            size, size))
        fp32, int8 = os.path.join(tmp, 'fp32.onnx'), os.path.join(tmp, 'int8.onnx')
        export(sym, arg_params, aux_params, fp32, 'dynamic', size)
        quantize(fp32, int8, checkpoint.cfg, max_loss=None)
        for batch in [int(b) for b in args.batches.split(',')]:
            print('\nbatch %d' % batch)
            print('  %-22s %10s %9s %13s %10s' % ('runtime', 'ms/face', 'faces/s', 'G(FL)OP/s',
                                                  'vs Module'))
            baseline = None
            for label, fn in runners(sym, arg_params, aux_params, batch,
                                     [('ONNX Runtime FP32', fp32), ('ONNX Runtime INT8', int8)],
                                     size):
                per_face = timed(fn, batch, args.seconds) / batch
                baseline = baseline or per_face
                print('  %-22s %10.1f %9.2f %13.1f %9.2fx' % (
                    label, per_face * 1e3, 1 / per_face, gflop / per_face, baseline / per_face))


if __name__ == '__main__':
    main()
