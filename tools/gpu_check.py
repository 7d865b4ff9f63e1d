"""The first command on a GPU box: each GPU against the installed MXNet and
ONNX Runtime, a real convolution and training step on each, and one verdict
line per GPU with the install that fixes what is missing.

    python -m tools.gpu_check
    python -m tools.gpu_check --cpu      # the same run on the CPU (no GPU here)

Exit status 0 when every GPU (or the CPU with --cpu) passed, else 1.
"""
import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import time

from core.plumbing import cli
from tools.install import gpu

SMALL = ['multiplier=0.125', 'net_stacks=1', 'net_n=2', 'net_block=resnet', 'per_batch_size=4']
# The CUDA libraries whose versions are reported: (name, file name pattern,
# function, how to print its number).
LIBRARY_VERSIONS = (
    ('CUDA runtime', r'libcudart\.so', 'cudaRuntimeGetVersion',
     lambda v: '%d.%d' % (v // 1000, v % 1000 // 10)),
    ('cuDNN', r'libcudnn\.so', 'cudnnGetVersion',
     lambda v: '%d.%d.%d' % (v // 1000, v % 1000 // 100, v % 100) if v < 90000
     else '%d.%d.%d' % (v // 10000, v % 10000 // 100, v % 100)),
    ('NCCL', r'libnccl\.so', 'ncclGetVersion',
     lambda v: '%d.%d.%d' % (v // 10000, v % 10000 // 100, v % 100) if v >= 10000
     else '%d.%d.%d' % (v // 1000, v % 1000 // 100, v % 100)),
)


def loaded_libraries(maps='/proc/self/maps'):
    """Paths of the shared libraries this process has loaded."""
    with open(maps) as f:
        return sorted({line.split(None, 5)[5].strip() for line in f
                       if len(line.split(None, 5)) == 6 and '.so' in line})


def package_version(path):
    """'VERSION (PACKAGE)' of the installed package that holds the file at
    `path`, or None."""
    from importlib import metadata
    for dist in metadata.distributions():
        for entry in dist.files or ():
            if os.path.realpath(dist.locate_file(entry)) == os.path.realpath(path):
                return '%s (%s)' % (dist.version, dist.metadata['Name'])
    return None


def library_versions(paths):
    """[(name, version, path)] of the CUDA libraries among `paths` (those
    MXNet loaded: never another CUDA the machine may hold). A library that
    cannot answer without a working driver (the CUDA runtime) is named by
    the version of the package it came with."""
    found = []
    for name, pattern, function, show in LIBRARY_VERSIONS:
        path = next((p for p in paths if re.match(pattern, os.path.basename(p))), None)
        if path is None:
            continue
        lib = ctypes.CDLL(path)             # the loaded one: same handle
        if function == 'cudnnGetVersion':
            lib.cudnnGetVersion.restype = ctypes.c_size_t
            found.append((name, show(int(lib.cudnnGetVersion())), path))
            continue
        value = ctypes.c_int(0)
        if getattr(lib, function)(ctypes.byref(value)) == 0:
            found.append((name, show(value.value), path))
        elif package_version(path):
            found.append((name, package_version(path), path))
    return found


def mxnet_build():
    """(package name or 'source', version, features, libmxnet path)."""
    import mxnet as mx
    from tools.install import setup_env
    name = setup_env.installed_builds()['mxnet'] or 'source'
    features = {f.name for f in mx.runtime.feature_list() if f.enabled}
    return name, mx.__version__, features, mx.libinfo.find_lib_path()[0]


def smi_gpus():
    """[gpu.Gpu] from nvidia-smi, with the CUDA_VISIBLE_DEVICES selection
    MXNet will see, or [] (and why) without it."""
    if not shutil.which('nvidia-smi'):
        return [], 'nvidia-smi is not installed (no NVIDIA driver here)'
    proc = subprocess.run(gpu.SMI_QUERY, capture_output=True, text=True)
    if proc.returncode:
        return [], 'nvidia-smi failed: %s' % (proc.stdout + proc.stderr).strip()
    from core.plumbing.devices import visible_gpus
    return visible_gpus(gpu.parse_smi(proc.stdout), os.environ.get('CUDA_VISIBLE_DEVICES')), None


def timed(work):
    """(seconds of the second run, after a warm-up) of `work()`."""
    work()
    start = time.time()
    work()
    return time.time() - start


def convolution_check(ctx):
    """Seconds of a 3x3 convolution's forward and backward on `ctx`."""
    import mxnet as mx
    data = mx.nd.random.uniform(shape=(8, 64, 64, 64), ctx=ctx)
    weight = mx.nd.random.uniform(shape=(64, 64, 3, 3), ctx=ctx)
    data.attach_grad()
    weight.attach_grad()

    def work():
        with mx.autograd.record():
            out = mx.nd.Convolution(data, weight, kernel=(3, 3), pad=(1, 1), num_filter=64,
                                    no_bias=True)
        out.backward()
        weight.grad.wait_to_read()
    return timed(work)


def training_check(ctx):
    """Seconds of one training step of a small Hourglass on `ctx`."""
    import mxnet as mx

    from core.plumbing.config import load_config
    from symbol import get_symbol
    cfg = load_config('hourglass', 'i2d', SMALL)
    mod = mx.mod.Module(get_symbol(cfg), data_names=['data'], label_names=['softmax_label'],
                        context=ctx)
    shape = (cfg.per_batch_size, 3, cfg.input_img_size, cfg.input_img_size)
    label = (cfg.per_batch_size, cfg.num_classes, cfg.output_label_size, cfg.output_label_size)
    mod.bind(data_shapes=[('data', shape)], label_shapes=[('softmax_label', label)])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer='adam')
    batch = mx.io.DataBatch([mx.nd.random.uniform(0, 255, shape)], [mx.nd.zeros(label)])

    def work():
        mod.forward_backward(batch)
        mod.update()
        mx.nd.waitall()
    return timed(work)


def run_checks(ctx):
    """(ok, text) of the convolution and training step on `ctx`."""
    import mxnet as mx
    try:
        conv, step = convolution_check(ctx), training_check(ctx)
    except mx.base.MXNetError as err:
        text = str(err)
        return False, gpu.explain_error(text) or text.strip().splitlines()[-1]
    return True, 'convolution forward+backward %.1f ms, training step %.1f ms' % (
        1000 * conv, 1000 * step)


def onnx_runtime_check(device_id):
    """(ok, text): a session asking for ONNX Runtime's CUDA provider on
    `device_id`, and the providers it really uses."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as err:
        return None, 'ONNX Runtime is not installed (%s)' % err
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        return None, 'onnxruntime (CPU build): ONNX runs on the CPU; for the GPU: make setup ' \
            'ONNXRUNTIME=onnxruntime-gpu (needs CUDA 12 and cuDNN 9)'
    from core.plumbing.devices import confirm_onnx_providers
    graph = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'probe',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=[('CUDAExecutionProvider', {'device_id': device_id}),
                                                                   'CPUExecutionProvider'])
    warning = confirm_onnx_providers(session, device_id)
    return (False, warning) if warning else (True, 'ONNX Runtime runs on GPU %d' % device_id)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--cpu', action='store_true',
                        help='run the checks on the CPU (for machines without a GPU)')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    import mxnet as mx
    build, version, features, library = mxnet_build()
    print('MXNet %s (%s): %s' % (version, build, ', '.join(
        f for f in ('CUDA', 'CUDNN', 'NCCL', 'MKLDNN', 'TENSORRT') if f in features) or
        'no optional features'))
    versions = library_versions(loaded_libraries()) if 'CUDA' in features else []
    if versions:
        print('libraries MXNet loaded: %s' % ', '.join('%s %s (%s)' % (name, version, path)
                                                       for name, version, path in versions))
    arches = gpu.library_arches(library) if 'CUDA' in features else gpu.Arches(frozenset(),
                                                                              frozenset())
    print('kernels in %s: %s' % (os.path.basename(library), arches.describe()))
    verdicts = []
    if args.cpu:
        ok, text = run_checks(mx.cpu())
        verdicts.append((ok, 'CPU: %s' % text))
    else:
        gpus, why = smi_gpus()
        if not gpus:
            print('no GPU visible: %s' % (why or 'CUDA_VISIBLE_DEVICES hides them'))
        for number, card in enumerate(gpus):
            print('GPU %d: %s, compute capability %s, %s MB, driver %s' % (
                card.index, card.name, '%d.%d' % divmod(card.capability, 10)
                if card.capability else '?', card.memory_mb, card.driver))
            ok, text = gpu.verdict(card, arches, build)
            note = gpu.driver_note(card.driver, build, os.environ)
            if ok is not False and 'CUDA' in features:
                ran, detail = run_checks(mx.gpu(number))
                ok, text = ran, '%s; %s' % (text, detail)
            text += '; ' + note if note else ''
            ort_ok, ort_text = onnx_runtime_check(number)
            verdicts.append((ok, '%s; %s' % (text, ort_text)))
        if not gpus:
            verdicts.append((False, 'no GPU: %s' % (why or 'none visible')))
    print()
    for ok, text in verdicts:
        print('%s %s' % ('PASS' if ok else 'FAIL', text))
    return 0 if verdicts and all(ok for ok, _ in verdicts) else 1


if __name__ == '__main__':
    sys.exit(main())
