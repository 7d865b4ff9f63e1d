"""Landmark schemes beyond the 68 iBUG points: WFLW's 98, COFW's 29 and a
user's own from a JSON file, built from their published layouts, mirrored
by their flip pairs, trained and evaluated with their normalisations."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from conftest import SMALL_NETWORK, train_small
from core.plumbing.config import ConfigError, load_config
from data import augment, build, geometry, landmarks, synth
from data.iterator import FaceSegIter
from data.recordio import RecordError, RecordReader, scheme_of
from tools import inspect_data

ROOT = Path(__file__).resolve().parents[1]


def _face(seed):
    return synth.synth_face(np.random.default_rng(seed))


def _jpg(path, image_rgb):
    cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize('name', sorted(landmarks.SCHEMES))
def test_mirroring_twice_is_the_identity_and_once_the_mirrored_order(name):
    scheme = landmarks.SCHEMES[name]
    order = scheme.flip_order
    assert sorted(order) == list(range(scheme.count))
    assert [order[i] for i in order] == list(range(scheme.count))
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 127, (scheme.count, 2))
    once = augment.mirror_points(points, 128, scheme)
    np.testing.assert_allclose(augment.mirror_points(once, 128, scheme), points)
    # Point i of the mirror is point order[i] of the original, x mirrored.
    np.testing.assert_allclose(once[:, 0], 127 - points[order, 0])
    if scheme.from_ibug68 is not None:
        # A mirrored face carries the mirrored scheme: the scheme's points
        # of a mirrored 68-point face are the scheme's points mirrored.
        _, face = _face(1)
        mirrored68 = augment.mirror_points(face, 384, landmarks.IBUG68)
        np.testing.assert_allclose(scheme.from_ibug68 @ mirrored68,
                                   augment.mirror_points(scheme.from_ibug68 @ face, 384, scheme),
                                   atol=1e-9)
    # The left eye of a mirror is the right eye of the face.
    five = scheme.five_points(points)
    mirrored_five = scheme.five_points(once)
    np.testing.assert_allclose(mirrored_five[0, 0], 127 - five[1, 0])


def test_the_68_point_scheme_is_the_one_the_published_models_use():
    scheme = landmarks.IBUG68
    assert scheme.flip_order[:17] == list(range(16, -1, -1))
    assert scheme.flip_order[36:48] == [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    gt = np.random.default_rng(2).uniform(0, 300, (4, 68, 2))
    centres = np.linalg.norm(gt[:, [36, 39]].mean(1) - gt[:, [42, 45]].mean(1), axis=1)
    np.testing.assert_allclose(scheme.normaliser(gt), centres)
    np.testing.assert_allclose(scheme.normaliser(gt, 'ocular'),
                               np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1))


def test_the_configuration_takes_its_point_count_from_the_scheme(tmp_path):
    cfg = load_config('hourglass', 'wflw')
    assert (cfg.landmark_scheme, cfg.num_classes) == ('wflw98', 98)
    assert len(cfg.test_targets) == 7
    assert load_config(overrides=['landmark_scheme=cofw29']).num_classes == 29
    with pytest.raises(ConfigError, match='num_classes = 68, but the landmark scheme wflw98 has '
                                          '98 points'):
        load_config(overrides=['landmark_scheme=wflw98', 'num_classes=68'])
    with pytest.raises(ConfigError, match="unknown landmark scheme 'wfl98'"):
        load_config(overrides=['landmark_scheme=wfl98'])
    broken = tmp_path / 'mine.json'
    broken.write_text(json.dumps({'name': 'mine', 'points': 5, 'flip_pairs': [[0, 9]],
                                  'five': [0, 1, 2, 3, 4], 'normalisations': {}}))
    with pytest.raises(ConfigError, match=r'mine.json: flip_pairs must hold point numbers 0 to 4'):
        load_config(overrides=['landmark_scheme=%s' % broken])


# Builders, in the published layouts -------------------------------------------------

def _wflw_fixture(root, count):
    """WFLW_images/ and WFLW_annotations/list_98pt_rect_attr_train_test/
    list_98pt_rect_attr_test.txt of `count` synthetic faces, face i flagged
    with attribute i % 6; returns (list path, [98 points])."""
    images = root / 'WFLW_images' / '1--Handshaking'
    images.mkdir(parents=True)
    lists = root / 'WFLW_annotations' / 'list_98pt_rect_attr_train_test'
    lists.mkdir(parents=True)
    lines, truth = [], []
    for i in range(count):
        image, points68 = _face(20 + i)
        points = landmarks.SCHEMES['wflw98'].from_ibug68 @ points68
        _jpg(images / ('1_Handshaking_%d.jpg' % i), image)
        box = np.concatenate([points.min(0), points.max(0)]).astype(int)
        flags = [int(k == i % 6) for k in range(6)]
        lines.append(' '.join(['%.6f' % v for v in points.reshape(-1)] + [str(v) for v in box]
                              + [str(v) for v in flags] + ['1--Handshaking/1_Handshaking_%d.jpg'
                                                           % i]))
        truth.append(points)
    path = lists / 'list_98pt_rect_attr_test.txt'
    path.write_text('\n'.join(lines + ['0.5 0.5 too-short']) + '\n')
    return path, truth


def test_wflw_lists_build_the_test_set_and_its_six_attribute_subsets(tmp_path, capsys):
    listing, truth = _wflw_fixture(tmp_path, 8)
    out = tmp_path / 'data_wflw'
    assert build.main(['--format', 'wflw', '--input', str(listing), '--out', str(out),
                       '--split', 'wflw_test', '--subsets']) == 0
    report = capsys.readouterr().out
    assert 'line 9: 3 fields instead of 207' in report
    assert 'wrote 8 faces to %s/wflw_test.rec' % out in report
    assert 'the published wflw_test set has 2500 faces; this build differs by -2492' in report
    for k, attribute in enumerate(build.WFLW_ATTRIBUTES):
        expected = len(range(k, 8, 6))
        assert 'wrote %d face%s to %s/wflw_test_%s.rec' % (
            expected, '' if expected == 1 else 's', out, attribute) in report
        assert scheme_of(str(out / ('wflw_test_%s.rec' % attribute))) is landmarks.SCHEMES['wflw98']
    reader = RecordReader(str(out / 'wflw_test.rec'))
    assert (reader.scheme.name, reader.count) == ('wflw98', 98)
    scheme = landmarks.SCHEMES['wflw98']
    for key, points in zip(reader.keys, truth):
        stored = reader.read_face(key)[1]
        np.testing.assert_allclose(stored, geometry.apply(
            geometry.alignment_transform(points, scheme), points), atol=1e-2)
    # Its augmented samples are drawn by its own scheme.
    assert inspect_data.main(['--rec', str(out / 'wflw_test.rec'), '--out',
                              str(tmp_path / 'inspect'), '--augmented', '--count', '4']) == 0
    assert len(list((tmp_path / 'inspect').glob('aug*.jpg'))) == 4
    # A 98-point set is refused by a 68-point configuration, naming both.
    with pytest.raises(RecordError, match=r'wflw_test.rec holds wflw98 faces \(98 points\), but '
                                          r'the configuration\'s landmark scheme is ibug68'):
        FaceSegIter(str(out / 'wflw_test.rec'), load_config(), 4)


def test_cofw_29_points_from_the_color_mat(tmp_path, capsys):
    faces = [_face(40 + i) for i in range(3)]
    rng = np.random.default_rng(3)
    cell = np.empty((3, 1), dtype=object)
    phis, truth = [], []
    for i, (image, points68) in enumerate(faces):
        cell[i, 0] = image
        points = points68[rng.choice(68, 29, replace=False)]
        occluded = rng.integers(0, 2, 29)
        phis.append(np.concatenate([points[:, 0] + 1, points[:, 1] + 1, occluded]))
        truth.append(points)
    mat = tmp_path / 'COFW_train_color.mat'
    scipy.io.savemat(str(mat), {'IsTr': cell, 'phisTr': np.array(phis),
                                'bboxesTr': np.zeros((3, 4))})
    out = tmp_path / 'data_cofw29'
    assert build.main(['--format', 'cofw29', '--input', str(mat), '--out', str(out),
                       '--split', 'train']) == 0
    assert 'wrote 3 faces to %s/train.rec' % out in capsys.readouterr().out
    reader = RecordReader(str(out / 'train.rec'))
    scheme = landmarks.SCHEMES['cofw29']
    assert (reader.scheme.name, reader.count) == ('cofw29', 29)
    for key, points in zip(reader.keys, truth):
        np.testing.assert_allclose(reader.read_face(key)[1], geometry.apply(
            geometry.alignment_transform(points, scheme), points), atol=1e-2)
    wrong = tmp_path / 'other.mat'
    scipy.io.savemat(str(wrong), {'Points': np.zeros((3, 2))})
    assert build.main(['--format', 'cofw29', '--input', str(wrong), '--out',
                       str(tmp_path / 'x')]) == 1
    assert 'holds no IsTr/phisTr or IsT/phisT' in capsys.readouterr().err


# A user's own scheme ---------------------------------------------------------------

SEVEN = {   # left eye, right eye, nose, mouth corners, chin, brow middle: from the 68
    'points': [(36, 39), (42, 45), (30,), (48,), (54,), (8,), (21, 22)]}


def _seven(points68):
    return np.array([points68[list(group)].mean(axis=0) for group in SEVEN['points']])


def _user_scheme(tmp_path):
    path = tmp_path / 'seven.json'
    path.write_text(json.dumps({
        'name': 'seven', 'points': 7, 'flip_pairs': [[0, 1], [3, 4]],
        'groups': [{'points': [0, 1, 2], 'closed': True}, {'points': [3, 4, 5], 'closed': True}],
        'five': [0, 1, 2, 3, 4], 'normalisations': {'eyes': [[0], [1]]},
        'normalisation': 'eyes'}))
    return path


@pytest.mark.parametrize('extension', ['.csv', '.json'])
def test_a_user_scheme_builds_from_csv_or_json_beside_each_photo(tmp_path, capsys, extension):
    scheme_file = _user_scheme(tmp_path)
    folder = tmp_path / 'mine'
    folder.mkdir()
    for i in range(3):
        image, points68 = _face(60 + i)
        _jpg(folder / ('face%d.jpg' % i), image)
        points = _seven(points68)
        if extension == '.csv':
            (folder / ('face%d.csv' % i)).write_text(
                ''.join('%.4f,%.4f\n' % tuple(p) for p in points))
        else:
            (folder / ('face%d.json' % i)).write_text(json.dumps({'points': points.tolist()}))
    (folder / 'face9.jpg').write_bytes((folder / 'face0.jpg').read_bytes())
    (folder / ('face9' + extension)).write_text(
        '1,2\n' if extension == '.csv' else json.dumps({'points': [[1, 2]]}))
    out = tmp_path / 'my-data'
    fmt = 'csv' if extension == '.csv' else 'points-json'
    assert build.main(['--format', fmt, '--scheme', str(scheme_file), '--input', str(folder),
                       '--out', str(out), '--split', 'train']) == 0
    report = capsys.readouterr().out
    assert 'wrote 3 faces' in report and 'wrong point count: 1 instead of 7' in report
    assert (scheme_of(str(out / 'train.rec')).name, scheme_of(str(out / 'train.rec')).count) == (
        'seven', 7)
    cfg = load_config(overrides=['landmark_scheme=%s' % scheme_file])
    assert cfg.num_classes == 7
    it = FaceSegIter(str(out / 'train.rec'), cfg, 2, aug_level=1, force_mirror=True)
    batch = it.next()
    assert batch.label[0].shape == (2, 7, 64, 64)
    it.close()


# Training and the WFLW table ---------------------------------------------------------

@pytest.mark.long
def test_a_98_point_network_trains_and_reports_the_wflw_table(tmp_path, capsys, caplog):
    import test_rec_nme
    caplog.set_level('WARNING', logger='test_rec_nme')
    data = tmp_path / 'data_wflw'
    synth.write_records(str(data / 'train'), 160, seed=11, progress=False,
                        scheme=landmarks.SCHEMES['wflw98'])
    synth.write_records(str(data / 'wflw_test'), 16, seed=12, progress=False,
                        scheme=landmarks.SCHEMES['wflw98'])
    synth.write_records(str(data / 'wflw_test_blur'), 8, seed=13, progress=False,
                        scheme=landmarks.SCHEMES['wflw98'])
    # At a 64-pixel input (32-pixel heatmaps) it learns as well, four times faster.
    prefix = train_small(tmp_path / 'model' / 'model', data, '--dataset', 'wflw', '--set',
                         'losstype=ce', '--set', 'net_coherent=1', '--set', 'input_img_size=64',
                         '--set', 'output_label_size=32', '--optimizer', 'adam',
                         '--lr', '2e-3', '--per-batch-size', '16', '--lr-steps', '100,120',
                         '--validate-every', '40', '--workers', '0')
    with open(prefix + '-log.csv') as f:
        nmes = [float(row['nme_wflw_test']) for row in csv.DictReader(f)
                if row.get('nme_wflw_test')]
    print('98-point NME on synthetic faces: untrained %.1f%%, trained %.1f%%'
          % (nmes[0], min(nmes)))
    assert min(nmes) < 0.5 * nmes[0]
    assert test_rec_nme.main(['--all', '--prefix', prefix, '--output',
                              str(tmp_path / 'nme')]) == 0
    report = capsys.readouterr()
    assert 'left out: wflw_test_largepose' in caplog.text
    lines = report.out.splitlines()
    header = lines.index('| set | images | NME % | FR@0.10 % | AUC@0.10 | scheme and '
                         'normalisation |')
    rows = [line.split(' | ') for line in lines[header + 2:header + 4]]
    assert [r[0] for r in rows] == ['| WFLW', '| WFLW blur']      # the titles papers print
    assert [int(r[1]) for r in rows] == [16, 8]
    for row in rows:
        assert row[5] == 'WFLW 98 points, normalised by ocular (points 60 to 72) |'
    summary = json.loads(next((tmp_path / 'nme').glob('wflw_test-*/summary.json')).read_text())
    assert float(rows[0][2]) == pytest.approx(summary['nme'], abs=1e-3)
    assert summary['scheme'] == 'wflw98'


def test_photos_of_a_98_point_model_are_drawn_by_its_groups(tmp_path):
    """test.py aligns by the scheme's five points and names the scheme."""
    import test
    prefix = _tiny_model(tmp_path, 'wflw')
    _jpg(tmp_path / 'photo.jpg', synth.synth_photo(np.random.default_rng(5), faces=1)[0])
    assert test.main([str(tmp_path / 'photo.jpg'), '--prefix', prefix, '--output',
                      str(tmp_path / 'out'), '--boxes',
                      str(_box_file(tmp_path))]) == 0
    record = json.loads((tmp_path / 'out' / 'photo.jpg.json').read_text())
    assert record['scheme'] == 'wflw98'
    assert len(record['faces'][0]['landmarks']) == 98
    assert cv2.imread(str(tmp_path / 'out' / 'photo.jpg.png')) is not None


