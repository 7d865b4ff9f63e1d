"""Figures of evaluations and training runs, drawn with matplotlib, sized
and lettered for print (PNG for pages, PDF and SVG for papers)."""
import collections
import io

import matplotlib
import numpy as np

from core.evaluation.protocol import auc, ced
from data.files import write_atomic

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


# Fonts and sizes for a figure printed at a column's width (about 8.5 cm):
# drawn at 12 x 9 cm, its 9-point text stays readable at half that.
PRINT = {'font.size': 9, 'axes.titlesize': 9, 'axes.labelsize': 9, 'legend.fontsize': 8,
         'xtick.labelsize': 8, 'ytick.labelsize': 8, 'figure.dpi': 100, 'savefig.dpi': 200}
WIDE, TALL = 12 / 2.54, 9 / 2.54
# One colour per model, in the order the models are given, in every figure.
COLOURS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
           '#7f7f7f', '#bcbd22', '#17becf')
FORMATS = ('png', 'pdf', 'svg')


def colours(labels):
    """{label: colour} in the order of `labels` (the same model keeps its
    colour in every figure of a comparison)."""
    return {label: COLOURS[k % len(COLOURS)] for k, label in enumerate(labels)}


def _figure(*args, **kwargs):
    with plt.rc_context(PRINT):
        return plt.subplots(*args, **kwargs)


def ced_range(curves, threshold):
    """The CED's x limit (a fraction): `threshold`, or, when most images of
    a curve lie beyond it, far enough to show nine in ten of them."""
    beyond = max(float(np.median(errors)) for errors in curves.values())
    if beyond <= threshold:
        return threshold
    top = max(float(np.percentile(errors, 90)) for errors in curves.values())
    step = 0.05 if top <= 0.5 else 0.25
    return float(np.ceil(top / step) * step)


