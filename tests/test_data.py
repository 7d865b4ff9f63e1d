"""Record building, augmentation, the iterator and its handling of bad data."""
import os
import shutil
import xml.etree.ElementTree as ET

import cv2
import mxnet as mx
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from core.plumbing.config import load_config
from core.evaluation.protocol import EvalCrop
from data import augment, build, geometry, landmarks, synth
from data.iterator import FaceSegIter
from data.recordio import HEADER, RecordReader, RecordWriter, unpack_label
from tools import inspect_data


@pytest.fixture(scope='module')
def cfg():
    return load_config('hourglass', 'i2d')


def eval_iter(rec, cfg, batch_size, dataset='ibug'):
    return FaceSegIter(rec, cfg, batch_size, aug_level=0, workers=0,
                       eval_crop=EvalCrop(dataset, cfg.input_img_size, cfg.scheme))


@pytest.fixture(scope='module')
def dlib_records(shared, tmp_path_factory):
    """Records built from the 43 annotated faces of ../shared/data/dlib-faces."""
    folder = shared / 'data' / 'dlib-faces'
    prefix = str(tmp_path_factory.mktemp('dlib') / 'faces')
    xmls = [str(folder / n) for n in ('training_with_face_landmarks.xml',
                                      'testing_with_face_landmarks.xml')]
    assert build.main(['--format', 'dlib-xml', '--input'] + xmls + ['--out', prefix]) == 0
    faces = []
    for xml in xmls:
        for image in ET.parse(xml).getroot().iter('image'):
            for box in image.iter('box'):
                parts = sorted(box.iter('part'), key=lambda p: int(p.get('name')))
                faces.append((str(folder / image.get('file')),
                              np.array([[float(p.get('x')), float(p.get('y'))] for p in parts])))
    return prefix + '.rec', faces


@pytest.fixture(scope='module')
def synth_rec(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp('synth') / 'train')
    synth.write_records(prefix, 40, seed=3, progress=False)
    return prefix + '.rec'


def test_dlib_records_are_aligned_rgb_with_yx_labels(dlib_records):
    rec, faces = dlib_records
    reader = RecordReader(rec)
    assert len(reader) == len(faces) == 43
    # The records are readable by MXNet's own reader as well.
    mx_reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + '.idx', rec, 'r')
    for key, (photo_path, photo_points) in zip(reader.keys, faces):
        header, _ = mx.recordio.unpack(mx_reader.read_idx(key))
        image, points = reader.read_face(key)
        assert image.shape == (384, 384, 3) and image.dtype == np.uint8
        # Independent alignment with scikit-image's least-squares similarity.
        five = np.array([(photo_points[36] + photo_points[39]) / 2,
                         (photo_points[42] + photo_points[45]) / 2,
                         photo_points[30], photo_points[48], photo_points[54]])
        template = np.array([[38.2946, 41.6963], [73.5318, 41.5014], [56.0252, 61.7366],
                             [41.5493, 82.3655], [70.7299, 82.2041]]) * 2 + 80
        tform = SimilarityTransform()
        tform.estimate(five, template)
        expected = tform(photo_points)
        label = np.asarray(header.label).reshape(68, 2)
        np.testing.assert_allclose(label[:, 0], expected[:, 1], atol=1e-3)   # y first
        np.testing.assert_allclose(label[:, 1], expected[:, 0], atol=1e-3)
        # The five points sit where the least-squares fit puts them: re-fitting
        # the record's points moves none of them by more than 1 px, and their
        # centroid is the template's.
        aligned_five = landmarks.IBUG68.five_points(points)
        refit = SimilarityTransform()
        refit.estimate(aligned_five, template)
        assert np.abs(refit(aligned_five) - aligned_five).max() < 1.0
        assert np.abs(aligned_five.mean(axis=0) - template.mean(axis=0)).max() < 1.0
        # Channels are RGB: the record matches our own warp of the photo in RGB.
        photo = cv2.cvtColor(cv2.imread(photo_path), cv2.COLOR_BGR2RGB)
        warped = cv2.warpAffine(photo, tform.params[:2], (384, 384))
        rgb_error = np.abs(image.astype(float) - warped).mean()
        bgr_error = np.abs(image.astype(float) - warped[:, :, ::-1]).mean()
        assert rgb_error < 6 and rgb_error < bgr_error


