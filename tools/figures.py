"""The README's pictures and figures, made by the project itself (`make
figures`): run the demo (or take an earlier demo's folder with --from), write
a landmark overlay, the loss/NME curves and a CED plot to docs/figures/, the
demo's measured NMEs to docs/figures/numbers.json, and (with --readme) the
README's sentence quoting them, between its `<!-- demo-figures -->` marks.
With --measure the demo is the one `benchmarks.expectations --commands`
times on a clean clone, and its table (docs/figures/expectations.json) goes
between the README's `<!-- expectations -->` marks.

    python -m tools.figures --measure --out docs/figures --readme README.md
    python -m tools.figures --from demo-output --out docs/figures
"""
import argparse
import csv
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import cv2

from core.plumbing.drawing import png_bytes
from data.files import write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH = 720
PICTURES = {'overlay.jpg': 'aligned/synth-00.jpg.png', 'curves.png': 'model/model-log.png',
            'ced.png': 'nme/*/ced.png'}


def sources(demo):
    """{figure name: the demo's picture}; ValueError names a missing one."""
    found = {}
    for name, pattern in PICTURES.items():
        matches = sorted(glob.glob(os.path.join(demo, pattern)))
        if not matches:
            raise ValueError('%s has no %s; is it a demo folder?' % (demo, pattern))
        found[name] = matches[0]
    return found


def screenshot(demo, out):
    """The demo's evaluation page as a browser shows it (its top), or None
    without Chromium."""
    from tools.check_page import find_browser, open_in_browser
    pages = sorted(glob.glob(os.path.join(demo, 'nme', '*', 'report.html')))
    if not pages or find_browser() is None:
        print('no %s; the report screenshot is not remade' % (
            'report page in %s' % demo if not pages else 'Chromium (apt-get install chromium)'))
        return None
    shot = os.path.join(out, 'report-full.png')
    messages = open_in_browser(pages[0], shot, width=1280, height=1500)
    if messages:
        raise ValueError('%s: the browser console says %s' % (pages[0], messages[0]))
    return shot


def video_strip(demo, out, frames=(0, 13, 26, 39)):
    """Four frames of the demo's overlay video, two by two, or None."""
    clips = sorted(glob.glob(os.path.join(demo, 'video', '*.overlay.mp4')))
    if not clips:
        return None
    capture = cv2.VideoCapture(clips[0])
    found = []
    for index in frames:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
        if ok:
            found.append(image)
    capture.release()
    if len(found) != len(frames):
        raise ValueError('%s: frames %s do not all read' % (clips[0], list(frames)))
    path = os.path.join(out, 'video-frames.png')
    write_atomic(path, png_bytes(cv2.vconcat([cv2.hconcat(found[:2]), cv2.hconcat(found[2:])])))
    return path


