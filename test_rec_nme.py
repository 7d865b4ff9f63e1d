"""NME of a checkpoint on face record sets, by the protocol of the published
table (docs/protocol.md), with AUC, failure rate, CED curve, a per-image
CSV and the predictions (predictions.npz) per set, and an HTML page (table,
curves, hard points, worst images) with the tables as a paper prints them
(table.tex, table.md) and figures for print (figures/: PNG, PDF, SVG): in
the set's folder, or of several sets in OUTPUT/report-MODEL-NNNN/.

    python test_rec_nme.py --rec data_2d/ibug.rec --prefix ./models/model-hg2d3-cab/model
    python test_rec_nme.py --all --prefix ./models/model-hg2d3-cab/model   # every target set
"""
import argparse
import logging
import os
import sys

import essh
from core.plumbing import cli
from core.plumbing.config import apply_overrides, parse_overrides
from core.plumbing.devices import DeviceError
from core.inference.handler import Handler
from core.inference.predictor import BACKEND_CHOICES, make_predictor
from core.plumbing.runs import resolve
from core.evaluation.protocol import DECODERS
from core.evaluation import tables
from core.evaluation.pages import evaluation_page, label_models
from core.evaluation.report import (evaluate_set, free_folder, load_result, model_info, model_name,
                                    report_folder, write_figures)
from core.plumbing.runs import RunError
from data import sets
from data.files import write_atomic
from data.recordio import RecordError, far_outside, gate

log = logging.getLogger('test_rec_nme')
# The share of unreadable records an evaluation tolerates.
EVALUATION_BAD_RECORDS = 0.01
# The keys --set may change: where the sets are; the rest describe the network.
RUN_KEYS = ('dataset_path', 'val_targets', 'test_targets')


def parse_args(argv):
    parser = argparse.ArgumentParser(description='NME of a checkpoint on face record sets.')
    parser.add_argument('--rec', help='record set NAME.rec (beside NAME.idx)')
    parser.add_argument('--dataset', help='ibug | cofw_testset | 300W | AFLW2000-3D (the box top '
                        'raise and normalisation; default: the record name)')
    parser.add_argument('--all', action='store_true',
                        help="every val_targets and test_targets set of the checkpoint's "
                        "dataset_path (WFLW: the test set and its six subsets)")
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--epoch', type=int, help='checkpoint number (default: the best)')
    parser.add_argument('--gpu', type=int, default=-1)
    parser.add_argument('--landmark-type', choices=['2d', '3d'],
                        help='normalisation (default: 3d for AFLW2000-3D, else the model\'s)')
    parser.add_argument('--decoder', default='subpixel', choices=DECODERS,
                        help='decoding of the extra lines (the published figure uses argmax)')
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES)
    parser.add_argument('--detector', choices=sorted(essh.DETECTORS),
                        help='also find faces with this detector instead of the ground truth')
    parser.add_argument('--output', default='nme-output',
                        help='reports go to OUTPUT/SET-MODEL-NNNN/')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier report')
    parser.add_argument('--strict', action='store_true',
                        help='refuse a set with landmarks far outside their images')
    parser.add_argument('--columns', nargs='+', choices=list(tables.METRICS), default=['nme'],
                        help='what table.tex and table.md show per set (default nme)')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a key of the checkpoint\'s configuration (e.g. '
                        'dataset_path=...)')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    if not args.all and not args.rec:
        parser.error('give --rec FILE or --all')
    return args


def check_set(rec, size, strict):
    """A set whose records do not read stops here (one line); landmarks
    far outside their images are reported, and refused with `strict`."""
    reader = gate(rec, EVALUATION_BAD_RECORDS, 'for an evaluation')
    far = far_outside(reader, size)
    if far:
        text = ('%s: %s landmarks more than half the image beyond its border (keys %s); their '
                'NME says nothing about the network' % (
                    rec, '%s %s' % (cli.plural(len(far), 'record'),
                                    'has' if len(far) == 1 else 'have'),
                    ', '.join(map(str, far[:10])) + (' ...' if len(far) > 10 else '')))
        if strict:
            raise ValueError(text + ' (--strict)')
        log.warning('%s; --strict refuses such sets', text)


