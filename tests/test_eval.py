"""Detector decoding, the evaluation protocol and metrics, and test.py."""
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

import test as test_script
from core import checkpoint
from core import protocol as evaluate
from core.config import load_config
from data import build
from data.images import to_bgr8
from data.iterator import FaceSegIter
from essh import ESSHDetector
from symbol import get_symbol, param_shapes

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
    """Independent decoding of the contract in PIPELINE.md section 6."""
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
    detector = ESSHDetector(str(tmp_path / 'essh'), 0, ctx_id=-1)
    ours = detector.detect(image, threshold=0.4, scales=scales)
    theirs = _reference_detect(sym, args, image, 0.4, scales)
    assert ours.shape[1] == 15 and len(ours) > 3
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    assert detector.detect(image, threshold=2.0).shape == (0, 15)


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
    assert evaluate.nme(pred[None], gt[None], '2d')[0] == pytest.approx(5 / 40.0)
    # 3D: sqrt(w h) of the landmark box: w = 100, h = 50.
    assert evaluate.nme(pred[None], gt[None], '3d')[0] == pytest.approx(5 / np.sqrt(5000))
    # Inter-ocular (outer corners 36, 45): 20 + 40 - 10 = 50.
    assert evaluate.nme(pred[None], gt[None], '2d', 'ocular')[0] == pytest.approx(5 / 50.0)
    half = gt.copy()
    half[:34] += [6.0, 8.0]                        # half the points 10 px off
    assert evaluate.nme(half[None], gt[None], '2d')[0] == pytest.approx(5 / 40.0)


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
    maps[0, 0, 0, 0] = np.nan
    assert np.isnan(evaluate.decode(maps, 128, 'subpixel')[0, 0]).all()


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
                         eval_crop=evaluate.EvalCrop('ibug', 128))
        result = evaluate.evaluate(lambda batch: batch.label[0].asnumpy(), it, 128, '2d',
                                   decoder)
        assert len(result['nme']) == 43
        floors[decoder] = 100 * result['nme'].mean()
    print('oracle NME floor on dlib-faces: argmax %.3f%%, subpixel %.3f%%'
          % (floors['argmax'], floors['subpixel']))
    assert 0 < floors['subpixel'] < floors['argmax'] < 5.0


# test.py ---------------------------------------------------------------------

@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory):
    """A checkpoint written by this project (small network, Xavier weights)."""
    cfg = load_config('hourglass', 'i2d', ['multiplier=0.125', 'net_stacks=1', 'net_n=2',
                                           'net_block=resnet'])
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (1, 3, 128, 128), (1, 68, 64, 64))
    init = mx.init.Xavier()
    args, aux = {}, {}
    for name, shape in shapes.items():
        if name in sym.list_auxiliary_states():
            aux[name] = mx.nd.ones(shape) if name.endswith('var') else mx.nd.zeros(shape)
        else:
            args[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name), args[name])
    prefix = str(tmp_path_factory.mktemp('ckpt') / 'model')
    checkpoint.save_checkpoint(prefix, 0, sym, args, aux)
    return prefix


def _gt_boxes(shared):
    boxes = {}
    folder = shared / 'data' / 'dlib-faces'
    for xml in ('training_with_face_landmarks.xml', 'testing_with_face_landmarks.xml'):
        for image in ET.parse(folder / xml).getroot().iter('image'):
            for box in image.iter('box'):
                pts = np.array([[float(p.get('x')), float(p.get('y'))] for p in box.iter('part')])
                boxes.setdefault(image.get('file'), []).append(
                    np.concatenate([pts.min(axis=0), pts.max(axis=0)]))
    return boxes


