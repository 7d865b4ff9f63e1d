"""Install the project's packages into the running interpreter (the venv),
choosing the MXNet and ONNX Runtime builds without ever swapping one the
user installed. Standard library only: it runs before anything is installed.

    python tools/install/setup_env.py                        # keep what is there, else the CPU builds
    python tools/install/setup_env.py --mxnet mxnet-cu117    # CUDA 11.7 MXNet + the CUDA 11 libraries
    python tools/install/setup_env.py --mxnet system         # the MXNet of an NGC container / source build
    python tools/install/setup_env.py --onnxruntime onnxruntime-gpu --dry-run
    python tools/install/setup_env.py --check-python         # is this Python supported?
    python tools/install/setup_env.py --resolve 3.10         # every set resolves on the package index

`make setup MXNET=... ONNXRUNTIME=...` calls it. A build of another kind
already installed is kept: switching needs its removal first, which the
error message spells out. The CUDA builds of MXNet do not ship the CUDA
runtime: the pinned nvidia-*-cu11 wheels are installed with them, and a hook
(tools/install/cuda_libs.py) lets `import mxnet` find those libraries in the venv.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUPPORTED_PYTHONS = ((3, 10), (3, 11))
SYSTEM = 'system'
# Wheel tags of an x86_64 Linux with glibc 2.28 or newer (a GPU box of today).
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')
FAMILIES = {
    'mxnet': ('mxnet',) + tuple('mxnet-cu11%d' % v for v in range(2, 8)),
    'onnxruntime': ('onnxruntime', 'onnxruntime-gpu'),
}
# The CUDA 11 libraries MXNet's CUDA wheels link against (the NEEDED entries
# of their libmxnet.so; pinned in constraints.txt). libnvToolsExt.so.1 is NVTX.
CUDA11_LIBRARIES = ('nvidia-cuda-runtime-cu11', 'nvidia-cublas-cu11', 'nvidia-cudnn-cu11',
                    'nvidia-nccl-cu11', 'nvidia-cuda-nvrtc-cu11', 'nvidia-cufft-cu11',
                    'nvidia-curand-cu11', 'nvidia-cusolver-cu11', 'nvidia-cusparse-cu11',
                    'nvidia-nvtx-cu11')


class SetupError(Exception):
    """A request set-up cannot carry out; the message says what to do."""


def check_python(version):
    """SetupError for a Python the pinned set cannot install on."""
    if tuple(version[:2]) not in SUPPORTED_PYTHONS:
        supported = ' or '.join('%d.%d' % v for v in SUPPORTED_PYTHONS)
        raise SetupError(
            'Python %d.%d is not supported: mxnet 1.9.1 needs numpy<1.24, whose last release '
            '(1.23.5) has wheels up to Python 3.11; use Python %s, e.g. `make setup '
            'PYTHON=python3.11` (nothing was installed)' % (version[0], version[1], supported))


def installed_builds():
    """{family: the installed package of that family, or None}."""
    found = {}
    for family, names in FAMILIES.items():
        present = []
        for name in names:
            try:
                metadata.version(name)
                present.append(name)
            except metadata.PackageNotFoundError:
                pass
        found[family] = present[0] if present else None
    return found


def choose(requested, installed):
    """{family: package} to install: the request, else what is installed,
    else the CPU build; the MXNet family may be 'system' (install none).
    SetupError when a request would replace another installed build."""
    chosen = {}
    for family, names in FAMILIES.items():
        want, have = requested.get(family), installed.get(family)
        allowed = names + ((SYSTEM,) if family == 'mxnet' else ())
        if want and want not in allowed:
            raise SetupError('%s is not a build of %s; choose one of %s'
                             % (want, family, ', '.join(allowed)))
        if want == SYSTEM:
            chosen[family] = SYSTEM
            continue
        if want and have and want != have:
            raise SetupError(
                'this environment has %s installed; installing %s would replace it. To switch, '
                'remove it first (%s -m pip uninstall -y %s) or delete .venv, then run set-up '
                'again' % (have, want, sys.executable, have))
        chosen[family] = want or have or family
    return chosen


def packages(chosen):
    """The packages to install besides requirements.txt."""
    names = [p for p in chosen.values() if p != SYSTEM]
    if chosen['mxnet'].startswith('mxnet-cu'):
        names += CUDA11_LIBRARIES
    return sorted(names)


def constraints(chosen, system_numpy=None):
    """Lines of the constraints to install under: constraints.txt, and with
    MXNet from the system no MXNet build and numpy held at the system's."""
    with open(os.path.join(ROOT, 'constraints.txt')) as f:
        lines = [line.strip() for line in f if line.strip()]
    if chosen['mxnet'] != SYSTEM:
        return lines
    lines = [line for line in lines if line.split('==')[0] not in FAMILIES['mxnet']
             and not line.startswith('numpy==')]
    return lines + ['numpy==%s' % system_numpy]


