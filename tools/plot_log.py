"""Plot a training CSV log (PREFIX-log.csv) as loss and NME curves.

    python -m tools.plot_log models/my-model/model-log.csv [--out curves.png]
"""
import argparse
import csv
import io
import json
import os
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from data.files import write_atomic  # noqa: E402


def read_log(path):
    """{column: [(step, value), ...]} of the non-empty cells."""
    series = {}
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != 'step' and value not in ('', None):
                    series.setdefault(key, []).append((int(row['step']), float(value)))
    return series


LOSS_NAMES = {'heatmap': 'L2 heatmap loss', 'ce': 'spatial softmax cross-entropy'}


def loss_name(log_path):
    """The name of the loss the run used, from PREFIX-config.json beside
    PREFIX-log.csv ('loss' when there is none)."""
    config = log_path[:-len('-log.csv')] + '-config.json' if log_path.endswith('-log.csv') \
        else None
    try:
        with open(config) as f:
            return LOSS_NAMES.get(json.load(f)['config']['losstype'], 'loss')
    except (TypeError, OSError, ValueError, KeyError):
        return 'loss'


def plot(path, out):
    series = read_log(path)
    fig, (ax_loss, ax_nme) = plt.subplots(1, 2, figsize=(12, 4))
    if 'loss' in series:
        ax_loss.plot(*zip(*series['loss']), color='tab:blue')
    name = loss_name(path)
    ax_loss.set(title='training %s' % name, xlabel='step', ylabel=name)
    ax_loss.set_yscale('log')
    for key in sorted(k for k in series if k.startswith('nme_')):
        ax_nme.plot(*zip(*series[key]), marker='o', label=key[4:])
    ax_nme.set(title='validation NME', xlabel='step', ylabel='NME (%)')
    if any(k.startswith('nme_') for k in series):
        ax_nme.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    for ax in (ax_loss, ax_nme):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)
    return write_atomic(out, buffer.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description='Plot loss and NME curves of a training log.')
    parser.add_argument('log', help='PREFIX-log.csv written by train.py')
    parser.add_argument('--out', help='PNG to write (default: beside the log)')
    args = parser.parse_args(argv)
    out = args.out or os.path.splitext(args.log)[0] + '.png'
    print('wrote %s' % plot(args.log, out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
