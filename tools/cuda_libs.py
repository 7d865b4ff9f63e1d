"""Let a CUDA build of MXNet find the CUDA libraries of the `nvidia-*-cu11`
wheels in its virtual environment, with no LD_LIBRARY_PATH.

MXNet's CUDA wheels link against libcudart.so.11.0, libcublas.so.11,
libcudnn.so.8, libnccl.so.2, ... but do not ship them; the nvidia-*-cu11 wheels
put them under site-packages/nvidia/*/lib, where the loader does not look.
`install(site_packages)` (run by `make setup MXNET=mxnet-cu11x`) copies this
file there with a .pth line that registers an import hook: the first
`import mxnet` loads those libraries globally (each after the ones it needs),
and the loader then takes them by name. Nothing is loaded for other imports.
Standard library only.
"""
import ctypes
import glob
import importlib.abc
import os
import re
import shutil
import sys

MODULE = 'face_align_cuda_libs'
PTH = MODULE + '.pth'


def library_files(site_packages):
    """The shared libraries (libNAME.so[.N...]) of the nvidia wheels under
    `site_packages`."""
    found = glob.glob(os.path.join(site_packages, 'nvidia', '*', 'lib', 'lib*.so*'))
    return sorted(path for path in found if not os.path.islink(path)
                  and re.match(r'lib.+\.so(\.\d+)*$', os.path.basename(path)))


def preload(paths, load=None):
    """Load every library of `paths` globally, each once the libraries it
    needs are loaded (rounds until nothing more loads). Returns the loaded
    paths; OSError names those that never load."""
    load = load or (lambda path: ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
    pending, loaded = list(paths), []
    while pending:
        failed = {}
        for path in pending:
            try:
                load(path)
                loaded.append(path)
            except OSError as err:
                failed[path] = err
        if len(failed) == len(pending):
            raise OSError('cannot load the CUDA libraries %s (%s)' % (
                ', '.join(os.path.basename(p) for p in failed), next(iter(failed.values()))))
        pending = [p for p in pending if p in failed]
    return loaded


class MXNetHook(importlib.abc.MetaPathFinder):
    """Preloads the wheels' libraries when `mxnet` is first imported."""

    def __init__(self, site_packages):
        self.site_packages = site_packages

    def find_spec(self, name, path=None, target=None):
        if name == 'mxnet' and self in sys.meta_path:
            sys.meta_path.remove(self)
            preload(library_files(self.site_packages))
        return None


def register():
    """Called by the .pth line at interpreter start: registers the hook."""
    sys.meta_path.insert(0, MXNetHook(os.path.dirname(os.path.abspath(__file__))))


def install(site_packages):
    """Put the hook into `site_packages`; returns the files written."""
    module = os.path.join(site_packages, MODULE + '.py')
    pth = os.path.join(site_packages, PTH)
    shutil.copyfile(os.path.abspath(__file__), module + '.tmp')
    os.replace(module + '.tmp', module)
    with open(pth + '.tmp', 'w') as f:
        f.write('import %s; %s.register()\n' % (MODULE, MODULE))
    os.replace(pth + '.tmp', pth)
    return [module, pth]