def system_mxnet(prefix=sys.prefix):
    """numpy version beside the system MXNet; SetupError where this venv
    cannot see an MXNet installed outside it."""
    config = os.path.join(prefix, 'pyvenv.cfg')
    if os.path.isfile(config):
        with open(config) as f:
            shared = any(line.replace(' ', '').lower() == 'include-system-site-packages=true\n'
                         for line in f)
        if not shared:
            raise SetupError('MXNET=system needs a virtual environment that sees the system\'s '
                             'packages; delete .venv and run `make setup MXNET=system` again')
    probe = subprocess.run([sys.executable, '-c', 'import mxnet, numpy; print(mxnet.__version__, '
                            'numpy.__version__)'], capture_output=True, text=True)
    if probe.returncode:
        raise SetupError('MXNET=system, but no MXNet can be imported outside the venv (%s)'
                         % (probe.stderr.strip().splitlines() or ['?'])[-1])
    mxnet_version, numpy_version = probe.stdout.split()
    return mxnet_version, numpy_version


def numpy_needs(lines, version):
    """'PACKAGE VERSION needs numpy>=X' for each requirement in pip's
    conflict report (`lines`) that numpy `version` does not meet."""
    have = tuple(int(v) for v in re.findall(r'\d+', version)[:3])
    tests = {'>=': lambda a, b: a >= b, '>': lambda a, b: a > b, '<=': lambda a, b: a <= b,
             '<': lambda a, b: a < b, '==': lambda a, b: a == b, '!=': lambda a, b: a != b}
    found = []
    for line in lines:
        match = re.match(r'(\S+ \S+) depends on numpy([^;]*)$', line.strip())
        for clause in re.split(r',| and ', match.group(2)) if match else ():
            spec = re.match(r'\s*(>=|<=|==|!=|<|>)\s*([\d.]+)', clause)
            want = tuple(int(v) for v in spec.group(2).split('.')[:3]) if spec else None
            if spec and not tests[spec.group(1)](have[:len(want)], want):
                found.append('%s needs numpy%s%s' % (match.group(1), spec.group(1),
                                                    spec.group(2)))
    return sorted(set(found))


def check_system_numpy(command, numpy_version):
    """SetupError, before anything is installed, when the pinned packages
    cannot install beside the system's numpy (MXNET=system keeps it)."""
    with tempfile.TemporaryDirectory() as target:
        proc = subprocess.run(command[:4] + ['--dry-run', '--ignore-installed', '--target',
                                             target] + [w for w in command[4:] if w != '--quiet'],
                              capture_output=True, text=True)     # pip's reasons are info
    if proc.returncode == 0:
        return
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if any('SSLError' in line or 'NewConnectionError' in line or 'No matching distribution'
           in line for line in lines):
        raise SetupError('the package index cannot be reached or lacks a pinned package (%s); '
                         'nothing was installed' % lines[-1])
    causes = numpy_needs(lines, numpy_version) or lines[-1:]
    raise SetupError(
        'the system\'s numpy %s (kept with MXNET=system) and the pinned packages '
        '(constraints.txt) cannot install together: %s; use an image whose numpy the pins '
        'accept, or change the pins (nothing was installed)' % (numpy_version, '; '.join(causes)))


def pip_command(chosen, constraints_path, options=()):
    return [sys.executable, '-m', 'pip', 'install', '--quiet'] + list(options) + [
        '-r', os.path.join(ROOT, 'requirements.txt')] + packages(chosen) + ['-c', constraints_path]


