"""NME of a checkpoint on a record set, by the protocol of the published
table (PIPELINE.md section 4), with AUC, failure rate and CED curve.

    python test_rec_nme.py --rec data_2d/ibug.rec --dataset ibug --prefix ./models/model-hg2d3-cab/model
    python test_rec_nme.py --all --prefix ./models/model-hg2d3-cab/model      # every target
"""
import argparse
import logging
import os
import sys

from core import protocol as evaluate
from core.config import load_config
from core.handler import Handler
from core.predictor import BACKENDS, make_predictor
from core.report import DATASET_TITLES, evaluate_set

def main(argv=None):
    parser = argparse.ArgumentParser(description='NME of a checkpoint on face record sets.')
    parser.add_argument('--rec', help='record set NAME.rec (beside NAME.idx)')
    parser.add_argument('--dataset', help='ibug | cofw_testset | 300W | AFLW2000-3D '
                        '(sets the box top raise; default: the record name)')
    parser.add_argument('--all', action='store_true',
                        help='every validation target found in dataset_path')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--gpu', type=int, default=-1)
    parser.add_argument('--landmark-type', choices=['2d', '3d'],
                        help='default: 3d for AFLW2000-3D, else 2d')
    parser.add_argument('--decoder', default='subpixel', choices=evaluate.DECODERS)
    parser.add_argument('--backend', default='mxnet', choices=BACKENDS,
                        help='run the network with MXNet or ONNX Runtime')
    parser.add_argument('--use-essh', action='store_true',
                        help='find faces with ESSH (essh-model/essh) instead of the '
                        'ground-truth box')
    parser.add_argument('--use-default-detector', action='store_true',
                        help='find faces with the bundled OpenCV detector instead')
    parser.add_argument('--output', default='nme-output', help='folder for CSV and CED plots')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config key (e.g. dataset_path=...)')
    args = parser.parse_args(argv)
    if not args.all and not args.rec:
        parser.error('give --rec FILE or --all')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    import mxnet as mx
    ctx = mx.cpu() if args.gpu < 0 else mx.gpu(args.gpu)
    predictor = make_predictor(args.prefix, args.epoch, ctx, args.backend)
    handler = None
    if args.use_essh or args.use_default_detector:
        handler = Handler(args.prefix, args.epoch, args.gpu, predictor=predictor,
                          detector='essh' if args.use_essh else 'default')
    rows = []
    if args.all:
        for dataset_key in ('i2d', 'i3d'):
            cfg = load_config('hourglass', dataset_key, args.set)
            cfg.landmark_type = '3d' if dataset_key == 'i3d' else '2d'
            for target in cfg.val_targets:
                rec = os.path.join(cfg.dataset_path, target + '.rec')
                if os.path.isfile(rec):
                    rows.append(evaluate_set(predictor, rec, target, cfg, args.decoder,
                                             args.output, handler))
        if not rows:
            print('no validation target found under the dataset paths of config.py')
            return 1
        print('\n| model | ' + ' | '.join(DATASET_TITLES.get(r['dataset'], r['dataset'])
                                         for r in rows) + ' |')
        print('|---|' + '---|' * len(rows))
        print('| %s | ' % os.path.basename(args.prefix)
              + ' | '.join('%.3f' % r['nme'] for r in rows) + ' |')
        return 0
    dataset = args.dataset or os.path.splitext(os.path.basename(args.rec))[0]
    landmark_type = args.landmark_type or ('3d' if dataset == 'AFLW2000-3D' else '2d')
    cfg = load_config('hourglass', 'i3d' if landmark_type == '3d' else 'i2d', args.set)
    cfg.landmark_type = landmark_type
    evaluate_set(predictor, args.rec, dataset, cfg, args.decoder, args.output, handler)
    return 0


if __name__ == '__main__':
    sys.exit(main())
