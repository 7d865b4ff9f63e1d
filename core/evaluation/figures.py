"""Figures of evaluations and training runs, drawn with matplotlib."""
import io

import matplotlib
import numpy as np

from core.evaluation.protocol import auc, ced

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def plot_ced(curves, threshold, title='Cumulative error distribution'):
    """PNG bytes of CED curves: {label: per-image errors}; x axis NME (%),
    y the fraction of images."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, errors in curves.items():
        x, y = ced(errors, threshold)
        ax.plot(x * 100, y, label='%s (AUC@%.2f %.3f)' % (label, threshold,
                                                           auc(errors, threshold)))
    ax.set(xlim=(0, threshold * 100), ylim=(0, 1), xlabel='NME (%)',
           ylabel='fraction of images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.15), frameon=False)
    return figure_png(fig)


def plot_histogram(series, title, bins=30):
    """PNG bytes of histograms of per-image NME (%): {label: values}."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, values in series.items():
        ax.hist(np.asarray(values, dtype=np.float64), bins=bins, alpha=0.6, label=label)
    ax.set(xlabel='NME (%)', ylabel='images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.15), frameon=False)
    return figure_png(fig)


def figure_png(fig):
    """PNG bytes of a matplotlib figure, which is closed."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)
    return buffer.getvalue()


LOSS_NAMES = {'heatmap': 'L2 heatmap loss', 'ce': 'spatial softmax cross-entropy'}


def loss_name(settings):
    """The name of the loss of a run's saved settings ('loss' without)."""
    return LOSS_NAMES.get((settings or {}).get('losstype'), 'loss')


def lr_steps(settings, series):
    """The steps where a run lowered its learning rate: its schedule (epochs
    converted by the log's steps per epoch), else where the logged rate
    changes."""
    from core.plumbing.config import Config, schedule
    epochs = [(step, epoch) for step, epoch in series.get('epoch', []) if epoch > 0]
    try:
        bounds, in_steps = schedule(Config(settings['train']))
        if in_steps:
            return bounds[:-1]
        if epochs:
            return [int(round(b * epochs[-1][0] / epochs[-1][1])) for b in bounds[:-1]]
    except (TypeError, KeyError, ValueError):
        pass
    lrs = series.get('lr', [])
    return [step for (step, lr), (_, before) in zip(lrs[1:], lrs) if lr != before]


def plot_run(series, settings, best):
    """PNG bytes of a training run's curves: the loss, each set's validation
    NME, the learning-rate steps dashed and `best` ((step, checkpoint, NME)
    or None) starred."""
    fig, (ax_loss, ax_nme) = plt.subplots(1, 2, figsize=(12, 4))
    if 'loss' in series:
        ax_loss.plot(*zip(*series['loss']), color='tab:blue')
    name = loss_name(settings)
    ax_loss.set(title='training %s' % name, xlabel='step', ylabel=name)
    ax_loss.set_yscale('log')
    for key in sorted(k for k in series if k.startswith('nme_')):
        ax_nme.plot(*zip(*series[key]), marker='o', label=key[4:])
    for k, step in enumerate(lr_steps(settings, series)):
        for ax in (ax_loss, ax_nme):
            ax.axvline(step, color='grey', linestyle='--', linewidth=1,
                       label='learning rate lowered' if ax is ax_nme and k == 0 else None)
    if best:
        ax_nme.plot([best[0]], [best[2]], marker='*', markersize=16, color='gold',
                    markeredgecolor='black', linestyle='none',
                    label='best: checkpoint %04d, %.2f%%' % (best[1], best[2]))
    ax_nme.set(title='validation NME', xlabel='step', ylabel='NME (%)')
    if any(k.startswith('nme_') for k in series):
        ax_nme.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    for ax in (ax_loss, ax_nme):
        ax.grid(alpha=0.3)
    return figure_png(fig)
