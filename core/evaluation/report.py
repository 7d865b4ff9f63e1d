"""NME reports on record sets.

`nme on X is N%` is always the figure of the published table: the original
protocol (docs/protocol.md), ground-truth box and argmax decoding. The
lines under it say which decoder (and detector) they used. Each report goes
to a folder of its own, named after the record set and the checkpoint: a
per-image CSV naming every record, a CED plot and a JSON summary.
"""
import csv
import io
import json
import logging
import os

import numpy as np

from data import sets
from data.files import write_atomic
from data.iterator import FaceSegIter
from data.recordio import RecordError, RecordReader, names_path

from core.evaluation import protocol
from core.evaluation.figures import FORMATS, plot_ced, save_figure, set_figures

log = logging.getLogger(__name__)

THRESHOLDS = (0.08, 0.10)


def model_name(checkpoint):
    """MODEL: the name of the checkpoint's folder."""
    return os.path.basename(os.path.dirname(os.path.abspath(checkpoint.prefix))) or 'model'


def report_folder(output, dataset, checkpoint):
    """OUTPUT/SET-MODEL-NNNN, MODEL being the checkpoint's folder name."""
    return os.path.join(output, '%s-%s-%04d' % (dataset, model_name(checkpoint),
                                                checkpoint.number))


def model_info(checkpoint, cfg, dataset):
    """How a report names the model: its folder, checkpoint number, the
    configuration in short and, for a zoo model on a published set, the
    published NME."""
    from symbol import zoo
    name = model_name(checkpoint)
    published = sets.published_nme(zoo.name_of_directory(name), dataset)
    config = '%s, %s block, %d stack%s, n=%d, width x%g, %s loss, %s' % (
        cfg.network, cfg.net_block, cfg.net_stacks, '' if cfg.net_stacks == 1 else 's',
        cfg.net_n, cfg.multiplier, cfg.losstype, cfg.scheme.name)
    return {'model': name, 'checkpoint': checkpoint.number, 'prefix': checkpoint.prefix,
            'config': config, 'published_nme': published}


def free_folder(folder, overwrite):
    """`folder`, or (it holds an earlier report and not `overwrite`) the
    next free FOLDER-2, FOLDER-3, ...: an earlier report is never replaced
    unless asked."""
    if overwrite or not os.path.exists(folder):
        return folder
    n = 2
    while os.path.exists('%s-%d' % (folder, n)):
        n += 1
    return '%s-%d' % (folder, n)


def record_names(rec):
    """{record key: source image name} from the set's NAME.names, if any."""
    path = names_path(rec)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return {int(key): name for key, name in (line.rstrip('\n').split('\t', 1)
                                                 for line in f if '\t' in line)}


def ground_truth_box_predictions(predictor, rec, dataset, cfg, landmark_type, decoders,
                                 batch_size=16):
    """The protocol's own crops: ({decoder: points}, round-tripped ground
    truth, record keys)."""
    it = FaceSegIter(rec, cfg, batch_size, aug_level=0, workers=0,
                     eval_crop=protocol.EvalCrop(dataset, cfg.input_img_size, cfg.scheme))
    return protocol.predict_record_frame(lambda batch: predictor(batch.data[0].asnumpy()), it,
                                         cfg.input_img_size, landmark_type, decoders)


def detector_predictions(handler, rec, dataset, cfg, landmark_type):
    """The photo pipeline (detector + alignment) on each record's image, the
    face nearest the image centre. Returns ({key: points}, {key: round-tripped
    ground truth}) of the records where a face was found."""
    reader = RecordReader(rec)
    top_raise = sets.get(dataset).top_raise
    points, trips = {}, {}
    for key in reader.keys:
        try:
            image, truth = reader.read_face(key)
        except RecordError as err:
            log.warning('skipping %s', err)
            continue
        faces = handler.get_landmarks(np.ascontiguousarray(image[:, :, ::-1]))
        if not faces:
            continue
        centres = np.array([f.landmarks.mean(axis=0) for f in faces])
        nearest = np.argmin(np.linalg.norm(centres - image.shape[0] / 2.0, axis=1))
        points[key] = faces[nearest].landmarks
        align, crop = protocol.eval_transforms(truth, top_raise, cfg.input_img_size,
                                               cfg.scheme)
        trips[key] = protocol.round_trip_ground_truth(truth, align, crop, landmark_type)
    return points, trips


