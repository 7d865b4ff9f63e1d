"""Tables of results as papers print them: a row per model, the sets as
columns (WFLW's attribute subsets in a table of their own), the best
measured value of each column in bold, and the published NMEs of model-zoo
checkpoints as rows of their own beside the measured ones.

Written as LaTeX (booktabs) and as Markdown from the evaluations' summaries,
so the numbers are those of summary.json, rounded for print.
"""
import collections
import os

from data import sets
from data.files import write_atomic

# The files a table is written to, beside its page.
TEX, MARKDOWN = 'table.tex', 'table.md'
# What a column can show: (heading, summary key, digits, lower is better).
METRICS = collections.OrderedDict((
    ('nme', ('NME (\\%)', 'NME (%)', 'nme', 2, True)),
    ('fr@0.08', ('FR$_{0.08}$ (\\%)', 'FR@0.08 (%)', 'failure@0.08', 2, True)),
    ('fr@0.10', ('FR$_{0.10}$ (\\%)', 'FR@0.10 (%)', 'failure@0.10', 2, True)),
    ('auc@0.08', ('AUC$_{0.08}$', 'AUC@0.08', 'auc@0.08', 4, False)),
    ('auc@0.10', ('AUC$_{0.10}$', 'AUC@0.10', 'auc@0.10', 4, False)),
))
TEX_SPECIAL = {'\\': '\\textbackslash{}', '&': '\\&', '%': '\\%', '$': '\\$', '#': '\\#',
               '_': '\\_', '{': '\\{', '}': '\\}', '~': '\\textasciitilde{}',
               '^': '\\textasciicircum{}'}


def tex_escape(text):
    return ''.join(TEX_SPECIAL.get(c, c) for c in str(text))


class Table(collections.namedtuple('Table', 'title sets metrics rows decoder')):
    """One printed table: `rows` are (label, {(set, metric): text}, {(set,
    metric): bold}, published); `decoder` the one FR and AUC were of."""


def _cell(summary, metric):
    _, _, key, digits, _ = METRICS[metric]
    return '%.*f' % (digits, summary[key])


def build(results, labels, metrics=('nme',)):
    """The tables of evaluations `results` (load_result's, one model each
    labelled by `labels`): one per sets table (sets.get(name).table), in
    the sets' order of the evaluation table, then of first appearance."""
    order = list(sets.SETS)
    names = sorted({r['summary']['dataset'] for r in results},
                   key=lambda n: (order.index(n) if n in order else len(order), n))
    models = list(dict.fromkeys(labels))
    by = {(label, r['summary']['dataset']): r['summary'] for r, label in zip(results, labels)}
    tables = []
    for title in dict.fromkeys(sets.get(n).table for n in names):
        columns = [n for n in names if sets.get(n).table == title]
        text = {(m, n, k): _cell(by[m, n], k) for m in models for n in columns for k in metrics
                if (m, n) in by}
        best = {}
        for n in columns:
            for k in metrics:
                lower = METRICS[k][4]
                values = [float(text[m, n, k]) for m in models if (m, n, k) in text]
                if len(values) > 1:
                    best[n, k] = min(values) if lower else max(values)
        rows = [(m, {(n, k): text.get((m, n, k), '') for n in columns for k in metrics},
                 {(n, k): (m, n, k) in text and float(text[m, n, k]) == best.get((n, k))
                  for n in columns for k in metrics}, False) for m in models]
        for m in models:
            published = {(n, 'nme'): '%.2f' % by[m, n]['published_nme'] for n in columns
                         if (m, n) in by and by[m, n].get('published_nme') is not None}
            if published and 'nme' in metrics:
                rows.append(('%s (published)' % m, published, {}, True))
        tables.append(Table(title, columns, list(metrics), rows,
                            results[0]['summary'].get('decoder', 'argmax')))
    return tables


def _caption(table):
    rates = [k for k in table.metrics if k != 'nme']
    return ('%s%s: NME by the published protocol (ground-truth box, argmax decoding)%s; the '
            'best measured value of each column in bold%s.' % (
                'WFLW attribute subsets, ' if table.title == sets.WFLW_SUBSETS else '',
                ', '.join(METRICS[k][1] for k in table.metrics),
                '; %s of the %s decoder' % (' and '.join(METRICS[k][1] for k in rates),
                                            table.decoder) if rates else '',
                '; published figures in italics' if any(r[3] for r in table.rows) else ''))


def _marked(table, cells, bold, published, strong, italic):
    """The cells of a row in column order, the best `strong`, a published
    figure `italic` (format strings)."""
    values = []
    for n in table.sets:
        for k in table.metrics:
            v = cells.get((n, k), '')
            values.append(strong % v if bold.get((n, k)) else (italic % v if published and v
                                                               else v))
    return values


def to_tex(tables):
    """LaTeX of the tables (each a table environment; needs booktabs)."""
    out = ['% Needs \\usepackage{booktabs}. Numbers from each evaluation\'s summary.json.']
    for t in tables:
        many = len(t.metrics) > 1
        out += ['\\begin{table}[t]', '\\centering',
                '\\caption{%s}' % tex_escape(_caption(t)),
                '\\begin{tabular}{l%s}' % ('r' * (len(t.sets) * len(t.metrics))), '\\toprule']
        if many:
            out.append('Model & %s \\\\' % ' & '.join(
                '\\multicolumn{%d}{c}{%s}' % (len(t.metrics), tex_escape(sets.get(n).title))
                for n in t.sets))
            out.append(''.join('\\cmidrule(lr){%d-%d}' % (2 + i * len(t.metrics),
                                                         1 + (i + 1) * len(t.metrics))
                               for i in range(len(t.sets))))
            out.append(' & %s \\\\' % ' & '.join(METRICS[k][0] for n in t.sets
                                                 for k in t.metrics))
        else:
            out.append('Model & %s \\\\' % ' & '.join(tex_escape(sets.get(n).title)
                                                     for n in t.sets))
        out.append('\\midrule')
        for label, cells, bold, published in t.rows:
            out.append('%s & %s \\\\' % (tex_escape(label), ' & '.join(
                _marked(t, cells, bold, published, '\\textbf{%s}', '\\textit{%s}'))))
        out += ['\\bottomrule', '\\end{tabular}', '\\end{table}', '']
    return '\n'.join(out)


def to_markdown(tables):
    """Markdown of the tables (pipe tables, the best in bold)."""
    out = []
    for t in tables:
        heads = ['%s %s' % (sets.get(n).title, METRICS[k][1]) if len(t.metrics) > 1
                 else sets.get(n).title for n in t.sets for k in t.metrics]
        out += ['**%s**' % _caption(t), '', '| Model | %s |' % ' | '.join(heads),
                '|---|%s' % ('---:|' * len(heads))]
        for label, cells, bold, published in t.rows:
            out.append('| %s | %s |' % (label.replace('|', '\\|'), ' | '.join(
                _marked(t, cells, bold, published, '**%s**', '*%s*'))))
        out.append('')
    return '\n'.join(out)


def write(folder, results, labels, metrics=('nme',)):
    """Write FOLDER/TEX and FOLDER/MARKDOWN; returns their paths."""
    tables = build(results, labels, metrics)
    return [write_atomic(os.path.join(folder, TEX), to_tex(tables)),
            write_atomic(os.path.join(folder, MARKDOWN), to_markdown(tables))]
