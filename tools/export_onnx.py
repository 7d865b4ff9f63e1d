"""Export a checkpoint's heatmap prediction to ONNX, verified against MXNet
before anything is written. The input size comes from the checkpoint's
configuration; without --epoch the run's best checkpoint is exported.

    python -m tools.export_onnx --prefix ./models/model-hg2d3-cab/model --out hg2d3-cab.onnx
"""
import argparse
import os
import sys

from core import cli
from core.checkpoint import load_checkpoint
from core.onnx_export import export
from core.predictor import resolve
from core.run import RunError


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Export a checkpoint to ONNX (verified against '
                                     'MXNet before writing).')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--batch', default='dynamic', help='a batch size, or dynamic')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    cli.add_flags(parser)
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    cli.setup_logging(args.verbose)
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError('%s exists; choose another --out or add --overwrite' % args.out)
    checkpoint = resolve(args.prefix, args.epoch)
    print(checkpoint.describe())
    batch = 'dynamic' if args.batch == 'dynamic' else int(args.batch)
    diff = export(*load_checkpoint(checkpoint.prefix, checkpoint.number), out_path=args.out,
                  batch=batch, input_size=checkpoint.input_size)
    print('wrote %s (ONNX Runtime matches MXNet within %.2g)' % (args.out, diff))
    return 0


def main(argv=None):
    return cli.run(_main, argv, errors=(RunError,))


if __name__ == '__main__':
    sys.exit(main())
