"""Face alignment on photos: detect faces, predict 68 landmarks, write
NAME.EXT.json and an overlay NAME.EXT.png per image (folders are searched
recursively and mirrored in --output).

    python test.py photo.jpg photos/ --prefix ./models/model-hg2d3-cab/model
    python test.py photos/ --prefix ./models/my-hg/model --boxes boxes.json --no-overlay

--boxes takes a JSON object mapping image paths (as given, relative to their
folder, or base names; with or without the extension) to lists of boxes
[x1, y1, x2, y2] (or with a score). A box reaching out of its photo is clipped
to it (with a warning); an empty, inverted or wholly outside box fails that
photo. Every photo that could not be processed makes the exit status 1.
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
from tqdm import tqdm

import essh
from core import cli
from core.devices import DeviceError
from core.handler import Handler
from core.protocol import DECODERS
from core.predictor import BACKENDS
from core.run import RunError
from core.visualize import draw_faces, png_bytes
from data.files import write_atomic
from data.images import ImageError, list_images, read_image

log = logging.getLogger('test')


def plan(inputs, output):
    """([(image, json path, png path)], [problem]): one job per image of the
    inputs; a missing path or an empty folder is a problem."""
    jobs, problems = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if not found:
                problems.append('%s: no image in this folder' % item)
            for path in found:
                stem = os.path.join(output, os.path.relpath(path, item))
                jobs.append((path, stem + '.json', stem + '.png'))
        elif os.path.exists(item):
            stem = os.path.join(output, os.path.basename(item))
            jobs.append((item, stem + '.json', stem + '.png'))
        else:
            problems.append('%s does not exist' % item)
    return jobs, problems


def check_outputs(jobs, overlay, overwrite):
    """ValueError before anything is written when a result would land on an
    input, on another image's result, or (without --overwrite) on an
    earlier run's result."""
    inputs = {os.path.realpath(path) for path, _, _ in jobs}
    seen = {}
    for path, json_path, png_path in jobs:
        for out in (json_path, png_path) if overlay else (json_path,):
            real = os.path.realpath(out)
            if real in inputs:
                raise ValueError('the result %s would overwrite an input photo; choose another '
                                 '--output' % out)
            if real in seen:
                raise ValueError('%s and %s would both write %s; give them in separate runs or '
                                 'folders' % (seen[real], path, out))
            seen[real] = path
            if os.path.exists(out) and not overwrite:
                raise ValueError('%s exists from an earlier run; choose another --output or add '
                                 '--overwrite' % out)


def read_boxes(path):
    """{image key: (N, 4 or 5) boxes} of a --boxes JSON file; ValueError
    naming the file, the key and the box that is not a box."""
    try:
        with open(path) as f:
            mapping = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('--boxes %s cannot be read: %s' % (path, err))
    if not isinstance(mapping, dict):
        raise ValueError('--boxes %s must be a JSON object {"photo.jpg": [[x1, y1, x2, y2], '
                         '...]}, not a %s' % (path, type(mapping).__name__))
    boxes = {}
    for key, value in mapping.items():
        try:
            boxes[key], _ = essh.checked_boxes(value)
        except essh.BoxError as err:
            raise ValueError('--boxes %s, %r: %s' % (path, key, err))
    return boxes


def box_keys(path, inputs):
    """The keys a --boxes file may use for `path`: as given, its base name,
    its path relative to a folder given; each with or without extension."""
    keys = [path, os.path.basename(path)] + [os.path.relpath(path, i) for i in inputs
                                              if os.path.isdir(i)]
    return keys + [os.path.splitext(k)[0] for k in keys]


def boxes_for(mapping, path, inputs):
    """The boxes given for `path`, or None (none given)."""
    for key in box_keys(path, inputs):
        if key in mapping:
            return mapping[key]
    return None


def unmatched_keys(mapping, jobs, inputs):
    """Keys of the --boxes file that name no input photo."""
    used = {key for path, _, _ in jobs for key in box_keys(path, inputs)}
    return sorted(key for key in mapping if key not in used)


def process(handler, path, json_path, png_path, boxes, args):
    """Landmarks of one photo, written as JSON (and PNG); returns the faces
    and what to say when there is none."""
    image = read_image(path)
    given = args.boxes is not None
    faces = handler.get_landmarks(image, boxes if given else None) \
        if boxes is not None or not given else []
    record = {'image': path, 'width': image.shape[1], 'height': image.shape[0],
              'faces': [face.to_json() for face in faces]}
    if not faces:
        record['message'] = 'no box given for this image' if given and boxes is None else \
            'no face found'
    write_atomic(json_path, json.dumps(record, indent=1))
    if not args.no_overlay:
        title = cli.plural(len(faces), 'face')
        write_atomic(png_path, png_bytes(draw_faces(image, faces, args.numbers, title)))
    return faces, record.get('message')


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Landmarks on photos with a trained network.')
    parser.add_argument('inputs', nargs='+', help='images or folders of images')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix')
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id, -1 for the CPU')
    parser.add_argument('--detector', default='default', choices=sorted(essh.DETECTORS),
                        help='default: libfacedetection (bundled); haar: OpenCV cascades; '
                        'essh: essh-model/essh')
    parser.add_argument('--threshold', type=float,
                        help='detector score threshold in [0, 1] (default: the detector\'s)')
    parser.add_argument('--boxes', help='JSON of face boxes per image, instead of a detector')
    parser.add_argument('--decoder', default='subpixel', choices=DECODERS)
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='auto: ONNX Runtime on the CPU when the network exports, else MXNet')
    parser.add_argument('--output', default='test-output', help='folder for the results')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace results of an earlier run in --output')
    parser.add_argument('--no-overlay', action='store_true', help='write the JSON only')
    parser.add_argument('--numbers', action='store_true', help='number the points')
    cli.add_flags(parser)
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    jobs, problems = plan(args.inputs, args.output)
    for problem in problems:
        log.error('%s', problem)
    check_outputs(jobs, not args.no_overlay, args.overwrite)
    boxes = read_boxes(args.boxes) if args.boxes else None
    if boxes is not None:
        unknown = unmatched_keys(boxes, jobs, args.inputs)
        if unknown:
            log.warning('--boxes %s: %s name%s no input photo: %s', args.boxes,
                        cli.plural(len(unknown), 'key'), 's' if len(unknown) == 1 else '',
                        ', '.join(unknown[:10]) + (' ...' if len(unknown) > 10 else ''))
    handler = Handler(args.prefix, args.epoch, args.gpu, args.detector, args.threshold,
                      args.decoder, args.backend)
    failed, faces, empty = 0, 0, 0
    for path, json_path, png_path in tqdm(jobs, unit='image', disable=not sys.stderr.isatty()):
        try:
            found, message = process(handler, path, json_path, png_path,
                                     boxes_for(boxes or {}, path, args.inputs), args)
        except (ImageError, essh.BoxError) as err:
            log.error('%s', err if str(err).startswith(path) else '%s: %s' % (path, err))
            failed += 1
            continue
        faces += len(found)
        empty += not found
        log.info('%s: %s', path, cli.plural(len(found), 'face') if found else message)
    print('%s, %s, %d without a face, %d failed%s; results in %s'
          % (cli.plural(len(jobs), 'image'), cli.plural(faces, 'face'), empty, failed,
             ', %d missing' % len(problems) if problems else '', args.output))
    return 1 if failed or problems else 0


def main(argv=None):
    return cli.run(_main, argv, errors=(RunError, DeviceError))


if __name__ == '__main__':
    sys.exit(main())
