"""Export a checkpoint's heatmap prediction to ONNX, verified against MXNet
before anything is written. The input size comes from the checkpoint's
configuration; without --epoch the run's best checkpoint is exported.

    python -m tools.export_onnx --prefix ./models/model-hg2d3-cab/model --out hg2d3-cab.onnx
    python -m tools.export_onnx --prefix ./models/model-hg2d3-cab/model --out hg2d3-cab-int8.onnx \
        --int8 --calibration data_2d/ibug.rec

--int8 quantizes statically (QDQ, per-channel INT8 weights, UINT8
activations) with ONNX Runtime's tools, calibrated on evaluation crops of
--calibration (default: synthetic faces made on the fly), and writes the
model only when its held-out NME is at most --max-loss percent (relative)
worse than FP32's.
"""
import argparse
import os
import sys
import tempfile

from core.plumbing import cli
from core.plumbing.checkpoint import load_checkpoint
from core.inference.export import export
from core.plumbing.runs import resolve
from core.inference.quantize import MAX_LOSS, quantize
from core.plumbing.runs import RunError


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Export a checkpoint to ONNX (verified against '
                                     'MXNet before writing).')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--batch', default='dynamic', type=cli.ranged(int, 1, words='dynamic'),
                        help='a batch size, or dynamic')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    parser.add_argument('--int8', action='store_true', help='static INT8 quantization (QDQ)')
    parser.add_argument('--calibration', help='NAME.rec to calibrate and check INT8 on '
                        '(default: synthetic faces)')
    parser.add_argument('--max-loss', type=float, default=MAX_LOSS,
                        help='largest relative NME increase of INT8, in percent (default %g; '
                        'inf accepts any)' % MAX_LOSS)
    cli.add_flags(parser)
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    cli.setup_logging(args.verbose)
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError('%s exists; choose another --out or add --overwrite' % args.out)
    checkpoint = resolve(args.prefix, args.epoch)
    print(checkpoint.describe())
    batch = args.batch
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, 'fp32.onnx') if args.int8 else args.out
        diff = export(*load_checkpoint(checkpoint.prefix, checkpoint.number), out_path=fp32,
                      batch=batch, input_size=checkpoint.input_size)
        if args.int8:
            quantize(fp32, args.out, checkpoint.cfg, args.calibration, args.max_loss)
    print('wrote %s (%s; the FP32 export matches MXNet within %.2g)'
          % (args.out, 'INT8, QDQ' if args.int8 else 'FP32', diff))
    return 0


def main(argv=None):
    return cli.run(_main, argv, errors=(RunError,))


if __name__ == '__main__':
    sys.exit(main())
