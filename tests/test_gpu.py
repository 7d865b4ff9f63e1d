"""GPU boxes, decided on a CPU machine: the install choices by dry run, the
CUDA-library hook on a fake nvidia/ tree of real shared libraries, which
kernels a build carries (a real nvcc fat binary), verdicts on recorded
nvidia-smi output, device lists with UUIDs, one-line GPU errors, the ONNX
Runtime fallback warning, pinned staging buffers, and tools.gpu_check run."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from core.plumbing import cli, devices
from tools.install import gpu
from core.plumbing.devices import (DeviceError, choose_devices, confirm_onnx_providers, visible_entries,
                          visible_gpus)
from core.training.feeder import DeviceFeeder
from data import synth
from data.iterator import FaceSegIter
from tools.install import cuda_libs

ROOT = Path(__file__).resolve().parents[1]
SETUP = str(ROOT / 'tools' / 'install' / 'setup_env.py')
FIXTURE = ROOT / 'tests' / 'data' / 'fatbin-sm80-sm86-ptx90.elf'

# `nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version,uuid
#  --format=csv,noheader,nounits` on a mixed box, as drivers print it.
SMI = '''0, NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15, GPU-8f1c3a2e-0001-4b5c-9d2e-aaaaaaaaaaaa
1, NVIDIA A100-SXM4-40GB, 8.0, 40960, 550.54.15, GPU-11111111-2222-3333-4444-555555555555
2, NVIDIA GeForce RTX 4090, 8.9, 24564, 550.54.15, GPU-99999999-8888-7777-6666-555555555555
3, Tesla K80, [N/A], 11441, 470.223.02, GPU-deadbeef-0000-0000-0000-000000000000
4, NVIDIA B200, 10.0, 183359, 570.86.10, GPU-b200b200-0000-0000-0000-000000000000
'''


def _run(*args):
    """The set-up script run by this venv's Python, in the checkout."""
    return subprocess.run([sys.executable, SETUP] + list(args), capture_output=True, text=True,
                          cwd=str(ROOT))


# Installs ---------------------------------------------------------------------------

def _setup_env():
    from tools.install import setup_env
    return setup_env


@pytest.mark.parametrize('build', ['mxnet-cu%d' % v for v in range(112, 118)])
def test_a_cuda_build_installs_its_pinned_cuda_11_libraries(build):
    """Planned for a fresh venv: the wheel and every pinned nvidia-*-cu11
    library (the hook follows the install)."""
    setup_env = _setup_env()
    chosen = setup_env.choose({'mxnet': build}, {})
    names = setup_env.packages(chosen)
    pins = dict(line.split('==') for line in setup_env.constraints(chosen))
    assert build in names and 'onnxruntime' in names
    for library in setup_env.CUDA11_LIBRARIES:
        assert library in names and library.endswith('-cu11') and pins[library]
    assert pins['nvidia-cudnn-cu11'].startswith('8.') and pins[build] == '1.9.1'
    cpu = setup_env.packages(setup_env.choose({'mxnet': 'mxnet'}, {}))
    assert not [n for n in cpu if n.startswith('nvidia-')]