def evaluate_set(predictor, rec, dataset, cfg, decoder, folder, handler=None,
                 landmark_type=None, model=None):
    """Evaluate one record set; prints the report, writes it to `folder`
    (with the predictions, for pages) and returns its summary. `model`
    ({model, checkpoint, config, published_nme}) names the model in it."""
    landmark_type = landmark_type or sets.get(dataset, cfg.landmark_type).landmark_type
    decoders = ('argmax',) if decoder == 'argmax' else ('argmax', decoder)
    preds, trips, keys = ground_truth_box_predictions(predictor, rec, dataset, cfg,
                                                      landmark_type, decoders)
    scheme = cfg.scheme
    norm = 'box' if landmark_type == '3d' else scheme.norm
    original = 100 * protocol.nme(preds['argmax'], trips, scheme, landmark_type)
    chosen = {k: 100 * v for k, v in protocol.metrics(preds[decoder], trips, scheme,
                                                      landmark_type).items()}
    print('nme on %s is %.3f%% (the published protocol: ground-truth box, argmax decoding); its '
          'top raised by %d pixels; %s' % (dataset, np.mean(original), sets.get(dataset).top_raise,
                                          scheme.describe(norm)))
    print('  %d images; ground-truth box, %s decoding: nme %.3f%%, %s' % (
        len(trips), decoder, np.mean(chosen['nme']), ', '.join(
            '%s %.3f%%' % (key[4:], np.mean(values)) for key, values in chosen.items()
            if key != 'nme')))
    summary = dict(model or {}, dataset=dataset, images=len(trips),
                   top_raise=sets.get(dataset).top_raise, landmark_type=landmark_type,
                   nme=float(np.mean(original)), scheme=scheme.name,
                   landmark_scheme=scheme.value,
                   normalisation=scheme.describe(norm), decoder=decoder,
                   rec=os.path.abspath(rec))
    summary['nme_%s' % decoder] = float(np.mean(chosen['nme']))
    summary['normalisations'] = {key[4:]: float(np.mean(values)) for key, values in
                                 chosen.items() if key != 'nme'}
    curves = {'ground-truth box, argmax (published protocol)': original / 100}
    names = record_names(rec)
    columns = [('key', keys), ('image', [names.get(k, '') for k in keys]),
               ('nme_argmax_pct', original)]
    columns += [('%s_%s_pct' % (name, decoder), values) for name, values in chosen.items()]
    final = chosen['nme']
    if decoder != 'argmax':
        curves['ground-truth box, %s' % decoder] = chosen['nme'] / 100
    if handler is not None:
        detected, detected_trips = detector_predictions(handler, rec, dataset, cfg,
                                                        landmark_type)
        found = [k for k in keys if k in detected]
        shape = (-1, scheme.count, 2)
        errors = 100 * protocol.nme(np.array([detected[k] for k in found]).reshape(shape),
                                    np.array([detected_trips[k] for k in found]).reshape(shape),
                                    scheme, landmark_type)
        by_key = dict(zip(found, errors))
        detector = type(handler.detector).__name__
        print('  with the %s detector, %s decoding: nme %.3f%% on %d images (%d without a face, '
              'left out)' % (detector, decoder, np.mean(errors) if found else float('nan'),
                             len(found), len(keys) - len(found)))
        summary.update({'nme_detector': float(np.mean(errors)) if found else None,
                        'detector': detector, 'detector_missed': len(keys) - len(found)})
        columns.append(('nme_detector_%s_pct' % decoder, [by_key.get(k, '') for k in keys]))
        curves['%s detector, %s' % (detector, decoder)] = errors / 100
        final = errors
    for t in THRESHOLDS:
        summary['auc@%.2f' % t] = protocol.auc(final / 100, t)
        summary['failure@%.2f' % t] = 100 * protocol.failure_rate(final / 100, t)
        print('  AUC@%.2f %.4f, failure rate@%.2f %.2f%% (of the line above; %s)'
              % (t, summary['auc@%.2f' % t], t, summary['failure@%.2f' % t],
                 scheme.describe(norm)))
    csv_path = os.path.join(folder, 'per-image.csv')
    write_atomic(csv_path, _csv(columns))
    ced_path = write_atomic(os.path.join(folder, 'ced.png'), plot_ced(
        curves, max(THRESHOLDS), title='CED on %s' % sets.get(dataset).title))
    write_atomic(os.path.join(folder, 'summary.json'), json.dumps(summary, indent=1))
    distances = np.linalg.norm(preds['argmax'] - trips, axis=2)
    per_point = 100 * distances / protocol.normaliser(trips, scheme, landmark_type)[:, None]
    arrays = {'keys': np.array(keys), 'truth': trips,
              'errors': original, 'point_errors': per_point.mean(axis=0)}
    arrays.update(('pred_' + d, p) for d, p in preds.items())
    arrays.update(('norm_' + n, protocol.normaliser(trips, scheme, landmark_type, n))
                  for n in scheme.norm_names)
    if handler is not None:
        arrays['pred_detector'] = np.array([detected.get(k, np.full((scheme.count, 2), np.nan))
                                            for k in keys])
    meta = {'set': {'name': dataset, 'title': sets.get(dataset).title, 'rec': summary['rec']},
            'protocol': {'box top raise': sets.get(dataset).top_raise, 'box scale':
                         protocol.EVAL_BOX_SCALE, 'landmark type': landmark_type,
                         'decoders': list(decoders), 'scheme': scheme.value,
                         'normalisation': norm, 'record frame': 'the 384 x 384 aligned face '
                         'of each record, which is the image the evaluation sees'},
            'checkpoint': {k: (model or {}).get(k) for k in ('model', 'checkpoint', 'prefix',
                                                               'config')}}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
    write_atomic(os.path.join(folder, PREDICTIONS), buffer.getvalue())
    print('  per-image CSV %s, CED curve %s' % (csv_path, ced_path))
    return summary


