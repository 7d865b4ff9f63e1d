"""HTML pages to look at results: one self-contained file (its pictures
embedded as data URIs, no script, no network) for an evaluation, for several
models compared, or for a training run.

The figures come from core.evaluation.figures; this module only lays them out.
"""
import base64
import functools
import html
import os

import cv2
import numpy as np

from core.evaluation.figures import plot_histogram
from core.evaluation.report import scheme_of
from core.evaluation.tables import MARKDOWN, TEX
from data.landmarks import box_size

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; } figcaption { font-size: 0.8em; max-width: 260px; word-break: break-all; }
.note { color: #555; font-size: 0.9em; }
"""


def data_uri(data, kind='png'):
    """A data URI of PNG or JPEG bytes."""
    return 'data:image/%s;base64,%s' % (kind, base64.b64encode(data).decode('ascii'))


def image(data, alt, kind='png', width=None):
    return '<img src="%s" alt="%s"%s>' % (data_uri(data, kind), html.escape(alt),
                                          ' width="%d"' % width if width else '')


def jpeg(image_bgr, quality=88):
    return cv2.imencode('.jpg', image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def table(headers, rows):
    """An HTML table; cells are escaped text."""
    head = ''.join('<th>%s</th>' % html.escape(str(h)) for h in headers)
    body = ''.join('<tr>%s</tr>' % ''.join('<td>%s</td>' % html.escape(str(c)) for c in row)
                   for row in rows)
    return '<table><tr>%s</tr>%s</table>' % (head, body)


def gallery(cells):
    """A gallery of figures that says how many it holds (tools.check_page
    counts them, so a page cut short is found)."""
    return '<div class="gallery" data-count="%d">%s</div>' % (len(cells), ''.join(cells))


def figure(content, caption):
    return '<figure>%s<figcaption>%s</figcaption></figure>' % (content, html.escape(caption))


def page(title, parts, note=None):
    """A whole HTML document of `parts` (HTML strings)."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            '<title>%s</title><style>%s</style></head><body><h1>%s</h1>%s%s</body></html>\n'
            % (html.escape(title), STYLE, html.escape(title),
               '<p class="note">%s</p>' % html.escape(note) if note else '', '\n'.join(parts)))


