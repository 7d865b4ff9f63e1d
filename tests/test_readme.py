"""The README is the user's guide: every command in it works, every picture
it shows exists and is made by `make figures`, its Python example runs, and
its "Train on your data" walk-through goes from .pts folders to a trained
checkpoint and its NME."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SMALL_NETWORK, write_small_checkpoint

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
FAST = SMALL_NETWORK + ['--set', 'losstype=ce', '--per-batch-size', '8', '--lr', '1e-3',
                       '--optimizer', 'adam', '--lr-epoch-step', '3', '--validate-every', '10',
                       '--min-validations', '0', '--workers', '0']


def blocks(language):
    return re.findall(r'```%s\n(.*?)```' % language, README, flags=re.S)


def commands():
    """The command lines of the README's bash blocks (a line ending in a
    backslash continues on the next), without their comments."""
    found = []
    for block in blocks('bash'):
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split(' # ')[0].strip()
            if line:
                found.append(line)
    return found


# Runs a script as `python SCRIPT ARGS` would, but stops with exit code 0
# and the word PARSED as soon as its own argument parser has accepted every
# argument: the command is checked by its real parser, and nothing runs.
PARSE_ONLY = """
import argparse, runpy, sys
original = argparse.ArgumentParser.parse_args
def parse_args(self, args=None, namespace=None):
    original(self, args, namespace)
    print('PARSED')
    sys.exit(0)
argparse.ArgumentParser.parse_args = parse_args
target, sys.argv = sys.argv[1], sys.argv[1:]
if target == '-m':
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
else:
    runpy.run_path(target, run_name='__main__')
