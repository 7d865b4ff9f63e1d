"""Dump a record set, or its augmented training samples, as JPEGs with the
landmarks drawn, plus a contact sheet PNG.

    python -m tools.inspect_data --rec data_2d/ibug.rec --out inspect/ibug --count 16
    python -m tools.inspect_data --rec data_2d/train.rec --out inspect/train --augmented
"""
import argparse
import os
import sys

import cv2
import numpy as np

from core.plumbing import cli
from core.plumbing.config import load_config
from core.plumbing.drawing import png_bytes
from data.files import write_atomic
from core.evaluation.protocol import decode
from data.iterator import FaceSegIter
from data.recordio import RecordReader

SHEET_COLUMNS = 8
SHEET_TILE = 160


def draw_points(image_rgb, points, radius=2):
    """Copy of the image with numbered-colour landmarks (jaw to lips) drawn."""
    out = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
    for i, (x, y) in enumerate(np.asarray(points)):
        shade = i * 255 // max(1, len(points) - 1)
        colour = tuple(int(c) for c in cv2.applyColorMap(np.uint8([[shade]]),
                                                         cv2.COLORMAP_JET)[0, 0])
        cv2.circle(out, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
    return out


def contact_sheet(tiles_bgr, path):
    """Tile BGR images into one PNG (SHEET_COLUMNS per row)."""
    tiles = [cv2.resize(t, (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA)
             for t in tiles_bgr]
    while len(tiles) % SHEET_COLUMNS:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + SHEET_COLUMNS]) for i in range(0, len(tiles), SHEET_COLUMNS)]
    write_atomic(path, png_bytes(np.vstack(rows)))


def record_samples(rec, count):
    reader = RecordReader(rec)
    for key in reader.keys[:count]:
        image, points = reader.read_face(key)
        yield '%06d' % key, image, points


def augmented_samples(rec, count, cfg):
    """`count` training samples (aug_level 1) with points decoded from their
    heatmaps; passes repeat over a set smaller than `count`, each draw new."""
    batch_size = max(1, min(count, 16, len(RecordReader(rec))))
    it = FaceSegIter(rec, cfg, batch_size, aug_level=1, workers=0)
    done = 0
    while True:
        for batch in it:
            data = batch.data[0].asnumpy()
            points = decode(batch.label[0].asnumpy(), cfg.input_img_size, 'argmax')
            for i in range(batch_size):
                yield 'aug%06d' % done, data[i].transpose(1, 2, 0).astype(np.uint8), points[i]
                done += 1
                if done >= count:
                    return
        it.reset()


def _main(argv):
    parser = argparse.ArgumentParser(description='Dump records with landmarks drawn.')
    parser.add_argument('--rec', required=True, help='record file (NAME.rec beside NAME.idx)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--count', type=int, default=32)
    parser.add_argument('--augmented', action='store_true',
                        help='dump augmented training samples (points from their heatmaps)')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier dump')
    parser.add_argument('--scheme', help='with --augmented: the JSON file of the set\'s own '
                        'landmark scheme (default: the set\'s built-in scheme)')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        raise ValueError('%s holds an earlier dump; choose another --out or add --overwrite'
                         % args.out)
    if args.augmented:
        scheme = args.scheme or RecordReader(args.rec).scheme.value
        samples = augmented_samples(args.rec, args.count,
                                    load_config(overrides={'landmark_scheme': scheme}))
    else:
        samples = record_samples(args.rec, args.count)
    tiles = []
    for name, image, points in samples:
        drawn = draw_points(image, points, radius=max(1, image.shape[0] // 128))
        write_atomic(os.path.join(args.out, name + '.jpg'),
                     cv2.imencode('.jpg', drawn, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        tiles.append(drawn)
    sheet = os.path.join(args.out, 'contact_sheet.png')
    contact_sheet(tiles, sheet)
    total = len(RecordReader(args.rec))
    if args.augmented:
        print('wrote %d augmented samples of the %d records of %s (--count %d) and %s'
              % (len(tiles), total, args.rec, args.count, sheet))
    else:
        print('wrote %d of the %d records of %s (--count %d) and %s'
              % (len(tiles), total, args.rec, args.count, sheet))
    return 0


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
