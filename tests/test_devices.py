"""Device decisions, made testable without a GPU: the GPU count and the
build's CUDA support are parameters."""
import mxnet as mx
import pytest

from core.plumbing.devices import DeviceError, choose_devices, contexts, onnx_providers, mxnet_gpus


@pytest.mark.parametrize('gpus,environ,count,cuda,expected', [
    (None, {}, 0, False, []),                                     # CPU machine
    (None, {}, 2, True, [0, 1]),                                  # unset: every GPU found
    (None, {'NVIDIA_VISIBLE_DEVICES': 'all'}, 4, True, [0, 1, 2, 3]),
    (None, {'CUDA_VISIBLE_DEVICES': '2,3'}, 2, True, [0, 1]),     # the process sees 0..n-1
    (None, {'CUDA_VISIBLE_DEVICES': '-1'}, 2, True, []),
    (None, {'CUDA_VISIBLE_DEVICES': ''}, 2, True, []),
    (None, {'CUDA_VISIBLE_DEVICES': ' 1 '}, 1, True, [0]),
    ('1', {}, 2, True, [1]),
    ('-1', {'CUDA_VISIBLE_DEVICES': '0'}, 1, True, []),         # --gpus wins
    ('cpu', {}, 8, True, []),
    ('0,1', {'CUDA_VISIBLE_DEVICES': '5,6'}, 2, True, [0, 1]),
    # A worker of a multi-machine job: the GPUs of its rank on its machine.
    (None, {'FACE_ALIGN_GPUS_PER_WORKER': '2', 'FACE_ALIGN_LOCAL_RANK': '1'}, 4, True, [2, 3]),
    (None, {'FACE_ALIGN_GPUS_PER_WORKER': '1', 'FACE_ALIGN_LOCAL_RANK': '0',
            'CUDA_VISIBLE_DEVICES': '4,5'}, 2, True, [0]),
    ('3', {'FACE_ALIGN_GPUS_PER_WORKER': '1', 'FACE_ALIGN_LOCAL_RANK': '0'}, 4, True, [3]),
])
def test_choose_devices(gpus, environ, count, cuda, expected):
    ids, reason = choose_devices(gpus, environ, count, cuda)
    assert ids == expected
    assert ('CPU' in reason) == (not expected)


@pytest.mark.parametrize('gpus,environ,count,cuda,words', [
    (None, {'CUDA_VISIBLE_DEVICES': '0'}, 0, False, 'no CUDA'),   # a scheduler on a CPU build
    ('0', {}, 0, False, 'no CUDA'),
    (None, {'CUDA_VISIBLE_DEVICES': '0,1,2,3'}, 2, True, 'this machine has 2 GPUs'),
    ('3', {}, 1, True, 'this machine has 1 GPU'),
    ('a,b', {}, 2, True, 'not a list of GPU numbers'),
    ('0,0', {}, 2, True, 'distinct'),
    ('-1,0', {}, 2, True, 'distinct and >= 0'),
    (None, {'FACE_ALIGN_GPUS_PER_WORKER': '2', 'FACE_ALIGN_LOCAL_RANK': '1'}, 3, True,
     'worker 1 of this machine needs GPUs 2-3, but it has 3'),
])
def test_impossible_requests_are_one_clear_error(gpus, environ, count, cuda, words):
    with pytest.raises(DeviceError, match=words):
        choose_devices(gpus, environ, count, cuda)


def test_this_machine_is_a_cpu_build_and_refuses_a_gpu(monkeypatch):
    count, cuda = mxnet_gpus()
    assert (count, cuda) == (0, mx.runtime.Features().is_enabled('CUDA'))
    assert contexts() == [mx.cpu()]
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0')
    with pytest.raises(DeviceError, match='CUDA_VISIBLE_DEVICES asks for GPU 0'):
        contexts()
    assert contexts('-1') == [mx.cpu()]


def test_onnx_providers_use_cuda_when_installed_and_say_when_not():
    assert onnx_providers(-1, ['CUDAExecutionProvider', 'CPUExecutionProvider']) == (
        ['CPUExecutionProvider'], None)
    providers, warning = onnx_providers(1, ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    assert providers == [('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']
    assert warning is None
    providers, warning = onnx_providers(0, ['CPUExecutionProvider'])
    assert providers == ['CPUExecutionProvider'] and 'onnxruntime-gpu' in warning
