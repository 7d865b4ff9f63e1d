"""The README's "what to expect" table, measured on this machine: time and
peak memory of inference per face for each backend (hg2d3-cab, one fresh
process per backend, its exports made beforehand), and with --commands of
the set-up on a clean clone, the demo and both parts of the test suite
(about an hour on 2 cores; `../shared` is linked beside the clone when the
checkout has it); without --commands, a --json file's earlier set-up, demo
and test rows are kept. `make figures` runs it with --json and quotes the
table in the README.

    python -m benchmarks.expectations
    python -m benchmarks.expectations --commands --json docs/figures/expectations.json
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = 24
# Runs a command and prints its wall time and the peak memory of its largest
# process (RUSAGE_CHILDREN: every descendant waited for).
MEASURE = ('import resource, subprocess, sys, time; t = time.time(); '
           'code = subprocess.call(sys.argv[1:]); '
           'print("MEASURED %.1f %.0f %d" % (time.time() - t, '
           'resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, code))')


def measure(command, cwd=ROOT):
    """(seconds, peak MB, output) of a command run in a fresh process."""
    proc = subprocess.run([sys.executable, '-c', MEASURE] + command, cwd=cwd,
                          capture_output=True, text=True)
    line = [l for l in proc.stdout.splitlines() if l.startswith('MEASURED ')][-1]
    seconds, peak, code = line.split()[1:]
    if int(code):
        raise RuntimeError('%s failed:\n%s\n%s' % (' '.join(command), proc.stdout[-3000:],
                                                   proc.stderr[-2000:]))
    return float(seconds), float(peak), proc.stdout


def child(backend, prefix):
    """Time FACES single faces with one backend (run in its own process)."""
    import numpy as np

    from core.inference.predictor import make_predictor
    from core.plumbing.runs import resolve
    predictor = make_predictor(resolve(prefix), backend)
    data = np.random.RandomState(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    predictor(data)
    start = time.perf_counter()
    for _ in range(FACES):
        predictor(data)
    print('MS %.1f' % (1000 * (time.perf_counter() - start) / FACES))


def inference_rows():
    """Rows of one face per backend, each with its share of the machine's
    peak (benchmarks.machine.measured_peaks; FP32 for MXNet and ONNX, INT8
    for onnx-int8)."""
    from benchmarks.inference import count_flops
    from benchmarks.machine import measured_peaks
    from benchmarks.models import random_checkpoint
    from core.inference.predictor import BACKENDS, cached_onnx, make_predictor
    from core.inference.quantize import quantize
    from core.plumbing.checkpoint import load_symbol, symbol_path
    from core.plumbing.runs import resolve
    from data.workers import usable_cpus
    from symbol import inference_symbol
    rows = []
    roofs = measured_peaks(usable_cpus())._asdict()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = random_checkpoint('hg2d3-cab', tmp)
        checkpoint = resolve(prefix)
        gflop = count_flops(inference_symbol(load_symbol(symbol_path(prefix))),
                            checkpoint.input_size) / 1e9
        fp32 = make_predictor(checkpoint, 'onnx')             # the exports are made now
        del fp32
        # Random weights have no meaningful NME to check INT8 against.
        cached_onnx(checkpoint, 'int8', lambda out: quantize(
            '%s-0000.onnx' % prefix, out, checkpoint.cfg, max_loss=None))
        for backend in BACKENDS:
            _, peak, out = measure([sys.executable, '-m', 'benchmarks.expectations', '--child',
                                    backend, prefix])
            ms = float([l for l in out.splitlines() if l.startswith('MS ')][0].split()[1])
            roof = roofs['int8' if backend.endswith('int8') else 'fp32']
            rows.append(('inference, `--backend %s`, one face' % backend, '%.0f ms' % ms,
                         '%.0f MB' % peak, '%.0f%%' % (100 * gflop / (ms / 1e3) / roof)))
    return rows


def kept_rows(path):
    """The set-up, demo and test rows of an earlier measurement at `path`,
    kept when only inference is measured again."""
    if not path or not os.path.isfile(path):
        return []
    with open(path) as f:
        rows = json.load(f)['rows']
    return [list(row) + [''] * (len(COLUMNS) - len(row)) for row in rows
            if not row[0].startswith('inference')]


def command_rows(demo_output=None):
    """Rows of set-up, demo and tests on a clean clone; the demo's folder is
    copied to `demo_output` when given."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clone = os.path.join(tmp, 'clone')
        subprocess.run(['git', 'clone', '-q', ROOT, clone], check=True)
        shared = os.path.join(os.path.dirname(ROOT), 'shared')
        if os.path.isdir(shared):
            os.symlink(shared, os.path.join(tmp, 'shared'))
        seconds, peak, _ = measure(['make', 'setup'], clone)
        rows.append(('`make setup` on a clean clone', '%.0f s' % seconds, '%.0f MB' % peak, ''))
        seconds, peak, _ = measure(['make', 'demo'], clone)
        rows.append(('`make demo`', '%.1f min' % (seconds / 60), '%.0f MB' % peak, ''))
        if demo_output:
            shutil.copytree(os.path.join(clone, 'demo-output'), demo_output)
        for target, what in (('test', 'the quick part'), ('test-long', 'the long part')):
            seconds, peak, out = measure(['make', target], clone)
            passed = re.findall(r'(\d+) passed', out)
            rows.append(('`make %s` (%s: %s tests%s)' % (
                target, what, passed[-1] if passed else '?',
                ', `../shared` beside the checkout' if os.path.isdir(shared) else ''),
                '%.1f min' % (seconds / 60), '%.0f MB' % peak, ''))
    return rows


def machine():
    """The CPU, as the table's caption says it."""
    from benchmarks.machine import cpu
    from data.workers import usable_cpus
    return '%d cores of %s, no GPU' % (usable_cpus(), cpu()[0])


COLUMNS = ('what', 'time', 'peak memory', "share of the CPU's peak")


def table(found):
    """The Markdown table of a measurement."""
    lines = ['| %s |' % ' | '.join(COLUMNS), '|%s' % ('---|' * len(COLUMNS))]
    return '\n'.join(lines + ['| %s |' % ' | '.join(row) for row in found['rows']])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--commands', action='store_true',
                        help='also time set-up, the demo and the tests on a clean clone')
    parser.add_argument('--json', help='write the measurement here too (for make figures)')
    parser.add_argument('--demo-output', help='with --commands: keep the demo\'s folder here')
    parser.add_argument('--child', nargs=2, metavar=('BACKEND', 'PREFIX'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    from data.files import write_atomic
    rows = (command_rows(args.demo_output) if args.commands else kept_rows(args.json)) + \
        inference_rows()
    found = {'machine': machine(), 'rows': rows}
    found['table'] = table(found)
    print(found['machine'])
    print(found['table'])
    if args.json:
        print('wrote %s' % write_atomic(args.json, json.dumps(found, indent=1)))


if __name__ == '__main__':
    main()
