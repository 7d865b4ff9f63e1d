"""GPU install decisions, testable without a GPU: which kernels an MXNet
build carries (read from the fat binaries in its library), whether a GPU can
run them, the install that fixes it where it cannot, and what `nvidia-smi`
reports. Standard library only; nothing here imports MXNet. (The one-line
explanations of GPU errors at run time are core.plumbing.devices'.)
"""
import collections
import mmap
import re
import struct

# The CUDA wheels of MXNet 1.9.1 on the package index: machine code for these
# architectures only, and no PTX to compile for newer ones.
PIP_WHEELS = tuple('mxnet-cu11%d' % v for v in range(2, 8))
PIP_WHEEL_ARCHS = (frozenset({50, 60, 70, 80, 86}), frozenset())
RECOMMENDED_WHEEL = 'mxnet-cu117'
NGC_IMAGE = 'nvcr.io/nvidia/mxnet:24.06-py3'
# The pip wheels compile their run-time fused kernels with NVRTC 11.8 to PTX,
# which drivers before R520 cannot load; MXNET_USE_FUSION=0 runs without them.
WHEEL_DRIVER = 520
WHEEL_DRIVER_WORDS = '520 or later (450.80.02 or later with MXNET_USE_FUSION=0)'

# GPU generations by compute capability: what runs them.
Generation = collections.namedtuple('Generation', 'low high name examples install driver')
GENERATIONS = (
    Generation(30, 49, 'Kepler and older', 'K80', 'not supported by MXNet 1.9.1 builds', ''),
    Generation(50, 69, 'Maxwell, Pascal', 'GTX 9xx/10xx, P100',
               'make setup MXNET=%s' % RECOMMENDED_WHEEL, WHEEL_DRIVER_WORDS),
    Generation(70, 79, 'Volta, Turing', 'V100, T4, RTX 20xx',
               'make setup MXNET=%s' % RECOMMENDED_WHEEL, WHEEL_DRIVER_WORDS),
    Generation(80, 89, 'Ampere, Ada', 'A100, A10, RTX 30xx/40xx, L4, L40',
               'make setup MXNET=%s' % RECOMMENDED_WHEEL, WHEEL_DRIVER_WORDS),
    Generation(90, 99, 'Hopper', 'H100, H200, GH200',
               'the NGC MXNet container (docker/Dockerfile, from %s) or a source build '
               'with MXNET_CUDA_ARCH=9.0' % NGC_IMAGE, '550 or later (the container\'s CUDA 12.4)'),
    Generation(100, 999, 'Blackwell and newer', 'B200, RTX 50xx',
               'a source build of MXNet 1.9.1 with CUDA 12.8 or newer and MXNET_CUDA_ARCH set '
               'to the GPU\'s capability (no published MXNet build runs these)',
               '570 or later'),
)


def generation(capability):
    """The Generation of a compute capability given as 86 for 8.6."""
    for gen in GENERATIONS:
        if gen.low <= capability <= gen.high:
            return gen
    return GENERATIONS[0]


# Fat binaries ----------------------------------------------------------------------

FATBIN_MAGIC = 0xBA55ED50
PTX, CUBIN = 1, 2


class Arches(collections.namedtuple('Arches', 'cubins ptx')):
    """Architectures (80 for sm_80) with machine code, and with PTX."""

    def describe(self):
        return 'machine code for %s; %s' % (
            ', '.join('sm_%d' % a for a in sorted(self.cubins)) or 'no architecture',
            ('PTX for ' + ', '.join('compute_%d' % a for a in sorted(self.ptx)))
            if self.ptx else 'no PTX')


def _elf_section(data, wanted):
    """(start, end) of the ELF64 section called `wanted` in `data`, or None."""
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise ValueError('not a 64-bit ELF file')
    shoff = struct.unpack_from('<Q', data, 0x28)[0]
    entsize, count, names_index = struct.unpack_from('<HHH', data, 0x3A)
    headers = [struct.unpack_from('<IIQQQQ', data, shoff + i * entsize) for i in range(count)]
    names = headers[names_index]
    table = data[names[4]:names[4] + names[5]]
    for name, _, _, _, offset, size in headers:
        if table[name:table.index(b'\0', name)] == wanted:
            return offset, offset + size
    return None