def ced_figure(curves, threshold, title='Cumulative error distribution', palette=None):
    """CED curves {label: per-image errors (fractions)}: x NME (%), y the
    fraction of images; the AUC at `threshold` in the legend. When most
    images lie beyond the threshold the axis reaches them and the threshold
    is marked."""
    limit = ced_range(curves, threshold)
    fig, ax = _figure(figsize=(WIDE, TALL))
    for label, errors in curves.items():
        x, y = ced(errors, limit)
        ax.plot(x * 100, y, color=(palette or {}).get(label),
                label='%s (AUC@%.2f %.3f)' % (label, threshold, auc(errors, threshold)))
    if limit > threshold:
        ax.axvline(threshold * 100, color='grey', linestyle='--', linewidth=1,
                   label='threshold %.0f%%' % (threshold * 100))
    ax.set(xlim=(0, limit * 100), ylim=(0, 1), xlabel='NME (%)',
           ylabel='fraction of images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def plot_ced(curves, threshold, title='Cumulative error distribution', palette=None):
    """PNG bytes of `ced_figure`."""
    return figure_png(ced_figure(curves, threshold, title, palette))


def plot_histogram(series, title, bins=30):
    """PNG bytes of histograms of per-image NME (%): {label: values}."""
    fig, ax = _figure(figsize=(WIDE, TALL))
    for label, values in series.items():
        ax.hist(np.asarray(values, dtype=np.float64), bins=bins, alpha=0.6, label=label)
    ax.set(xlabel='NME (%)', ylabel='images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.2), frameon=False)
    return figure_png(fig)


def _face_axes(ax, shape, groups):
    """A mean face on `ax`: image coordinates, no ticks, the scheme's lines."""
    for group, closed in groups:
        line = shape[list(group) + ([group[0]] if closed else [])]
        ax.plot(line[:, 0], line[:, 1], color='#cccccc', linewidth=0.8, zorder=1)
    ax.set_aspect('equal')
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_yticks([])


def point_errors_figure(mean_shape, errors, groups, titles, top=5):
    """The mean error of each point (% NME) on the mean face, with a colour
    scale: one panel per model (`errors` a list, `titles` their names), and
    for two models a third panel of their difference (second minus first,
    blue where the second is better). The `top` hardest points are numbered."""
    shape = np.asarray(mean_shape, dtype=np.float64)
    panels = list(errors) + ([errors[1] - errors[0]] if len(errors) == 2 else [])
    names = list(titles) + (['%s minus %s' % (titles[1], titles[0])] if len(errors) == 2
                            else [])
    fig, axes = _figure(1, len(panels), figsize=(WIDE * len(panels) / 1.6, TALL),
                        squeeze=False)
    high = max(float(np.max(e)) for e in errors)
    for k, (ax, values, name) in enumerate(zip(axes[0], panels, names)):
        _face_axes(ax, shape, groups)
        difference = k == len(errors)
        spread = max(float(np.abs(values).max()), 1e-9)
        dots = ax.scatter(shape[:, 0], shape[:, 1], c=values, s=22, zorder=2,
                          cmap='coolwarm' if difference else 'viridis',
                          vmin=-spread if difference else 0, vmax=spread if difference else high)
        for i in np.argsort(-np.abs(values))[:top]:
            ax.annotate(str(int(i)), shape[i], xytext=(3, 3), textcoords='offset points',
                        fontsize=7)
        ax.set_title(name)
        bar = fig.colorbar(dots, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label('difference of mean error (% NME)' if difference
                      else 'mean error (% NME)')
    return fig


def estimated_yaw(points, scheme):
    """Each face's yaw in degrees, roughly, from its landmarks: how far the
    nose tip sits from the middle of the eyes along the eye line, as a share
    of the eye distance (0 for a frontal face, towards +-90 in profile)."""
    five = np.array([scheme.five_points(p) for p in points])
    eyes = five[:, 1] - five[:, 0]
    distance = np.linalg.norm(eyes, axis=1)
    along = np.einsum('ij,ij->i', five[:, 2] - (five[:, 0] + five[:, 1]) / 2, eyes)
    return np.degrees(np.arcsin(np.clip(2 * along / np.maximum(distance, 1e-9) ** 2, -1, 1)))


def yaw_figure(yaws, errors, palette, title, bins=6):
    """Per-image NME (%) against the face's estimated yaw, a colour per
    model ({label: values}), with the mean per yaw bin drawn as a line."""
    fig, ax = _figure(figsize=(WIDE, TALL))
    edges = np.linspace(min(np.min(y) for y in yaws.values()),
                        max(np.max(y) for y in yaws.values()) + 1e-6, bins + 1)
    for label, values in errors.items():
        yaw = np.asarray(yaws[label])
        ax.scatter(yaw, values, s=8, alpha=0.4, color=palette[label])
        middle, means = [], []
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (yaw >= low) & (yaw < high)
            if inside.any():
                middle.append((low + high) / 2)
                means.append(float(np.mean(np.asarray(values)[inside])))
        ax.plot(middle, means, color=palette[label], marker='o', label='%s (bin means)' % label)
    ax.set(xlabel='yaw estimated from the ground-truth landmarks (degrees)',
           ylabel='per-image NME (%)', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def set_figures(name, results, labels, scheme):
    """The print figures of one set evaluated by one or more models
    (load_result's, named by `labels`, coloured alike in each): {stem:
    (figure, caption)}: the CED of every model, the per-point error on the
    mean face (the first two models and their difference), and per-image
    error against the yaw estimated with `scheme` (without one, none, and
    the mean face is drawn without its lines)."""
    palette = colours(labels)
    pairs = list(zip(results, labels))[:2]
    made = collections.OrderedDict()
    made['ced'] = (ced_figure({label: r['errors'] / 100 for r, label in zip(results, labels)},
                              0.10, 'CED on %s' % name, palette),
                   'cumulative error distribution (argmax, the published protocol)')
    made['point-errors'] = (
        point_errors_figure(results[0]['truth'].mean(axis=0),
                            [r['point_errors'] for r, _ in pairs],
                            scheme.groups if scheme else (),
                            [label for _, label in pairs]),
        'mean error of each point on the mean face%s' % (
            ' and the difference of the two models' if len(pairs) == 2 else ''))
    if scheme is not None:
        made['yaw'] = (yaw_figure({label: estimated_yaw(r['truth'], scheme)
                                   for r, label in zip(results, labels)},
                                  {label: r['errors'] for r, label in zip(results, labels)},
                                  palette, 'error against yaw on %s' % name),
                       'per-image NME against the yaw estimated from the ground truth')
    return made


def figure_png(fig, dpi=None):
    """PNG bytes of a matplotlib figure, which is closed."""
    return save_figure(fig, None, ('png',), dpi)['png']


def save_figure(fig, base, formats=FORMATS, dpi=None):
    """Write the figure as BASE.png, BASE.pdf and BASE.svg (each to a
    temporary name, then renamed; nothing written when `base` is None) and
    close it; returns {format: bytes}."""
    found = {}
    with plt.rc_context(PRINT):
        fig.tight_layout()
        for kind in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=kind, bbox_inches='tight', **({'dpi': dpi} if dpi else {}))
            found[kind] = buffer.getvalue()
            if base is not None:
                write_atomic('%s.%s' % (base, kind), found[kind])
    plt.close(fig)
    return found


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
    return figure_png(fig, dpi=100)