def paper(demo, out):
    """The demo's first checkpoint against its best (or last, when the first
    is the best) on its test set, by tools.compare (paired statistics,
    tables, print figures) in `out`; the picture of its page's top
    (Chromium), else of its CED and point-error figures side by side; None
    when the demo saved one checkpoint only."""
    from core.plumbing.checkpoint import checkpoint_numbers
    from core.plumbing.runs import resolve
    demo, out = os.path.abspath(demo), os.path.abspath(out)
    prefix = os.path.join(demo, 'model', 'model')
    numbers = checkpoint_numbers(prefix)
    if len(numbers) < 2:
        print('the demo saved one checkpoint; the paper picture is not remade')
        return None
    best = resolve(prefix).number
    first, second = numbers[0], best if best != numbers[0] else numbers[-1]
    folders = []
    for number in (first, second):
        subprocess.run([sys.executable, os.path.join(ROOT, 'test_rec_nme.py'), '--rec',
                        os.path.join(demo, 'data', 'synth_test.rec'), '--prefix', prefix,
                        '--epoch', str(number), '--output', os.path.join(out, 'nme')],
                       check=True, stdout=subprocess.DEVNULL)
        folders += glob.glob(os.path.join(out, 'nme', 'synth_test-*-%04d' % number))
    compared = os.path.join(out, 'compare')
    subprocess.run([sys.executable, '-m', 'tools.compare'] + folders + [
        '--out', compared, '--columns', 'nme', 'fr@0.10', 'auc@0.10'], check=True, cwd=ROOT)
    from tools.check_page import find_browser, open_in_browser
    shot = os.path.join(out, 'paper.png')
    if find_browser():
        open_in_browser(os.path.join(compared, 'compare.html'), shot, width=1280, height=1250)
    else:
        figures = [cv2.imread(os.path.join(compared, 'figures', '%s-synth_test.png' % kind))
                   for kind in ('ced', 'point-errors')]
        height = min(f.shape[0] for f in figures)
        write_atomic(shot, png_bytes(cv2.hconcat([cv2.resize(
            f, (f.shape[1] * height // f.shape[0], height)) for f in figures])))
    return shot


def write_figures(demo, out):
    """Each picture at most WIDTH pixels wide in `out` (the photo as JPEG,
    which keeps the repository small), the evaluation page's screenshot and
    the picture of the demo's checkpoints compared for a paper."""
    written = []
    found = sources(demo)
    with tempfile.TemporaryDirectory() as tmp:
        shot = screenshot(demo, tmp)
        if shot:
            found['report.png'] = shot
        compared = paper(demo, tmp)
        if compared:
            found['paper.png'] = compared
        strip = video_strip(demo, tmp)
        if strip:
            found['video.jpg'] = strip
        for name, path in found.items():
            written.append(_smaller(name, path, out))
    return written


def _smaller(name, path, out):
    """`path` written to out/name at most WIDTH wide; returns the path."""
    image = cv2.imread(path)
    if image.shape[1] > WIDTH:
        image = cv2.resize(image, (WIDTH, image.shape[0] * WIDTH // image.shape[1]),
                           interpolation=cv2.INTER_AREA)
    data = png_bytes(image) if name.endswith('.png') else \
        cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return write_atomic(os.path.join(out, name), data)


MARKS = ('<!-- demo-figures -->', '<!-- /demo-figures -->')
TABLE_MARKS = ('<!-- expectations -->', '<!-- /expectations -->')


def numbers(demo):
    """{untrained, trained, steps} of a demo folder: the NME at step 0 and
    of the best checkpoint on the synthetic test set (percent), and the steps."""
    with open(os.path.join(demo, 'model', 'model-log.csv')) as f:
        rows = list(csv.DictReader(f))
    column = next(k for k in rows[0] if k.startswith('nme_'))
    summaries = sorted(glob.glob(os.path.join(demo, 'nme', '*', 'summary.json')))
    if not summaries:
        raise ValueError('%s has no nme/*/summary.json; is it a demo folder?' % demo)
    with open(summaries[0]) as f:
        trained = json.load(f)['nme']
    return {'untrained': round(float(rows[0][column]), 1), 'trained': round(trained, 1),
            'steps': max(int(r['step']) for r in rows)}


def quote(found):
    return '(%.1f%% untrained, %.1f%% after %d steps)' % (found['untrained'], found['trained'],
                                                         found['steps'])


def expectations_text(found):
    """The README's what-to-expect caption and table of a measurement."""
    return ('\nMeasured by `make figures` on %s (inference: hg2d3-cab, one face, one '
            'process per backend; its share of the peak: the operations per second it '
            'reached against the best ONNX Runtime itself reaches on this CPU, FP32 or INT8, '
            '`python -m benchmarks.inference` for the details):\n\n%s\n'
            % (found['machine'], found['table']))


def update_readme(path, found, expectations=None):
    """Put `quote(found)` between the README's demo marks and, when given,
    the what-to-expect table between its table marks."""
    with open(path) as f:
        text = f.read()
    for marks, value in ((MARKS, quote(found)), (TABLE_MARKS, expectations and
                                                 expectations_text(expectations))):
        if value is None:
            continue
        pattern = re.compile(re.escape(marks[0]) + '.*?' + re.escape(marks[1]), re.S)
        if not pattern.search(text):
            raise ValueError('%s has no %s ... %s marks' % (path, marks[0], marks[1]))
        text = pattern.sub(lambda _: marks[0] + value + marks[1], text)
    write_atomic(path, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', default='docs/figures')
    parser.add_argument('--from', dest='demo', help='an earlier demo folder (default: run one)')
    parser.add_argument('--measure', action='store_true',
                        help='time set-up, demo, tests and inference on a clean clone '
                             '(about an hour on 2 cores) and take that demo')
    parser.add_argument('--train-faces', type=int, default=1500, help='for the demo run')
    parser.add_argument('--test-faces', type=int, default=100, help='for the demo run')
    parser.add_argument('--epochs', type=int, default=6, help='for the demo run')
    parser.add_argument('--readme', help='README to quote the figures in')
    args = parser.parse_args(argv)
    measured = os.path.join(args.out, 'expectations.json')
    with tempfile.TemporaryDirectory() as tmp:
        demo = args.demo
        if args.measure:
            demo = os.path.join(tmp, 'demo')
            subprocess.run([sys.executable, '-m', 'benchmarks.expectations', '--commands',
                            '--json', measured, '--demo-output', demo], check=True)
        elif demo is None:
            demo = os.path.join(tmp, 'demo')
            subprocess.run([sys.executable, '-m', 'tools.demo', '--output', demo,
                            '--train-faces', str(args.train_faces), '--test-faces',
                            str(args.test_faces), '--epochs', str(args.epochs)], check=True)
        for path in write_figures(demo, args.out):
            print('wrote %s' % path)
        found = numbers(demo)
        print('wrote %s %s' % (write_atomic(os.path.join(args.out, 'numbers.json'),
                                            json.dumps(found, indent=1)), quote(found)))
        if args.readme:
            expectations = None
            if os.path.isfile(measured):
                with open(measured) as f:
                    expectations = json.load(f)
            update_readme(args.readme, found, expectations)
            print('quoted them in %s' % args.readme)
    return 0


if __name__ == '__main__':
    sys.exit(main())
