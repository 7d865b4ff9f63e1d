"""Pages to look at results: the evaluation page of test_rec_nme.py, two
models compared, and a training run's page; every picture they reference
decodes, their numbers are those of summary.json, and a real browser opens
them without a console message."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from conftest import write_small_checkpoint
from core.evaluation import figures, statistics
from core.evaluation.report import load_result
from core.plumbing import runs
from tools import check_page, compare, plot_log


class Cells(html.parser.HTMLParser):
    """The text of every table row of a page."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == 'tr':
            self._row = []
        elif tag in ('td', 'th'):
            self._cell = ''

    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == 'tr':
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def rows_of(path):
    parser = Cells()
    parser.feed(path.read_text())
    return parser.rows


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory, trained_synth):
    """A small trained network and an untrained one, each evaluated by
    test_rec_nme.py on two synthetic sets."""
    import test_rec_nme
    root = tmp_path_factory.mktemp('reports')
    trained, data = trained_synth
    root.joinpath('trained').symlink_to(os.path.dirname(trained))
    # Named as a zoo model's folder: its published figures come beside.
    untrained = write_small_checkpoint(root / 'model-hg2d3-cab' / 'model')
    assert test_rec_nme.main(['--all', '--set', "test_targets=['synth_test']", '--prefix',
                              trained, '--output', str(root / 'nme'), '--backend', 'mxnet']) == 0
    for name in ('ibug', 'synth_test'):
        assert test_rec_nme.main(['--rec', str(data / (name + '.rec')), '--prefix', untrained,
                                  '--output', str(root / 'nme'), '--backend', 'mxnet']) == 0
    return root


def test_the_evaluation_page_shows_every_set_with_the_numbers_of_its_summary(evaluated):
    page = next((evaluated / 'nme').glob('report-trained-*/report.html'))
    problems, count = check_page.picture_problems(str(page))
    assert problems == []
    assert count == (4 + 12) + (4 + 10)    # CED, point errors, yaw, histogram, the worst
    summary = json.loads(next((evaluated / 'nme').glob(
        'synth_test-trained-*/summary.json')).read_text())
    row = next(r for r in rows_of(page) if r and r[0] == 'synth_test')
    assert row[1] == str(summary['images'])
    assert row[2] == '%.3f' % summary['nme']
    assert row[3] == '%.3f' % summary['nme_subpixel']
    assert row[6] == '%.4f' % summary['auc@0.10'] and row[8] == '%.2f' % summary['failure@0.10']
    text = page.read_text()
    assert 'The 12 worst images' in text and 'The 10 worst images' in text
    assert 'green: ground truth; red: prediction' in text
    assert 'mean error of each point' in text


