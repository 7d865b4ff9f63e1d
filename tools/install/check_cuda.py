"""`make check-cuda`: the GPU install as a user gets it, checked on a machine
without a GPU. In a scratch virtual environment it runs the project's own
set-up with a real CUDA wheel of MXNet (`--mxnet mxnet-cu117`: the wheel, the
pinned nvidia-*-cu11 libraries and the import hook), builds a stand-in for
the NVIDIA driver's libcuda.so.1 from libcuda_stub.c (every call answers "no
device"), and checks that:

- `import mxnet` finds every library it needs and sees no GPU;
- a training step of a small network runs on the CPU of the CUDA build;
- numpy's, SciPy's and OpenCV's BLAS still work after `import mxnet`;
- `tools.gpu_check` names the wheel's kernels (sm_50 ... sm_86, no PTX) and
  the CUDA runtime, cuDNN and NCCL versions of the venv, and fails with
  "no GPU";
- without a driver, `import mxnet` says in one line what to install.

Run it after changing the pins of the CUDA builds (it takes minutes and about
5 GB; the scratch venv is removed unless --keep). Standard library only.

    python tools/install/check_cuda.py [--mxnet mxnet-cu117] [--venv DIR] [--keep]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BLAS_AFTER_MXNET = '''
import mxnet, numpy as np, scipy.linalg.blas as blas, cv2
a = np.arange(9, dtype=np.float32).reshape(3, 3)
assert np.allclose(blas.sgemm(1.0, a, np.eye(3, dtype=np.float32)), a)
assert np.allclose(a @ a.T, np.dot(a, a.T))
assert cv2.gemm(a, a, 1, None, 0).shape == (3, 3)
print("BLAS ok after import mxnet")
'''
NO_GPU = 'import mxnet; print("GPUs seen:", mxnet.context.num_gpus())'


class Check(object):
    """Runs commands in the scratch venv and keeps their verdicts."""

    def __init__(self, venv, driver):
        self.python = os.path.join(venv, 'bin', 'python')
        self.env = dict(os.environ, PYTHONNOUSERSITE='1')
        self.env.pop('CUDA_VISIBLE_DEVICES', None)
        if driver:
            self.env['LD_LIBRARY_PATH'] = driver
        self.results = []

    def run(self, title, command, expect_code=0, words=(), env=None):
        """Run `command`; passes when it exits `expect_code` and prints
        every one of `words`."""
        started = time.time()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env=env or self.env)
        output = proc.stdout + proc.stderr
        missing = [w for w in words if w not in output]
        ok = proc.returncode == expect_code and not missing
        self.results.append((ok, title, time.time() - started))
        print('%s %s (%.0f s)' % ('PASS' if ok else 'FAIL', title, time.time() - started))
        shown = output.strip().splitlines()
        for line in (shown if not ok else shown[-12:]):
            print('     | ' + line)
        if not ok:
            print('     expected exit %d (got %d)%s' % (
                expect_code, proc.returncode,
                ' and the words %s' % missing if missing else ''))
        return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--mxnet', default='mxnet-cu117', help='the CUDA build to check')
    parser.add_argument('--venv', help='the scratch venv (default: a temporary folder)')
    parser.add_argument('--keep', action='store_true', help='keep the scratch venv')
    args = parser.parse_args(argv)
    if not shutil.which('cc'):
        print('error: no C compiler (cc) to build the stand-in driver; apt-get install gcc',
              file=sys.stderr)
        return 2
    scratch = args.venv or tempfile.mkdtemp(prefix='face-align-cuda-')
    venv, driver = os.path.join(scratch, 'venv'), os.path.join(scratch, 'driver')
    started = time.time()
    try:
        os.makedirs(driver, exist_ok=True)
        print('== the project\'s set-up with %s in %s' % (args.mxnet, venv))
        if not os.path.isfile(os.path.join(venv, 'bin', 'python')):
            subprocess.check_call([sys.executable, '-m', 'venv', venv])
            subprocess.check_call([os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install',
                                   '--quiet', '--upgrade', 'pip'])
        setup = time.time()
        subprocess.check_call([os.path.join(venv, 'bin', 'python'),
                               os.path.join(HERE, 'setup_env.py'), '--mxnet', args.mxnet,
                               '--stamp', os.path.join(venv, '.installed')])
        print('   set-up took %.0f s; the venv holds %.1f GB' % (
            time.time() - setup, folder_size(venv) / 1e9))
        subprocess.check_call(['cc', '-shared', '-fPIC', '-Wl,-soname,libcuda.so.1', '-o',
                               os.path.join(driver, 'libcuda.so.1'),
                               os.path.join(HERE, 'libcuda_stub.c')])
        print('== checks (the stand-in driver on LD_LIBRARY_PATH, as a driver install puts '
              'libcuda.so.1 on the loader\'s path)')
        check = Check(venv, driver)
        py = check.python
        check.run('import mxnet finds its libraries and sees no GPU', [py, '-c', NO_GPU],
                  words=['GPUs seen: 0'])
        check.run('a training step on the CPU of the CUDA build',
                  [py, '-m', 'tools.gpu_check', '--cpu'], words=['PASS CPU: convolution'])
        check.run('BLAS of numpy, SciPy and OpenCV after import mxnet',
                  [py, '-c', BLAS_AFTER_MXNET], words=['BLAS ok after import mxnet'])
        check.run('gpu_check names the kernels and the venv\'s libraries, and fails: no GPU',
                  [py, '-m', 'tools.gpu_check'], expect_code=1,
                  words=['machine code for sm_50, sm_60, sm_70, sm_80, sm_86; no PTX',
                         'CUDA runtime 11.8', 'cuDNN 8.9', 'NCCL 2.', venv, 'FAIL no GPU'])
        check.run('without a driver, import mxnet says what to install', [py, '-c', NO_GPU],
                  expect_code=1, words=['needs the NVIDIA driver (libcuda.so.1)'],
                  env=dict(check.env, LD_LIBRARY_PATH=''))
    except subprocess.CalledProcessError as err:
        print('error: %s failed (exit %d)' % (' '.join(err.cmd[:4]), err.returncode),
              file=sys.stderr)
        return 1
    finally:
        if not args.keep and not args.venv:
            shutil.rmtree(scratch, ignore_errors=True)
    passed = sum(ok for ok, _, _ in check.results)
    print('\n%d of %d checks passed in %.1f min (%s, %s)' % (
        passed, len(check.results), (time.time() - started) / 60, args.mxnet,
        'kept in %s' % scratch if args.keep or args.venv else 'scratch venv removed'))
    return 0 if passed == len(check.results) else 1


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files if not os.path.islink(os.path.join(d, f)))


if __name__ == '__main__':
    sys.exit(main())