def test_test_py_on_dlib_photos(shared, small_checkpoint, tmp_path):
    out = tmp_path / 'out'
    code = test_script.main([str(shared / 'data' / 'dlib-faces'), '--prefix', small_checkpoint,
                             '--output', str(out)])
    assert code == 0
    found = 0
    gt = _gt_boxes(shared)
    for name, boxes in gt.items():
        stem = name[:-4]
        assert cv2.imread(str(out / (stem + '.png'))) is not None
        record = json.loads((out / (stem + '.json')).read_text())
        dets = np.array([f['box'] for f in record['faces']]).reshape(-1, 4)
        for f in record['faces']:
            assert np.array(f['landmarks']).shape == (68, 2)
        for box in boxes:
            centre = (box[:2] + box[2:]) / 2
            inside = ((dets[:, 0] <= centre[0]) & (centre[0] <= dets[:, 2])
                      & (dets[:, 1] <= centre[1]) & (centre[1] <= dets[:, 3]))
            found += bool(inside.any())
    print('default detector found %d of 43 annotated faces' % found)
    assert found >= 40


def test_bad_inputs_are_converted_reported_or_named(shared, small_checkpoint, tmp_path):
    photo = cv2.imread(str(shared / 'data' / 'dlib-faces' / '2008_002470.jpg'))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'grey.png'), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(inputs / 'rgba.png'), cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(inputs / 'deep.png'), photo.astype(np.uint16) * 257)
    cv2.imwrite(str(inputs / 'flat.png'), np.full((200, 300, 3), 127, np.uint8))
    big = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(inputs / 'large.jpg'), big)
    (inputs / 'broken.jpg').write_bytes(b'\x00not an image')
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, 'test.py', str(inputs), '--prefix', small_checkpoint,
                           '--output', str(out)], cwd=str(ROOT), capture_output=True, text=True)
    assert proc.returncode == 1
    assert 'broken.jpg' in proc.stderr and 'cannot read' in proc.stderr
    counts = {}
    for name in ('grey', 'rgba', 'deep', 'flat', 'large'):
        record = json.loads((out / (name + '.json')).read_text())
        counts[name] = len(record['faces'])
        assert (out / (name + '.png')).is_file()
    assert counts['grey'] > 0 and counts['rgba'] > 0 and counts['deep'] > 0
    flat = json.loads((out / 'flat.json').read_text())
    assert flat['faces'] == [] and flat['message'] == 'no face found'
    large = json.loads((out / 'large.json').read_text())
    assert large['width'] == big.shape[1] and counts['large'] > 0
    boxes = np.array([f['box'] for f in large['faces']])
    assert boxes[:, 2].max() > photo.shape[1] * 2          # original pixels, not downscaled
    landmarks = np.array([f['landmarks'] for f in large['faces']])
    assert landmarks[..., 0].max() > photo.shape[1] * 2


def test_to_bgr8_conversions():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_bgr8(grey).shape == (3, 4, 3)
    deep = np.full((2, 2, 3), 65535, np.uint16)
    assert (to_bgr8(deep) == 255).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_bgr8(rgba).shape == (2, 2, 3)


def test_missing_checkpoint_is_named(tmp_path):
    proc = subprocess.run([sys.executable, 'test.py', str(tmp_path), '--prefix',
                           str(tmp_path / 'nothing')], cwd=str(ROOT), capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert 'nothing-0000.params does not exist' in proc.stderr
    assert 'tools.download' in proc.stderr and 'Traceback' not in proc.stderr


def test_test_rec_nme_reports_with_gt_box_and_with_detector(dlib_rec, small_checkpoint, tmp_path,
                                                           capsys):
    import test_rec_nme
    out = tmp_path / 'nme'
    assert test_rec_nme.main(['--rec', dlib_rec, '--dataset', 'ibug', '--prefix',
                              small_checkpoint, '--output', str(out)]) == 0
    report = capsys.readouterr().out
    assert re.search(r'nme on ibug is [0-9.]+%', report)
    assert 'AUC@0.08' in report and 'failure rate@0.10' in report
    assert (out / 'ibug-ced.png').is_file()
    rows = (out / 'ibug-per-image.csv').read_text().splitlines()
    assert len(rows) == 44 and rows[0].startswith('index,nme_argmax,nme_subpixel')
    assert test_rec_nme.main(['--rec', dlib_rec, '--dataset', 'ibug', '--prefix',
                              small_checkpoint, '--output', str(tmp_path / 'det'),
                              '--use-default-detector']) == 0
    report = capsys.readouterr().out
    assert 'the detector found no face in' in report and 'nme on ibug is' in report
