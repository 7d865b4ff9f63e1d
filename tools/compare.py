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
import os
import sys

from core.evaluation.pages import comparison_section, label_models, model_label, page
from core.evaluation.report import load_result
from core.plumbing import cli
from data.files import write_atomic

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
    results = [load_result(folder) for folder in args.reports]
    label_models(results)
    for result in results:
        by_set.setdefault(result['summary']['dataset'], []).append(result)
    parts = []
    for name, results in by_set.items():
        parts += comparison_section(name, results)
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
