"""Faces per second end to end on photos (read, detect, align, decode, draw
the overlay), several ways measured in one run, each in a process of its own:

1. the old way: Haar cascades + MXNet Module, two network passes per face,
   one photo at a time;
2. the former default: libfacedetection's boxes only + ONNX Runtime, two
   passes per face, one photo at a time; and the same two passes with the
   faces of several photos per network call (what boxes given by the user,
   test.py --boxes, take);
3. the default's way photo by photo: libfacedetection's five points + ONNX
   Runtime, one pass per face, the next photo read and searched meanwhile;
4. the default: the same with the faces of several photos per network call
   (`Handler.each_photo`, test.py's --batch 8).

Then the default's peak memory over 300 photos (the photos repeated) against
its peak over one round, which shows that memory stays flat; and whether
photos go at the network's pace: test.py's marginal time per face (the
photos six times against once, so that start-up cancels) and its start-up
time, beside the network's own time per face at batch 8 (and its share of
the machine's FP32 peak).

The default checkpoint has random weights, whose first-pass points are not
plausible; a two-pass way would then skip its second pass. Every face's five
points are taken as plausible here, as a trained network's are, so each way
runs the passes it runs on real work.

    python -m benchmarks.photos                               # hg2d3-cab, random weights
    python -m benchmarks.photos --photos my-photos/ --prefix ./models/model-hg2d3-cab/model

Photos default to ../shared/data/dlib-faces when it is there, else the
sample images.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.machine import describe, measured_peaks, peak_mb, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_PHOTOS = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'dlib-faces')
WAYS = {            # title, detector, backend, faces per network call (None: one photo's)
    'old': ('Haar cascades + MXNet Module, 2 passes, photo by photo', 'haar', 'mxnet', None),
    'former': ('libfacedetection boxes + ONNX Runtime, 2 passes, photo by photo', 'boxes',
               'auto', None),
    'boxes': ('libfacedetection boxes + ONNX Runtime, 2 passes, batches of 8', 'boxes', 'auto',
              8),
    'one-by-one': ('libfacedetection points + ONNX Runtime, 1 pass, photo by photo', None,
                   'auto', 1),
    'default': ('libfacedetection points + ONNX Runtime, 1 pass, batches of 8', None, 'auto',
                8),
}


def run_way(way, prefix, folder, rounds):
    """{faces, seconds, photos, peak_mb} of one way (in this process)."""
    import essh
    from core.inference import handler as handler_module
    from core.inference.handler import Handler
    from core.plumbing.drawing import draw_faces, png_bytes
    from data.images import list_images
    handler_module.plausible_five = lambda five, box: True      # see the docstring
    _, detector, backend, batch = WAYS[way]
    if detector == 'boxes':             # the former default: its boxes, not its points
        points = essh.create()
        detector = essh.Detector(points.threshold)
        detector.max_side, detector.min_side = points.max_side, points.min_side
        def boxes_only(image):
            found = points._detect(image)
            return essh.Detections(found.boxes, found.scores, None)
        detector._detect = boxes_only
    handler = Handler(prefix, detector=detector, backend=backend)
    paths = list_images(folder) * rounds
    handler.get_landmarks(paths[0])                     # warm-up
    faces, start = 0, time.perf_counter()
    if batch:
        for photo in handler.each_photo(paths, batch=batch):
            png_bytes(draw_faces(photo.image, photo.faces, handler.scheme.groups))
            faces += len(photo.faces)
    else:
        for path in paths:
            image, found = handler.find(path)
            found = handler.align([image], [found])[0]
            png_bytes(draw_faces(image, found, handler.scheme.groups))
            faces += len(found)
    return {'faces': faces, 'seconds': time.perf_counter() - start, 'photos': len(paths),
            'peak_mb': peak_mb()}


def network_seconds(prefix, batch=8):
    """The network's own seconds per face at `batch` (the default backend,
    as the photo pipeline calls it), in this process."""
    import numpy as np

    from core.inference.handler import Handler
    handler = Handler(prefix)
    size = handler.input_size
    crops = np.random.RandomState(0).uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
    return {'seconds': timed(lambda: handler.predictor(crops), 6.0) / batch}


def script_seconds(prefix, folder, out):
    """Wall seconds of test.py with its defaults on the photos of `folder`,
    and the faces it wrote."""
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, 'test.py'), folder, '--prefix', prefix,
                    '--output', out], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    faces = 0
    for name in os.listdir(out):
        if name.endswith('.json'):
            with open(os.path.join(out, name)) as f:
                faces += len(json.load(f).get('faces', []))
    return seconds, faces


def pace(prefix, folder, tmp, copies=6):
    """(marginal seconds per face of test.py, its start-up seconds): the
    photos once and `copies` times."""
    import shutil

    from data.images import list_images
    many = os.path.join(tmp, 'photos-x%d' % copies)
    os.makedirs(many)
    for k in range(copies):
        for path in list_images(folder):
            shutil.copy(path, os.path.join(many, '%d-%s' % (k, os.path.basename(path))))
    once = script_seconds(prefix, folder, os.path.join(tmp, 'out-once'))
    repeated = script_seconds(prefix, many, os.path.join(tmp, 'out-many'))
    marginal = (repeated[0] - once[0]) / max(repeated[1] - once[1], 1)
    return marginal, once[0] - marginal * once[1]


def measure(way, prefix, folder, rounds=1):
    """run_way in a fresh process."""
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.photos', '--way', way, '--prefix',
                           prefix, '--photos', folder, '--rounds', str(rounds)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit('%s failed:\n%s' % (way, proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--photos', help='folder of photos')
    parser.add_argument('--prefix', help='checkpoint prefix (default: hg2d3-cab, random weights)')
    parser.add_argument('--rounds', type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument('--way', choices=sorted(WAYS) + ['network'], help=argparse.SUPPRESS)
    parser.add_argument('--memory-photos', type=int, default=300,
                        help='photos of the memory measurement (default 300)')
    args = parser.parse_args(argv)
    folder = args.photos or (SHARED_PHOTOS if os.path.isdir(SHARED_PHOTOS)
                             else os.path.join(ROOT, 'sample-images'))
    if args.way:
        print(json.dumps(network_seconds(args.prefix) if args.way == 'network' else
                         run_way(args.way, args.prefix, folder, args.rounds)))
        return 0
    from benchmarks.models import random_checkpoint
    from data.images import list_images
    count = len(list_images(folder))
    with tempfile.TemporaryDirectory() as tmp:
        prefix = args.prefix or random_checkpoint('hg2d3-cab', tmp)
        print('%d photos from %s; %s' % (count, folder, args.prefix or
                                         'hg2d3-cab with random weights'))
        print('  %-62s %6s %9s %8s %7s %8s' % ('way', 'faces', 'ms/photo', 'faces/s', 'ratio',
                                              'peak MB'))
        baseline = None
        for way, (title, _, _, _) in WAYS.items():
            result = measure(way, prefix, folder)
            rate = result['faces'] / result['seconds']
            baseline = baseline or rate
            print('  %-62s %6d %9.0f %8.2f %6.2fx %8.0f' % (
                title, result['faces'], 1000 * result['seconds'] / result['photos'], rate,
                rate / baseline, result['peak_mb']))
        rounds = -(-args.memory_photos // count)
        many = measure('default', prefix, folder, rounds)
        print('default over %d photos: peak %.0f MB (one round: %.0f MB above); %.2f faces/s'
              % (many['photos'], many['peak_mb'], many['peak_mb'] - result['peak_mb'],
                 many['faces'] / many['seconds']))
        from benchmarks.inference import count_flops
        from core.plumbing.checkpoint import load_checkpoint
        from core.plumbing.runs import resolve
        from data.workers import usable_cpus
        from symbol import inference_symbol
        checkpoint = resolve(prefix)
        gflop = count_flops(inference_symbol(load_checkpoint(
            checkpoint.prefix, checkpoint.number)[0]), checkpoint.input_size) / 1e9
        fp32_peak = measured_peaks(usable_cpus()).fp32
        network = measure('network', prefix, folder)['seconds']
        marginal, startup = pace(prefix, folder, tmp)
        print('\nthis machine: %s; FP32 peak %.0f GFLOP/s (ONNX Runtime, machine.measured_peaks)'
              % (describe(usable_cpus()), fp32_peak))
        print('the network alone, batch 8: %.1f ms/face (%.1f GFLOP/s, %.0f%% of the peak)'
              % (1e3 * network, gflop / network, 100 * gflop / network / fp32_peak))
        print('test.py with its defaults: %.1f ms per further face (%.2fx the network alone), '
              'start-up %.1f s' % (1e3 * marginal, marginal / network, startup))
    return 0


if __name__ == '__main__':
    sys.exit(main())