def _box_file(tmp_path):
    path = tmp_path / 'boxes.json'
    path.write_text(json.dumps({'photo.jpg': [[150, 150, 450, 450]]}))
    return path


def _tiny_model(tmp_path, dataset):
    """A checkpoint of the small network for `dataset`, untrained."""
    import mxnet as mx

    from core.plumbing import checkpoint
    from core.training import record
    from symbol import get_symbol, param_shapes
    cfg = load_config('hourglass', dataset, [s for s in SMALL_NETWORK if s != '--set'])
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (1, 3, 128, 128), (1, cfg.num_classes, 64, 64))
    aux_names = set(sym.list_auxiliary_states())
    args = {k: mx.nd.array(np.random.default_rng(0).normal(0, 0.05, s))
            for k, s in shapes.items() if k not in aux_names}
    aux = {k: mx.nd.ones(s) if k.endswith('var') else mx.nd.zeros(s)
           for k, s in shapes.items() if k in aux_names}
    prefix = str(tmp_path / 'tiny' / 'model')
    checkpoint.save_checkpoint(prefix, 0, sym, args, aux)
    record.save_config(prefix, cfg)
    return prefix


def test_a_users_scheme_by_relative_path_travels_with_the_run(tmp_path):
    """docs/schemes.md's way: --set landmark_scheme=seven.json, relative to
    the folder the command runs in (not the project's), with data workers;
    the run saves the scheme's content, so evaluation and photos work from
    another folder after the file is gone."""
    work = tmp_path / 'lab'
    folder = work / 'faces'
    folder.mkdir(parents=True)
    _user_scheme(work)
    for i in range(12):
        image, points68 = _face(80 + i)
        _jpg(folder / ('face%d.jpg' % i), image)
        (folder / ('face%d.csv' % i)).write_text(
            ''.join('%.4f,%.4f\n' % tuple(p) for p in _seven(points68)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for split in ('train', 'mine_test'):
        proc = subprocess.run([sys.executable, '-m', 'data.build', '--format', 'csv', '--scheme',
                               'seven.json', '--input', 'faces', '--out', 'my-data', '--split',
                               split], cwd=str(work), capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'train.py'), '--prefix', 'models/seven/model', '--set',
         'dataset_path=my-data', '--set', 'landmark_scheme=seven.json', '--set',
         "val_targets=['mine_test']", '--per-batch-size', '4', '--lr-steps', '4,6',
         '--validate-every', '3', '--workers', '2', '--min-validations', '0'] + SMALL_NETWORK,
        cwd=str(work), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((work / 'models' / 'seven' / 'model-config.json').read_text())
    assert saved['config']['landmark_scheme']['name'] == 'seven'
    assert json.loads((work / 'my-data' / 'train.scheme.json').read_text())['spec']['points'] == 7
    (work / 'seven.json').unlink()                      # the run needs the file no more
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    prefix = str(work / 'models' / 'seven' / 'model')
    proc = subprocess.run([sys.executable, str(ROOT / 'test_rec_nme.py'), '--rec',
                           str(work / 'my-data' / 'mine_test.rec'), '--prefix', prefix],
                          cwd=str(elsewhere), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r'nme on mine_test is [0-9.]+%', proc.stdout)
    assert 'seven 7 points' in proc.stdout
    _jpg(elsewhere / 'photo.jpg', synth.synth_photo(np.random.default_rng(5), faces=1)[0])
    proc = subprocess.run([sys.executable, str(ROOT / 'test.py'), 'photo.jpg', '--prefix',
                           prefix, '--boxes', str(_box_file(elsewhere)), '--output', 'out'],
                          cwd=str(elsewhere), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((elsewhere / 'out' / 'photo.jpg.json').read_text())
    assert record['scheme'] == 'seven' and len(record['faces'][0]['landmarks']) == 7