def draw_comparison(image_rgb, truth, predictions, groups, size=256):
    """BGR picture of a face with the ground truth (green) and predictions
    (red, then blue, orange ...) drawn, resized to `size`."""
    colours = [(40, 40, 230), (230, 120, 30), (0, 160, 255), (200, 0, 200)]
    out = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
    scale = size / float(out.shape[0])
    out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)

    def draw(points, colour):
        points = np.asarray(points, dtype=np.float64) * scale
        for group, closed in groups:
            cv2.polylines(out, [np.round(points[list(group)]).astype(np.int32)], closed, colour,
                          1, cv2.LINE_AA)
        for x, y in np.round(points).astype(int):
            cv2.circle(out, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
    draw(truth, (60, 200, 60))
    for points, colour in zip(predictions, colours):
        draw(points, colour)
    return out


# Evaluations -----------------------------------------------------------------------

def scheme_groups(summary):
    """The drawing groups of an evaluation's landmark scheme (none when its
    summary only names a scheme this project does not know)."""
    scheme = scheme_of(summary)
    return scheme.groups if scheme else ()


def print_figure(caption, png, files):
    """A figure drawn for print: its PNG shown at half its pixels (it is
    drawn at twice a screen's density), its vector files linked (paths
    relative to the page)."""
    width = int.from_bytes(png[16:20], 'big') // 2      # the PNG header's width
    links = ' '.join('<a href="%s">%s</a>' % (html.escape(path), kind.upper())
                     for kind, path in files.items() if kind != 'png')
    return '<figure style="max-width: %dpx">%s<figcaption style="max-width: none">%s%s' \
        '</figcaption></figure>' % (width, image(png, caption, width=width),
                                    html.escape(caption), '; ' + links if links else '')


@functools.lru_cache(maxsize=8)
def _reader(rec):
    from data.recordio import RecordReader
    return RecordReader(rec)


def record_face(result, key):
    """The aligned RGB image of record `key` of an evaluated set."""
    return _reader(result['summary']['rec']).read_face(int(key))[0]


def image_name(result, key):
    return result['names'].get(key, 'no image name (the set has no .names)')


def _set_rows(results):
    rows = []
    for r in results:
        s = r['summary']
        rows.append([s['dataset'], s['images'], '%.3f' % s['nme'],
                     '%.3f' % s['nme_%s' % s['decoder']],
                     ', '.join('%s %.3f' % item for item in s['normalisations'].items()),
                     '%.4f' % s['auc@0.08'], '%.4f' % s['auc@0.10'],
                     '%.2f' % s['failure@0.08'], '%.2f' % s['failure@0.10'],
                     s['normalisation']])
    return rows


SET_HEADERS = ['set', 'images', 'NME % (published)', 'NME % (decoder)',
               'other normalisations %', 'AUC@0.08', 'AUC@0.10', 'FR@0.08 %', 'FR@0.10 %',
               'scheme, normalisation of NME']


def evaluation_page(results, title, figures, worst=12):
    """One evaluation (several sets of one model): the table of every set,
    and per set its print figures (`figures`: {set: report.write_figures'}),
    the distribution of per-image NME and the `worst` images."""
    parts = ['<h2>All sets</h2>', table(SET_HEADERS, _set_rows(results)),
             '<p class="note">NME %% (published): ground-truth box, argmax decoding; the '
             'other columns: the %s decoder (AUC and FR of the detector where one was '
             'used). The table as LaTeX and Markdown: <a href="%s">%s</a>, <a href="%s">%s</a>.'
             '</p>' % (html.escape(results[0]['summary']['decoder']), TEX, TEX, MARKDOWN,
                       MARKDOWN)]
    for r in results:
        s, errors = r['summary'], r['errors']
        parts.append('<h2>%s</h2>' % html.escape(s['dataset']))
        cells = [print_figure(*made) for made in figures[s['dataset']]]
        cells.append(print_figure('distribution of per-image NME (%)', plot_histogram(
            {s['dataset']: errors}, 'per-image NME on %s' % s['dataset']), {}))
        parts.append('<div class="figures">%s</div>' % ''.join(cells))
        parts.append('<h3>The %d worst images</h3>' % min(worst, len(errors)))
        cells = []
        for i in np.argsort(-errors)[:worst]:
            key = int(r['keys'][i])
            picture = draw_comparison(record_face(r, key), r['truth'][i], [r['pred'][i]],
                                      scheme_groups(s))
            cells.append(figure(image(jpeg(picture), 'record %d' % key, 'jpeg'),
                                'NME %.2f%%, record %d, %s' % (errors[i], key,
                                                             image_name(r, key))))
        parts.append('<p class="note">green: ground truth; red: prediction</p>' +
                     gallery(cells))
    return page(title, parts)


# Comparisons -------------------------------------------------------------------------

DISAGREEMENTS = 12


def model_label(result):
    """How pages and tables name the model of an evaluation: its label
    (`label_models`), else its folder name and checkpoint."""
    s = result['summary']
    return result.get('label') or '%s-%04d' % (s['model'], s['checkpoint'])


def label_models(results):
    """Give every model of `results` a name no other model has: its folder
    name and checkpoint, else its prefix (the folder's path) and checkpoint,
    else that and its report folder. One model evaluated on several sets
    keeps one name."""
    def model(r):
        return os.path.abspath(r['summary']['prefix']), r['summary']['checkpoint']

    def short(r):
        return '%s-%04d' % (r['summary']['model'], r['summary']['checkpoint'])

    def by_path(r):
        return '%s-%04d' % (os.path.relpath(r['summary']['prefix']), r['summary']['checkpoint'])

    def distinct(labels):
        models = {}
        for r, label in zip(results, labels):
            models.setdefault(label, set()).add(model(r))
        per_set = [(r['summary']['dataset'], label) for r, label in zip(results, labels)]
        return all(len(m) == 1 for m in models.values()) and len(set(per_set)) == len(per_set)

    for name in (short, by_path, lambda r: '%s (%s)' % (by_path(r), r['folder'])):
        labels = [name(r) for r in results]
        if distinct(labels):
            break
    for r, label in zip(results, labels):
        r['label'] = label
    return labels


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


def comparison_section(name, results, figures, paired):
    """The part of a comparison page for one set evaluated by several models:
    their table, each model against the first image by image (`paired`:
    [(sentence, statistics.Paired)]), the print figures (`figures`:
    report.write_figures') and the images where the first two disagree most."""
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
                    'AUC@0.10 (%s)' % first['decoder'], 'FR@0.10 %% (%s)' % first['decoder'],
                    'published NME %'], rows)]
    if paired:
        parts.append(table(['model vs the first', 'mean paired difference (% NME)',
                            '%d%% bootstrap CI' % round(100 * paired[0][1].level),
                            'Wilcoxon p', 'images better (first / this / ties)'],
                           [[model_label(r), '%+.3f' % p.mean, '%+.3f to %+.3f' % (p.low, p.high),
                             '%.3g' % p.p, '%d / %d / %d' % (p.wins_a, p.wins_b, p.ties)]
                            for r, (_, p) in zip(results[1:], paired)]))
        parts += ['<p class="note">%s</p>' % html.escape(sentence) for sentence, _ in paired]
    parts.append('<div class="figures">%s</div>' % ''.join(print_figure(*made)
                                                           for made in figures))
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
                                      [a['pred'][i], b['pred'][k]], scheme_groups(first))
            cells.append(figure(image(jpeg(picture), 'record %d' % key, 'jpeg'),
                                'apart %.2f%% of the box; NME %.2f%% vs %.2f%%; record %d, %s' % (
                                    apart[j], a['errors'][i], b['errors'][k], key,
                                    image_name(a, key))))
        parts.append('<h3>Where %s and %s disagree most</h3><p class="note">green: ground '
                     'truth; red: %s; blue: %s</p>%s' % (
                         html.escape(model_label(a)), html.escape(model_label(b)),
                         html.escape(model_label(a)), html.escape(model_label(b)),
                         gallery(cells)))
    return parts


