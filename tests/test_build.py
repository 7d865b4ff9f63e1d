"""The record builders, on small files written in the exact layouts of the
public datasets: every face with finite points is kept (points outside the
image too), non-finite points are refused with the reason."""
import json

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from data import build, geometry, landmarks, synth
from data.recordio import RecordReader, names_path


def _faces(count, seed=0):
    rng = np.random.default_rng(seed)
    return [synth.synth_face(rng) for _ in range(count)]


def _stored(prefix):
    reader = RecordReader(prefix + '.rec')
    return [reader.read_face(k)[1] for k in reader.keys]


def _expected(points):
    return geometry.apply(geometry.alignment_transform(points, landmarks.IBUG68), points)


def _write_pts(path, points, count=68):
    with open(path, 'w') as f:
        f.write('version: 1\nn_points: %d\n{\n' % count)
        f.writelines('%s %s\n' % (x, y) for x, y in points)
        f.write('}\n')


def _jpg(path, image_rgb):
    cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])


def test_pts_keeps_points_outside_the_image_and_refuses_non_finite_ones(tmp_path, capsys):
    (image, points), (image2, points2) = _faces(2)
    folder = tmp_path / 'ibug'
    folder.mkdir()
    _jpg(folder / 'inside.jpg', image)
    _write_pts(folder / 'inside.pts', points + 1)                      # 1-based, as 300-W
    cropped = image[40:, :]                                            # the chin leaves it
    _jpg(folder / 'jaw_out.jpg', cropped)
    shifted = points2 - [0, 40]
    shifted[8, 1] = cropped.shape[0] + 12
    _write_pts(folder / 'jaw_out.pts', shifted + 1)
    _jpg(folder / 'nan.jpg', image)
    _write_pts(folder / 'nan.pts', [('nan', 'nan')] + [tuple(p) for p in points[1:] + 1])
    _jpg(folder / 'short.jpg', image)
    _write_pts(folder / 'short.pts', points[:66] + 1, count=66)
    cv2.imwrite(str(folder / 'alone.png'), image)
    (folder / 'broken.jpg').write_bytes(b'not a jpeg')
    _write_pts(folder / 'broken.pts', points + 1)
    out = str(tmp_path / 'out' / 'ibug')
    assert build.main(['--format', 'pts', '--input', str(folder), '--out', out]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[-2] == ('wrote 2 faces to %s.rec (1 with points outside their image, kept: '
                          'the aligned crop pads)' % out)
    assert report[-1] == 'the published ibug set has 135 faces; this build differs by -133'
    for name, reason in (('nan.jpg', '1 landmark is not finite'),
                         ('short.jpg', '.pts has 66 points (n_points 66), not 68'),
                         ('broken.jpg', 'unreadable image'), ('alone.png', 'no .pts file')):
        assert any(name in line and reason in line for line in report), name
    stored = _stored(out)
    np.testing.assert_allclose(stored[0], _expected(points), atol=1e-3)
    np.testing.assert_allclose(stored[1], _expected(shifted), atol=1e-3)
    names = open(names_path(out + '.rec')).read().splitlines()
    assert names == ['0\t%s' % (folder / 'inside.jpg'), '1\t%s' % (folder / 'jaw_out.jpg')]


def test_builder_never_leaves_a_half_set(tmp_path, capsys):
    (tmp_path / 'broken.jpg').write_bytes(b'junk')
    _write_pts(tmp_path / 'broken.pts', np.zeros((68, 2)) + 5)
    out = tmp_path / 'out' / 'set'
    assert build.main(['--format', 'pts', '--input', str(tmp_path), '--out', str(out)]) == 1
    assert 'no usable face' in capsys.readouterr().err
    assert not list((tmp_path / 'out').iterdir())


@pytest.mark.parametrize('version', [1, 2, 3])
def test_menpo_ljson(tmp_path, version):
    (image, points), = _faces(1, seed=3)
    _jpg(tmp_path / 'face.jpg', image)
    yx = [[float(y), float(x)] for x, y in points]
    if version == 1:
        data = {'version': 1, 'groups': [{'label': 'all', 'connectivity': [],
                                          'landmarks': [{'point': p} for p in yx]}]}
    elif version == 2:
        data = {'version': 2, 'labels': [{'label': 'all', 'mask': list(range(68))}],
                'landmarks': {'points': yx, 'connectivity': []}}
    else:
        data = {'version': 3, 'groups': {'face_ibug_68': {'landmarks': {'points': yx},
                                                          'labels': []}}}
    (tmp_path / 'face.ljson').write_text(json.dumps(data))
    out = str(tmp_path / 'set')
    assert build.main(['--format', 'ljson', '--input', str(tmp_path), '--out', out]) == 0
    np.testing.assert_allclose(_stored(out)[0], _expected(points), atol=1e-3)


MATLAB_73_HEADER = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .'


def _cofw_v73(path, images):
    """IsT as MATLAB v7.3 writes a cell array: object references to arrays
    stored transposed (MATLAB is column-major), behind a 512-byte header."""
    with h5py.File(path, 'w', userblock_size=512) as f:
        refs = f.create_group('#refs#')
        cell = f.create_dataset('IsT', (1, len(images)), dtype=h5py.ref_dtype)
        for i, image in enumerate(images):
            cell[0, i] = refs.create_dataset('img%d' % i, data=image.T).ref
    with open(path, 'r+b') as f:
        f.write(MATLAB_73_HEADER.ljust(116) + b'\x00' * 8 + b'\x00\x02IM')


@pytest.mark.parametrize('layout', ['v7.3', 'v5'])
def test_cofw_68(tmp_path, layout):
    faces = _faces(3, seed=5)
    images = [image if i != 1 else image.mean(axis=2).astype(np.uint8)       # one grey
              for i, (image, _) in enumerate(faces)]
    mat = str(tmp_path / 'COFW_test_color.mat')
    if layout == 'v7.3':
        _cofw_v73(mat, images)
    else:
        cell = np.empty((len(images), 1), dtype=object)
        for i, image in enumerate(images):
            cell[i, 0] = image
        scipy.io.savemat(mat, {'IsT': cell})
    annotations = tmp_path / 'test_annotations'
    annotations.mkdir()
    for i, (_, points) in enumerate(faces[:2]):                                # the 3rd has none
        scipy.io.savemat(str(annotations / ('%d_points.mat' % (i + 1))), {'Points': points + 1})
    out = str(tmp_path / 'cofw_testset')
    assert build.main(['--format', 'cofw', '--input', mat, '--cofw-points', str(annotations),
                       '--out', out]) == 0
    stored = _stored(out)
    assert len(stored) == 2
    for got, (_, points) in zip(stored, faces):
        np.testing.assert_allclose(got, _expected(points), atol=1e-3)
    reader = RecordReader(out + '.rec')
    grey = reader.read_face(1)[0]
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 3          # grey stays grey


def test_aflw2000_3d(tmp_path):
    (image, points), = _faces(1, seed=6)
    folder = tmp_path / 'AFLW2000'
    folder.mkdir()
    _jpg(folder / 'image00002.jpg', image)
    pt3d = np.vstack([points.T, np.random.RandomState(0).normal(size=(1, 68))])   # 3 x 68
    scipy.io.savemat(str(folder / 'image00002.mat'), {'pt3d_68': pt3d, 'Pose_Para': np.zeros(7)})
    out = str(tmp_path / 'AFLW2000-3D')
    assert build.main(['--format', 'aflw2000', '--input', str(folder), '--out', out]) == 0
    np.testing.assert_allclose(_stored(out)[0], _expected(points), atol=1e-3)


@pytest.mark.parametrize('which', ['pts_3d', 'pts_2d'])
def test_300w_lp(tmp_path, capsys, which):
    (image, points), = _faces(1, seed=7)
    root = tmp_path / '300W_LP'
    for sub in ('AFW', 'AFW_Flip', 'landmarks/AFW'):
        (root / sub).mkdir(parents=True)
    _jpg(root / 'AFW' / 'AFW_134212_1_0.jpg', image)
    scipy.io.savemat(str(root / 'AFW' / 'AFW_134212_1_0.mat'), {'pt2d': points.T})
    _jpg(root / 'AFW_Flip' / 'AFW_134212_1_0.jpg', image[:, ::-1])
    other = points + [3, -2]
    scipy.io.savemat(str(root / 'landmarks' / 'AFW' / 'AFW_134212_1_0_pts.mat'),
                     {'pts_3d': points if which == 'pts_3d' else other,
                      'pts_2d': other if which == 'pts_3d' else points})
    out = str(tmp_path / 'train')
    assert build.main(['--format', '300w-lp', '--input', str(root), '--out', out,
                       '--lp-points', which]) == 0
    assert 'AFW_Flip/AFW_134212_1_0.jpg: a mirrored copy without landmarks' in \
        capsys.readouterr().out
    stored = _stored(out)
    assert len(stored) == 1
    np.testing.assert_allclose(stored[0], _expected(points), atol=1e-3)


def test_an_existing_set_is_replaced_only_when_asked(tmp_path, capsys):
    (image, points), = _faces(1, seed=8)
    _jpg(tmp_path / 'face.jpg', image)
    _write_pts(tmp_path / 'face.pts', points + 1)
    out = str(tmp_path / 'out' / 'set')
    args = ['--format', 'pts', '--input', str(tmp_path / 'face.jpg'), '--out', out]
    assert build.main(args) == 0
    before = open(out + '.rec', 'rb').read()
    capsys.readouterr()
    assert build.main(args + ['--pts-one-based-keep']) == 1
    assert 'set.rec exists; choose another --out, or add --overwrite' in \
        capsys.readouterr().err
    assert open(out + '.rec', 'rb').read() == before
    assert build.main(args + ['--pts-one-based-keep', '--overwrite']) == 0
    assert open(out + '.rec', 'rb').read() != before


def test_a_pts_file_without_its_image_is_named(tmp_path, capsys):
    (image, points), = _faces(1, seed=9)
    _write_pts(tmp_path / 'lonely.pts', points + 1)
    for given in (tmp_path, tmp_path / 'lonely.pts'):
        assert build.main(['--format', 'pts', '--input', str(given), '--out',
                           str(tmp_path / 'out')]) == 1
        err = capsys.readouterr().err
        assert 'lonely.pts: no image of the same name beside this .pts file' in err, err
    _jpg(tmp_path / 'face.jpg', image)
    _write_pts(tmp_path / 'face.pts', points + 1)
    assert build.main(['--format', 'pts', '--input', str(tmp_path), '--out',
                       str(tmp_path / 'out')]) == 0
    out = capsys.readouterr().out
    assert 'lonely.pts: no image of the same name beside this .pts file' in out
    assert 'wrote 1 face' in out


def test_faces_of_several_formats_build_into_the_training_set(tmp_path, capsys):
    faces = _faces(3, seed=12)
    (tmp_path / 'pts').mkdir()
    for k, (image, points) in enumerate(faces[:2]):
        _jpg(tmp_path / 'pts' / ('face%d.jpg' % k), image)
        _write_pts(tmp_path / 'pts' / ('face%d.pts' % k), points + 1)
    image, points = faces[2]
    _jpg(tmp_path / 'xml-face.jpg', image)
    parts = ''.join('<part name="%02d" x="%.3f" y="%.3f"/>' % (i, x, y)
                    for i, (x, y) in enumerate(points))
    (tmp_path / 'faces.xml').write_text(
        '<dataset><images><image file="xml-face.jpg"><box top="0" left="0" width="10" '
        'height="10">%s</box></image></images></dataset>' % parts)
    assert build.main(['--input', 'pts:%s' % (tmp_path / 'pts'),
                       'dlib-xml:%s' % (tmp_path / 'faces.xml'), '--out',
                       str(tmp_path / 'my-data'), '--split', 'train']) == 0
    assert 'wrote 3 faces to %s.rec' % (tmp_path / 'my-data' / 'train') in capsys.readouterr().out
    stored = _stored(str(tmp_path / 'my-data' / 'train'))
    for (_, points), got in zip(faces, stored):
        np.testing.assert_allclose(got, _expected(points), atol=0.05)
    with pytest.raises(SystemExit):
        build.main(['--input', str(tmp_path / 'pts'), '--out', str(tmp_path / 'x')])
    assert 'give --format, or write the input as FORMAT:' in capsys.readouterr().err
