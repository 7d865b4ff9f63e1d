"""Pages to look at results: the evaluation page of test_rec_nme.py, two
models compared, and a training run's page; every picture they reference
decodes, their numbers are those of summary.json, and a real browser opens
them without a console message."""
import html.parser
import json
import os
import re

import pytest

from conftest import write_small_checkpoint
from core.evaluation import figures
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
    assert count == (3 + 12) + (3 + 10)    # CED, histogram, hard points, the worst (all)
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
    assert 'wrote %s (2 sets, 2 models)' % (out / 'compare.html') in capsys.readouterr().out
    page = out / 'compare.html'
    problems, count = check_page.picture_problems(str(page))
    assert problems == []
    assert count == (1 + 12) + (1 + 10)    # a CED figure and the disagreements (all) per set
    rows = [r for r in rows_of(page) if r and r[0].startswith(('trained', 'model-'))]
    assert len(rows) == 4
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
