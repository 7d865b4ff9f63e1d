"""Plot a training CSV log (PREFIX-log.csv) as loss and NME curves, the
learning-rate steps and the best checkpoint marked; with --html also the
run's page (PREFIX-report.html: the curves, every validation, the
configuration).

    python -m tools.plot_log models/my-model/model-log.csv [--out curves.png] [--html]
"""
import argparse
import os
import sys

from core.evaluation.figures import plot_run
from core.evaluation.pages import run_page
from core.plumbing import cli, runs
from data.files import write_atomic


def _main(argv):
    parser = argparse.ArgumentParser(description='Plot loss and NME curves of a training log.')
    parser.add_argument('log', help='PREFIX-log.csv written by train.py')
    parser.add_argument('--out', help='PNG to write (default: PREFIX-log.png beside the log)')
    parser.add_argument('--html', action='store_true',
                        help='also write the run\'s page, PREFIX-report.html')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        raise ValueError('%s does not exist' % args.log)
    prefix = runs.prefix_of_log(args.log)
    curves = plot_run(runs.read_log(prefix), runs.saved_settings(prefix),
                      runs.best_checkpoint(prefix))
    print('wrote %s' % write_atomic(args.out or runs.log_plot_path(prefix), curves))
    if args.html:
        print('wrote %s' % write_atomic(runs.report_path(prefix), run_page(prefix, curves)))
    return 0


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
