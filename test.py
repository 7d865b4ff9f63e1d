"""Face alignment on photos and videos: detect faces, predict their
landmarks, write NAME.EXT.json and an overlay NAME.EXT.png per image, and
NAME.EXT.jsonl (a line per face and frame) and an overlay NAME.EXT.overlay.mp4
per video (folders are searched recursively and mirrored in --output).

    python test.py photo.jpg photos/ --prefix ./models/model-hg2d3-cab/model
    python test.py photos/ --prefix ./models/my-hg/model --boxes boxes.json --no-overlay
    python test.py talk.mp4 --prefix ./models/model-hg2d3-cab/model --output out/

Videos are tracked (core.inference.video): the detector runs every --detect-every
frames, faces follow their own landmarks in between and keep their track
number, and a One Euro filter smooths each point (--no-smooth for the raw
points). Ctrl-C keeps what was written, whole.

A folder runs as a pipeline: a thread reads and detects the next photos while
the network aligns the faces of the current ones, up to --batch faces of
several photos in one network call; results are written in input order, and
memory stays flat whatever the number of photos.

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

from tqdm import tqdm

import essh
from core.plumbing import cli
from core.inference.predictor import BACKEND_CHOICES
from core.evaluation.protocol import DECODERS
from core.inference.video import BETA, MIN_CUTOFF, is_video_name, list_videos
from data.files import write_atomic
from data.images import list_images

log = logging.getLogger('test')


def plan(inputs, output):
    """([(image, json path, png path)], [(video, jsonl path, overlay path)],
    [problem]): one job per image and video of the inputs; a missing path or
    a folder with neither is a problem."""
    jobs, videos, problems = [], [], []

    def add(path, stem):
        if is_video_name(path):
            videos.append((path, stem + '.jsonl', stem + '.overlay.mp4'))
        else:
            jobs.append((path, stem + '.json', stem + '.png'))
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(list_images(item) + list_videos(item))
            if not found:
                problems.append('%s: no image in this folder, nor a video' % item)
            for path in found:
                add(path, os.path.join(output, os.path.relpath(path, item)))
        elif os.path.exists(item):
            add(item, os.path.join(output, os.path.basename(item)))
        else:
            problems.append('%s does not exist' % item)
    return jobs, videos, problems


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
    """The boxes given for `path`, or None (none given); ValueError when
    several keys name it (which would be taken is a guess)."""
    keys = list(dict.fromkeys(k for k in box_keys(path, inputs) if k in mapping))
    if len(keys) > 1:
        raise ValueError('--boxes: the keys %s all name %s; keep one of them'
                         % (' and '.join(repr(k) for k in keys), path))
    return mapping[keys[0]] if keys else None


def unmatched_keys(mapping, jobs, inputs):
    """Keys of the --boxes file that name no input photo."""
    used = {key for path, _, _ in jobs for key in box_keys(path, inputs)}
    return sorted(key for key in mapping if key not in used)


def write_result(photo, json_path, png_path, message, args, scheme):
    """The photo's JSON (and overlay PNG), the points of landmark `scheme`."""
    from core.plumbing.drawing import draw_faces, png_bytes
    record = {'image': photo.source, 'width': photo.image.shape[1],
              'height': photo.image.shape[0], 'scheme': scheme.name,
              'faces': [face.to_json() for face in photo.faces]}
    if not photo.faces:
        record['message'] = message
    write_atomic(json_path, json.dumps(record, indent=1))
    if not args.no_overlay:
        title = cli.plural(len(photo.faces), 'face')
        write_atomic(png_path, png_bytes(draw_faces(photo.image, photo.faces, scheme.groups,
                                                    args.numbers, title)))


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Landmarks on photos with a trained network.')
    parser.add_argument('inputs', nargs='+', help='images or folders of images')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix')
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id, -1 for the CPU')
    parser.add_argument('--detector', choices=sorted(essh.DETECTORS),
                        help='%s (the default, bundled; with five points); haar: OpenCV '
                        'cascades; essh: essh-model/essh' % essh.DEFAULT)
    parser.add_argument('--threshold', type=cli.ranged(float, 0, 1),
                        help='detector score threshold in [0, 1] (default: the detector\'s)')
    parser.add_argument('--boxes', help='JSON of face boxes per image, instead of a detector')
    parser.add_argument('--decoder', default='subpixel', choices=DECODERS)
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                        help='auto: ONNX Runtime on the CPU when the network exports, else MXNet')
    parser.add_argument('--output', default='test-output', help='folder for the results')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace results of an earlier run in --output')
    parser.add_argument('--no-overlay', action='store_true', help='write the JSON only')
    parser.add_argument('--numbers', action='store_true', help='number the points')
    parser.add_argument('--batch', type=cli.ranged(int, 1), default=8,
                        help='faces (of one or several photos) per network call (default 8)')
    video = parser.add_argument_group('videos')
    video.add_argument('--detect-every', type=cli.ranged(int, 1), default=10,
                       help='run the detector every N frames (and after a track is lost); '
                       'between, faces follow their landmarks (default 10)')
    video.add_argument('--no-smooth', action='store_true', help='the raw points of each frame')
    video.add_argument('--smooth-cutoff', type=cli.ranged(float, above=0), default=MIN_CUTOFF,
                       help='One Euro filter: cut-off frequency (Hz) of a still point; lower '
                       'is smoother (default %g)' % MIN_CUTOFF)
    video.add_argument('--smooth-beta', type=cli.ranged(float, 0), default=BETA,
                       help='One Euro filter: how fast the cut-off rises with speed; higher '
                       'lags less (default %g)' % BETA)
    cli.add_flags(parser)
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    jobs, videos, problems = plan(args.inputs, args.output)
    for problem in problems:
        log.error('%s', problem)
    check_outputs(jobs + videos, not args.no_overlay, args.overwrite)
    boxes = read_boxes(args.boxes) if args.boxes else None
    if boxes is not None:
        unknown = unmatched_keys(boxes, jobs, args.inputs)
        if unknown:
            log.warning('--boxes %s: %s name%s no input photo: %s', args.boxes,
                        cli.plural(len(unknown), 'key'), 's' if len(unknown) == 1 else '',
                        ', '.join(unknown[:10]) + (' ...' if len(unknown) > 10 else ''))
    from core.inference.handler import Handler
    handler = Handler(args.prefix, args.epoch, args.gpu, args.detector, args.threshold,
                      args.decoder, args.backend)
    given = {path: boxes_for(boxes, path, args.inputs) for path, _, _ in jobs} \
        if boxes is not None else {}

    def boxes_of(path):
        return given[path] if given[path] is not None else essh.checked_boxes([])[0]
    outputs = {path: (json_path, png_path) for path, json_path, png_path in jobs}
    failed, faces, empty, implausible = 0, 0, 0, 0
    with tqdm(total=len(jobs), unit='image', disable=not sys.stderr.isatty()) as bar:
        for photo in handler.each_photo([path for path, _, _ in jobs],
                                        boxes_of if boxes is not None else None, args.batch):
            bar.update(1)
            if photo.error is not None:
                log.error('%s', photo.error)
                failed += 1
                continue
            message = 'no box given for this image' if boxes is not None and \
                given[photo.source] is None else 'no face found'
            write_result(photo, *outputs[photo.source], message, args, handler.scheme)
            faces += len(photo.faces)
            empty += not photo.faces
            implausible += sum(not face.plausible for face in photo.faces)
            log.info('%s: %s', photo.source, cli.plural(len(photo.faces), 'face')
                     if photo.faces else message)
    if jobs:
        print('%s, %s, %d without a face, %d failed%s%s; results in %s'
              % (cli.plural(len(jobs), 'image'), cli.plural(faces, 'face'), empty, failed,
                 ', %d missing' % len(problems) if problems else '',
                 '; %s not shaped like a face (drawn in orange)' % cli.plural(implausible, 'face')
                 if implausible else '', args.output))
    failed += align_videos(handler, videos, args)
    return 1 if failed or problems else 0


def align_videos(handler, videos, args):
    """Each video's JSON Lines and overlay; returns how many failed."""
    from core.inference.video import VideoError, align_video
    failed = 0
    smooth = None if args.no_smooth else (args.smooth_cutoff, args.smooth_beta)
    for path, jsonl_path, overlay_path in videos:
        try:
            frames, faces, tracks = align_video(
                handler, path, jsonl_path, None if args.no_overlay else overlay_path,
                progress=sys.stderr.isatty(), detect_every=args.detect_every, smooth=smooth)
        except VideoError as err:
            log.error('%s', err)
            failed += 1
            continue
        except KeyboardInterrupt as err:
            log.error('%s', err)
            raise
        print('%s: %d frames, %s in %s; %s%s' % (
            path, frames, cli.plural(faces, 'face'), cli.plural(tracks, 'track'), jsonl_path,
            '' if args.no_overlay else ', ' + overlay_path))
    return failed


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
