"""What this machine can do and what a benchmark used of it: the CPU and its
vector features, the matrix-multiply peaks of ONNX Runtime itself (FP32
MatMul, u8 x s8 MatMulInteger) on the threads the benchmark uses (the roof
of every benchmark's roofline), timing and a process's peak memory.
"""
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


def _matmul_model(path, op, a_type, b_type, out_type, size, weights):
    import onnx
    from onnx import helper
    graph = helper.make_graph(
        [helper.make_node(op, ['a', 'b'], ['c'])], 'peak',
        [helper.make_tensor_value_info('a', a_type, [size, size])],
        [helper.make_tensor_value_info('c', out_type, [size, size])],
        [helper.make_tensor('b', b_type, [size, size], weights.tobytes(), raw=True)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)]), path)


def measured_peaks(threads, size=2048, seconds=2.0):
    """(FP32 GFLOP/s of ONNX Runtime's MatMul, INT8 GOP/s of its
    MatMulInteger, UINT8 x INT8) on `threads` threads: what the network's
    convolutions could reach at best on this machine."""
    from onnx import TensorProto

    from core.inference.export import ort_session
    rng = np.random.RandomState(0)
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for op, a, b, out, weights, data in (
                ('MatMul', TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT,
                 rng.uniform(-1, 1, (size, size)).astype(np.float32),
                 rng.uniform(-1, 1, (size, size)).astype(np.float32)),
                ('MatMulInteger', TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32,
                 rng.randint(-127, 127, (size, size)).astype(np.int8),
                 rng.randint(0, 255, (size, size)).astype(np.uint8))):
            path = os.path.join(tmp, op + '.onnx')
            _matmul_model(path, op, a, b, out, size, weights)
            session = ort_session(path, threads)
            found.append(2.0 * size ** 3 / timed(lambda: session.run(None, {'a': data}),
                                                  seconds) / 1e9)
    return tuple(found)
