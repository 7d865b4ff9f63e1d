"""Install the project's packages into the running interpreter (the venv),
choosing the MXNet and ONNX Runtime builds without ever swapping one the
user installed. Standard library only: it runs before anything is installed.

    python tools/setup_env.py                        # keep what is there, else the CPU builds
    python tools/setup_env.py --mxnet mxnet-cu112    # a CUDA 11.2 build of MXNet 1.9.1
    python tools/setup_env.py --onnxruntime onnxruntime-gpu --dry-run

`make setup MXNET=... ONNXRUNTIME=...` calls it. A build of another kind
already installed is kept: switching needs its removal first, which the
error message spells out.
"""
import argparse
import hashlib
import os
import subprocess
import sys
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = {
    'mxnet': ('mxnet',) + tuple('mxnet-cu11%d' % v for v in range(2, 8)),
    'onnxruntime': ('onnxruntime', 'onnxruntime-gpu'),
}


class SetupError(Exception):
    """A request set-up cannot carry out without replacing the user's build."""


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
    else the CPU build. SetupError when a request would replace another
    installed build of the same family."""
    chosen = {}
    for family, names in FAMILIES.items():
        want, have = requested.get(family), installed.get(family)
        if want and want not in names:
            raise SetupError('%s is not a build of %s; choose one of %s'
                             % (want, family, ', '.join(names)))
        if want and have and want != have:
            raise SetupError(
                'this environment has %s installed; installing %s would replace it. To switch, '
                'remove it first (%s -m pip uninstall -y %s) or delete .venv, then run set-up '
                'again' % (have, want, sys.executable, have))
        chosen[family] = want or have or family
    return chosen


def digest(chosen):
    text = ''.join(open(os.path.join(ROOT, n)).read()
                   for n in ('requirements.txt', 'constraints.txt'))
    return hashlib.sha256((text + repr(sorted(chosen.items()))).encode()).hexdigest()


def pip_command(chosen):
    return [sys.executable, '-m', 'pip', 'install', '--quiet',
            '-r', os.path.join(ROOT, 'requirements.txt')] + sorted(chosen.values()) + [
        '-c', os.path.join(ROOT, 'constraints.txt')]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--mxnet', help='mxnet (CPU) or mxnet-cu112 ... mxnet-cu117')
    parser.add_argument('--onnxruntime', help='onnxruntime (CPU) or onnxruntime-gpu')
    parser.add_argument('--stamp', default=os.path.join(sys.prefix, '.installed'),
                        help='file recording what was installed')
    parser.add_argument('--dry-run', action='store_true', help='print the pip command only')
    args = parser.parse_args(argv)
    try:
        chosen = choose({'mxnet': args.mxnet, 'onnxruntime': args.onnxruntime},
                        installed_builds())
    except SetupError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    command = pip_command(chosen)
    if args.dry_run:
        print(' '.join(command))
        return 0
    stamp = digest(chosen)
    if os.path.isfile(args.stamp) and open(args.stamp).read() == stamp:
        print('packages up to date (%s)' % ', '.join(sorted(chosen.values())))
        return 0
    print('installing the requirements with %s' % ', '.join(sorted(chosen.values())))
    subprocess.check_call(command)
    with open(args.stamp, 'w') as f:
        f.write(stamp)
    return 0


if __name__ == '__main__':
    sys.exit(main())
