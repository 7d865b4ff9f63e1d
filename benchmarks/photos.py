"""Faces per second end to end on photos (detect, align in two passes,
decode, draw the overlay) for the old way (Haar cascades + MXNet Module)
and for the defaults (libfacedetection + ONNX Runtime), in one run.

    python -m benchmarks.photos                               # hg2d3-cab, random weights
    python -m benchmarks.photos --photos my-photos/ --prefix ./models/model-hg2d3-cab/model

Photos default to ../shared/data/dlib-faces when it is there, else the
sample images.
"""
import argparse
import os
import tempfile
import time

from benchmarks.models import random_checkpoint
from core.handler import Handler
from core.visualize import draw_faces, png_bytes
from data.images import list_images, read_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_PHOTOS = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'dlib-faces')
WAYS = (('Haar cascades + MXNet Module', 'haar', 'mxnet'),
        ('libfacedetection + ONNX Runtime (defaults)', 'default', 'auto'))


def measure(handler, images):
    """(faces, seconds) over the images after one warm-up photo."""
    handler.get_landmarks(images[0])
    faces, start = 0, time.perf_counter()
    for image in images:
        found = handler.get_landmarks(image)
        png_bytes(draw_faces(image, found))
        faces += len(found)
    return faces, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--photos', help='folder of photos')
    parser.add_argument('--prefix', help='checkpoint prefix (default: hg2d3-cab, random weights)')
    args = parser.parse_args(argv)
    folder = args.photos or (SHARED_PHOTOS if os.path.isdir(SHARED_PHOTOS)
                             else os.path.join(ROOT, 'sample-images'))
    images = [read_image(p) for p in list_images(folder)]
    with tempfile.TemporaryDirectory() as tmp:
        prefix = args.prefix or random_checkpoint('hg2d3-cab', tmp)
        print('%d photos from %s; %s' % (len(images), folder, args.prefix or
                                         'hg2d3-cab with random weights'))
        print('  %-44s %7s %10s %9s %8s' % ('way', 'faces', 'ms/photo', 'faces/s', 'ratio'))
        baseline = None
        for title, detector, backend in WAYS:
            handler = Handler(prefix, detector=detector, backend=backend)
            faces, seconds = measure(handler, images)
            rate = faces / seconds
            baseline = baseline or rate
            print('  %-44s %7d %10.0f %9.2f %7.2fx' % (title, faces, 1000 * seconds / len(images),
                                                        rate, rate / baseline))


if __name__ == '__main__':
    main()