def test_setup_plans_on_this_machine_and_refuses_what_it_cannot_do(tmp_path):
    proc = _run('--dry-run')
    assert proc.returncode == 0 and 'nvidia-' not in proc.stdout.splitlines()[0]
    assert 'CUDA library hook' not in proc.stdout
    proc = _run('--dry-run', '--python-version', '3.12')
    assert proc.returncode == 2 and 'Python 3.12 is not supported' in proc.stderr
    assert 'PYTHON=python3.11' in proc.stderr and 'nothing was installed' in proc.stderr
    assert _run('--check-python', '--python-version', '3.10').returncode == 0
    assert _run('--check-python', '--python-version', '3.9').returncode == 2
    # MXNET=system: this venv does not see the system's packages, so it is refused.
    proc = _run('--mxnet', 'system', '--dry-run')
    assert proc.returncode == 2 and 'delete .venv and run `make setup MXNET=system`' in proc.stderr
    alone = {k: v for k, v in os.environ.items() if not k.startswith(('MAKE', 'MFLAGS'))}
    make = subprocess.run(['make', '-n', '-B', '.venv/bin/python', 'MXNET=system',
                           'PYTHON=python3.11'], cwd=str(ROOT), capture_output=True, text=True,
                          env=alone)
    lines = [line for line in make.stdout.splitlines() if not line.startswith('make')]
    assert lines[:2] == ['python3.11 tools/install/setup_env.py --check-python',
                         'python3.11 -m venv --system-site-packages .venv'], make.stdout
    make = subprocess.run(['make', '-n', '-B', '.venv/bin/python'], cwd=str(ROOT),
                          capture_output=True, text=True, env=alone)
    assert '--system-site-packages' not in make.stdout


