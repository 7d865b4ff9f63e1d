"""Samples/s of the training iterator (aug_level 1) with 1 and all workers,
against the original's way of loading measured in the same run.

    python -m benchmarks.data_loader [--rec data_2d/train.rec] [--batches 30]

The baseline does what the original did: one process, per sample
`mx.image.imdecode`, one warp, each point's Gaussian drawn in a Python loop,
each sample made an NDArray and then copied into the batch.
"""
import argparse
import os
import tempfile
import time

import cv2
import mxnet as mx
import numpy as np

from core.plumbing.config import load_config
from data import augment, geometry
from data.iterator import FaceSegIter
from data.recordio import RecordReader, unpack_label
from data.synth import write_records


def baseline_batches(rec, cfg, batch_size, batches, seed=0):
    """Yield `batches` batches built the original way."""
    reader = RecordReader(rec)
    rng = np.random.default_rng(seed)
    size, label_size, sigma = cfg.input_img_size, cfg.output_label_size, cfg.gaussian
    half = int(3 * sigma)
    keys = list(reader.keys)
    position = 0
    for _ in range(batches):
        data = mx.nd.zeros((batch_size, 3, size, size))
        label = mx.nd.zeros((batch_size, cfg.num_classes, label_size, label_size))
        i = 0
        while i < batch_size:
            key = keys[position % len(keys)]
            position += 1
            points_yx, jpeg = unpack_label(reader.read(key))
            image = mx.image.imdecode(jpeg).asnumpy()
            points = points_yx.reshape(-1, 2)[:, ::-1]
            matrix, _, _ = augment.draw_transform(rng, cfg)
            crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
            crop_points = geometry.apply(matrix, points)
            if not augment.inside(crop_points, size):
                continue
            heat = np.zeros((cfg.num_classes, label_size, label_size), np.float32)
            for p, (x, y) in enumerate(crop_points * label_size / size):
                cx, cy = int(x), int(y)
                for yy in range(max(0, cy - half), min(label_size, cy + half + 1)):
                    for xx in range(max(0, cx - half), min(label_size, cx + half + 1)):
                        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
                        heat[p, yy, xx] = np.exp(-d2 / (2.0 * sigma ** 2)) * 20
            data[i] = mx.nd.array(crop.transpose(2, 0, 1))
            label[i] = mx.nd.array(heat)
            i += 1
        yield data, label


def rate(batches, batch_size, make):
    """Samples/s over `batches` batches after one warm-up batch."""
    iterator = make()
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        data, label = next(iterator)
        data.wait_to_read()
        label.wait_to_read()
    return batches * batch_size / (time.perf_counter() - start)


def ours(rec, cfg, batch_size, workers):
    it = FaceSegIter(rec, cfg, batch_size, aug_level=1, workers=workers, exf=50)
    try:
        while True:
            batch = it.next()
            yield batch.data[0], batch.label[0]
    finally:
        it.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rec', help='record set (default: 300 synthetic faces)')
    parser.add_argument('--batch-size', type=int, default=20)
    parser.add_argument('--batches', type=int, default=30)
    args = parser.parse_args(argv)
    cfg = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        rec = args.rec
        if rec is None:
            rec = os.path.join(tmp, 'synth.rec')
            write_records(rec[:-4], 300, progress=False)
        cores = os.cpu_count()
        base = rate(args.batches, args.batch_size,
                    lambda: baseline_batches(rec, cfg, args.batch_size, args.batches + 1))
        print('baseline (original way, 1 process): %8.1f samples/s' % base)
        for workers in sorted({1, cores}):
            value = rate(args.batches, args.batch_size,
                         lambda: ours(rec, cfg, args.batch_size, workers))
            print('FaceSegIter, %d worker%s:          %8.1f samples/s  (%.2fx baseline)'
                  % (workers, 's' if workers > 1 else ' ', value, value / base))


if __name__ == '__main__':
    main()
