"""Plot a training CSV log (PREFIX-log.csv) as loss and NME curves, the
learning-rate steps and the best checkpoint marked; with --html also the
run's page (PREFIX-report.html: the curves, every validation, the
configuration).

    python -m tools.plot_log models/my-model/model-log.csv [--out curves.png] [--html]
"""
import argparse
import csv
import json
import os
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from core.visualize import figure_png  # noqa: E402
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


def best_of(log_path):
    """(step, checkpoint, NME) of the run's best checkpoint, from
    PREFIX-state.json beside PREFIX-log.csv, or None."""
    try:
        with open(log_path[:-len('-log.csv')] + '-state.json') as f:
            state = json.load(f)
        best = state['best_step'], state['best_checkpoint'], state['best_nme']
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return best if None not in best else None


def saved_config(log_path):
    """The configuration saved beside PREFIX-log.csv, or None."""
    try:
        with open(log_path[:-len('-log.csv')] + '-config.json') as f:
            return json.load(f)['config']
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lr_steps(log_path, series):
    """The steps where the learning rate was lowered: the run's schedule
    (epochs converted by the log's steps per epoch), else where the logged
    rate changes."""
    from core.config import Config, schedule
    config = saved_config(log_path)
    epochs = [(step, epoch) for step, epoch in series.get('epoch', []) if epoch > 0]
    try:
        bounds, in_steps = schedule(Config(config['train']))
        if in_steps:
            return bounds[:-1]
        if epochs:
            return [int(round(b * epochs[-1][0] / epochs[-1][1])) for b in bounds[:-1]]
    except (TypeError, KeyError, ValueError):
        pass
    lrs = series.get('lr', [])
    return [step for (step, lr), (_, before) in zip(lrs[1:], lrs) if lr != before]


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
    for k, step in enumerate(lr_steps(path, series)):
        for ax in (ax_loss, ax_nme):
            ax.axvline(step, color='grey', linestyle='--', linewidth=1,
                       label='learning rate lowered' if ax is ax_nme and k == 0 else None)
    best = best_of(path)
    if best:
        ax_nme.plot([best[0]], [best[2]], marker='*', markersize=16, color='gold',
                    markeredgecolor='black', linestyle='none',
                    label='best: checkpoint %04d, %.2f%%' % (best[1], best[2]))
    ax_nme.set(title='validation NME', xlabel='step', ylabel='NME (%)')
    if any(k.startswith('nme_') for k in series):
        ax_nme.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    for ax in (ax_loss, ax_nme):
        ax.grid(alpha=0.3)
    return write_atomic(out, figure_png(fig))


def run_page(path, curves_png):
    """The HTML page of a run: its curves, a row per validation (the best
    marked) and its configuration."""
    from core.pages import image, page, table
    with open(path, newline='') as f:
        rows = [r for r in csv.DictReader(f) if any(r[k] for k in r if k.startswith('nme_'))]
    sets = [k for k in (rows[0] if rows else {}) if k.startswith('nme_')]
    best = best_of(path)
    lines = [[r['step'], '%.2f' % float(r['epoch']), r['lr']] +
             ['%.3f' % float(r[k]) if r[k] else '' for k in sets] +
             ['best: checkpoint %04d' % best[1] if best and int(r['step']) == best[0] else '']
             for r in rows]
    parts = ['<h2>Curves</h2>', image(curves_png, 'loss and validation NME'),
             '<h2>Validations</h2>',
             table(['step', 'epoch', 'learning rate'] + ['NME %% %s' % k[4:] for k in sets]
                   + [''], lines)]
    config = saved_config(path)
    if config:
        flat = sorted((k, v) for k, v in config.items() if not isinstance(v, dict))
        flat += sorted(('train.' + k, v) for k, v in config.get('train', {}).items())
        parts += ['<h2>Configuration</h2>', table(['key', 'value'], flat)]
    return page('Training run %s' % path[:-len('-log.csv')], parts,
                note='loss: %s; the dashed lines are the learning-rate steps' % loss_name(path))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Plot loss and NME curves of a training log.')
    parser.add_argument('log', help='PREFIX-log.csv written by train.py')
    parser.add_argument('--out', help='PNG to write (default: beside the log)')
    parser.add_argument('--html', action='store_true',
                        help='also write the run\'s page, PREFIX-report.html')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        print('error: %s does not exist' % args.log, file=sys.stderr)
        return 1
    out = args.out or os.path.splitext(args.log)[0] + '.png'
    print('wrote %s' % plot(args.log, out))
    if args.html:
        with open(out, 'rb') as f:
            curves = f.read()
        target = (args.log[:-len('-log.csv')] if args.log.endswith('-log.csv')
                  else os.path.splitext(args.log)[0]) + '-report.html'
        print('wrote %s' % write_atomic(target, run_page(args.log, curves)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
