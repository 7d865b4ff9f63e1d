"""Several models on the same record sets: per set, each model against the
first image by image (the mean paired difference of per-image NME with its
bootstrap confidence interval, the Wilcoxon signed-rank test, the images
each model wins), the tables a paper prints (table.tex, table.md), figures
for print (PNG, PDF, SVG) and one page with all of it and the images where
the first two models disagree most.

    python test_rec_nme.py --rec data_2d/ibug.rec --prefix models/a/model --output nme
    python test_rec_nme.py --rec data_2d/ibug.rec --prefix models/b/model --output nme
    python -m tools.compare nme/ibug-a-0012 nme/ibug-b-0007 --out compare-a-b

Each REPORT_DIR is a set folder that test_rec_nme.py wrote (summary.json,
predictions.npz): nothing is run again.
"""
import argparse
import os
import sys

from core.evaluation import statistics, tables
from core.evaluation.pages import comparison_section, label_models, model_label, page
from core.evaluation.report import load_result, write_figures
from core.plumbing import cli
from data import sets
from data.files import write_atomic


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('reports', nargs='+', metavar='REPORT_DIR',
                        help='set folders written by test_rec_nme.py')
    parser.add_argument('--out', required=True, help='folder for compare.html, the tables and '
                        'figures')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier page')
    parser.add_argument('--resamples', type=cli.ranged(int, 100), default=10000,
                        help='bootstrap resamples (default 10000)')
    parser.add_argument('--seed', type=cli.ranged(int, 0), default=0,
                        help='seed of the bootstrap (default 0)')
    parser.add_argument('--level', type=cli.ranged(float, above=0.5, high=0.999), default=0.95,
                        help='confidence level; a difference is significant when the '
                        'Wilcoxon p < 1 - level and the interval excludes 0 (default 0.95)')
    parser.add_argument('--columns', nargs='+', choices=list(tables.METRICS), default=['nme'],
                        help='what the tables show per set (default nme)')
    cli.add_flags(parser)
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    out = os.path.join(args.out, 'compare.html')
    if os.path.exists(out) and not args.overwrite:
        raise ValueError('%s exists; choose another --out or add --overwrite' % out)
    results = [load_result(folder) for folder in args.reports]
    labels = label_models(results)
    by_set = {}
    for result in results:
        by_set.setdefault(result['summary']['dataset'], []).append(result)
    names = {name: [model_label(r) for r in group] for name, group in by_set.items()}
    paired = {name: statistics.against_first(group, names[name], args.resamples, args.seed,
                                             args.level, 1 - args.level)
              for name, group in by_set.items()}     # refuses sets of other images first
    parts = []
    for name, group in by_set.items():
        print('%s (%d images):' % (sets.get(name).title, group[0]['summary']['images']))
        for sentence, _ in paired[name]:
            print('  ' + sentence)
        figures = write_figures(args.out, name, group, names[name])
        parts += comparison_section(name, group, figures, paired[name])
    written = tables.write(args.out, results, labels, args.columns)
    models = sorted(set(labels))
    write_atomic(out, page('Comparison of %s' % ', '.join(models), parts,
                           note='NME by the published protocol (ground-truth box, argmax '
                           'decoding); the first model of each set is the reference. Tables: '
                           '%s (booktabs), %s; figures: figures/ (PNG, PDF, SVG).'
                           % (tables.TEX, tables.MARKDOWN)))
    print('tables %s' % ', '.join(written))
    print('wrote %s (%d set%s, %d models)' % (out, len(by_set), '' if len(by_set) == 1 else 's',
                                             len(models)))
    return 0


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
