"""Which devices a run uses, decided in one place.

`choose_devices` is a pure function of the request (`--gpus`), the
environment, the number of GPUs and whether MXNet was built with CUDA, so
every decision is testable on a machine without a GPU.
"""
import ctypes
import logging
import os
import re

log = logging.getLogger(__name__)

CPU_WORDS = ('', '-1', 'cpu')
UUID_PREFIXES = ('GPU-', 'MIG-')


class DeviceError(ValueError):
    """Devices were asked for that this machine or MXNet build cannot give."""


def visible_entries(text):
    """The devices CUDA_VISIBLE_DEVICES names (numbers, GPU-/MIG- UUIDs), in
    order; the process sees them as GPUs 0..n-1. DeviceError otherwise."""
    entries = [v.strip() for v in str(text).split(',') if v.strip()]
    for entry in entries:
        if not (entry.isdigit() or entry.startswith(UUID_PREFIXES)):
            raise DeviceError('CUDA_VISIBLE_DEVICES=%r: %r is neither a GPU number nor a GPU-/MIG- '
                              'UUID (nvidia-smi -L lists them)' % (text, entry))
    if len(set(entries)) != len(entries):
        raise DeviceError('CUDA_VISIBLE_DEVICES=%r names a device twice' % text)
    return entries


def visible_gpus(gpus, visible):
    """The records of `gpus` (from nvidia-smi, any objects with `index`
    and `uuid`) that CUDA_VISIBLE_DEVICES=`visible` leaves, in its order.
    A MIG slice is kept as its UUID (its parent GPU is not in the record)."""
    if visible is None:
        return list(gpus)
    if visible.strip().lower() in CPU_WORDS:
        return []
    chosen = []
    for entry in visible_entries(visible):
        if entry.isdigit():
            chosen += [g for g in gpus if g.index == int(entry)]
        elif entry.startswith('GPU-'):
            chosen += [g for g in gpus if g.uuid.startswith(entry)]
        else:
            chosen += [gpus[0]._replace(name='MIG slice %s' % entry, capability=None,
                                        uuid=entry)] if gpus else []
    return chosen


def _ids(text, what):
    try:
        ids = [int(v) for v in str(text).split(',') if v.strip()]
    except ValueError:
        raise DeviceError('%s=%r is not a list of GPU numbers like 0,1 (or -1 for the CPU)'
                          % (what, text))
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise DeviceError('%s=%r: GPU numbers must be distinct and >= 0 (-1 alone means the CPU)'
                          % (what, text))
    return ids


def choose_devices(gpus=None, environ=None, num_gpus=0, cuda_build=False, flag='--gpus'):
    """(GPU ids, reason): an empty list means the CPU.

    `gpus` (the `flag` of the script, train.py --gpus) wins; else CUDA_VISIBLE_DEVICES, whose entries
    the process sees as GPUs 0..n-1; else every GPU there is (containers
    often expose them with NVIDIA_VISIBLE_DEVICES only). '-1', 'cpu' and ''
    mean the CPU. A worker of a multi-machine job started with
    --gpus-per-worker N (FACE_ALIGN_GPUS_PER_WORKER) takes the N of those
    of its rank on its machine (FACE_ALIGN_LOCAL_RANK). Asking for a GPU on
    a CPU-only MXNet, or for more GPUs than exist, is a DeviceError.
    """
    environ = os.environ if environ is None else environ
    visible = environ.get('CUDA_VISIBLE_DEVICES')
    per_worker = environ.get('FACE_ALIGN_GPUS_PER_WORKER')
    if gpus is None and per_worker:
        ids, reason = choose_devices(None, dict(environ, FACE_ALIGN_GPUS_PER_WORKER=''),
                                     num_gpus, cuda_build, flag)
        count, rank = int(per_worker), int(environ.get('FACE_ALIGN_LOCAL_RANK', 0))
        mine = ids[rank * count:(rank + 1) * count]
        if len(mine) < count:
            raise DeviceError('--gpus-per-worker %d: worker %d of this machine needs GPUs %d-%d, '
                              'but it has %d (%s); start fewer workers per machine or give '
                              'each fewer GPUs' % (count, rank, rank * count,
                                                   (rank + 1) * count - 1, len(ids), reason))
        return mine, '%s, worker %d of this machine: GPU %s' % (
            reason.split(':')[0], rank, ','.join(map(str, mine)))
    if gpus is not None:
        what, text = flag, str(gpus).strip()
        ids = [] if text.lower() in CPU_WORDS else _ids(text, what)
    elif visible is not None:
        what, text = 'CUDA_VISIBLE_DEVICES', visible.strip()
        ids = [] if text.lower() in CPU_WORDS else list(range(len(visible_entries(text))))
    else:
        what, ids = 'all GPUs found', list(range(num_gpus))
    if not ids:
        return [], '%s: the CPU' % what if gpus is not None or visible is not None else \
            'the CPU (no GPU found)'
    if not cuda_build:
        raise DeviceError('%s asks for GPU %s, but this MXNet build has no CUDA; install a CUDA '
                          'build (README, "GPU boxes": make setup MXNET=mxnet-cu117) or use '
                          '%s -1 for the CPU' % (what, ','.join(map(str, ids)), flag))
    if max(ids) >= num_gpus:
        raise DeviceError('%s asks for GPU %s, but this machine has %d GPU%s'
                          % (what, ','.join(map(str, ids)), num_gpus, '' if num_gpus == 1 else 's'))
    return ids, '%s: GPU %s' % (what, ','.join(map(str, ids)))


