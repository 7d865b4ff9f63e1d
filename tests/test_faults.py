"""No mistake loses work, round three: the cases a fault matrix found on a
fresh clone, each run for real (scripts, record sets, photos, a damaged
video, pages, downloads), and what a new user trips on. Each says in one
line what is wrong and how to go on, deletes nothing before the new work
can start, and exits non-zero where nothing was done."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import synth_sets, wait_for, write_small_checkpoint

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()


def _run(*args, cwd=ROOT, timeout=300, env=None):
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _one_line(proc, *words):
    """The process failed with one error line holding `words`, no traceback."""
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode != 0, proc.stdout[-1000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert all(w in proc.stderr for w in words), proc.stderr[-2000:]
    return lines


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return synth_sets(tmp_path_factory.mktemp('faults-data'), train=16, ibug=4)


# Nothing lost ---------------------------------------------------------------------

def test_a_new_demo_that_fails_or_is_stopped_leaves_the_earlier_one(tmp_path):
    earlier = tmp_path / 'demo'
    (earlier / 'model').mkdir(parents=True)
    (earlier / 'model' / 'model-0003.params').write_bytes(b'an earlier demo')
    kept = _digests(earlier)
    proc = _run('-m', 'tools.demo', '--output', earlier, '--overwrite', '--train-faces', '0',
                '--test-faces', '2', '--epochs', '1')
    _one_line(proc, 'demo step failed', 'nothing of this demo is kept (the earlier demo in')
    assert _digests(earlier) == kept and sorted(os.listdir(tmp_path)) == ['demo']
    log = tmp_path / 'log.txt'
    proc = subprocess.Popen([sys.executable, '-m', 'tools.demo', '--output', str(earlier),
                             '--overwrite', '--train-faces', '3000'], cwd=str(ROOT),
                            stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    wait_for(lambda: 'synthetic training faces' in log.read_text(), 60, 'the demo to start')
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert 'interrupted; nothing of this demo is kept' in log.read_text()
    assert _digests(earlier) == kept and sorted(os.listdir(tmp_path)) == ['demo', 'log.txt']


def test_overwrite_with_a_misspelt_validation_set_deletes_nothing(faces, tmp_path, capsys):
    import train
    prefix = write_small_checkpoint(tmp_path / 'run' / 'model')
    before = _digests(tmp_path / 'run')
    code = train.main(['--prefix', prefix, '--overwrite', '--set', 'dataset_path=%s' % faces,
                       '--set', "val_targets=['nosuchset']"])
    err = capsys.readouterr().err
    assert code == 1 and "val_targets: 'nosuchset' is neither an evaluation set" in err
    assert 'the record sets there: ibug, train' in err
    assert _digests(tmp_path / 'run') == before


@pytest.mark.parametrize('value', ['0', '-3'])
def test_a_batch_of_no_samples_is_one_line_and_makes_no_folder(value, tmp_path):
    proc = _run('train.py', '--prefix', tmp_path / 'never' / 'model', '--per-batch-size', value)
    _one_line(proc, 'per_batch_size = %s is not allowed; expected an integer >= 1' % value)
    assert not (tmp_path / 'never').exists()


# One line instead of a traceback ----------------------------------------------------

def test_ctrl_c_while_a_video_is_being_finished_waits_for_whole_files():
    from core.inference.video import held_interrupts
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            reached.append('the end of the block')
    assert reached == ['the end of the block']
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _page(path, figures):
    from core.evaluation.pages import figure, gallery, page
    path.write_text(page('a report', ['<h2>worst</h2>', gallery([figure('x' * 500, 'face %d' % k)
                                                                 for k in range(figures)])]))
    return path


def test_check_page_finds_a_page_cut_short_or_not_utf8(tmp_path):
    from tools import check_page
    whole = _page(tmp_path / 'whole.html', 12)
    assert check_page.structure_problems(str(whole)) == []
    text = whole.read_text()
    cut = tmp_path / 'cut.html'
    cut.write_text(text[:len(text) // 2] + '<figure>x</figure></div>')
    problems = check_page.structure_problems(str(cut))
    assert any('never closed (the page is cut short)' in p for p in problems)
    assert any('a gallery announces 12 pictures and holds' in p for p in problems)
    assert any('does not end with </html>' in p for p in problems)
    latin = tmp_path / 'latin.html'
    latin.write_bytes('<html>caf\xe9</html>'.encode('latin-1'))
    proc = _run('-m', 'tools.check_page', latin)
    _one_line(proc, 'latin.html is not a page of the project: not UTF-8 at byte 9')


@pytest.mark.parametrize('content, words', [
    (b'', 'is empty (0 bytes), not a MATLAB .mat file'),
    (np.random.default_rng(5).bytes(3000), 'is not a MATLAB .mat file')], ids=['empty', 'garbage'])
def test_a_cofw_mat_that_is_empty_or_garbage_is_named(content, words, tmp_path):
    mat = tmp_path / 'COFW_test_color.mat'
    mat.write_bytes(content)
    proc = _run('-m', 'data.build', '--format', 'cofw29', '--input', mat, '--out',
                tmp_path / 'out')
    _one_line(proc, str(mat), words)
    assert not list(tmp_path.glob('out*'))


@pytest.mark.parametrize('value', ['0', '-2', 'abc'])
def test_export_onnx_batch_must_be_a_size(value, tmp_path):
    proc = _run('-m', 'tools.export_onnx', '--prefix', tmp_path / 'm', '--out',
                tmp_path / 'x.onnx', '--batch', value)
    _one_line(proc, "argument --batch: '%s' is not allowed: expected an integer >= 1, or "
              "dynamic" % value)


def test_ctrl_c_in_data_synth_leaves_no_half_set(tmp_path):
    proc = subprocess.Popen([sys.executable, '-m', 'data.synth', '--out', str(tmp_path / 'big'),
                             '--count', '100000'], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(tmp_path.glob('*.tmp*')) or list(tmp_path.glob('.*')), 60, 'writing')
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and 'Traceback' not in err and 'interrupted' in err
    assert not list(tmp_path.iterdir())


# What was wrong --------------------------------------------------------------------

def test_a_98_point_set_without_its_scheme_file(tmp_path):
    from data import landmarks, synth
    from data.recordio import RecordError, RecordReader, gate, scheme_path
    wflw = landmarks.SCHEMES['wflw98']
    synth.write_records(str(tmp_path / 'set'), 6, progress=False, scheme=wflw)
    os.remove(scheme_path(str(tmp_path / 'set.rec')))
    with pytest.raises(RecordError, match=r'holds faces of 98 points but has no set.scheme.json'
                                          r'.*--set landmark_scheme=wflw98'):
        RecordReader(str(tmp_path / 'set.rec'))
    reader = gate(str(tmp_path / 'set.rec'), 0.01, 'test', wflw)
    assert reader.scheme is wflw and reader.scan() == []
    assert reader.read_face(reader.keys[0])[1].shape == (98, 2)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return write_small_checkpoint(tmp_path_factory.mktemp('faults-model') / 'model')


def test_a_truncated_jpeg_is_named_on_its_own_line(model, tmp_path):
    photo = cv2.imread(str(ROOT / 'sample-images' / 'synth-00.jpg'))
    ok, data = cv2.imencode('.jpg', photo)
    (tmp_path / 'cut.jpg').write_bytes(data.tobytes()[:len(data) * 2 // 3])
    proc = _run('test.py', tmp_path / 'cut.jpg', '--prefix', model, '--output', tmp_path / 'out',
                '--backend', 'onnx')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r'cut\.jpg: the JPEG ends before its end marker \(the file was cut short\)',
                     proc.stderr)


def test_boxes_naming_one_photo_twice_are_refused(model, tmp_path):
    import shutil
    shutil.copy(ROOT / 'sample-images' / 'synth-00.jpg', tmp_path / 'e1.jpg')
    (tmp_path / 'boxes.json').write_text(json.dumps({'e1.jpg': [[10, 10, 90, 90]],
                                                     'e1': [[20, 20, 80, 80]]}))
    proc = _run('test.py', tmp_path / 'e1.jpg', '--prefix', model, '--boxes',
                tmp_path / 'boxes.json', '--output', tmp_path / 'out')
    _one_line(proc, "--boxes: the keys 'e1.jpg' and 'e1' all name", 'keep one of them')
    assert not (tmp_path / 'out').exists()


def test_a_video_damaged_in_the_middle_says_how_many_frames_were_lost(model, tmp_path):
    from data import synth
    frames, _ = synth.video_frames([(3, [synth.pose(300, 240, 0.5)] * 60)], seed=1)
    clip = synth.write_video(tmp_path / 'clip.avi', frames)
    data = bytearray(open(clip, 'rb').read())
    data[len(data) // 2:len(data) // 2 + 40000] = bytes(40000)
    (tmp_path / 'clip.avi').write_bytes(bytes(data))
    proc = _run('test.py', clip, '--prefix', model, '--output', tmp_path / 'out', '--backend',
                'onnx', '--no-overlay')
    lines = _one_line(proc, 'clip.avi: 2 of the 60 frames its header announces did not decode '
                            '(damaged)', 'numbered and timed early by up to 2',
                      'wrote frames 0-57')
    kept = [json.loads(l) for l in (tmp_path / 'out' / 'clip.avi.jsonl').open()]
    assert [r['frame'] for r in kept][-1] == 57
    assert proc.returncode == 1 and lines


@pytest.mark.parametrize('flags, words', [
    (['--smooth-cutoff', '-1'], "argument --smooth-cutoff: '-1' is not allowed: expected a "
                                "number > 0"),
    (['--smooth-cutoff', '0'], "argument --smooth-cutoff: '0' is not allowed"),
    (['--smooth-cutoff', 'nan'], "argument --smooth-cutoff: 'nan' is not allowed"),
    (['--smooth-beta', '-1'], "argument --smooth-beta: '-1' is not allowed: expected a number "
                              ">= 0"),
    (['--threshold', '2'], "argument --threshold: '2' is not allowed: expected a number >= 0 "
                           "and <= 1"),
])
def test_video_and_detector_options_are_range_checked(flags, words, tmp_path):
    proc = _run('test.py', tmp_path / 'x.mp4', '--prefix', tmp_path / 'm', *flags)
    _one_line(proc, words)


def test_an_evaluation_refuses_a_network_key(model, faces, capsys):
    import test_rec_nme
    code = test_rec_nme.main(['--rec', str(faces / 'ibug.rec'), '--prefix', model, '--set',
                              'net_n=3'])
    err = capsys.readouterr().err
    assert code == 1 and "--set net_n: describes the checkpoint's network (it was trained " \
        "with net_n=2); an evaluation sets only dataset_path, val_targets, test_targets" in err


def test_compare_names_models_of_same_named_folders_apart(faces, tmp_path, capsys,
                                                        monkeypatch):
    import test_rec_nme
    from tools import compare
    reports = []
    for lab in ('lab-a', 'lab-b'):
        prefix = write_small_checkpoint(tmp_path / lab / 'model-x' / 'model', seed=len(lab))
        assert test_rec_nme.main(['--rec', str(faces / 'ibug.rec'), '--prefix', prefix,
                                  '--output', str(tmp_path / lab / 'nme'), '--backend',
                                  'onnx']) == 0
        reports.append(str(next((tmp_path / lab / 'nme').glob('ibug-*'))))
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert compare.main(reports + ['--out', str(tmp_path / 'cmp')]) == 0
    text = (tmp_path / 'cmp' / 'compare.html').read_text()
    assert 'lab-a/model-x/model-0000' in text and 'lab-b/model-x/model-0000' in text


@pytest.mark.parametrize('spec, words', [
    ({'name': 'ibug68', 'points': 7}, "its name 'ibug68' is a built-in scheme's"),
    ({'name': 'seven', 'points': 7, 'flip_pairs': [], 'five': [0, 1, 2, 3, 4],
      'normalisations': {}, 'colour': 'red'}, "unknown key 'colour'"),
])
def test_a_scheme_file_may_not_reuse_a_name_nor_hold_unknown_keys(spec, words, tmp_path):
    (tmp_path / 'mine.json').write_text(json.dumps(spec))
    proc = _run('-m', 'data.build', '--format', 'csv', '--scheme', tmp_path / 'mine.json',
                '--input', tmp_path, '--out', tmp_path / 'out')
    _one_line(proc, words)


# What a new user trips on -------------------------------------------------------------

def test_the_readme_says_what_shared_is_and_that_a_clone_skips_those_tests():
    paragraph = README.split('`make test` also uses `../shared`')[1].split('\n\n')[0]
    assert 'A clone of yours does not have it' in paragraph and 'skip' in paragraph
    conftest = (ROOT / 'tests' / 'conftest.py').read_text()
    assert '../shared' in conftest and 'is not beside this checkout' in conftest


def test_every_input_format_is_in_the_readme():
    from data.build import READERS
    for name in READERS:
        assert '--format %s' % name in README or '`%s:' % name in README, name


def test_evaluating_your_set_as_ibug_says_the_protocol_it_takes(model, faces, tmp_path):
    proc = _run('test_rec_nme.py', '--rec', faces / 'train.rec', '--dataset', 'ibug',
                '--prefix', model, '--output', tmp_path / 'nme', '--backend', 'onnx')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r'--dataset ibug: \S+train\.rec is evaluated by the protocol of IBUG \(the '
                     r'box top raised 36 pixels, the 2D normalisation\) and its report named '
                     r'ibug', proc.stderr)
    assert 'its top raised by 36 pixels' in proc.stdout


def test_every_asset_asked_for_offline_gets_the_way_round(tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        url = 'http://127.0.0.1:%d/uc' % sock.getsockname()[1]
    proc = _run('-m', 'tools.download', 'hg2d3-cab', 'essh', cwd=tmp_path,
                env={'FACE_ALIGN_DRIVE_URL': url})
    assert proc.returncode == 1
    assert 'hg2d3-cab --from FILE' in proc.stderr and 'essh --from FILE' in proc.stderr


def test_a_saved_drive_page_is_called_what_it_is(tmp_path):
    from tools import download
    page = tmp_path / 'model-hg2d3-cab.zip'
    page.write_text('<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning'
                    '</title></head><body>Download anyway</body></html>')
    with pytest.raises(download.DownloadError, match="is Google Drive's web page, not the file"):
        download.download(download.assets()['hg2d3-cab'], root=str(tmp_path / 'root'),
                          archive=str(page))
    assert page.is_file()
