"""Detector decoding, the evaluation protocol and metrics, and test.py."""
import csv
import re
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from core.plumbing import checkpoint
from core.evaluation import protocol as evaluate
from core.plumbing.config import load_config
from data import build
from data.landmarks import IBUG68
from data.iterator import FaceSegIter
from data.recordio import RecordReader, RecordWriter, pack_face
import essh
from essh.detector import ESSHDetector

ROOT = Path(__file__).resolve().parents[1]


# ESSH ------------------------------------------------------------------------

def _tiny_essh(prefix):
    """A random-weight network with ESSH's output contract: for strides 32, 16,
    8: scores (1, 4, h, w), boxes (1, 8, h, w), landmarks (1, 20, h, w)."""
    data = mx.sym.Variable('data')
    feat8 = mx.sym.Activation(mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1),
                                                 stride=(8, 8), name='c8'), act_type='relu')
    feat16 = mx.sym.Pooling(feat8, kernel=(2, 2), stride=(2, 2), pool_type='max')
    feat32 = mx.sym.Pooling(feat16, kernel=(2, 2), stride=(2, 2), pool_type='max')
    outputs = []
    for stride, feat in ((32, feat32), (16, feat16), (8, feat8)):
        cls = mx.sym.Convolution(feat, num_filter=4, kernel=(1, 1), name='cls%d' % stride)
        outputs.append(mx.sym.sigmoid(cls))
        outputs.append(0.02 * mx.sym.Convolution(feat, num_filter=8, kernel=(1, 1),
                                                name='box%d' % stride))
        outputs.append(0.02 * mx.sym.Convolution(feat, num_filter=20, kernel=(1, 1),
                                                name='lmk%d' % stride))
    sym = mx.sym.Group(outputs)
    arg_shapes, _, _ = sym.infer_shape(data=(1, 3, 96, 96))
    rng = np.random.RandomState(0)
    args = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in zip(sym.list_arguments(), arg_shapes)
            if n != 'data'}
    checkpoint.save_checkpoint(prefix, 0, sym, args, {})
    return sym, args