class FixedDraws(object):
    """Stands in for the random generator to force rotation, scale and mirror."""

    def __init__(self, rotation, ratio, mirror):
        self.values = {'integers': [rotation, int(mirror)], 'normal': [ratio]}

    def integers(self, low, high):
        value = self.values['integers'].pop(0)
        assert low <= value < high
        return value

    def normal(self, mean, sigma):
        return self.values['normal'].pop(0)


def _argmax_points(heat):
    flat = heat.reshape(heat.shape[0], -1).argmax(axis=1)
    return np.stack([flat % heat.shape[2], flat // heat.shape[2]], axis=1)


@pytest.mark.parametrize('rotation,ratio', [(-30, 0.9), (17, 1.15), (0, 1.0), (39, 1.2)])
def test_forced_rotation_and_scale_put_heatmap_peaks_on_transformed_points(
        synth_rec, cfg, rotation, ratio):
    image, points = RecordReader(synth_rec).read_face(0)
    crop, crop_points, mirrored = augment.training_sample(
        image, points, FixedDraws(rotation, ratio, False), cfg)
    assert not mirrored
    side = int(256 * ratio)
    expected_matrix = cv2.getRotationMatrix2D((192.0, 192.0), -rotation, 128.0 / side)
    expected_matrix[:, 2] += [64 - 192, 64 - 192]
    expected = points @ expected_matrix[:, :2].T + expected_matrix[:, 2]
    np.testing.assert_allclose(crop_points, expected, atol=1e-6)
    np.testing.assert_array_equal(crop, cv2.warpAffine(image, expected_matrix, (128, 128)))
    heat = augment.heatmap_target(crop_points, False, cfg)
    assert heat.shape == (68, 64, 64) and heat.max() == pytest.approx(20.0)
    np.testing.assert_array_equal(_argmax_points(heat), (expected * 0.5).astype(int))
    # sigma 1: the neighbours of a peak hold 20 exp(-1/2).
    x, y = (expected[8] * 0.5).astype(int)
    assert heat[8, y, x + 1] == pytest.approx(20 * np.exp(-0.5), rel=1e-5)


def test_mirror_reindexes_by_flip_order(synth_rec, cfg):
    image, points = RecordReader(synth_rec).read_face(1)
    crop, plain, _ = augment.training_sample(image, points, FixedDraws(5, 1.0, False), cfg)
    flipped, mirrored, was_mirrored = augment.training_sample(
        image, points, FixedDraws(5, 1.0, True), cfg, mirror=None)
    assert was_mirrored
    np.testing.assert_array_equal(flipped, crop[:, ::-1])
    # The point now numbered 36 (left-eye outer corner) is the old 45 mirrored.
    np.testing.assert_allclose(mirrored[36], [127 - plain[45, 0], plain[45, 1]])
    np.testing.assert_allclose(mirrored[45], [127 - plain[36, 0], plain[36, 1]])
    assert mirrored[36, 0] < mirrored[45, 0] and plain[36, 0] < plain[45, 0]
    np.testing.assert_allclose(mirrored[30], [127 - plain[30, 0], plain[30, 1]])
    heat = augment.heatmap_target(mirrored, True, cfg)
    np.testing.assert_array_equal(_argmax_points(heat)[36], (mirrored[36] * 0.5).astype(int))
    # The original's mode mirrors rendered heatmaps: column j -> 63 - j.
    original = dict(cfg, mirror_heatmaps=True)
    legacy = augment.heatmap_target(mirrored, True, type(cfg)(original))
    plain_heat = augment.heatmap_target(plain, False, cfg)
    np.testing.assert_array_equal(legacy[36], plain_heat[45][:, ::-1])


def test_rotation_and_scale_distributions(synth_rec, cfg):
    rng = np.random.default_rng(0)
    draws = [augment.draw_transform(rng, cfg) for _ in range(20000)]
    rotations = np.array([d[1] for d in draws])
    ratios = np.array([d[2] for d in draws])
    assert rotations.min() == -40 and rotations.max() == 39
    assert set(np.unique(rotations)) == set(range(-40, 40))
    assert abs(rotations.mean() + 0.5) < 0.5
    assert ratios.min() == 0.8 and ratios.max() == 1.2
    assert abs((ratios == 0.8).mean() - 0.1587) < 0.015
    assert abs((ratios == 1.2).mean() - 0.1587) < 0.015
    assert abs(np.median(ratios) - 1.0) < 0.01
    # Redraws when a landmark leaves the crop bias accepted scales upward.
    reader = RecordReader(synth_rec)
    accepted = []
    for key in reader.keys:
        image, points = reader.read_face(key)
        for _ in range(25):
            for _ in range(augment.DRAW_TRIES):
                matrix, _, ratio = augment.draw_transform(rng, cfg)
                if augment.inside(geometry.apply(matrix, points), 128):
                    accepted.append(ratio)
                    break
    assert np.mean(accepted) > np.mean(ratios) + 0.005


def test_coherent_batches_pair_each_sample_with_its_mirror(synth_rec, cfg):
    it = FaceSegIter(synth_rec, cfg, 8, 4, aug_level=1, coherent=True, workers=0, seed=5)
    batch = it.next()
    data, label = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    for base, pair in ((0, 2), (1, 3), (4, 6), (5, 7)):
        np.testing.assert_array_equal(data[pair], data[base][:, :, ::-1])
        peaks, mirror_peaks = _argmax_points(label[base]), _argmax_points(label[pair])
        flipped = peaks[landmarks.IBUG68.flip_order]
        assert np.abs(mirror_peaks[:, 1] - flipped[:, 1]).max() == 0
        assert np.abs(mirror_peaks[:, 0] - (63 - flipped[:, 0])).max() <= 1


def test_iterator_shapes_drop_last_reshuffle_and_reproducibility(synth_rec, cfg):
    it = FaceSegIter(synth_rec, cfg, 16, aug_level=1, workers=0, seed=1)
    assert it.provide_data[0].name == 'data' and it.provide_label[0].name == 'softmax_label'
    batches = list(it)
    # 40 records: two full batches; the last 8 records wait for the next pass.
    assert len(batches) == 2 and all(b.pad == 0 for b in batches)
    assert batches[0].data[0].shape == (16, 3, 128, 128)
    assert batches[0].label[0].shape == (16, 68, 64, 64)
    it.reset()
    second = [b.data[0].asnumpy() for b in it]
    assert not np.array_equal(second[0], batches[0].data[0].asnumpy())
    parallel = FaceSegIter(synth_rec, cfg, 16, aug_level=1, workers=2, seed=1)
    try:
        for ours, theirs in zip(batches, parallel):
            np.testing.assert_array_equal(ours.data[0].asnumpy(), theirs.data[0].asnumpy())
            np.testing.assert_array_equal(ours.label[0].asnumpy(), theirs.label[0].asnumpy())
        parallel.seek(1, 1)     # entering a pass at a batch gives that batch exactly
        np.testing.assert_array_equal(parallel.next().data[0].asnumpy(), second[1])
    finally:
        parallel.close()
    doubled = FaceSegIter(synth_rec, cfg, 16, aug_level=1, workers=0, exf=2)
    assert len(list(doubled)) == 5 and doubled.num_records == 40


@pytest.mark.parametrize('workers', [0, 2])
def test_no_blank_sample_reaches_training(synth_rec, cfg, workers):
    """Every sample of every training batch is a real face with its targets,
    the last partial batch included (it is dropped, never zero-padded)."""
    it = FaceSegIter(synth_rec, cfg, 12, 6, aug_level=1, coherent=True, workers=workers, seed=4)
    try:
        for _ in range(3):
            count = 0
            for batch in it:
                count += 1
                assert batch.pad == 0 and batch.valid.all()
                data, label = batch.data[0].asnumpy(), batch.label[0].asnumpy()
                assert (data.reshape(12, -1).std(axis=1) > 5).all()
                assert (label.reshape(12, 68, -1).max(axis=2) == pytest.approx(20.0))
            assert count == 40 // 6
            it.reset()
    finally:
        it.close()


def test_distributed_shards_are_equal_and_disjoint(synth_rec, tmp_path, cfg):
    reader = RecordReader(synth_rec)
    with RecordWriter(str(tmp_path / 'nine'), landmarks.IBUG68) as writer:
        for key in reader.keys[:9]:
            writer.write(reader.read(key))
    rec = str(tmp_path / 'nine.rec')
    parts = [FaceSegIter(rec, cfg, 4, aug_level=1, workers=0, part_index=i, num_parts=2)
             for i in range(2)]
    assert [p.num_records for p in parts] == [4, 4]
    assert set(parts[0].keys).isdisjoint(parts[1].keys)
    assert [len(list(p)) for p in parts] == [1, 1]


def test_data_workers_do_not_load_mxnet(synth_rec, cfg):
    it = FaceSegIter(synth_rec, cfg, 8, aug_level=1, workers=1)
    try:
        it.next()
        pid = it._pool.procs[0].pid
        with open('/proc/%d/maps' % pid) as f:
            maps = f.read()
        with open('/proc/%d/cmdline' % pid) as f:
            command = f.read().split('\0')
    finally:
        it.close()
    assert 'libmxnet' not in maps and 'cv2' in maps
    assert command[1:3] == ['-m', 'data.workers']


def test_workers_read_a_set_named_relative_to_the_current_folder(synth_rec, cfg,
                                                                 monkeypatch):
    """Workers run in the project's folder; a path the user typed relative to
    theirs still reads."""
    monkeypatch.chdir(os.path.dirname(os.path.dirname(synth_rec)))
    relative = os.path.relpath(synth_rec)
    it = FaceSegIter(relative, cfg, 8, aug_level=1, workers=1)
    try:
        batch = it.next()
    finally:
        it.close()
    assert batch.data[0].shape[0] == 8 and it.path == relative


def test_eval_iterator_exposes_points_and_transforms(synth_rec, cfg):
    it = eval_iter(synth_rec, cfg, 16, '300W')
    reader = RecordReader(synth_rec)
    batch = it.next()
    image, points = reader.read_face(3)
    np.testing.assert_allclose(batch.points[3], points)
    align, crop = batch.transforms[3]
    expected = geometry.apply(crop, geometry.apply(align, points))
    np.testing.assert_array_equal(_argmax_points(batch.label[0].asnumpy()[3]),
                                  (expected * 0.5).astype(int))
    box = geometry.apply(align, points)
    width = box[:, 0].max() - box[:, 0].min()
    height = box[:, 1].max() - (max(box[:, 1].min() - 40, 0))
    assert crop[0, 0] == pytest.approx(128 / (1.2 * max(width, height)))


def _corrupt_copy(src_rec, dst_prefix, damage):
    """Copy a record set, letting `damage(key, payload)` replace payloads."""
    reader = RecordReader(src_rec)
    with RecordWriter(dst_prefix, landmarks.IBUG68) as writer:
        for key in reader.keys:
            writer.write(damage(key, reader.read(key)))
    return dst_prefix + '.rec'


def test_missing_index_is_a_clear_error(synth_rec, tmp_path, cfg):
    rec = tmp_path / 'lonely.rec'
    shutil.copy(synth_rec, rec)
    with pytest.raises(FileNotFoundError, match='lonely.idx'):
        FaceSegIter(str(rec), cfg, 4, aug_level=1, workers=0)


@pytest.mark.parametrize('workers', [0, 2])
def test_bad_records_are_skipped_and_counted(synth_rec, tmp_path, cfg, caplog, workers):
    def damage(key, payload):
        if key == 2:      # label of 10 floats
            return HEADER.pack(10, 0, key, 0) + np.zeros(10, '<f4').tobytes() + payload[-500:]
        if key == 5:      # undecodable image
            label, _ = unpack_label(payload)
            return HEADER.pack(136, 0, key, 0) + label.astype('<f4').tobytes() + b'garbage'
        return payload
    rec = _corrupt_copy(synth_rec, str(tmp_path / 'bad'), damage)
    size = os.path.getsize(rec)
    with open(rec, 'r+b') as f:      # truncate inside the last record
        f.truncate(size - 3000)
    caplog.set_level('INFO')
    it = FaceSegIter(rec, cfg, 8, aug_level=1, workers=workers)
    try:
        batches = list(it)
    finally:
        it.close()
    assert len(batches) == 5 and it.epoch_stats['corrupt'] >= 3
    assert all(b.valid.all() for b in batches)
    assert it.notices['corrupt'] == it.epoch_stats['corrupt']    # said when training asks
    it.log_notices('steps 1-5')
    assert 'steps 1-5: %d unreadable records skipped' % it.epoch_stats['corrupt'] in caplog.text
    assert it.notices['corrupt'] == 0
    assert [p.split(': ')[1] for p in RecordReader(rec).scan()] == [
        'label has 10 floats, expected 136 (68 points)',
        'the payload after the label is not a JPEG or PNG image', 'record is truncated']
    evaluation = eval_iter(rec, cfg, 8)
    valid = np.concatenate([b.valid for b in evaluation])
    assert not valid[2] and not valid[5] and not valid[39] and valid.sum() == 37


def test_synthetic_faces_are_drawn_through_their_points():
    rng = np.random.default_rng(7)
    contrast = []
    for _ in range(30):
        image, points = synth.synth_face(rng)
        assert (points > 0).all() and (points < 384).all()
        grey = image.mean(axis=2)
        lips = tuple(np.round(points[[50, 52, 56, 58]].mean(axis=0)).astype(int))
        pupil = tuple(np.round(points[36:42].mean(axis=0)).astype(int))
        cheek = tuple(np.round((points[2] + points[31]) / 2).astype(int))
        contrast.append(grey[cheek[1], cheek[0]] - min(grey[pupil[1], pupil[0]],
                                                         grey[lips[1], lips[0]]))
    assert np.median(contrast) > 20


def test_inspect_dumps_images_and_contact_sheet(synth_rec, tmp_path, capsys):
    assert inspect_data.main(['--rec', synth_rec, '--out', str(tmp_path / 'raw'),
                              '--count', '5']) == 0
    assert 'wrote 5 of the 40 records of %s (--count 5)' % synth_rec in capsys.readouterr().out
    assert inspect_data.main(['--rec', synth_rec, '--out', str(tmp_path / 'raw')]) == 1
    assert 'holds an earlier dump' in capsys.readouterr().err
    assert len(list((tmp_path / 'raw').glob('*.jpg'))) == 5
    sheet = cv2.imread(str(tmp_path / 'raw' / 'contact_sheet.png'))
    assert sheet.shape == (160, 8 * 160, 3)
    assert inspect_data.main(['--rec', synth_rec, '--out', str(tmp_path / 'aug'), '--count',
                              '3', '--augmented']) == 0
    assert len(list((tmp_path / 'aug').glob('aug*.jpg'))) == 3
    # More samples than records: passes repeat, each sample newly drawn.
    assert inspect_data.main(['--rec', synth_rec, '--out', str(tmp_path / 'more'), '--count',
                              '50', '--augmented']) == 0
    assert 'wrote 50 augmented samples of the 40 records' in capsys.readouterr().out
    assert len(list((tmp_path / 'more').glob('aug*.jpg'))) == 50
