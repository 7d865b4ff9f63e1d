"""CPU inference speed of a network: MXNet Module, hybridized Gluon (static
allocation), ONNX Runtime FP32 and INT8, at batch 1 and 8, with operations
counted from the graph, ratios against the plain MXNet Module measured in
the same run, the peak memory of each (one process per runtime), and the
machine's measured peak for reference.

    python -m benchmarks.inference                      # hg2d3-cab, random weights
    python -m benchmarks.inference --model sat2d3-cab
    python -m benchmarks.inference --prefix ./models/model-hg2d3-cab/model
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import mxnet as mx
import numpy as np

from benchmarks.models import random_checkpoint
from benchmarks.photos import peak_mb
from core.plumbing.checkpoint import load_checkpoint
from core.inference.export import export, ort_session
from core.plumbing.runs import resolve
from core.inference.quantize import quantize
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


def _runtime(name, checkpoint, onnx_dir, batch):
    """The call of one runtime at `batch`, its input made here."""
    size = checkpoint.input_size
    data = np.random.RandomState(0).uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
    if name.startswith('onnx'):
        session = ort_session(os.path.join(onnx_dir, name + '.onnx'))
        return lambda: session.run(None, {session.get_inputs()[0].name: data})
    sym, arg_params, aux_params = load_checkpoint(checkpoint.prefix, checkpoint.number)
    pred = inference_symbol(sym)
    if name == 'module':
        mod = mx.mod.Module(pred, data_names=['data'], label_names=None, context=mx.cpu())
        mod.bind(data_shapes=[('data', data.shape)], for_training=False)
        mod.set_params(arg_params, aux_params, allow_extra=True)
        batch_data = mx.io.DataBatch([mx.nd.array(data)])

        def run():
            mod.forward(batch_data, is_train=False)
            mod.get_outputs()[0].wait_to_read()
        return run
    names = set(pred.list_arguments()) | set(pred.list_auxiliary_states())
    net = to_gluon(sym, {k: v for k, v in arg_params.items() if k in names},
                   {k: v for k, v in aux_params.items() if k in names}, data_shape=data.shape)
    net.hybridize(static_alloc=True, static_shape=True)
    nd_data = mx.nd.array(data)
    return lambda: net(nd_data).wait_to_read()


RUNTIMES = (('module', 'MXNet Module'), ('gluon', 'Gluon hybridized'),
            ('onnx-fp32', 'ONNX Runtime FP32'), ('onnx-int8', 'ONNX Runtime INT8'))


def child(args):
    """Time one runtime in this fresh process: prints seconds per face and
    the process's peak memory."""
    checkpoint = resolve(args.prefix, args.epoch)
    per_face = timed(_runtime(args.child, checkpoint, args.onnx_dir, args.batch), args.batch,
                     args.seconds) / args.batch
    print('MEASURED %.6f %.0f' % (per_face, peak_mb()))


def measure(name, prefix, number, onnx_dir, batch, seconds):
    """(seconds per face, peak MB) of one runtime, in its own process so
    that each one's memory is its own."""
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.inference', '--child', name,
                           '--prefix', prefix, '--epoch', str(number), '--onnx-dir', onnx_dir,
                           '--batch', str(batch), '--seconds', str(seconds)],
                          capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('MEASURED ')]
    if proc.returncode or not lines:
        raise RuntimeError('%s at batch %d failed:\n%s' % (name, batch, proc.stderr[-2000:]))
    per_face, peak = lines[-1].split()[1:]
    return float(per_face), float(peak)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default='hg2d3-cab', help='published configuration name')
    parser.add_argument('--prefix', help='checkpoint prefix (instead of random weights)')
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--batches', default='1,8')
    parser.add_argument('--seconds', type=float, default=8.0, help='timing per measurement')
    parser.add_argument('--child', choices=[name for name, _ in RUNTIMES], help=argparse.SUPPRESS)
    parser.add_argument('--onnx-dir', help=argparse.SUPPRESS)
    parser.add_argument('--batch', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
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
        fp32, int8 = os.path.join(tmp, 'onnx-fp32.onnx'), os.path.join(tmp, 'onnx-int8.onnx')
        export(sym, arg_params, aux_params, fp32, 'dynamic', size)
        del sym, arg_params, aux_params
        quantize(fp32, int8, checkpoint.cfg, max_loss=None)
        peaks = [peak_mb()]
        for batch in [int(b) for b in args.batches.split(',')]:
            print('\nbatch %d (each runtime in its own process)' % batch)
            print('  %-22s %10s %9s %13s %10s %9s' % ('runtime', 'ms/face', 'faces/s',
                                                      'G(FL)OP/s', 'vs Module', 'peak MB'))
            baseline = None
            for name, label in RUNTIMES:
                per_face, peak = measure(name, checkpoint.prefix, checkpoint.number, tmp, batch,
                                         args.seconds)
                baseline = baseline or per_face
                peaks.append(peak)
                print('  %-22s %10.1f %9.2f %13.1f %9.2fx %9.0f' % (
                    label, per_face * 1e3, 1 / per_face, gflop / per_face, baseline / per_face,
                    peak))
    print('\npeak memory of any process of this benchmark: %.0f MB (the export and INT8 '
          'calibration: %.0f MB)' % (max(peaks), peaks[0]))


if __name__ == '__main__':
    main()