def test_two_models_compared_in_one_page(evaluated, capsys):
    folders = [str(next((evaluated / 'nme').glob('%s-%s-*' % (name, model))))
               for model in ('trained', 'model-hg2d3-cab') for name in ('ibug', 'synth_test')]
    out = evaluated / 'compare'
    assert compare.main(folders + ['--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'wrote %s (2 sets, 2 models)' % (out / 'compare.html') in printed
    # Per set, the second model against the first, image by image.
    for title, images in (('IBUG', 12), ('synth_test', 10)):
        assert re.search(r'%s \(%d images\):\n  model-hg2d3-cab-0000 vs trained-\d{4}: mean '
                         r'paired difference \+[0-9.]+%% NME \(95%% CI \+[0-9.]+ to \+[0-9.]+, '
                         r'10000 bootstrap resamples, seed 0\); Wilcoxon signed-rank p = '
                         % (title, images), printed), printed
    page = out / 'compare.html'
    problems, count = check_page.picture_problems(str(page))
    assert problems == []
    assert count == (3 + 12) + (3 + 10)    # CED, point errors, yaw and the disagreements
    tables = [r for r in rows_of(page) if r and r[0].startswith(('trained', 'model-'))]
    rows = [r for r in tables if len(r) == 9]
    assert len(rows) == 4
    # The paired table: the mean of per-image differences is the difference of means.
    paired = [r for r in tables if len(r) == 5]
    assert [r[0] for r in paired] == ['model-hg2d3-cab-0000'] * 2
    for r, name in zip(paired, ('ibug', 'synth_test')):
        nme = {m: json.loads(next((evaluated / 'nme').glob('%s-%s-*' % (name, m))).joinpath(
            'summary.json').read_text())['nme'] for m in ('trained', 'model-hg2d3-cab')}
        assert float(r[1]) == pytest.approx(nme['model-hg2d3-cab'] - nme['trained'], abs=0.0015)
    for folder in folders:
        summary = json.loads((evaluated / 'nme' / folder / 'summary.json').read_text())
        label = '%s-%04d' % (summary['model'], summary['checkpoint'])
        assert any(r[0] == label and r[4] == '%.3f' % summary['nme'] for r in rows), label
    trained = [r for r in rows if r[0].startswith('trained')]
    untrained = [r for r in rows if r[0].startswith('model-hg2d3-cab')]
    for a, b in zip(trained, untrained):
        assert a[5] == '+0.000'
        assert float(b[5]) == pytest.approx(float(b[4]) - float(a[4]), abs=0.0015)
    assert 'hourglass, resnet block, 1 stack' in page.read_text()
    # The zoo model's published IBUG figure beside its measured one; none elsewhere.
    assert [r[8] for r in untrained] == ['6.974', '']
    assert [r[8] for r in trained] == ['', '']
    # An earlier page is kept; a folder that is no evaluation is one line.
    assert compare.main(folders + ['--out', str(out)]) == 1
    assert 'exists; choose another --out' in capsys.readouterr().err
    assert compare.main([str(evaluated / 'trained'), '--out', str(evaluated / 'c2')]) == 1
    assert 'is not an evaluation folder of test_rec_nme.py' in capsys.readouterr().err


def test_the_training_page_marks_the_learning_rate_steps_and_the_best_checkpoint(evaluated):
    log = evaluated / 'trained' / 'model-log.csv'
    assert plot_log.main([str(log), '--html']) == 0
    page = evaluated / 'trained' / 'model-report.html'
    assert check_page.picture_problems(str(page)) == ([], 1)
    state = json.loads((evaluated / 'trained' / 'model-state.json').read_text())
    best = [r for r in rows_of(page) if r and r[-1].startswith('best')]
    assert len(best) == 1 and best[0][0] == str(state['best_step'])
    assert best[0][-1] == 'best: checkpoint %04d' % state['best_checkpoint']
    assert 'spatial softmax cross-entropy' in page.read_text()
    prefix = str(evaluated / 'trained' / 'model')
    assert figures.lr_steps(runs.saved_settings(prefix), runs.read_log(prefix)) == [100]


@pytest.mark.skipif(check_page.find_browser() is None,
                    reason='no Chromium installed (apt-get install chromium) to open the pages')
def test_a_real_browser_opens_every_page_without_a_console_message(evaluated, tmp_path):
    compare_page = evaluated / 'compare' / 'compare.html'
    pages = [next((evaluated / 'nme').glob('report-trained-*/report.html'))]
    pages += [compare_page] if compare_page.exists() else []
    for n, page in enumerate(pages):
        shot = tmp_path / ('shot%d.png' % n)
        assert check_page.main([str(page), '--screenshot', str(shot)]) == 0
        assert shot.stat().st_size > 10000
    broken = tmp_path / 'broken.html'
    broken.write_text('<html><body><img src="gone.png"><script>missing()</script></body></html>')
    assert check_page.main([str(broken), '--screenshot', str(tmp_path / 'b.png')]) == 1


def test_the_page_names_each_set_and_the_scheme(evaluated):
    page = next((evaluated / 'nme').glob('ibug-model-hg2d3-cab-*/report.html')).read_text()
    assert re.search(r'<h2>ibug</h2>', page) and re.search(r'<h2>synth_test</h2>', page) is None
    assert 'iBUG 68 points, normalised by eyes' in page


# For a paper --------------------------------------------------------------------------

def _bootstrap_reference(values, resamples, seed, level):
    """The percentile bootstrap of the mean drawn one resample at a time,
    the percentiles interpolated by hand."""
    rng = np.random.default_rng(seed)
    means = np.sort([sum(values[rng.integers(0, len(values), len(values))]) / len(values)
                     for _ in range(resamples)])

    def percentile(q):
        at = (resamples - 1) * q
        below = int(np.floor(at))
        return means[below] + (at - below) * (means[min(below + 1, resamples - 1)] - means[below])
    return percentile((1 - level) / 2), percentile(1 - (1 - level) / 2)


def _wilcoxon_exact(differences):
    """The exact two-sided p-value of the signed-rank statistic (no ties nor
    zeros): the null distribution counted over all 2^n sign patterns."""
    ranks = np.empty(len(differences))
    ranks[np.argsort(np.abs(differences))] = np.arange(1, len(differences) + 1)
    positive = int(ranks[differences > 0].sum())
    counts = np.zeros(len(differences) * (len(differences) + 1) // 2 + 1)
    counts[0] = 1
    for rank in range(1, len(differences) + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    cdf = counts / counts.sum()
    return min(1.0, 2 * min(cdf[:positive + 1].sum(), cdf[positive:].sum()))


def test_the_paired_statistics_agree_with_references_computed_apart(evaluated):
    from scipy.stats import wilcoxon
    a = load_result(next((evaluated / 'nme').glob('ibug-trained-*')))
    b = load_result(next((evaluated / 'nme').glob('ibug-model-hg2d3-cab-*')))
    assert a['keys'] == b['keys']
    # The two networks on the same 12 images, and 30 mixed-sign differences.
    mixed = np.random.default_rng(3).normal(0.2, 1.0, 30)
    for first, second in ((a['errors'], b['errors']), (np.zeros(30), mixed)):
        result = statistics.paired(first, second, resamples=3000, seed=11, level=0.9)
        diff = np.asarray(second, float) - np.asarray(first, float)
        low, high = _bootstrap_reference(diff, 3000, 11, 0.9)
        assert (result.low, result.high) == (pytest.approx(low, abs=1e-9),
                                             pytest.approx(high, abs=1e-9))
        assert result.mean == pytest.approx(diff.mean()) and result.low < result.mean < result.high
        assert result.p == pytest.approx(_wilcoxon_exact(diff), rel=1e-9)
        assert result.p == pytest.approx(wilcoxon(diff).pvalue, rel=1e-9)
        assert result.wins_a + result.wins_b + result.ties == len(diff)
    # Another seed, another interval; the same seed, the same one.
    assert statistics.paired(np.zeros(30), mixed, 3000, 12).low != result.low
    assert statistics.paired(np.zeros(30), mixed, 3000, 11, 0.9) == result


def test_compare_refuses_evaluations_of_other_images_in_one_line(evaluated, tmp_path, capsys):
    import test_rec_nme
    from conftest import synth_sets
    other = synth_sets(tmp_path / 'data', ibug=5)
    trained = str(evaluated / 'trained' / 'model')
    assert test_rec_nme.main(['--rec', str(other / 'ibug.rec'), '--prefix', trained,
                              '--output', str(tmp_path / 'other'), '--backend', 'mxnet']) == 0
    capsys.readouterr()
    ours = str(next((evaluated / 'nme').glob('ibug-trained-*')))
    assert compare.main([ours, str(next((tmp_path / 'other').glob('ibug-*'))), '--out',
                         str(tmp_path / 'cmp')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(
        r'error: \S+model-\d{4}( \(\S+\))? and \S+model-\d{4}( \(\S+\))? on ibug are not of '
        r'the same images \(12 and 5 records; records \[5, 6, 7, 8, 9\] only in the first\): compare',
        err[0]), err
    assert not (tmp_path / 'cmp').exists()


def _markdown_rows(path):
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith('| ') and not line.startswith('| Model'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows[cells[0]] = cells[1:]
    return rows


def test_the_tables_hold_the_summaries_numbers_and_compile(evaluated, tmp_path, capsys):
    names = [(model, name) for model in ('trained', 'model-hg2d3-cab')
             for name in ('ibug', 'synth_test')]
    folders = [next((evaluated / 'nme').glob('%s-%s-*' % (name, model)))
               for model, name in names]
    out = tmp_path / 'paper'
    assert compare.main([str(f) for f in folders] + ['--out', str(out), '--columns', 'nme',
                                                     'fr@0.10', 'auc@0.10']) == 0
    assert 'tables %s, %s' % (out / 'table.tex', out / 'table.md') in capsys.readouterr().out
    rows = _markdown_rows(out / 'table.md')
    summaries = {pair: json.loads((f / 'summary.json').read_text())
                 for pair, f in zip(names, folders)}
    labels = {model: '%s-%04d' % (summaries[model, 'ibug']['model'],
                                  summaries[model, 'ibug']['checkpoint'])
              for model in ('trained', 'model-hg2d3-cab')}
    assert set(rows) == {labels['trained'], labels['model-hg2d3-cab'],
                         labels['model-hg2d3-cab'] + ' (published)'}
    for model in ('trained', 'model-hg2d3-cab'):
        cells = [c.strip('*') for c in rows[labels[model]]]
        expected = []
        for name in ('ibug', 'synth_test'):
            s = summaries[model, name]
            expected += ['%.2f' % s['nme'], '%.2f' % s['failure@0.10'], '%.4f' % s['auc@0.10']]
        assert cells == expected
    # The lower NME in bold; the zoo model's published IBUG figure in italics.
    better = min(('trained', 'model-hg2d3-cab'), key=lambda m: summaries[m, 'ibug']['nme'])
    assert rows[labels[better]][0].startswith('**')
    assert rows[labels['model-hg2d3-cab'] + ' (published)'] == ['*6.97*', '', ''] + [''] * 3
    tex = (out / 'table.tex').read_text()
    assert tex.count('\\begin{tabular}') == tex.count('\\end{tabular}') == 1
    body = [line for line in tex.splitlines() if line.endswith('\\\\') and '&' in line
            and 'multicolumn' not in line]
    assert {line.count('&') for line in body} == {6}   # a label and 2 sets x 3 columns
    if shutil.which('pdflatex') is None:
        pytest.skip('no pdflatex (apt-get install texlive-latex-recommended) to compile table.tex')
    (tmp_path / 'paper.tex').write_text(
        '\\documentclass{article}\\usepackage{booktabs}\\begin{document}\\input{%s}'
        '\\end{document}\n' % (out / 'table.tex'))
    proc = subprocess.run(['pdflatex', '-interaction=nonstopmode', '-halt-on-error',
                           'paper.tex'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    if shutil.which('pdftotext'):
        text = subprocess.run(['pdftotext', str(tmp_path / 'paper.pdf'), '-'],
                              capture_output=True, text=True, check=True).stdout
        assert '%.2f' % summaries['trained', 'synth_test']['nme'] in text


def test_the_figures_for_print_open_as_pdf_and_svg(evaluated, tmp_path):
    report = next((evaluated / 'nme').glob('report-trained-*'))
    made = sorted((report / 'figures').iterdir())
    stems = sorted({p.stem for p in made})
    assert stems == sorted('%s-%s' % (kind, name) for kind in ('ced', 'point-errors', 'yaw')
                           for name in ('ibug', 'synth_test'))
    assert sorted(p.name for p in made) == sorted('%s.%s' % (s, kind) for s in stems
                                                  for kind in figures.FORMATS)
    page = (report / 'report.html').read_text()
    for stem in stems:
        assert 'href="figures/%s.pdf"' % stem in page and 'href="figures/%s.svg"' % stem in page
        root = ET.parse(str(report / 'figures' / (stem + '.svg'))).getroot()
        assert root.tag.endswith('svg') and float(root.get('width').rstrip('pt')) > 100
    if shutil.which('pdftoppm') is None:
        pytest.skip('no pdftoppm (apt-get install poppler-utils) to render the PDF figures')
    for stem in stems:
        subprocess.run(['pdftoppm', '-png', '-r', '100', '-singlefile',
                        str(report / 'figures' / (stem + '.pdf')), str(tmp_path / stem)],
                       check=True, timeout=60)
        picture = cv2.imread(str(tmp_path / (stem + '.png')))
        assert picture is not None and picture.shape[1] > 250 and picture.std() > 10
    if check_page.find_browser():
        shot = tmp_path / 'svg.png'
        svg = report / 'figures' / 'point-errors-ibug.svg'
        assert check_page.open_in_browser(str(svg), str(shot), 800, 600) == []
        assert cv2.imread(str(shot)).std() > 10