PREDICTIONS = 'predictions.npz'


def load_result(folder):
    """What an evaluation folder holds, for pages, tables and comparisons:
    {summary, meta, keys, pred (argmax), pred_DECODER, truth (the ground
    truth as the protocol rounds it), norm_NAME (each image's normalising
    distance), errors, point_errors, names}, all in the record frame;
    ValueError naming what is missing."""
    paths = [os.path.join(folder, name) for name in ('summary.json', PREDICTIONS)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError('%s is not an evaluation folder of test_rec_nme.py: %s is missing'
                         % (folder, missing[0]))
    with open(paths[0]) as f:
        summary = json.load(f)
    with np.load(paths[1]) as arrays:
        found = {k: arrays[k] for k in arrays.files}
    found['keys'] = [int(k) for k in found['keys']]
    if 'pred' not in found:             # kept once, as pred_argmax (older files: pred)
        found['pred'] = found['pred_argmax']
    found['meta'] = json.loads(str(found['meta'])) if 'meta' in found else {}
    found.update(summary=summary, names=record_names(summary['rec']), folder=folder)
    return found


def scheme_of(summary):
    """The landmark scheme of an evaluation (a user's travels in its summary
    by content; an older summary names it only): a Scheme, or None."""
    from data import landmarks
    value = summary.get('landmark_scheme', summary['scheme'])
    return landmarks.get(value) if isinstance(value, dict) or value in landmarks.SCHEMES \
        else None


def write_figures(folder, name, results, labels):
    """Write the print figures of set `name` (core.evaluation.figures.
    set_figures) as FOLDER/figures/STEM-NAME.{png,pdf,svg}; returns
    [(caption, PNG bytes, {format: path relative to FOLDER})]."""
    made = []
    for stem, (fig, caption) in set_figures(sets.get(name).title, results, labels,
                                            scheme_of(results[0]['summary'])).items():
        relative = os.path.join('figures', '%s-%s' % (stem, name))
        made.append((caption, save_figure(fig, os.path.join(folder, relative))['png'],
                     {kind: '%s.%s' % (relative, kind) for kind in FORMATS}))
    return made


def _csv(columns):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([name for name, _ in columns])
    for row in zip(*[values for _, values in columns]):
        writer.writerow(['%.4f' % v if isinstance(v, (float, np.floating)) else v for v in row])
    return text.getvalue()
