"""The main job on a fresh machine (`make demo`): synthesise faces, train a
small network on the CPU, evaluate it, and align the sample photos.

Everything is written under one folder (default ./demo-output), named at
the end; an earlier demo there is never overwritten. With --overwrite the
new demo is made beside it and takes its place only once it has finished:
a demo that fails or is interrupted leaves the earlier one as it was. Takes
about ten minutes on two cores.
"""
import argparse
import csv
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from core.plumbing import cli
from symbol import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class StepFailed(Exception):
    """A step of the demo failed; the message names it."""


def run(args, title):
    """Run a project command with this interpreter, streaming its output."""
    print('\n== %s\n$ %s' % (title, ' '.join(['python'] + args)), flush=True)
    start = time.time()
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            print(line, end='', flush=True)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)         # the step stops too, then the demo
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.wait():
        raise StepFailed('demo step failed (%s), exit code %d' % (title, proc.returncode))
    print('   (%.0f s)' % (time.time() - start), flush=True)
    return ''.join(lines)


def nme_of(output):
    match = re.search(r'nme on \S+ is ([0-9.]+)%', output)
    return float(match.group(1)) if match else float('nan')


def untrained_nme(log_path, target):
    """The step-0 validation NME the training log holds (step 0 is not saved)."""
    with open(log_path) as f:
        first = next(csv.DictReader(f))
    return float(first['nme_' + target])


def _main(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--output', default='demo-output')
    parser.add_argument('--train-faces', type=int, default=1500)
    parser.add_argument('--test-faces', type=int, default=100)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier demo')
    parser.add_argument('--gpus', default='-1',
                        help='GPUs to train on, e.g. 0 (default -1: the CPU, on any build)')
    args = parser.parse_args(argv)
    gpu = args.gpus.split(',')[0]
    where = 'the CPU' if gpu == '-1' else 'GPU ' + args.gpus
    out = os.path.abspath(args.output)
    if os.path.exists(out) and not args.overwrite:
        sys.exit('error: %s holds an earlier demo; remove it, choose --output, or add '
                 '--overwrite' % args.output)
    # An earlier demo waits aside, and is deleted only once this one has
    # finished: a demo that fails or is interrupted puts it back.
    aside = None
    if os.path.exists(out):
        aside = os.path.join(os.path.dirname(out), '.%s.earlier-%d' % (os.path.basename(out),
                                                                       os.getpid()))
        os.rename(out, aside)
    try:
        after, started = demo(args, out, gpu, where)
    except (StepFailed, KeyboardInterrupt) as err:
        shutil.rmtree(out, ignore_errors=True)
        if aside:
            os.rename(aside, out)
        kept = ' (the earlier demo in %s is as it was)' % args.output if aside else ''
        if isinstance(err, KeyboardInterrupt):
            print('\ninterrupted; nothing of this demo is kept%s' % kept, file=sys.stderr)
            return 130
        print('error: %s; nothing of this demo is kept%s' % (err, kept), file=sys.stderr)
        return 1
    if aside:
        shutil.rmtree(aside)
    print('\n== done in %.1f minutes' % ((time.time() - started) / 60))
    print('NME on the synthetic test set: untrained %.2f%% (step 0 of the log), trained %.2f%%'
          % (untrained_nme(os.path.join(out, 'model', 'model-log.csv'), 'synth_test'),
             nme_of(after)))
    print('everything is in %s:' % out)
    print('  model/   checkpoints, model-log.csv, model-log.png (loss and NME curves) and '
          'model-report.html')
    print('  nme/     per record set: report.html (open it in a browser), ced.png (CED curve), '
          'per-image.csv, summary.json')
    print('  aligned/ overlay PNGs and JSON of the sample photos')
    print('  video/   the clip\'s landmarks per face and frame (JSON Lines) and its overlay video')
    return 0


def demo(args, out, gpu, where):
    """Every step of the demo into `out`; (the evaluation's output, the
    start time)."""
    data, model = os.path.join(out, 'data'), os.path.join(out, 'model')
    started = time.time()
    run(['-m', 'data.synth', '--out', os.path.join(data, 'train'), '--count',
         str(args.train_faces), '--seed', '1'], 'synthetic training faces')
    run(['-m', 'data.synth', '--out', os.path.join(data, 'synth_test'), '--count',
         str(args.test_faces), '--seed', '2'], 'synthetic test faces')
    samples = sorted(glob.glob(os.path.join(ROOT, 'sample-images', '*.jpg')))
    if not samples:
        run(['-m', 'data.synth', '--photos', os.path.join(ROOT, 'sample-images'), '--count', '4',
             '--seed', '10'], 'sample photos')
    steps = '%d,%d' % (args.epochs - 2, args.epochs)
    run(['train.py', '--prefix', os.path.join(model, 'model'), '--set', 'dataset_path=' + data,
         '--set', "val_targets=['synth_test']", '--per-batch-size', '16', '--lr', '1e-3',
         '--optimizer', 'adam', '--lr-epoch-step', steps, '--validate-every', '100', '--frequent', '20',
         '--gpus', args.gpus] + zoo.set_flags(zoo.DEMO_SETTINGS), 'training a small network on %s' % where)
    run(['-m', 'tools.plot_log', os.path.join(model, 'model-log.csv'), '--html'],
        'loss and NME curves, and the run\'s page')
    after = run(['test_rec_nme.py', '--rec', os.path.join(data, 'synth_test.rec'),
                 '--prefix', os.path.join(model, 'model'), '--output', os.path.join(out, 'nme'),
                 '--gpu', gpu],
                'the best checkpoint on the synthetic test set')
    run(['test.py', os.path.join(ROOT, 'sample-images'), '--prefix', os.path.join(model, 'model'),
         '--output', os.path.join(out, 'aligned'), '--gpu', gpu], 'landmarks on the sample photos')
    clip = os.path.join(data, 'sample-clip.avi')
    run(['-m', 'data.synth', '--video', clip, '--count', '40', '--seed', '5'],
        'a synthetic clip of two faces crossing')
    run(['test.py', clip, '--prefix', os.path.join(model, 'model'), '--output',
         os.path.join(out, 'video'), '--gpu', gpu], 'landmarks tracked on the clip')
    return after, started


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
