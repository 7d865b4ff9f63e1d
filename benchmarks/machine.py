"""What this machine can do and what a benchmark used of it: the CPU and its
vector features, the peaks of ONNX Runtime itself (the better of a matrix
product and a 3x3 convolution, FP32 and u8 x s8) on the threads the
benchmark uses (the roof of every benchmark's roofline), timing and a
process's peak memory.
"""
import collections
import os
import platform
import tempfile
import time

import numpy as np

# The features that decide the INT8 and FP32 paths of x86 CPUs.
FEATURES = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8')


def cpu():
    """(model name, [FEATURES this CPU has])."""
    name, flags = platform.processor() or 'unknown CPU', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    name = value.strip()
                elif key.strip() == 'flags':
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, [f for f in FEATURES if f in flags]


def describe(threads):
    name, features = cpu()
    vnni = any(f in features for f in ('avx512_vnni', 'avx_vnni'))
    return '%s, %d thread%s, %s%s' % (name, threads, '' if threads == 1 else 's',
                                      ' '.join(features) or 'no AVX2',
                                      '' if vnni else ' (no VNNI: u8 x s8 products '
                                      'go through 16-bit sums)')


def peak_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not
    inherited from the parent across fork and exec)."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024.0


def timed(fn, seconds=2.0, warmup=2):
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


def _one_node_model(path, op, inputs, constants, output, domain='', **attributes):
    """An ONNX file of one node: `inputs` {name: array} fed at run time,
    `constants` {name: array} stored in the file, `output` (name, numpy
    dtype, shape); `domain` com.microsoft for ONNX Runtime's own operators."""
    import onnx
    from onnx import helper, mapping, numpy_helper

    def value(name, dtype, shape):
        return helper.make_tensor_value_info(name, mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype(dtype)],
                                             list(shape))
    graph = helper.make_graph(
        [helper.make_node(op, list(inputs) + list(constants), [output[0]], domain=domain,
                          **attributes)], op,
        [value(name, a.dtype, a.shape) for name, a in inputs.items()], [value(*output)],
        [numpy_helper.from_array(np.asarray(a), name) for name, a in constants.items()])
    opsets = [helper.make_opsetid('', 13)] + [helper.make_opsetid(domain, 1)] * bool(domain)
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)


def _peak_cases(rng, size=2048, channels=128, side=64, batch=8):
    """(precision, what, operations, inputs, constants, output, attributes)
    of each measurement: a size^3 matrix product and a 3x3 convolution of
    `channels` at side x side, batch `batch` (the shape of hg2d3-cab's
    largest layers), in FP32 and in u8 x s8. The INT8 convolution is
    channels-last (ONNX Runtime's own QLinearConv, as its INT8 graphs run
    them: no layout change measured with it)."""
    a32 = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    a8 = rng.randint(0, 255, (size, size)).astype(np.uint8)
    x32 = rng.uniform(-1, 1, (batch, channels, side, side)).astype(np.float32)
    x8 = rng.randint(0, 255, (batch, side, side, channels)).astype(np.uint8)
    w = rng.randint(-63, 64, (channels, channels, 3, 3))
    matmul, conv = 2 * size ** 3, 2 * batch * side * side * channels * channels * 9
    return [
        ('fp32', 'MatMul %d^3' % size, matmul, {'a': a32}, {'b': a32.T.copy()},
         ('c', np.float32, a32.shape), {}),
        ('fp32', 'Conv 3x3 %d->%d at %dx%d' % (channels, channels, side, side), conv, {'x': x32},
         {'w': (w / 64.0).astype(np.float32)}, ('y', np.float32, x32.shape), {'pads': [1] * 4}),
        ('int8', 'MatMulInteger %d^3' % size, matmul, {'a': a8}, {'b': a8.T.astype(np.int8)},
         ('c', np.int32, a8.shape), {}),
        ('int8_convolution', 'QLinearConv 3x3 %d->%d at %dx%d' % (channels, channels, side, side),
         conv, {'x': x8}, collections.OrderedDict([
             ('x_scale', np.float32(0.02)), ('x_zero', np.uint8(128)), ('w', w.astype(np.int8)),
             ('w_scale', np.full(channels, 0.01, np.float32)),
             ('w_zero', np.zeros(channels, np.int8)), ('y_scale', np.float32(0.5)),
             ('y_zero', np.uint8(128))]), ('y', np.uint8, x8.shape),
         {'pads': [1] * 4, 'channels_last': 1, 'domain': 'com.microsoft'}),
    ]


# The roof of a runtime: `fp32` and `int8`, the better of a matrix product
# and a 3x3 convolution in each precision; `int8_convolution`, the INT8
# convolution's own rate (the kernel the INT8 networks run: on CPUs with AMX
# the matrix product uses AMX's tiles, which ONNX Runtime's convolutions do
# not, and it is the lower of the two there).
Peaks = collections.namedtuple('Peaks', 'fp32 int8 int8_convolution')


def measured_peaks(threads, seconds=2.0, details=None):
    """Peaks in G(FL)OP/s: the best ONNX Runtime itself reaches on `threads`
    threads, of a large matrix product (MatMul; MatMulInteger, UINT8 x INT8)
    and of a 3x3 convolution (Conv; QLinearConv), what the network's
    convolutions could reach at best on this machine. A matrix product alone
    can be the slower of the two (MLAS's convolution kernels beat its 2048^3
    product on some CPUs): the roof is the better. `details`, a list,
    receives (what, G(FL)OP/s) of each."""
    from core.inference.export import ort_session
    rates = collections.defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, what, operations, inputs, constants, output, attributes in \
                _peak_cases(np.random.RandomState(0)):
            op = what.split()[0]
            path = os.path.join(tmp, op + '.onnx')
            _one_node_model(path, op, inputs, constants, output, **attributes)
            session = ort_session(path, threads)
            rate = operations / timed(lambda: session.run(None, inputs), seconds) / 1e9
            rates[kind] = max(rates[kind], rate)
            if details is not None:
                details.append((what, rate))
    return Peaks(rates['fp32'], max(rates['int8'], rates['int8_convolution']),
                 rates['int8_convolution'])
