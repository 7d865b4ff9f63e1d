"""NME of a checkpoint on a record set, by the protocol of the published
table (PIPELINE.md section 4), with AUC, failure rate and CED curve.

    python test_rec_nme.py --rec data_2d/ibug.rec --dataset ibug --prefix ./models/model-hg2d3-cab/model
    python test_rec_nme.py --all --prefix ./models/model-hg2d3-cab/model      # every target
"""
import argparse
import csv
import logging
import os
import sys

import numpy as np

from core import evaluate
from core.config import load_config
from core.predictor import BACKENDS, make_predictor
from core.handler import Handler
from core.visualize import plot_ced
from data.augment import DEFAULT_TOP_RAISE, TOP_RAISE, eval_transforms
from data.iterator import FaceSegIter
from data.recordio import RecordError, RecordReader

THRESHOLDS = (0.08, 0.10)
DATASET_TITLES = {'ibug': 'IBUG', 'cofw_testset': 'COFW', '300W': '300W',
                  'AFLW2000-3D': 'AFLW2000-3D'}


def detector_predictions(handler, rec, dataset, cfg, decoder):
    """Predictions of the photo pipeline (detector + alignment) on each record
    image, the face nearest the image centre; records without a detected
    face are counted and left out. Returns ({decoder: preds}, trips, missed)."""
    reader = RecordReader(rec)
    top_raise = TOP_RAISE.get(dataset, DEFAULT_TOP_RAISE)
    preds, trips, missed = [], [], 0
    handler.decoder = decoder
    for key in reader.keys:
        try:
            image, points = reader.read_face(key)
        except RecordError as err:
            logging.warning('skipping %s', err)
            continue
        faces = handler.get_landmark(np.ascontiguousarray(image[:, :, ::-1]))
        if not len(faces):
            missed += 1
            continue
        centres = faces.mean(axis=1)
        preds.append(faces[np.argmin(np.linalg.norm(centres - image.shape[0] / 2.0, axis=1))])
        align, crop = eval_transforms(points, top_raise, cfg)
        trips.append(evaluate.round_trip_ground_truth(points, align, crop, cfg.landmark_type))
    return {decoder: np.array(preds)}, np.array(trips), missed


def evaluate_set(predictor, rec, dataset, cfg, decoder, out_dir, handler=None, batch_size=16):
    """Evaluate one record set; prints the report and writes CSV + CED PNG.
    With a `handler`, faces are found by its detector instead of the
    ground-truth box."""
    if handler is not None:
        preds, trips, missed = detector_predictions(handler, rec, dataset, cfg, decoder)
        print('%s: the detector found no face in %d records (left out)' % (dataset, missed))
        preds['argmax'] = preds[decoder]
    else:
        it = FaceSegIter(batch_size, path_imgrec=rec, aug_level=0, cfg=cfg, workers=0,
                         top_raise=TOP_RAISE.get(dataset))
        decoders = ('argmax', decoder) if decoder != 'argmax' else ('argmax',)
        preds, _, trips = evaluate.predict_record_frame(
            lambda batch: predictor(batch.data[0].asnumpy()), it, cfg, decoders)
    landmark_type = cfg.landmark_type
    original = evaluate.nme(preds['argmax'], trips, landmark_type)
    chosen = evaluate.metrics(preds[decoder], trips, landmark_type)
    print('nme on %s is %.3f%%' % (dataset, 100 * np.mean(original)))
    print('  %d images; decoder %s: nme %.3f%%, inter-ocular %.3f%%, box %.3f%%'
          % (len(trips), decoder, 100 * np.mean(chosen['nme']),
             100 * np.mean(chosen['nme_ocular']), 100 * np.mean(chosen['nme_box'])))
    summary = {'dataset': dataset, 'images': len(trips), 'nme': 100 * np.mean(original),
               'nme_' + decoder: 100 * np.mean(chosen['nme'])}
    for t in THRESHOLDS:
        summary['auc@%.2f' % t] = evaluate.auc(chosen['nme'], t)
        summary['failure@%.2f' % t] = 100 * evaluate.failure_rate(chosen['nme'], t)
        print('  AUC@%.2f %.4f, failure rate@%.2f %.2f%%'
              % (t, summary['auc@%.2f' % t], t, summary['failure@%.2f' % t]))
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, '%s-per-image.csv' % dataset)
    with open(csv_path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['index', 'nme_argmax', 'nme_%s' % decoder, 'nme_ocular', 'nme_box'])
        for i in range(len(trips)):
            writer.writerow([i, '%.6f' % original[i], '%.6f' % chosen['nme'][i],
                             '%.6f' % chosen['nme_ocular'][i], '%.6f' % chosen['nme_box'][i]])
    ced_path = plot_ced({'%s (%s)' % (dataset, decoder): chosen['nme'],
                         '%s (argmax, original)' % dataset: original},
                        os.path.join(out_dir, '%s-ced.png' % dataset), max(THRESHOLDS),
                        title='CED on %s' % dataset)
    print('  per-image CSV %s, CED curve %s' % (csv_path, ced_path))
    return summary


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
            cfg, _ = load_config('hourglass', dataset_key, args.set)
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
    cfg, _ = load_config('hourglass', 'i3d' if landmark_type == '3d' else 'i2d', args.set)
    cfg.landmark_type = landmark_type
    evaluate_set(predictor, args.rec, dataset, cfg, args.decoder, args.output, handler)
    return 0


if __name__ == '__main__':
    sys.exit(main())
