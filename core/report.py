"""NME reports on record sets: the published protocol's figure plus the
field's extras (other normalisations, AUC, failure rate, CED, per-image CSV)."""
import csv
import logging
import os

import numpy as np

from data.iterator import FaceSegIter
from data.recordio import RecordError, RecordReader

from . import protocol as evaluate
from .visualize import plot_ced

THRESHOLDS = (0.08, 0.10)
DATASET_TITLES = {'ibug': 'IBUG', 'cofw_testset': 'COFW', '300W': '300W',
                  'AFLW2000-3D': 'AFLW2000-3D'}


def detector_predictions(handler, rec, dataset, cfg, decoder):
    """Predictions of the photo pipeline (detector + alignment) on each record
    image, the face nearest the image centre; records without a detected
    face are counted and left out. Returns ({decoder: preds}, trips, missed)."""
    reader = RecordReader(rec)
    top_raise = evaluate.top_raise_for(dataset)
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
        align, crop = evaluate.eval_transforms(points, top_raise, cfg.input_img_size)
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
        it = FaceSegIter(rec, cfg, batch_size, aug_level=0, workers=0,
                         eval_crop=evaluate.EvalCrop(dataset, cfg.input_img_size))
        decoders = ('argmax', decoder) if decoder != 'argmax' else ('argmax',)
        preds, trips, _ = evaluate.predict_record_frame(
            lambda batch: predictor(batch.data[0].asnumpy()), it, cfg.input_img_size,
            cfg.landmark_type, decoders)
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