"""


def parsed_by_its_script(words, env=None):
    """Run `python ...` words with PARSE_ONLY; (exit code, output)."""
    script = ['-m', words[2]] if words[1] == '-m' else [str(ROOT / words[1])]
    rest = words[3:] if words[1] == '-m' else words[2:]
    proc = subprocess.run([sys.executable, '-c', PARSE_ONLY] + script + rest, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))
    return proc.returncode, proc.stdout + proc.stderr


def section(title):
    return README.split('## ' + title, 1)[1].split('\n## ', 1)[0]


def env_and_words(command):
    """(environment assignments, the command's words)."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r'^[A-Z_]+=', words[0]):
        key, value = words.pop(0).split('=', 1)
        env[key] = value
    return env, words


def test_readme_shows_the_two_commands_that_ci_runs():
    assert 'make demo' in commands() and 'make test' in commands()
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'make setup' in ci and 'make test' in ci


@pytest.mark.parametrize('command', commands())
def test_readme_command_works(command, tmp_path):
    env, words = env_and_words(command)
    if words[0] == 'make':
        assert re.search(r'^%s:' % re.escape(words[1]), (ROOT / 'Makefile').read_text(), re.M)
        proc = subprocess.run(['make', '-n'] + words[1:], cwd=str(ROOT), capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        return
    if words[0] == './train.sh':
        test_train_sh_help_starts_nothing(tmp_path)
        return
    if words[0] == 'docker':
        # The image is built from the project's Dockerfile; what it runs is
        # a command of the project, checked like any other.
        if words[1] == 'build':
            assert (ROOT / words[words.index('-f') + 1]).is_file()
            return
        words = words[words.index('python'):]
    assert words[0] == 'python', command
    if words[1] == '-c':
        proc = subprocess.run([sys.executable] + words[1:], cwd=str(ROOT), capture_output=True,
                              text=True, env=dict(os.environ, **env))
        assert proc.returncode == 0, proc.stderr
        return
    code, output = parsed_by_its_script(words, env)
    assert code == 0 and 'PARSED' in output, command + '\n' + output[-2000:]


def test_a_misspelt_flag_in_a_command_fails_its_check():
    """The check parses every argument: a flag the script does not have, or
    a wrong value, is caught, as a user pasting the line would be."""
    for line, words in (('python test.py photos/ --prefix m --outptu aligned', 'unrecognized'),
                        ('python -m tools.launch --cluster ssh --num-workers two python x.py',
                         'invalid int value'),
                        ('python test_rec_nme.py --rec a.rec --prefix m --decoder best',
                         'invalid choice')):
        code, output = parsed_by_its_script(shlex.split(line))
        assert code == 2 and words in output, line
    code, output = parsed_by_its_script(shlex.split('python test.py photos/ --prefix m'))
    assert code == 0 and 'PARSED' in output


def test_train_sh_help_starts_nothing(tmp_path):
    model_dir = tmp_path / 'never-made'
    env = dict(os.environ, MODEL_DIR=str(model_dir), PY='false-python-that-does-not-exist')
    for args, code in ((['--help'], 0), (['-h'], 0), (['--frobnicate'], 2)):
        proc = subprocess.run([str(ROOT / 'train.sh')] + args, capture_output=True, text=True,
                              env=env, timeout=30)
        assert proc.returncode == code
        text = proc.stdout + proc.stderr
        assert 'usage: ./train.sh' in text and 'MODEL_DIR=%s' % model_dir in text
    assert not model_dir.exists()


@pytest.mark.long
def test_every_picture_exists_and_make_figures_makes_them(tmp_path):
    pictures = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', README)
    assert len(pictures) >= 3
    for picture in pictures:
        assert (ROOT / picture).is_file(), picture
        assert cv2.imread(str(ROOT / picture)) is not None, picture
    make = subprocess.run(['make', '-n', 'figures'], cwd=str(ROOT), capture_output=True,
                          text=True)
    assert '-m tools.figures --measure --out docs/figures --readme README.md' in make.stdout
    out = tmp_path / 'figures'
    out.mkdir()
    measured = {'machine': '2 cores of a test CPU, no GPU',
                'rows': [['`make demo`', '1.0 min', '99 MB']],
                'table': '| what | time | peak memory |\n|---|---|---|\n| `make demo` | 1.0 min | '
                         '99 MB |'}
    (out / 'expectations.json').write_text(json.dumps(measured))
    readme = tmp_path / 'README.md'
    readme.write_text(README)
    proc = subprocess.run([sys.executable, '-m', 'tools.figures', '--out', str(out),
                           '--train-faces', '64', '--test-faces', '16', '--epochs', '3',
                           '--readme', str(readme)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from tools.check_page import find_browser
    for picture in pictures:
        if Path(picture).name == 'report.png' and find_browser() is None:
            continue                       # the screenshot needs Chromium
        if Path(picture).name == 'paper.png':
            # This demo is too short to improve on 100% NME: it keeps one
            # checkpoint, nothing to compare (the next test makes the picture).
            assert 'the demo saved one checkpoint; the paper picture is not remade' in proc.stdout
            continue
        made = cv2.imread(str(out / Path(picture).name))
        assert made is not None and made.shape[1] <= 720, picture
    from tools.figures import TABLE_MARKS, quote
    found = json.loads((out / 'numbers.json').read_text())
    written = readme.read_text()
    assert found['steps'] > 0 and quote(found) in written
    table = written.split(TABLE_MARKS[0])[1].split(TABLE_MARKS[1])[0]
    assert '2 cores of a test CPU' in table and '| `make demo` | 1.0 min | 99 MB |' in table
    assert '`make setup`' not in table


def test_make_figures_compares_a_demos_first_and_best_checkpoints(trained_synth, tmp_path):
    """The paper picture: a demo-like folder (a run with three checkpoints
    and its test set) gives tools.compare's page, tables and figures."""
    from tools.figures import paper
    prefix, data = trained_synth
    demo = tmp_path / 'demo'
    demo.mkdir()
    (demo / 'model').symlink_to(Path(prefix).parent)
    (demo / 'data').symlink_to(data)
    out = tmp_path / 'out'
    shot = paper(str(demo), str(out))
    assert cv2.imread(shot) is not None
    compared = out / 'compare'
    assert {'compare.html', 'table.tex', 'table.md'} <= {p.name for p in compared.iterdir()}
    rows = [line for line in (compared / 'table.md').read_text().splitlines()
            if line.startswith('| model-')]
    assert [r.split('|')[1].strip() for r in rows] == ['model-0001', 'model-0003']


def test_the_readme_quotes_what_make_figures_measured():
    """The demo's figures and the what-to-expect table in the README are
    the last `make figures` run's."""
    from tools.figures import MARKS, TABLE_MARKS, expectations_text, quote
    found = json.loads((ROOT / 'docs' / 'figures' / 'numbers.json').read_text())
    assert MARKS[0] + quote(found) + MARKS[1] in README
    measured = json.loads((ROOT / 'docs' / 'figures' / 'expectations.json').read_text())
    assert TABLE_MARKS[0] + expectations_text(measured) + TABLE_MARKS[1] in README


def test_the_python_api_example_runs(tmp_path):
    example, = blocks('python')
    write_small_checkpoint(tmp_path / 'models' / 'model-hg2d3-cab' / 'model')
    shutil.copytree(ROOT / 'sample-images', tmp_path / 'sample-images')
    proc = subprocess.run([sys.executable, '-c', example + '\nprint(len(faces), len(by_image))'],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == '1 4' and len(lines) >= 2          # one box given, four photos


def _pts_folders(shared, root):
    """The dlib faces as a 300-W style folder per split: a photo copy and a
    1-based .pts per face."""
    folder = shared / 'data' / 'dlib-faces'
    for split, xml in (('train', 'training_with_face_landmarks.xml'),
                       ('test', 'testing_with_face_landmarks.xml')):
        out = root / 'my-faces' / split
        out.mkdir(parents=True)
        for image in ET.parse(folder / xml).getroot().iter('image'):
            for k, box in enumerate(image.iter('box')):
                stem = '%s_%d' % (Path(image.get('file')).stem, k)
                shutil.copy(folder / image.get('file'), out / (stem + '.jpg'))
                parts = sorted(box.iter('part'), key=lambda p: int(p.get('name')))
                points = np.array([[float(p.get('x')), float(p.get('y'))] for p in parts]) + 1
                with open(out / (stem + '.pts'), 'w') as f:
                    f.write('version: 1\nn_points: 68\n{\n')
                    f.writelines('%.3f %.3f\n' % tuple(p) for p in points)
                    f.write('}\n')


@pytest.mark.long
def test_the_walk_through_from_pts_folders_to_a_checkpoint_and_its_nme(shared, tmp_path):
    _pts_folders(shared, tmp_path)
    walk = re.findall(r'```bash\n(.*?)```', section('Train on your data'), flags=re.S)[0]
    outputs = []
    for line in walk.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == 'python'
        command = [sys.executable] + (words[1:3] if words[1] == '-m' else
                                      [str(ROOT / words[1])]) + words[(3 if words[1] == '-m'
                                                                       else 2):]
        if words[1] == 'train.py':
            command += FAST                                # small and quick, on the CPU
        proc = subprocess.run(command, cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert proc.returncode == 0, line + '\n' + proc.stdout[-2000:] + proc.stderr[-2000:]
        outputs.append(proc.stdout)
    assert re.search(r'wrote \d+ faces to my-data/train.rec', outputs[0])
    assert list((tmp_path / 'my-models' / 'hg').glob('model-0*.params'))
    nme = float(re.search(r'nme on my_test is ([0-9.]+)%', outputs[3]).group(1))
    print('walk-through NME on the dlib test faces after a few CPU steps: %.1f%%' % nme)
    assert np.isfinite(nme)
    assert list((tmp_path / 'my-results').glob('*.jpg.json'))


def test_every_page_the_project_names_is_in_the_project():
    """Docstrings, the README and docs/ cite only pages a clone has (or
    files the project writes, such as a report's Markdown table)."""
    from core.evaluation.tables import MARKDOWN
    tracked = subprocess.run(['git', 'ls-files', '*.py', '*.md', '*.sh'], cwd=str(ROOT),
                             capture_output=True, text=True).stdout.split()
    named = {}
    for path in tracked:
        text = (ROOT / path).read_text()
        for page in re.findall(r'[\w./-]*\b[A-Za-z_-]+\.md\b', text):
            named.setdefault(page, path)
    missing = {page: path for page, path in named.items() if page != MARKDOWN and
               not any((ROOT / base / page.lstrip('./')).is_file()
                          for base in ('.', 'docs', os.path.dirname(path)))}
    assert not missing, missing