def test_system_mxnet_keeps_its_numpy_and_installs_no_mxnet(tmp_path):
    """A venv with the system's packages over a Python that has an MXNet of
    its own (here: this venv plays the system): nothing of the MXNet family is
    installed and numpy is held at the system's version."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip',
                    str(venv)], check=True)
    python = venv / 'bin' / 'python'
    site = subprocess.run([sys.executable, '-c', 'import sysconfig; '
                           'print(sysconfig.get_paths()["purelib"])'], capture_output=True,
                          text=True).stdout.strip()
    own_site = subprocess.run([str(python), '-c', 'import sysconfig; '
                               'print(sysconfig.get_paths()["purelib"])'], capture_output=True,
                              text=True).stdout.strip()
    Path(own_site).mkdir(parents=True, exist_ok=True)
    (Path(own_site) / 'outer.pth').write_text(site + '\n')
    proc = subprocess.run([str(python), SETUP, '--mxnet', 'system', '--dry-run'],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "using the system's MXNet 1.9.1 with its numpy %s" % np.__version__ in proc.stdout
    command, constraints = proc.stdout.splitlines()[1:3]
    assert 'mxnet' not in command.split()[6:]
    assert 'numpy==%s' % np.__version__ in constraints.split()
    assert not [w for w in constraints.split() if w.startswith('mxnet')]


def test_the_hopper_image_is_the_one_the_check_recommends():
    dockerfile = (ROOT / 'docker' / 'Dockerfile').read_text()
    assert 'ARG BASE=%s\n' % gpu.NGC_IMAGE in dockerfile
    assert 'RUN make setup MXNET=system PYTHON=python3' in dockerfile
    assert '.venv/' in (ROOT / '.dockerignore').read_text().split()
    assert gpu.NGC_IMAGE in gpu.generation(90).install


# The CUDA library hook ----------------------------------------------------------------

def _library(sources, path, soname, source, needs=(), search=()):
    """Build a real shared library at `path` from C `source` (kept in
    `sources`, not among the libraries)."""
    src = sources / (soname + '.c')
    src.write_text(source)
    command = ['gcc', '-shared', '-fPIC', '-o', str(path), str(src), '-Wl,-soname,' + soname,
               '-Wl,--no-as-needed']
    command += ['-L%s' % d for d in search] + ['-l:%s' % n for n in needs]
    subprocess.run(command, check=True)


@pytest.fixture
def fake_cuda(tmp_path):
    """A site-packages laid out as the CUDA wheels are: nvidia/*/lib holds a
    runtime, a BLAS that needs it, a cuDNN whose sub-library it opens at run
    time (libcudnn_ops_infer.so.8), and an 'nvblas' that exports the
    standard `sgemm_` and is needed by nothing; mxnet/libmxnet.so needs the
    BLAS, cuDNN and the driver. The driver is the project's own stand-in,
    compiled from tools/install/libcuda_stub.c."""
    if subprocess.run(['which', 'gcc'], capture_output=True).returncode:
        pytest.skip('gcc is not installed')
    site = tmp_path / 'site-packages'
    lib = {name: site / 'nvidia' / name / 'lib' for name in ('cuda_runtime', 'cublas', 'cudnn')}
    for d in list(lib.values()) + [site / 'mxnet', tmp_path / 'driver']:
        d.mkdir(parents=True)
    driver = tmp_path / 'driver' / 'libcuda.so.1'
    subprocess.run(['gcc', '-shared', '-fPIC', '-Wl,-soname,libcuda.so.1', '-o', str(driver),
                    str(ROOT / 'tools' / 'install' / 'libcuda_stub.c')], check=True)
    _library(tmp_path, lib['cuda_runtime'] / 'libfakecudart.so.11.0', 'libfakecudart.so.11.0',
             'int fake_runtime(void) { return 11; }\n')
    _library(tmp_path, lib['cublas'] / 'libfakecublas.so.11', 'libfakecublas.so.11',
             'int fake_runtime(void);\nint fake_blas(void) { return 100 + fake_runtime(); }\n',
             ['libfakecudart.so.11.0'], [lib['cuda_runtime']])
    _library(tmp_path, lib['cublas'] / 'libnvblas.so.11', 'libnvblas.so.11',
             'void sgemm_(void) { *(volatile int *)0 = 0; }\n')
    _library(tmp_path, lib['cudnn'] / 'libcudnn_ops_infer.so.8', 'libcudnn_ops_infer.so.8',
             'int fake_ops(void) { return 7; }\n')
    _library(tmp_path, lib['cudnn'] / 'libcudnn.so.8', 'libcudnn.so.8',
             '#include <dlfcn.h>\nint fake_cudnn(void) {\n'
             '  void *ops = dlopen("libcudnn_ops_infer.so.8", RTLD_NOW | RTLD_NOLOAD);\n'
             '  return ops ? ((int (*)(void))dlsym(ops, "fake_ops"))() : -1; }\n', ['libdl.so.2'])
    _library(tmp_path, site / 'mxnet' / 'libmxnet.so', 'libmxnet.so',
             'int fake_blas(void); int fake_cudnn(void); int cuInit(unsigned);\n'
             'int fake_mxnet(void) { return fake_blas() + fake_cudnn() + 0 * cuInit(0); }\n',
             ['libfakecublas.so.11', 'libcudnn.so.8', 'libcuda.so.1'],
             [lib['cublas'], lib['cudnn'], driver.parent])
    return site, site / 'mxnet' / 'libmxnet.so', driver.parent


def test_the_hook_takes_what_the_elf_header_needs(fake_cuda):
    """The NEEDED entries of a real ELF file, their own in turn, and what
    cuDNN opens at run time; never the BLAS interposer no one needs."""
    site, libmxnet, _ = fake_cuda
    assert cuda_libs.needed(str(libmxnet))[:3] == ['libfakecublas.so.11', 'libcudnn.so.8',
                                                   'libcuda.so.1']
    chosen = cuda_libs.libraries_for(str(libmxnet), cuda_libs.wheel_libraries(str(site)))
    assert [os.path.basename(p) for p in chosen] == [
        'libfakecudart.so.11.0', 'libfakecublas.so.11', 'libcudnn.so.8',
        'libcudnn_ops_infer.so.8']
    with pytest.raises(cuda_libs.ElfError, match='not a 64-bit'):
        cuda_libs.needed(__file__)


def test_without_the_hook_the_loader_does_not_find_the_wheels_libraries(fake_cuda):
    _, libmxnet, driver = fake_cuda
    probe = 'import ctypes; ctypes.CDLL(%r)' % str(libmxnet)
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          env=dict(os.environ, LD_LIBRARY_PATH=str(driver)))
    assert proc.returncode != 0 and 'libfakecublas.so.11' in proc.stderr


def _probe(site, driver, body):
    """Run `body` in a fresh interpreter that has `site` as a site folder
    (so its .pth runs) and the stand-in driver where a driver would be."""
    code = 'import site, sys\nsite.addsitedir(%r)\n%s' % (str(site), textwrap.dedent(body))
    env = dict(os.environ)
    if driver is not None:
        env['LD_LIBRARY_PATH'] = str(driver)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)


def test_the_installed_hook_loads_them_when_mxnet_is_imported_and_blas_stays_numpys(fake_cuda):
    site, libmxnet, driver = fake_cuda
    written = cuda_libs.install(str(site))
    assert [os.path.basename(p) for p in written] == ['face_align_cuda_libs.py',
                                                      'face_align_cuda_libs.pth']
    proc = _probe(site, driver, '''
        import ctypes
        maps = lambda: open('/proc/self/maps').read()
        before = 'libfakecublas' in maps()
        import json
        middle = 'libfakecublas' in maps()
        import mxnet
        mine = ctypes.CDLL(%r).fake_mxnet()
        import numpy as np, scipy.linalg.blas as blas
        product = blas.sgemm(1.0, np.eye(3, dtype=np.float32), np.ones((3, 3), np.float32))
        print(before, middle, 'libfakecublas' in maps(), 'libnvblas' in maps(), mine,
              float(product.sum()))
    ''' % str(libmxnet))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['False', 'False', 'True', 'False', '118', '9.0']


def test_without_a_driver_import_mxnet_says_what_to_install(fake_cuda):
    site, _, _ = fake_cuda
    cuda_libs.install(str(site))
    proc = _probe(site, None, 'import mxnet\n')
    assert proc.returncode != 0
    assert 'needs the NVIDIA driver (libcuda.so.1)' in proc.stderr.strip().splitlines()[-1]


def test_a_library_that_does_not_load_is_named(tmp_path):
    (tmp_path / 'libbroken.so.1').write_bytes(b'not a library')
    with pytest.raises(OSError, match='libbroken.so.1'):
        cuda_libs.preload([str(tmp_path / 'libbroken.so.1')])


# Kernels and verdicts -----------------------------------------------------------------

def test_the_architectures_of_a_real_fat_binary_are_read():
    arches = gpu.library_arches(str(FIXTURE))
    assert arches == gpu.Arches(frozenset({80, 86}), frozenset({90}))
    assert arches.describe() == 'machine code for sm_80, sm_86; PTX for compute_90'
    assert gpu.library_arches(mx.libinfo.find_lib_path()[0]) == gpu.Arches(frozenset(),
                                                                          frozenset())
    with pytest.raises(ValueError, match='ELF'):
        gpu.library_arches(__file__)


@pytest.mark.parametrize('capability,expected', [
    (80, 'sm_80 machine code'), (86, 'sm_86 machine code'), (89, 'sm_86 machine code'),
    (75, 'sm_70 machine code'), (61, 'sm_60 machine code'), (90, None), (100, None), (37, None),
])
def test_which_gpus_the_pip_wheels_run_on(capability, expected):
    assert gpu.kernels_for(capability, gpu.Arches(*gpu.PIP_WHEEL_ARCHS)) == expected


def test_ptx_is_compiled_for_newer_gpus_only():
    arches = gpu.library_arches(str(FIXTURE))
    assert gpu.kernels_for(90, arches) == 'compute_90 PTX (compiled on first use)'
    assert gpu.kernels_for(120, arches) == 'compute_90 PTX (compiled on first use)'
    assert gpu.kernels_for(75, arches) is None


def test_verdicts_on_a_recorded_mixed_box():
    cards = gpu.parse_smi(SMI)
    assert [c.capability for c in cards] == [90, 80, 89, None, 100]
    assert cards[0].memory_mb == 81559 and cards[0].driver == '550.54.15'
    wheel = gpu.Arches(*gpu.PIP_WHEEL_ARCHS)
    results = [gpu.verdict(c, wheel, 'mxnet-cu117') for c in cards]
    assert [ok for ok, _ in results] == [False, True, True, None, False]
    assert 'no kernels for Hopper GPUs' in results[0][1]
    assert 'NGC MXNet container' in results[0][1] and 'MXNET_CUDA_ARCH=9.0' in results[0][1]
    assert 'runs sm_80 machine code of mxnet-cu117' in results[1][1]
    assert 'runs sm_86 machine code' in results[2][1]
    assert 'source build' in results[4][1] and 'Blackwell' in results[4][1]
    cpu_build = gpu.verdict(cards[1], gpu.Arches(frozenset(), frozenset()), 'mxnet')
    assert cpu_build[0] is False and 'make setup MXNET=mxnet-cu117' in cpu_build[1]


@pytest.mark.parametrize('driver, build, environ, warned', [
    ('470.223.02', 'mxnet-cu117', {}, True),        # R470: no PTX of NVRTC 11.8
    ('470.223.02', 'mxnet-cu117', {'MXNET_USE_FUSION': '0'}, False),
    ('520.61.05', 'mxnet-cu117', {}, False),
    ('550.54.15', 'mxnet-cu112', {}, False),
    ('470.223.02', 'source', {}, False),            # a build of one's own knows its CUDA
])
def test_drivers_before_r520_are_told_to_turn_fusion_off(driver, build, environ, warned):
    note = gpu.driver_note(driver, build, environ)
    assert (note is not None) == warned
    if warned:
        assert 'MXNET_USE_FUSION=0' in note and driver in note


# Devices ---------------------------------------------------------------------------------

def test_uuids_and_mig_slices_in_cuda_visible_devices():
    uuid = 'GPU-8f1c3a2e-0001-4b5c-9d2e-aaaaaaaaaaaa'
    environ = {'CUDA_VISIBLE_DEVICES': '%s,MIG-7a6b5c4d-1111-2222-3333-444444444444' % uuid}
    assert choose_devices(None, environ, 2, True)[0] == [0, 1]
    assert visible_entries('GPU-8f1c,3') == ['GPU-8f1c', '3']
    cards = gpu.parse_smi(SMI)
    assert [c.index for c in visible_gpus(cards, 'GPU-11111111,0')] == [1, 0]
    mig = visible_gpus(cards, 'MIG-7a6b5c4d-1111-2222-3333-444444444444')
    assert mig[0].name.startswith('MIG slice') and mig[0].capability is None
    assert visible_gpus(cards, '-1') == [] and len(visible_gpus(cards, None)) == 5
    for bad, words in (('0,GPU0', 'neither a GPU number'), ('1,1', 'twice')):
        with pytest.raises(DeviceError, match=words):
            choose_devices(None, {'CUDA_VISIBLE_DEVICES': bad}, 2, True)


def test_messages_name_the_flag_of_the_script():
    with pytest.raises(DeviceError, match='use --gpu -1 for the CPU'):
        choose_devices('0', {}, 0, False, flag='--gpu')
    with pytest.raises(DeviceError, match='use --gpus -1 for the CPU'):
        choose_devices('0', {}, 0, False)


@pytest.mark.parametrize('message,words', [
    ('[10:01:02] src/storage/./pooled_storage_manager.h:161: cudaMalloc retry failed: out of '
     'memory', 'lower --per-batch-size'),
    ('Check failed: err == cudaSuccess (209 vs. 0) : Name: Convolution ErrStr:no kernel image is '
     'available for execution on the device', 'tools.gpu_check'),
    ('CUDA: CUDA driver version is insufficient for CUDA runtime version', 'update the driver'),
])
def test_gpu_errors_are_one_line_with_the_fix(message, words, capsys):
    def body(argv):
        raise mx.base.MXNetError(message)
    assert cli.run(body, []) == 1
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    with pytest.raises(mx.base.MXNetError):
        cli.run(body, ['--debug'])
    with pytest.raises(mx.base.MXNetError):          # other MXNet errors stay tracebacks
        cli.run(lambda argv: (_ for _ in ()).throw(mx.base.MXNetError('shape mismatch')), [])


def test_an_onnx_session_that_fell_back_to_the_cpu_is_named_with_the_missing_libraries():
    import onnxruntime as ort
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    assert confirm_onnx_providers(session, -1) is None
    warning = confirm_onnx_providers(session, 0)
    missing = devices.missing_libraries(devices.ORT_CUDA_LIBRARIES)
    assert missing and 'could not use GPU 0' in warning
    assert all(name in warning for name in missing)


# Pinned staging buffers ---------------------------------------------------------------

def test_staging_buffers_are_allocated_once_per_device_and_batches_stay_exact(tmp_path):
    from core.plumbing.config import load_config
    synth.write_records(str(tmp_path / 'train'), 24, seed=4, progress=False)
    cfg = load_config('hourglass', 'i2d', ['per_batch_size=4'])
    batches = {}
    for staged in ((), ('cpu',)):
        it = FaceSegIter(str(tmp_path / 'train.rec'), cfg, 8, 4, aug_level=1, workers=0, seed=3)
        feeder = DeviceFeeder(it, [mx.cpu(0), mx.cpu(1)], staged=staged)
        seen, buffers = [], set()
        for _ in range(5):
            parts = feeder.next()
            seen.append(np.concatenate([p.data[0].asnumpy() for p in parts]))
            buffers |= {id(v) for v in feeder.staging.values()}
        feeder.close()
        it.close()
        batches[staged] = seen
        if staged:
            assert sorted(feeder.staging) == [(0, 'data'), (0, 'label'), (1, 'data'),
                                              (1, 'label')]
            assert len(buffers) == 4 and all(v.context.device_type == 'cpu_pinned'
                                             for v in feeder.staging.values())
    assert all(np.array_equal(a, b) for a, b in zip(batches[()], batches[('cpu',)]))


# The check itself --------------------------------------------------------------------

def test_gpu_check_runs_its_checks_on_the_cpu():
    proc = subprocess.run([sys.executable, '-m', 'tools.gpu_check', '--cpu'], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('MXNet 1.9.1 (mxnet): ')
    assert 'kernels in libmxnet.so: machine code for no architecture; no PTX' in proc.stdout
    assert lines[-1].startswith('PASS CPU: convolution forward+backward ')
    assert 'training step' in lines[-1]


def test_gpu_check_reports_the_libraries_this_process_loaded(tmp_path):
    """Versions come from the CUDA libraries loaded (here a runtime built
    for the test that reports 11.8), never from another CUDA the machine
    holds (this one has CUDA 13 on the loader's path)."""
    if subprocess.run(['which', 'gcc'], capture_output=True).returncode:
        pytest.skip('gcc is not installed')
    runtime = tmp_path / 'libcudart.so.11.0'
    source = tmp_path / 'cudart.c'
    source.write_text('int cudaRuntimeGetVersion(int *v) { *v = 11080; return 0; }\n')
    subprocess.run(['gcc', '-shared', '-fPIC', '-o', str(runtime), str(source)], check=True)
    probe = textwrap.dedent('''
        import ctypes
        import mxnet
        from tools import gpu_check
        print(gpu_check.library_versions(gpu_check.loaded_libraries()))
        ctypes.CDLL(%r)
        print(gpu_check.library_versions(gpu_check.loaded_libraries()))
    ''' % str(runtime))
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.strip().splitlines()
    assert before == '[]'
    assert after == str([('CUDA runtime', '11.8', str(runtime))])


def test_gpu_check_without_a_gpu_says_so_and_fails():
    proc = subprocess.run([sys.executable, '-m', 'tools.gpu_check'], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith('FAIL no GPU: ')
