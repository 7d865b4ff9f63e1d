"""Export a checkpoint's heatmap prediction to ONNX.

    python -m tools.export_onnx --prefix ./models/model-hg2d3-cab/model --epoch 0 \\
        --out hg2d3-cab.onnx --batch dynamic
"""
import argparse
import sys

from core.checkpoint import load_checkpoint
from core.onnx_export import ExportError, export


def main(argv=None):
    parser = argparse.ArgumentParser(description='Export a checkpoint to ONNX (verified '
                                     'against MXNet before writing).')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--batch', default='1', help='a batch size, or dynamic')
    parser.add_argument('--input-size', type=int, default=128)
    args = parser.parse_args(argv)
    batch = 'dynamic' if args.batch == 'dynamic' else int(args.batch)
    sym, arg_params, aux_params = load_checkpoint(args.prefix, args.epoch)
    try:
        diff = export(sym, arg_params, aux_params, args.out, batch, args.input_size)
    except ExportError as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    print('wrote %s (ONNX Runtime matches MXNet within %.2g)' % (args.out, diff))
    return 0


if __name__ == '__main__':
    sys.exit(main())