def _reference_detect(sym, args, image_bgr, threshold, scales):
    """Independent decoding of the ESSH contract (docs/protocol.md)."""
    strides, scales_of = (32, 16, 8), {32: (32, 16), 16: (8, 4), 8: (2, 1)}
    proposals = []
    for k, scale in enumerate(scales):
        img = cv2.resize(image_bgr, None, fx=scale, fy=scale) if scale != 1 else image_bgr
        height, width = img.shape[:2]
        data = np.zeros((1, 3, height, width), np.float32)
        for c, mean in enumerate((123.68, 116.779, 103.939)):
            data[0, c] = img[:, :, 2 - c] - mean
        exe = sym.bind(mx.cpu(), dict(args, data=mx.nd.array(data)))
        outs = [o.asnumpy() for o in exe.forward()]
        for i, stride in enumerate(strides):
            if len(scales) > 1 and k == len(scales) - 1 and stride == 32:
                continue
            cls, box, lmk = outs[3 * i:3 * i + 3]
            rows = []
            for y in range(cls.shape[2]):
                for x in range(cls.shape[3]):
                    for a, s in enumerate(scales_of[stride]):
                        half = (16 * s - 1) / 2.0
                        ax1, ay1 = 7.5 - half + x * stride, 7.5 - half + y * stride
                        ax2, ay2 = 7.5 + half + x * stride, 7.5 + half + y * stride
                        w, h = ax2 - ax1 + 1, ay2 - ay1 + 1
                        cx, cy = ax1 + 0.5 * (w - 1), ay1 + 0.5 * (h - 1)
                        dx, dy, dw, dh = box[0, 4 * a:4 * a + 4, y, x]
                        px, py = dx * w + cx, dy * h + cy
                        pw, ph = np.exp(dw) * w, np.exp(dh) * h
                        b = [px - 0.5 * (pw - 1), py - 0.5 * (ph - 1), px + 0.5 * (pw - 1),
                             py + 0.5 * (ph - 1)]
                        marks = []
                        for p in range(5):
                            marks += [lmk[0, 10 * a + 2 * p, y, x] * w + cx,
                                      lmk[0, 10 * a + 2 * p + 1, y, x] * h + cy]
                        b = [min(max(v, 0), (width if j % 2 == 0 else height) - 1)
                             for j, v in enumerate(b)]
                        marks = [min(max(v, 0), (width if j % 2 == 0 else height) - 1)
                                 for j, v in enumerate(marks)]
                        rows.append([v / scale for v in b] + [cls[0, 2 + a, y, x]]
                                    + [v / scale for v in marks])
            rows.sort(key=lambda r: -r[4])
            proposals += rows[:1000]
    proposals.sort(key=lambda r: -r[4])
    kept = []
    for r in proposals:
        ok = True
        for q in kept:
            iw = max(0.0, min(r[2], q[2]) - max(r[0], q[0]) + 1)
            ih = max(0.0, min(r[3], q[3]) - max(r[1], q[1]) + 1)
            inter = iw * ih
            union = (r[2] - r[0] + 1) * (r[3] - r[1] + 1) + (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
            if inter / (union - inter) > 0.3:
                ok = False
                break
        if ok:
            kept.append(r)
    return np.array([r for r in kept if r[4] >= threshold]).reshape(-1, 15)


@pytest.mark.parametrize('scales', [(1.0,), (1.0, 0.75)])
def test_essh_detect_matches_independent_decoding(tmp_path, scales):
    sym, args = _tiny_essh(str(tmp_path / 'essh'))
    image = np.random.RandomState(1).randint(0, 255, (96, 128, 3)).astype(np.uint8)
    detector = ESSHDetector(str(tmp_path / 'essh'), 0, scales=scales)
    ours = detector.detect_rows(image, threshold=0.4, scales=scales)
    theirs = _reference_detect(sym, args, image, 0.4, scales)
    assert ours.shape[1] == 15 and len(ours) > 3
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    assert detector.detect_rows(image, threshold=2.0).shape == (0, 15)
    found = detector.detect(image)                       # the common interface
    np.testing.assert_allclose(found.boxes, ours[:, :4], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(found.points, ours[:, 5:].reshape(-1, 5, 2), rtol=1e-4, atol=1e-3)
    assert found.scores.max() <= 1 and (found.scores >= 0.4).all()


def test_essh_keeps_a_bounded_number_of_executors(tmp_path):
    _tiny_essh(str(tmp_path / 'essh'))
    detector = essh.create('essh', prefix=str(tmp_path / 'essh'))
    rng = np.random.RandomState(0)
    for size in range(64, 64 + 8 * 12, 8):                 # twelve photo sizes
        detector.detect(rng.randint(0, 255, (size, size + 16, 3)).astype(np.uint8))
        assert len(detector._executors) <= ESSHDetector.EXECUTORS
    assert list(detector._executors)[-1] == (1, 3, size, size + 16)


# Metrics ---------------------------------------------------------------------

def _face(eye_distance=40.0):
    """A synthetic 68-point shape whose eye centres are `eye_distance` apart."""
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(0, 100, 68)
    pts[:, 1] = np.linspace(0, 50, 68)
    pts[[36, 39]] = [[10, 20], [20, 20]]
    pts[[42, 45]] = [[10 + eye_distance, 20], [20 + eye_distance, 20]]
    return pts


def test_nme_hand_cases_2d_and_3d():
    gt = _face(40.0)
    pred = gt + [3.0, 4.0]                         # every point 5 px off
    assert evaluate.nme(pred[None], gt[None], IBUG68, '2d')[0] == pytest.approx(5 / 40.0)
    # 3D: sqrt(w h) of the landmark box: w = 100, h = 50.
    assert evaluate.nme(pred[None], gt[None], IBUG68, '3d')[0] == pytest.approx(5 / np.sqrt(5000))
    # Inter-ocular (outer corners 36, 45): 20 + 40 - 10 = 50.
    assert evaluate.nme(pred[None], gt[None], IBUG68, '2d', 'ocular')[0] == pytest.approx(5 / 50.0)
    half = gt.copy()
    half[:34] += [6.0, 8.0]                        # half the points 10 px off
    assert evaluate.nme(half[None], gt[None], IBUG68, '2d')[0] == pytest.approx(5 / 40.0)


def test_auc_and_failure_rate_hand_cases():
    errors = np.array([0.02, 0.04, 0.06, 0.12])
    assert evaluate.failure_rate(errors, 0.08) == 0.25
    assert evaluate.failure_rate(errors, 0.05) == 0.5
    # CED steps: 0 until .02, .25 to .04, .5 to .06, .75 to .08: area/.08 = .375
    assert evaluate.auc(errors, 0.08) == pytest.approx(0.375, abs=2e-3)
    assert evaluate.auc(np.zeros(5), 0.1) == pytest.approx(1.0, abs=1e-3)
    assert evaluate.auc(np.full(5, 0.5), 0.1) == 0.0


def test_decoders_on_hand_made_heatmaps():
    maps = np.zeros((1, 2, 64, 64), np.float32)
    maps[0, 0, 10, 20] = 1.0                            # a single peak at (x 20, y 10)
    maps[0, 1, 30, 40], maps[0, 1, 30, 41] = 1.0, 0.5   # a peak leaning right
    maps[0, 1, 30, 39] = 0.25
    argmax = evaluate.decode(maps, 128, 'argmax')
    np.testing.assert_array_equal(argmax[0, 0], [40, 20])
    sub = evaluate.decode(maps, 128, 'subpixel')
    np.testing.assert_allclose(sub[0, 0], [40.5, 20.5])
    # parabola through .25, 1, .5: vertex 0.5 (.25 - .5) / (.25 - 2 + .5) = +0.1 label px
    np.testing.assert_allclose(sub[0, 1], [80.5 + 0.2, 60.5])
    # A map that says nothing (not finite, or flat) gives the crop's centre and
    # confidence 0, by every decoder: never NaN.
    maps[0, 0, 0, 0] = np.nan
    maps[0, 1] = 0.7
    for decoder in evaluate.DECODERS:
        np.testing.assert_array_equal(evaluate.decode(maps, 128, decoder)[0], [[63.5, 63.5]] * 2)
    np.testing.assert_array_equal(evaluate.peak_values(maps), [[0, 0]])


@pytest.fixture(scope='module')
def dlib_rec(shared, tmp_path_factory):
    folder = shared / 'data' / 'dlib-faces'
    prefix = str(tmp_path_factory.mktemp('dlibeval') / 'dlib')
    build.main(['--format', 'dlib-xml', '--input', str(folder / 'training_with_face_landmarks.xml'),
                str(folder / 'testing_with_face_landmarks.xml'), '--out', prefix])
    return prefix + '.rec'


def test_oracle_nme_is_the_decoder_floor(dlib_rec):
    cfg = load_config('hourglass', 'i2d')
    floors = {}
    for decoder in evaluate.DECODERS:
        it = FaceSegIter(dlib_rec, cfg, 16, aug_level=0, workers=0,
                         eval_crop=evaluate.EvalCrop('ibug', 128, IBUG68))
        result = evaluate.evaluate(lambda batch: batch.label[0].asnumpy(), it, 128, IBUG68,
                                   '2d', decoder)
        assert len(result['nme']) == 43
        floors[decoder] = 100 * result['nme'].mean()
    print('oracle NME floor on dlib-faces: argmax %.3f%%, subpixel %.3f%%'
          % (floors['argmax'], floors['subpixel']))
    assert 0 < floors['subpixel'] < floors['argmax'] < 5.0


def test_test_rec_nme_reports_name_every_image_and_never_overwrite(dlib_rec, small_checkpoint,
                                                                    tmp_path, capsys):
    import test_rec_nme
    out = tmp_path / 'nme'
    args = ['--rec', dlib_rec, '--dataset', 'ibug', '--prefix', small_checkpoint, '--output',
            str(out)]
    assert test_rec_nme.main(args + ['--backend', 'mxnet']) == 0
    report = capsys.readouterr().out
    original = float(re.search(r'nme on ibug is ([0-9.]+)% \(the published protocol: '
                               r'ground-truth box, argmax decoding\)', report).group(1))
    assert 'AUC@0.08' in report and 'failure rate@0.10' in report
    folder = out / 'ibug-ckpt0-0000'
    assert (folder / 'ced.png').is_file() and (folder / 'summary.json').is_file()
    with open(folder / 'per-image.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 43 and [int(r['key']) for r in rows] == list(range(43))
    assert rows[0]['image'].endswith('.jpg#0')          # the source image, from dlib.names
    assert np.mean([float(r['nme_argmax_pct']) for r in rows]) == pytest.approx(original,
                                                                               abs=1e-3)
    assert 'nme_subpixel_pct' in rows[0] and 'nme_ocular_subpixel_pct' in rows[0]
    before = (folder / 'per-image.csv').read_bytes()
    assert test_rec_nme.main(args) == 0                 # an earlier report is never replaced:
    assert '%s holds an earlier report (kept); this one goes to %s-2' % (folder, folder) in \
        capsys.readouterr().out                         # the next one goes beside it
    assert (folder / 'per-image.csv').read_bytes() == before
    assert (out / 'ibug-ckpt0-0000-2' / 'summary.json').is_file()
    assert test_rec_nme.main(args + ['--overwrite', '--detector', 'haar']) == 0
    report = capsys.readouterr().out
    assert float(re.search(r'nme on ibug is ([0-9.]+)%', report).group(1)) == pytest.approx(
        original, abs=1e-3)                              # the detector never changes it
    assert re.search(r'with the CascadeDetector detector, subpixel decoding: nme [0-9.]+% on '
                     r'\d+ images \(\d+ without a face, left out\)', report)
    with open(folder / 'per-image.csv') as f:
        assert 'nme_detector_subpixel_pct' in f.readline()


def test_an_evaluation_set_with_non_finite_points_is_refused(dlib_rec, small_checkpoint,
                                                             tmp_path, capsys):
    import test_rec_nme
    reader = RecordReader(dlib_rec)
    with RecordWriter(str(tmp_path / 'bad'), IBUG68) as writer:
        for key in reader.keys[:5]:
            image, points = reader.read_face(key)
            if key == 3:
                points = points.copy()
                points[40] = np.nan
            writer.write(pack_face(image, points, 68, key))
    assert test_rec_nme.main(['--rec', str(tmp_path / 'bad.rec'), '--prefix', small_checkpoint,
                              '--output', str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err
    assert 'bad.rec record 3 has landmarks that are not finite' in err
    assert 'Traceback' not in err


@pytest.fixture(scope='module')
def synth_rec(tmp_path_factory):
    from data import synth
    prefix = tmp_path_factory.mktemp('synth-eval') / 'faces'
    synth.write_records(str(prefix), 12, seed=31, progress=False)
    return str(prefix) + '.rec'


def test_a_garbage_record_set_is_one_line_before_any_report(small_checkpoint, tmp_path, capsys):
    import test_rec_nme
    (tmp_path / 'garbage.rec').write_bytes(np.random.RandomState(1).bytes(5000))
    (tmp_path / 'garbage.idx').write_text('0\t0\n1\t100\n')
    assert test_rec_nme.main(['--rec', str(tmp_path / 'garbage.rec'), '--prefix',
                              small_checkpoint, '--output', str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err
    assert 'garbage.rec: 2 of 2 records are unreadable' in err and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'out').exists()


def test_landmarks_far_outside_the_image_are_reported_and_strict_refuses(
        synth_rec, small_checkpoint, tmp_path, capsys, caplog):
    import test_rec_nme
    reader = RecordReader(synth_rec)
    with RecordWriter(str(tmp_path / 'far'), IBUG68) as writer:
        for key in reader.keys:
            image, points = reader.read_face(key)
            if key in (2, 5):
                points = points + [900.0, 0.0]          # 2.3 image widths to the right
            writer.write(pack_face(image, points, 68, key))
    args = ['--rec', str(tmp_path / 'far.rec'), '--prefix', small_checkpoint, '--backend',
            'mxnet']
    assert test_rec_nme.main(args + ['--output', str(tmp_path / 'a')]) == 0
    assert ('far.rec: 2 records have landmarks more than half the image beyond its border '
            '(keys 2, 5)') in caplog.text and '--strict refuses' in caplog.text
    assert test_rec_nme.main(args + ['--output', str(tmp_path / 'b'), '--strict']) == 1
    err = capsys.readouterr().err
    assert '(keys 2, 5)' in err and '(--strict)' in err and not (tmp_path / 'b').exists()


def test_another_networks_weights_are_named_in_full_by_every_backend(synth_rec, small_checkpoint,
                                                                     tmp_path, capsys):
    """The symbol of the small network with weights that lack one array and
    mis-shape another: both are listed, with ONNX as with MXNet."""
    import shutil

    import test_rec_nme
    from conftest import write_small_checkpoint
    other = write_small_checkpoint(tmp_path / 'other' / 'model', seed=1)
    prefix = str(tmp_path / 'mixed' / 'model')
    (tmp_path / 'mixed').mkdir()
    for suffix in ('-symbol.json', '-config.json'):
        shutil.copy(small_checkpoint + suffix, prefix + suffix)
    args, aux = checkpoint.load_params(other + '-0000.params')
    args = {k: (mx.nd.zeros((3,) + v.shape[1:]) if k == 'heatmap_weight' else v)
            for k, v in args.items() if k != 'conv0_weight'}
    checkpoint.save_params(prefix + '-0000.params', args, aux)
    for backend in ('mxnet', 'onnx'):
        assert test_rec_nme.main(['--rec', synth_rec, '--prefix', prefix, '--backend', backend,
                                  '--output', str(tmp_path / backend)]) == 1
        err = capsys.readouterr().err
        assert 'model-0000.params does not fit the network' in err, err
        assert 'conv0_weight' in err and 'heatmap_weight' in err, err
        assert len(err.strip().splitlines()) == 1


def test_int8_with_a_garbage_calibration_set_is_one_line(small_checkpoint, tmp_path, capsys):
    from tools import export_onnx
    (tmp_path / 'garbage.rec').write_bytes(np.random.RandomState(2).bytes(4000))
    (tmp_path / 'garbage.idx').write_text('0\t0\n1\t100\n')
    assert export_onnx.main(['--prefix', small_checkpoint, '--out', str(tmp_path / 'x.onnx'),
                             '--int8', '--calibration', str(tmp_path / 'garbage.rec')]) == 1
    err = capsys.readouterr().err
    assert 'garbage.rec: 2 of 2 records are unreadable' in err and 'Traceback' not in err
    assert not (tmp_path / 'x.onnx').exists()