def digest(chosen, lines):
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        text = f.read() + '\n'.join(lines) + repr(sorted(chosen.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def link_checkout(site_packages, root=ROOT):
    """A .pth file that puts this checkout on the venv's path, so that its
    scripts, `python -m data.build` and the Python API work from any folder."""
    path = os.path.join(site_packages, 'face_align_checkout.pth')
    with open(path + '.tmp', 'w') as f:
        f.write(root + '\n')
    os.replace(path + '.tmp', path)
    return path


def resolve(version, sets):
    """Dry-run installs of every set for Python `version` (x86_64 Linux
    wheels only); returns [(set, ok, the first error line)]."""
    platforms = [word for name in PLATFORMS for word in ('--platform', name)]
    results = []
    for chosen in sets:
        with tempfile.TemporaryDirectory() as target:
            proc = subprocess.run(pip_command(chosen, os.path.join(ROOT, 'constraints.txt'), [
                '--dry-run', '--ignore-installed', '--only-binary=:all:', '--python-version',
                version, '--target', target] + platforms), capture_output=True, text=True)
        errors = [line for line in proc.stderr.splitlines() if line.startswith('ERROR')]
        results.append((chosen, proc.returncode == 0, errors[0] if errors else ''))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--mxnet', help='mxnet (CPU), mxnet-cu112 ... mxnet-cu117, or system')
    parser.add_argument('--onnxruntime', help='onnxruntime (CPU) or onnxruntime-gpu')
    parser.add_argument('--stamp', default=os.path.join(sys.prefix, '.installed'),
                        help='file recording what was installed')
    parser.add_argument('--dry-run', action='store_true', help='print what would be done only')
    parser.add_argument('--check-python', action='store_true',
                        help='only check that this Python is supported')
    parser.add_argument('--python-version', help='plan for this Python (X.Y), with --dry-run')
    parser.add_argument('--resolve', metavar='X.Y',
                        help='dry-run every MXNet and ONNX Runtime set for Python X.Y')
    args = parser.parse_args(argv)
    version = tuple(int(v) for v in args.python_version.split('.')) if args.python_version \
        else sys.version_info[:2]
    try:
        check_python(version)
        if args.check_python:
            return 0
        if args.resolve:
            sets = [{'mxnet': m, 'onnxruntime': o} for m in FAMILIES['mxnet']
                    for o in FAMILIES['onnxruntime']]
            results = resolve(args.resolve, sets)
            for chosen, ok, last in results:
                print('%-4s Python %s, %s + %s%s' % ('ok' if ok else 'FAIL', args.resolve,
                                                     chosen['mxnet'], chosen['onnxruntime'],
                                                     '' if ok else ': ' + last))
            return 0 if all(ok for _, ok, _ in results) else 1
        chosen = choose({'mxnet': args.mxnet, 'onnxruntime': args.onnxruntime},
                        {} if args.mxnet == SYSTEM else installed_builds())
        system_numpy = None
        if chosen['mxnet'] == SYSTEM:
            mxnet_version, system_numpy = system_mxnet()
            print('using the system\'s MXNet %s with its numpy %s' % (mxnet_version,
                                                                      system_numpy))
    except SetupError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    lines = constraints(chosen, system_numpy)
    with tempfile.NamedTemporaryFile('w', suffix='-constraints.txt', delete=False) as f:
        f.write('\n'.join(lines) + '\n')
    command = pip_command(chosen, f.name)
    hook = chosen['mxnet'].startswith('mxnet-cu')
    try:
        if args.dry_run:
            print(' '.join(command))
            print('constraints: %s' % ' '.join(lines))
            if hook:
                print('then: the CUDA library hook (tools/install/cuda_libs.py) in %s'
                      % sysconfig.get_paths()['purelib'])
            return 0
        link_checkout(sysconfig.get_paths()['purelib'])
        stamp = digest(chosen, lines)
        if os.path.isfile(args.stamp) and open(args.stamp).read() == stamp:
            print('packages up to date (%s)' % ', '.join(packages(chosen)))
            return 0
        if system_numpy:
            check_system_numpy(command, system_numpy)
        print('installing the requirements with %s' % ', '.join(packages(chosen)))
        subprocess.check_call(command)
    except SetupError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    finally:
        os.remove(f.name)
    if hook:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cuda_libs
        written = cuda_libs.install(sysconfig.get_paths()['purelib'])
        print('import mxnet finds the CUDA 11 libraries through %s' % written[-1])
    with open(args.stamp, 'w') as f:
        f.write(stamp)
    return 0


if __name__ == '__main__':
    sys.exit(main())