# Training runs ------------------------------------------------------------------------

def run_page(prefix, curves_png):
    """The page of a training run: its curves, a row per validation (the
    best marked) and its configuration."""
    from core.evaluation.figures import loss_name
    from core.plumbing import runs
    rows = runs.validations(prefix)
    sets = [k for k in (rows[0] if rows else {}) if k.startswith('nme_')]
    best = runs.best_checkpoint(prefix)
    lines = [[r['step'], '%.2f' % float(r['epoch']), r['lr']] +
             ['%.3f' % float(r[k]) if r[k] else '' for k in sets] +
             ['best: checkpoint %04d' % best[1] if best and int(r['step']) == best[0] else '']
             for r in rows]
    parts = ['<h2>Curves</h2>', image(curves_png, 'loss and validation NME'),
             '<h2>Validations</h2>',
             table(['step', 'epoch', 'learning rate'] + ['NME %% %s' % k[4:] for k in sets]
                   + [''], lines)]
    settings = runs.saved_settings(prefix)
    if settings:
        flat = sorted((k, v) for k, v in settings.items() if not isinstance(v, dict))
        flat += sorted(('train.' + k, v) for k, v in settings.get('train', {}).items())
        parts += ['<h2>Configuration</h2>', table(['key', 'value'], flat)]
    return page('Training run %s' % prefix, parts,
                note='loss: %s; the dashed lines are the learning-rate steps' % loss_name(
                    settings))