def fatbin_arches(blob, pos=0, stop=None):
    """Arches of the fat binaries in `blob[pos:stop]` (a `.nv_fatbin`
    section): each container is a 16-byte header (magic, version, header
    size, size of its entries), then entries of kind (1 PTX, 2 machine
    code), header size and payload size, with the SM number at byte 28 of
    the entry."""
    cubins, ptx = set(), set()
    stop = len(blob) if stop is None else stop
    while pos + 16 <= stop:
        magic, _, header, size = struct.unpack_from('<IHHQ', blob, pos)
        if magic != FATBIN_MAGIC:
            pos += 8
            continue
        entry, end = pos + header, pos + header + size
        while entry + 32 <= end:
            kind, _, entry_header, payload = struct.unpack_from('<HHIQ', blob, entry)
            arch = struct.unpack_from('<I', blob, entry + 28)[0]
            if kind == PTX:
                ptx.add(arch)
            elif kind == CUBIN:
                cubins.add(arch)
            entry += entry_header + payload
        pos = end
    return Arches(frozenset(cubins), frozenset(ptx))


def library_arches(path):
    """Arches of a shared library (libmxnet.so); empty when it has no GPU
    code. The file is mapped, not read (the CUDA wheels' is 900 MB)."""
    with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        section = _elf_section(data, b'.nv_fatbin')
        return fatbin_arches(data, *section) if section else Arches(frozenset(), frozenset())


def kernels_for(capability, arches):
    """What of `arches` runs on a GPU of `capability` (86 for 8.6): machine
    code of the same major version and a minor not above the GPU's, else PTX
    of a version not above it (compiled when first used); None when nothing."""
    fitting = [a for a in arches.cubins if a // 10 == capability // 10 and a <= capability]
    if fitting:
        return 'sm_%d machine code' % max(fitting)
    jit = [a for a in arches.ptx if a <= capability]
    if jit:
        return 'compute_%d PTX (compiled on first use)' % max(jit)
    return None


# nvidia-smi ------------------------------------------------------------------------

SMI_QUERY = ['nvidia-smi', '--query-gpu=index,name,compute_cap,memory.total,driver_version,uuid',
             '--format=csv,noheader,nounits']
Gpu = collections.namedtuple('Gpu', 'index name capability memory_mb driver uuid')


def parse_smi(text):
    """[Gpu] of SMI_QUERY's output; capability None where the driver does
    not report it."""
    gpus = []
    for line in text.strip().splitlines():
        fields = [f.strip() for f in line.split(',')]
        if len(fields) < 6:
            continue
        index, name, cap, memory, driver, uuid = fields[:6]
        match = re.match(r'(\d+)\.(\d+)$', cap)
        gpus.append(Gpu(int(index), name, int(match.group(1)) * 10 + int(match.group(2))
                        if match else None, int(memory) if memory.isdigit() else None, driver,
                        uuid))
    return gpus


def driver_note(driver, build, environ):
    """The words to add for a driver too old for the pip wheels' run-time
    fused kernels, or None."""
    major = re.match(r'(\d+)', driver or '')
    if build not in PIP_WHEELS or not major or int(major.group(1)) >= WHEEL_DRIVER or \
            environ.get('MXNET_USE_FUSION') == '0':
        return None
    return ('driver %s is older than R%d: the fused kernels %s compiles at run time cannot '
            'load; set MXNET_USE_FUSION=0 or update the driver' % (driver, WHEEL_DRIVER, build))


def verdict(gpu, arches, build):
    """(ok, one line) for `gpu` under an MXNet `build` (a package name, or
    'source' for one installed some other way) with `arches`."""
    where = 'GPU %d (%s' % (gpu.index, gpu.name)
    if gpu.capability is None:
        return None, '%s): compute capability not reported; the test run decides' % where
    where += ', compute capability %d.%d)' % divmod(gpu.capability, 10)
    if not arches.cubins and not arches.ptx:
        return False, '%s: this MXNet build (%s) has no GPU code; install: %s' % (
            where, build, generation(gpu.capability).install)
    kernels = kernels_for(gpu.capability, arches)
    if kernels:
        return True, '%s: runs %s of %s' % (where, kernels, build)
    gen = generation(gpu.capability)
    return False, '%s: %s has no kernels for %s GPUs (%s); install: %s' % (
        where, build, gen.name, arches.describe(), gen.install)