def mxnet_gpus():
    """(number of GPUs, whether MXNet was built with CUDA)."""
    import mxnet as mx
    cuda = mx.runtime.Features().is_enabled('CUDA')
    try:
        count = mx.context.num_gpus() if cuda else 0
    except mx.base.MXNetError:
        count = 0
    return count, cuda


def contexts(gpus=None, flag='--gpus'):
    """MXNet contexts for a request (see choose_devices), logged."""
    import mxnet as mx
    count, cuda = mxnet_gpus()
    ids, reason = choose_devices(gpus, num_gpus=count, cuda_build=cuda, flag=flag)
    log.info('devices: %s', reason)
    return [mx.gpu(i) for i in ids] or [mx.cpu()]


def inference_context(gpu):
    """The context of `--gpu N` (-1: the CPU) for the test scripts."""
    return contexts(None if gpu is None else str(gpu), flag='--gpu')[0]


def confirm_onnx_providers(session, gpu):
    """A warning when an ONNX Runtime session asked to run on GPU `gpu`
    fell back to the CPU (onnxruntime-gpu lists its CUDA provider even when
    the CUDA 12 libraries it needs are missing), naming what is missing."""
    if gpu is None or gpu < 0 or 'CUDAExecutionProvider' in session.get_providers():
        return None
    missing = missing_libraries(ORT_CUDA_LIBRARIES)
    return ('ONNX Runtime could not use GPU %d and runs on the CPU: %s; install them (CUDA 12 and '
            'cuDNN 9) or use --backend mxnet' % (gpu, 'cannot load %s' % ', '.join(missing)
                                                 if missing else 'its CUDA provider did not start'))


def onnx_providers(gpu, available):
    """(ONNX Runtime providers, warning or None) for `--gpu N` given the
    providers the installed onnxruntime offers."""
    if gpu is None or gpu < 0:
        return ['CPUExecutionProvider'], None
    if 'CUDAExecutionProvider' in available:
        return [('CUDAExecutionProvider', {'device_id': gpu}), 'CPUExecutionProvider'], None
    return ['CPUExecutionProvider'], (
        'the installed onnxruntime has no CUDA provider (install onnxruntime-gpu, README "GPU '
        'boxes"); running ONNX on the CPU')


ORT_CUDA_LIBRARIES = ('libcudart.so.12', 'libcublas.so.12', 'libcublasLt.so.12',
                      'libcufft.so.11', 'libcurand.so.10', 'libcudnn.so.9')


def missing_libraries(names, load=ctypes.CDLL):
    """The shared libraries of `names` that cannot be loaded."""
    missing = []
    for name in names:
        try:
            load(name)
        except OSError:
            missing.append(name)
    return missing


def explain_error(text):
    """One line for a GPU error MXNet raised, or None for other errors."""
    if re.search(r'out of memory|cudaErrorMemoryAllocation', text, re.I):
        return ('the GPU ran out of memory: lower --per-batch-size (samples per device) or the '
                'input size, or use more GPUs; `nvidia-smi` shows what else holds memory')
    if re.search(r'no kernel image is available|cudaErrorNoKernelImageForDevice', text, re.I):
        return ('this MXNet build has no kernels for this GPU\'s architecture (the pip wheels '
                'stop at sm_86): run `python -m tools.gpu_check`; Hopper and newer GPUs need the '
                'NGC container or a source build (README, "GPU boxes")')
    if re.search(r'CUDA driver version is insufficient|cudaErrorInsufficientDriver', text, re.I):
        return ('the NVIDIA driver is older than this MXNet build\'s CUDA needs: update the '
                'driver (README, "GPU boxes")')
    return None
