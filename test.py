"""Face alignment on photos: detect faces, predict 68 landmarks, write an
overlay PNG and a JSON per image.

    python test.py --prefix ./models/model-hg2d3-cab/model --epoch 0 photo.jpg photos/
"""
import argparse
import json
import logging
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from core import cli
from core.handler import Handler
from core.protocol import DECODERS
from data.images import to_bgr8
from core.predictor import BACKENDS
from core.visualize import draw_landmarks

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

__all__ = ['Handler', 'main']


def list_images(inputs):
    """Files given, and the images inside folders given (sorted)."""
    for item in inputs:
        if os.path.isdir(item):
            for name in sorted(os.listdir(item)):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    yield os.path.join(item, name)
        else:
            yield item


def read_image(path):
    """BGR uint8 of any image OpenCV reads (grey, alpha, 16-bit converted)."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError('%s: cannot read this file as an image' % path)
    return to_bgr8(image)


def process(handler, path, out_dir, numbers=False):
    """Landmarks of one photo: writes NAME.png and NAME.json; returns the record."""
    image = read_image(path)
    faces = handler.get_landmark(image)
    dets = handler.last_detections
    name = os.path.splitext(os.path.basename(path))[0]
    record = {'image': path, 'width': image.shape[1], 'height': image.shape[0],
              'faces': [{'box': [round(float(v), 2) for v in d[:4]], 'score': float(d[4]),
                         'landmarks': np.round(f, 2).tolist()} for d, f in zip(dets, faces)]}
    if not len(faces):
        record['message'] = 'no face found'
    title = '%d face%s' % (len(faces), '' if len(faces) == 1 else 's')
    draw_landmarks(image[:, :, ::-1], faces, os.path.join(out_dir, name + '.png'), boxes=dets,
                   numbers=numbers, title=title)
    with open(os.path.join(out_dir, name + '.json'), 'w') as f:
        json.dump(record, f, indent=1)
    return record


def main(argv=None):
    return cli.run(_main, argv)


def _main(argv):
    parser = argparse.ArgumentParser(description='Landmarks on photos with a trained network.')
    parser.add_argument('inputs', nargs='+', help='images or folders of images')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint number')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id, -1 for the CPU')
    parser.add_argument('--detector', default='default', choices=['default', 'essh'],
                        help='default: OpenCV cascades (bundled); essh: essh-model/essh')
    parser.add_argument('--decoder', default='subpixel', choices=DECODERS)
    parser.add_argument('--backend', default='mxnet', choices=BACKENDS,
                        help='run the network with MXNet or ONNX Runtime')
    parser.add_argument('--output', default='test-output', help='folder for PNG and JSON')
    parser.add_argument('--numbers', action='store_true', help='number the points')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    os.makedirs(args.output, exist_ok=True)
    handler = Handler(args.prefix, args.epoch, args.gpu, detector=args.detector,
                      decoder=args.decoder, backend=args.backend)
    failures, total_faces = 0, 0
    paths = list(list_images(args.inputs))
    for path in tqdm(paths, unit='image', disable=not sys.stderr.isatty()):
        try:
            record = process(handler, path, args.output, args.numbers)
        except ValueError as err:
            logging.error('%s', err)
            failures += 1
            continue
        total_faces += len(record['faces'])
        logging.info('%s: %s', path, record.get('message', '%d faces' % len(record['faces'])))
    print('%d images, %d faces, %d unreadable; results in %s'
          % (len(paths), total_faces, failures, args.output))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
