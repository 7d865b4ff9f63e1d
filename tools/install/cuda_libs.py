"""Let a CUDA build of MXNet find the CUDA libraries of the `nvidia-*-cu11`
wheels in its virtual environment, with no LD_LIBRARY_PATH.

MXNet's CUDA wheels link against libcudart.so.11.0, libcublas.so.11,
libcudnn.so.8, libnccl.so.2, libnvToolsExt.so.1, ... but do not ship them;
the nvidia-*-cu11 wheels put them under site-packages/nvidia/*/lib, where the
loader does not look. `install(site_packages)` (run by `make setup
MXNET=mxnet-cu11x`) copies this file there with a .pth line that registers an
import hook: the first `import mxnet` loads, from those folders, only what
libmxnet.so needs (the NEEDED entries of its ELF header and theirs, in turn)
and the libraries those open by name at run time (cuDNN's sub-libraries,
NVRTC's built-ins). The loader then takes them by name when libmxnet.so
loads. Each is loaded with local symbol scope, so no library of the wheels
(libnvblas.so exports the standard BLAS names) ever stands in for numpy's,
SciPy's or OpenCV's. Standard library only.
"""
import ctypes
import glob
import importlib.abc
import os
import re
import shutil
import struct
import sys

MODULE = 'face_align_cuda_libs'
PTH = MODULE + '.pth'
DRIVER = 'libcuda.so.1'
# Opened by name at run time (dlopen) by a library libmxnet.so needs, so
# absent from every NEEDED list: loaded once the library that opens them is.
OPENED_AT_RUN_TIME = {'libcudnn.so.8': r'libcudnn_\w+\.so\.\d+$',
                      'libnvrtc.so.11.2': r'libnvrtc-builtins\.so(\.\d+)*$'}
_LOADED = []        # handles kept for the life of the process


class ElfError(ValueError):
    """A file that is not a 64-bit little-endian ELF shared object."""


def needed(path):
    """The NEEDED entries (sonames) of the ELF file at `path`, read from its
    dynamic segment without reading the rest of the file (libmxnet.so is
    900 MB)."""
    with open(path, 'rb') as f:
        header = f.read(64)
        if header[:4] != b'\x7fELF' or header[4] != 2 or header[5] != 1:
            raise ElfError('%s is not a 64-bit little-endian ELF file' % path)
        phoff, = struct.unpack_from('<Q', header, 0x20)
        phentsize, phnum = struct.unpack_from('<HH', header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        segments = [struct.unpack_from('<IIQQQQ', table, i * phentsize) for i in range(phnum)]
        loads = [(vaddr, offset, filesz) for kind, _, offset, vaddr, _, filesz in segments
                 if kind == 1]
        dynamic = [(offset, filesz) for kind, _, offset, _, _, filesz in segments if kind == 2]
        if not dynamic:
            return []
        f.seek(dynamic[0][0])
        raw = f.read(dynamic[0][1])
        entries = [struct.unpack_from('<qQ', raw, i) for i in range(0, len(raw) - 15, 16)]
        strtab = next((value for tag, value in entries if tag == 5), None)
        names = [value for tag, value in entries if tag == 1]
        if strtab is None:
            return []

        def file_offset(address):
            for vaddr, offset, filesz in loads:
                if vaddr <= address < vaddr + filesz:
                    return address - vaddr + offset
            raise ElfError('%s: its string table lies outside its segments' % path)
        found = []
        for name in names:
            f.seek(file_offset(strtab) + name)
            found.append(f.read(256).split(b'\0', 1)[0].decode())
        return found


def wheel_libraries(site_packages):
    """{soname: path} of the shared libraries (libNAME.so[.N...]) of the
    nvidia wheels under `site_packages`."""
    found = glob.glob(os.path.join(site_packages, 'nvidia', '*', 'lib', 'lib*.so*'))
    return {os.path.basename(p): p for p in sorted(found) if not os.path.islink(p)
            and re.match(r'lib.+\.so(\.\d+)*$', os.path.basename(p))}


def libraries_for(binary, available):
    """Paths of `available` ({soname: path}) that `binary` needs, directly
    or through another, with those opened at run time by them; each after
    the ones it needs."""
    order, seen = [], set()

    def visit(name):
        if name in seen or name not in available:
            return
        seen.add(name)
        for dependency in needed(available[name]):
            visit(dependency)
        order.append(available[name])
        pattern = OPENED_AT_RUN_TIME.get(name)
        if pattern:
            for other in sorted(available):
                if re.match(pattern, other):
                    visit(other)

    for name in needed(binary):
        visit(name)
    return order


def preload(paths, load=None):
    """Load `paths` in order, each with local symbol scope (the loader still
    finds them by soname). Returns the handles; OSError names the first
    library that does not load."""
    load = load or (lambda path: ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL))
    handles = []
    for path in paths:
        try:
            handles.append(load(path))
        except OSError as err:
            raise OSError('cannot load the CUDA library %s: %s' % (path, err))
    return handles


def check_driver(load=ctypes.CDLL):
    """ImportError, in words, where the NVIDIA driver's library is missing."""
    try:
        load(DRIVER)
    except OSError:
        raise ImportError(
            'this is a CUDA build of MXNet, and it needs the NVIDIA driver (%s), which this '
            'machine lacks: install the driver (README, "GPU boxes"), or on a machine without '
            'a GPU use the CPU build (delete .venv, then `make setup`)' % DRIVER) from None


class MXNetHook(importlib.abc.MetaPathFinder):
    """Loads what libmxnet.so needs of the wheels when `mxnet` is first
    imported."""

    def __init__(self, site_packages):
        self.site_packages = site_packages

    def find_spec(self, name, path=None, target=None):
        if name == 'mxnet' and self in sys.meta_path:
            sys.meta_path.remove(self)
            binary = os.path.join(self.site_packages, 'mxnet', 'libmxnet.so')
            if os.path.isfile(binary):
                check_driver()
                _LOADED.extend(preload(libraries_for(binary, wheel_libraries(
                    self.site_packages))))
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
