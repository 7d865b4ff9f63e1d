"""Several models on the same record sets in one page: per set one CED
figure with every model, a table with the differences to the first model
(and the published figure of a zoo model beside its measured one), and the
images where the first two models disagree most.

    python test_rec_nme.py --rec data_2d/ibug.rec --prefix models/a/model --output nme
    python test_rec_nme.py --rec data_2d/ibug.rec --prefix models/b/model --output nme
    python -m tools.compare nme/ibug-a-0012 nme/ibug-b-0007 --out compare-a-b

Each REPORT_DIR is a set folder that test_rec_nme.py wrote (summary.json,
predictions.npz).
"""
import argparse
import html
import os
import sys

import numpy as np

from core import cli
from core.pages import (draw_comparison, figure, image, image_name, jpeg, page, record_face,
                        scheme_groups, table)
from core.report import load_result
from core.visualize import plot_ced
from data.landmarks import box_size
from data.files import write_atomic

DISAGREEMENTS = 12


def model_label(result):
    s = result['summary']
    return '%s-%04d' % (s['model'], s['checkpoint'])


def disagreement(a, b):
    """(common keys, per image the mean distance between two models' points
    over the ground truth's box size, sqrt(w h), in percent)."""
    common = sorted(set(a['keys']) & set(b['keys']))
    ia = {k: i for i, k in enumerate(a['keys'])}
    ib = {k: i for i, k in enumerate(b['keys'])}
    pa = np.array([a['pred'][ia[k]] for k in common])
    pb = np.array([b['pred'][ib[k]] for k in common])
    truth = np.array([a['truth'][ia[k]] for k in common])
    return common, 100 * np.linalg.norm(pa - pb, axis=2).mean(axis=1) / box_size(truth)


def set_section(name, results):
    first = results[0]['summary']
    rows = []
    for r in results:
        s = r['summary']
        published = s.get('published_nme')
        rows.append([model_label(r), '%s, %04d' % (s['prefix'], s['checkpoint']),
                     s['config'], s['images'], '%.3f' % s['nme'],
                     '%+.3f' % (s['nme'] - first['nme']), '%.4f' % s['auc@0.10'],
                     '%.2f' % s['failure@0.10'],
                     '%.3f' % published if published is not None else ''])
    parts = ['<h2>%s</h2>' % html.escape(name),
             table(['model', 'checkpoint', 'configuration', 'images', 'NME %', 'vs first',
                    'AUC@0.10',
                    'FR@0.10 %', 'published NME %'], rows)]
    curves = {model_label(r): r['errors'] / 100 for r in results}
    parts.append('<div class="figures">%s</div>' % figure(
        image(plot_ced(curves, 0.10, title='CED on %s' % name), 'CED of every model'),
        'every model on %s (argmax, the published protocol)' % name))
    if len(results) > 1:
        a, b = results[0], results[1]
        common, apart = disagreement(a, b)
        cells = []
        index_a = {k: i for i, k in enumerate(a['keys'])}
        index_b = {k: i for i, k in enumerate(b['keys'])}
        for j in np.argsort(-apart)[:DISAGREEMENTS]:
            key = common[j]
            i, k = index_a[key], index_b[key]
            picture = draw_comparison(record_face(a, key), a['truth'][i],
                                      [a['pred'][i], b['pred'][k]], scheme_groups(first['scheme']))
            cells.append(figure(image(jpeg(picture), 'record %d' % key, 'jpeg'),
                                'apart %.2f%% of the box; NME %.2f%% vs %.2f%%; record %d, %s' % (
                                    apart[j], a['errors'][i], b['errors'][k], key,
                                    image_name(a, key))))
        parts.append('<h3>Where %s and %s disagree most</h3><p class="note">green: ground '
                     'truth; red: %s; blue: %s</p><div class="gallery">%s</div>' % (
                         html.escape(model_label(a)), html.escape(model_label(b)),
                         html.escape(model_label(a)), html.escape(model_label(b)),
                         ''.join(cells)))
    return parts


def _main(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('reports', nargs='+', metavar='REPORT_DIR',
                        help='set folders written by test_rec_nme.py')
    parser.add_argument('--out', required=True, help='folder for compare.html')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier page')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    out = os.path.join(args.out, 'compare.html')
    if os.path.exists(out) and not args.overwrite:
        raise ValueError('%s exists; choose another --out or add --overwrite' % out)
    by_set = {}
    for folder in args.reports:
        result = load_result(folder)
        by_set.setdefault(result['summary']['dataset'], []).append(result)
    parts = []
    for name, results in by_set.items():
        parts += set_section(name, results)
    models = sorted({model_label(r) for results in by_set.values() for r in results})
    write_atomic(out, page('Comparison of %s' % ', '.join(models), parts,
                           note='NME by the published protocol (ground-truth box, argmax '
                           'decoding); the first model of each set is the reference.'))
    print('wrote %s (%d set%s, %d models)' % (out, len(by_set), '' if len(by_set) == 1 else 's',
                                             len(models)))
    return 0


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