def _main(argv):
    args = parse_args(argv)
    cli.setup_logging()
    checkpoint = resolve(args.prefix, args.epoch)
    overrides = parse_overrides(args.set)
    fixed = sorted(k for k in overrides if k not in RUN_KEYS)
    if fixed:
        raise ValueError('--set %s: %s the checkpoint\'s network (it was trained with %s); an '
                         'evaluation sets only %s' % (
                             fixed[0], 'describes' if fixed[0] in checkpoint.cfg else
                             'is no key of', ', '.join('%s=%r' % (k, checkpoint.cfg[k])
                                                       for k in fixed if k in checkpoint.cfg)
                             or 'its own settings', ', '.join(RUN_KEYS)))
    cfg = apply_overrides(checkpoint.cfg, overrides)
    print(checkpoint.describe())
    if args.all:
        names = list(dict.fromkeys(list(cfg.val_targets) + list(cfg.test_targets)))
        present = sets.check_targets(names, cfg.dataset_path, 'val_targets/test_targets')
        missing = [name for name in names if name not in present]
        chosen = [(name, os.path.join(cfg.dataset_path, name + '.rec')) for name in present]
        if not chosen:
            raise ValueError('no set of %s is in %s' % (names, cfg.dataset_path))
        if missing:
            log.warning('not in %s, left out: %s', cfg.dataset_path, ', '.join(missing))
    else:
        if not os.path.isfile(args.rec):
            raise FileNotFoundError('record file %s does not exist' % args.rec)
        own = os.path.splitext(os.path.basename(args.rec))[0]
        chosen = [(args.dataset or own, args.rec)]
        if args.dataset and args.dataset != own:
            log.warning('--dataset %s: %s is evaluated by the protocol of %s (the box top raised '
                        '%d pixels, the %s normalisation) and its report named %s', args.dataset,
                        args.rec, sets.get(args.dataset).title, sets.get(args.dataset).top_raise,
                        sets.get(args.dataset, cfg.landmark_type).landmark_type.upper(),
                        args.dataset)
    for name, rec in chosen:
        check_set(rec, cfg.record_img_size, args.strict)
    folders = [report_folder(args.output, name, checkpoint) for name, _ in chosen]
    # The page of one set goes into its folder; of several, into its own.
    if len(folders) > 1:
        folders.append(report_folder(args.output, 'report', checkpoint))
    free = [free_folder(folder, args.overwrite) for folder in folders]
    for folder, taken in zip(folders, free):
        if folder != taken:
            print('%s holds an earlier report (kept); this one goes to %s' % (folder, taken))
    folders, page_folder = free[:len(chosen)], free[-1]
    predictor = make_predictor(checkpoint._replace(cfg=cfg), args.backend, args.gpu)
    handler = None
    if args.detector:
        handler = Handler(args.prefix, checkpoint.number, args.gpu, args.detector,
                          decoder=args.decoder, predictor=predictor)
    rows = [evaluate_set(predictor, rec, name, cfg, args.decoder, folder, handler,
                         args.landmark_type, model_info(checkpoint, cfg, name))
            for (name, rec), folder in zip(chosen, folders)]
    if len(rows) > 1:
        print(results_table(rows, model_name(checkpoint), args.decoder if args.detector is None
                            else '%s detector, %s' % (args.detector, args.decoder)))
    results = [load_result(folder) for folder in folders]
    labels = label_models(results)          # one model: one label
    figures = {name: write_figures(page_folder, name, [r], [label])
               for (name, _), r, label in zip(chosen, results, labels)}
    written = tables.write(page_folder, results, labels, args.columns)
    print('tables %s' % ', '.join(written))
    page = write_atomic(os.path.join(page_folder, 'report.html'), evaluation_page(
        results, '%s on %s' % (labels[0], ', '.join(name for name, _ in chosen)), figures))
    print('report page %s' % page)
    return 0


def results_table(rows, model, decoding):
    """The sets of one evaluation as papers print them: a row per set with
    NME, failure rate and AUC at 0.10, naming the scheme and normalisation."""
    lines = ['', '%s: NME by the published protocol (ground-truth box, argmax decoding); FR '
             'and AUC of the %s line' % (model, decoding),
             '| set | images | NME % | FR@0.10 % | AUC@0.10 | scheme and normalisation |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append('| %s | %d | %.3f | %.2f | %.4f | %s |' % (
            sets.get(r['dataset']).title, r['images'], r['nme'],
            r['failure@0.10'], r['auc@0.10'], r['normalisation']))
    return '\n'.join(lines)


def main(argv=None):
    return cli.run(_main, argv, errors=(RunError, DeviceError, RecordError))


if __name__ == '__main__':
    sys.exit(main())
