"""CPU inference speed of a network: MXNet Module, hybridized Gluon (static
allocation), ONNX Runtime FP32 and INT8, at batch 1 and 8, with operations
counted from the graph, ratios against the plain MXNet Module measured in
the same run, the peak memory of each (one process per runtime), and the
roofline: the achieved G(FL)OP/s of each as a share of ONNX Runtime's own
peak on this machine (benchmarks.machine.measured_peaks: FP32 for the FP32
runtimes, u8 x s8 for INT8, and for INT8 also against the convolution
kernel alone where the matrix product beats it), with the CPU's features.
ONNX batches run as the backends run them (a session per core) and on one
session.

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

import mxnet as mx
import numpy as np

from benchmarks.machine import describe, measured_peaks, peak_mb, timed
from benchmarks.models import random_checkpoint
from core.plumbing.checkpoint import load_checkpoint
from core.inference.export import export
from core.inference.predictor import OnnxRunner
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


def onnx_flops(path, input_size, batch=1):
    """Multiply-adds x 2 of the Conv and ConvTranspose nodes of an ONNX
    file, per face, from ONNX's own shape inference: a count apart from
    count_flops (another graph, another reader)."""
    import onnx
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, (batch, 3, input_size, input_size)):
        dim.ClearField('dim_param')
        dim.dim_value = size
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) +
              list(model.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    flops = 0
    for node in model.graph.node:
        if node.op_type not in ('Conv', 'ConvTranspose'):
            continue
        kernel = weights[node.input[1]]     # its second dimension is already per group
        if node.op_type == 'Conv':      # each output value: Cin/group x k x k products
            flops += 2 * int(np.prod(shapes[node.output[0]])) * int(np.prod(kernel[1:]))
        else:                           # each input value: Cout/group x k x k products
            flops += 2 * int(np.prod(shapes[node.input[0]])) * int(np.prod(kernel[1:]))
    return flops // batch


def _runtime(name, checkpoint, onnx_dir, batch, one_session=False):
    """The call of one runtime at `batch`, its input made here; ONNX runs as
    the backends run it (OnnxRunner), or with `one_session` on one session
    using every core."""
    size = checkpoint.input_size
    data = np.random.RandomState(0).uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
    if name.startswith('onnx'):
        runner = OnnxRunner(os.path.join(onnx_dir, name + '.onnx'))
        if one_session:
            runner.lane_count = 1
        return lambda: runner(data)
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


def variants(batch, threads):
    """(runtime, label, one_session) rows at `batch`: each runtime as the
    backends run it and, for ONNX batches on several cores, also on one
    session using them all (what a session per core is measured against)."""
    for name, label in RUNTIMES:
        if name.startswith('onnx') and batch > 1 and threads > 1:
            yield name, label + ', one session', True
            yield name, label + ', a session per core', False
        else:
            yield name, label, False


def child(args):
    """Time one runtime in this fresh process: prints seconds per face and
    the process's peak memory."""
    checkpoint = resolve(args.prefix, args.epoch)
    per_face = timed(_runtime(args.child, checkpoint, args.onnx_dir, args.batch,
                              args.one_session), args.seconds) / args.batch
    print('MEASURED %.6f %.0f' % (per_face, peak_mb()))


def measure(name, prefix, number, onnx_dir, batch, seconds, one_session=False):
    """(seconds per face, peak MB) of one runtime, in its own process so
    that each one's memory is its own."""
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.inference', '--child', name,
                           '--prefix', prefix, '--epoch', str(number), '--onnx-dir', onnx_dir,
                           '--batch', str(batch), '--seconds', str(seconds)] +
                          ['--one-session'] * one_session, capture_output=True, text=True)
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
    parser.add_argument('--one-session', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    threads = usable_cpus()
    details = []
    before = measured_peaks(threads, details=details)
    print('this machine: %s' % describe(threads))
    print('ONNX Runtime itself on %d threads: %s' % (threads, ', '.join(
        '%s %.0f G(FL)OP/s' % item for item in details)))
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
        apart = onnx_flops(fp32, size) / 1e9
        if abs(apart - gflop) > 1e-3 * gflop:
            print('the ONNX graph counts %.3f GFLOP, the MXNet graph %.3f: the export differs'
                  % (apart, gflop))
        quantize(fp32, int8, checkpoint.cfg, max_loss=None)
        peaks, rows = [peak_mb()], []
        batches = [int(b) for b in args.batches.split(',')]
        for batch in batches:
            baseline = None
            for name, label, one_session in variants(batch, threads):
                print('timing %s at batch %d' % (label, batch), flush=True)
                per_face, peak = measure(name, checkpoint.prefix, checkpoint.number, tmp, batch,
                                         args.seconds, one_session)
                baseline = baseline or per_face
                peaks.append(peak)
                rows.append((batch, name, label, per_face, peak, baseline / per_face))
    # The roof is the best the machine reached, before or after: its speed
    # can drift within a run (a virtual machine's neighbours).
    fp32_peak, int8_peak, convolution_peak = (max(pair) for pair in zip(
        before, measured_peaks(threads)))
    print('\nroof: %.0f GFLOP/s FP32, %.0f GOP/s INT8 (the better of each pair, the higher of '
          'its measurements before and after)' % (fp32_peak, int8_peak))
    for batch in batches:
        print('\nbatch %d (each runtime in its own process)' % batch)
        print('  %-40s %10s %9s %11s %9s %10s %9s' % (
            'runtime', 'ms/face', 'faces/s', 'G(FL)OP/s', 'of peak', 'vs Module', 'peak MB'))
        for _, name, label, per_face, peak, ratio in (r for r in rows if r[0] == batch):
            roof = int8_peak if name == 'onnx-int8' else fp32_peak
            print('  %-40s %10.1f %9.2f %11.1f %8.0f%% %9.2fx %9.0f' % (
                label, per_face * 1e3, 1 / per_face, gflop / per_face,
                100 * gflop / per_face / roof, ratio, peak))
    if convolution_peak < 0.9 * int8_peak:
        print('\nINT8 against ONNX Runtime\'s own INT8 convolution (%.0f GOP/s, the kernel the '
              'network runs; the matrix product beats it on this CPU, with AMX where it has it, '
              'which the convolutions do not use): %s' % (convolution_peak, ', '.join(
                  '%s at batch %d %.0f%%' % (label, batch,
                                              100 * gflop / per_face / convolution_peak)
                  for batch, name, label, per_face, _, _ in rows if name == 'onnx-int8')))
    print('\npeak memory of any process of this benchmark: %.0f MB (the export and INT8 '
          'calibration: %.0f MB)' % (max(peaks), peaks[0]))


if __name__ == '__main__':
    main()
