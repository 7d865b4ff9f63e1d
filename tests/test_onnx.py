"""ONNX export of the published graph, the inference backends (MXNet, ONNX
Runtime FP32 and INT8) and checkpoints that say their input size."""
import json
import re
from pathlib import Path

import mxnet as mx
import numpy as np
import onnx
import pytest

import test as test_script
import test_rec_nme
from conftest import train_small
from core.plumbing import checkpoint
from core.inference.export import ExportError, export
from core.inference.predictor import make_predictor
from core.plumbing.runs import resolve
from data import synth
from symbol import get_symbol, param_shapes
from tools import export_onnx


def _params(sym, seed=0):
    shapes = param_shapes(sym, (1, 3, 128, 128), (1, 68, 64, 64))
    rng = np.random.RandomState(seed)
    aux_names = set(sym.list_auxiliary_states())
    arg = {k: mx.nd.array(rng.normal(0, 0.05, s)) for k, s in shapes.items() if k not in aux_names}
    aux = {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('var') else rng.normal(0, 0.1, s))
           for k, s in shapes.items() if k in aux_names}
    return arg, aux


@pytest.mark.parametrize('batch', [1, 'dynamic'])
def test_published_graph_exports_and_matches_mxnet(shared, tmp_path, batch):
    ref = mx.sym.load(str(shared / 'reference' / 'model-hg2d3-cab-symbol.json'))
    arg, aux = _params(ref)
    path = str(tmp_path / 'hg.onnx')
    diff = export(ref, arg, aux, path, batch)
    assert diff <= 1e-4
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ['data']
    assert set(arg) | set(aux) <= {i.name for i in model.graph.initializer}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param == 'batch') if batch == 'dynamic' else (dims[0].dim_value == 1)


def test_nearest_upsampling_by_whole_factors_picks_the_same_pixels_faster_way(tmp_path):
    """MXNet's exporter writes nearest upsampling with half-pixel coordinates
    rounded half down; for whole factors asymmetric coordinates rounded down
    pick the same pixels (ONNX Runtime's faster path). A factor of 1.5 is
    left alone."""
    from onnx import TensorProto, helper, numpy_helper

    from core.inference.export import ort_session
    from core.inference.rewrites import nearest_by_whole_factors
    feeds = {'x': np.random.RandomState(0).normal(0, 1, (1, 2, 6, 5)).astype(np.float32)}
    changed = {}
    for factor in (2, 3, 1.5):
        graph = helper.make_graph(
            [helper.make_node('Resize', ['x', 'roi', 'scales'], ['y'], mode='nearest',
                              coordinate_transformation_mode='half_pixel',
                              nearest_mode='round_prefer_floor')],
            'up', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2, 6, 5])],
            [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)],
            [numpy_helper.from_array(np.zeros(0, np.float32), 'roi'),
             numpy_helper.from_array(np.array([1, 1, factor, factor], np.float32), 'scales')])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
        outputs = []
        for name in ('half-pixel', 'floor'):
            path = str(tmp_path / ('%s-%s.onnx' % (factor, name)))
            if name == 'floor':
                changed[factor] = nearest_by_whole_factors(model)
            onnx.save(model, path)
            outputs.append(ort_session(path).run(None, feeds)[0])
        assert np.array_equal(outputs[0], outputs[1])
    assert changed == {2: 1, 3: 1, 1.5: 0}


def test_deformable_network_is_refused_by_name(small_cfg, tmp_path, capsys):
    sym = get_symbol(small_cfg(net_dcn=2, net_n=2))
    arg, aux = _params(sym)
    checkpoint.save_checkpoint(str(tmp_path / 'dcn'), 0, sym, arg, aux)
    out = tmp_path / 'dcn.onnx'
    assert export_onnx.main(['--prefix', str(tmp_path / 'dcn'), '--out', str(out)]) == 1
    message = capsys.readouterr().err
    assert 'deformable convolution' in message and 'stack0_ll_conv' in message
    assert not out.exists()
    with pytest.raises(ExportError):
        export(sym, arg, aux, str(out))


def test_onnx_backend_predicts_like_mxnet_and_its_cache_follows_the_params(small_cfg, tmp_path):
    sym = get_symbol(small_cfg(net_n=2, net_block='resnet'))
    arg, aux = _params(sym, seed=4)
    prefix = str(tmp_path / 'model')
    checkpoint.save_checkpoint(prefix, 3, sym, arg, aux)
    data = np.random.RandomState(5).uniform(0, 255, (3, 3, 128, 128)).astype(np.float32)
    model = resolve(prefix, 3)
    ours = make_predictor(model, backend='onnx')(data)
    cached = tmp_path / 'model-0003.onnx'
    record = json.loads((tmp_path / 'model-0003.onnx.json').read_text())
    assert record['input_size'] == 128 and record['params'] == 'model-0003.params'
    resizes = [n for n in onnx.load(str(cached)).graph.node if n.op_type == 'Resize']
    assert resizes and all(onnx.helper.get_attribute_value(a) == b'asymmetric' for n in resizes
                           for a in n.attribute if a.name == 'coordinate_transformation_mode')
    np.testing.assert_allclose(ours, make_predictor(model, backend='mxnet')(data), atol=1e-4)
    made = cached.stat().st_mtime_ns
    assert make_predictor(model, backend='auto').backend == 'onnx'
    assert cached.stat().st_mtime_ns == made                       # reused
    (tmp_path / 'model-0003.onnx.json').write_text(json.dumps(dict(record, rewrites=1)))
    make_predictor(model, backend='onnx')
    assert cached.stat().st_mtime_ns != made                       # an older exporter's: again
    made = cached.stat().st_mtime_ns
    other, _ = _params(sym, seed=9)
    checkpoint.save_params(model.params, other, aux, overwrite=True)
    changed = make_predictor(model, backend='onnx')(data)
    assert cached.stat().st_mtime_ns != made                       # made again
    np.testing.assert_allclose(changed, make_predictor(model, backend='mxnet')(data), atol=1e-4)


def test_a_batch_split_across_sessions_gives_each_face_its_own_heatmaps(small_cfg, tmp_path):
    """A batch runs as single-thread sessions side by side (one per core):
    an uneven split, order kept, the same heatmaps as one session, and
    no such sessions made for single faces."""
    from core.inference.predictor import OnnxRunner
    sym = get_symbol(small_cfg(net_n=1, net_block='resnet'))
    arg, aux = _params(sym, seed=2)
    path = str(tmp_path / 'model.onnx')
    export(sym, arg, aux, path, 'dynamic', 128)
    data = np.random.RandomState(3).uniform(0, 255, (5, 3, 128, 128)).astype(np.float32)
    runner = OnnxRunner(path)
    runner.lane_count = 3
    alone = np.concatenate([runner(face[None]) for face in data])
    assert runner._lanes is None
    together = runner(data)
    assert len(runner._lanes) == 3
    assert [lane.get_session_options().intra_op_num_threads for lane in runner._lanes] == [1] * 3
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    assert np.abs(together[0] - together[4]).max() > 1e-4      # so order would show


def test_auto_backend_runs_deformable_networks_with_mxnet(small_cfg, tmp_path):
    sym = get_symbol(small_cfg(net_dcn=2, net_n=2))
    arg, aux = _params(sym)
    checkpoint.save_checkpoint(str(tmp_path / 'dcn'), 0, sym, arg, aux)
    assert make_predictor(resolve(str(tmp_path / 'dcn')), 'auto').backend == 'mxnet'
    assert not list(tmp_path.glob('*.onnx'))


@pytest.fixture(scope='module')
def run_at_256(tmp_path_factory):
    """A real run trained with --set input_img_size=256 (a few steps)."""
    root = tmp_path_factory.mktemp('at256')
    synth.write_records(str(root / 'train'), 16, seed=1, progress=False)
    synth.write_records(str(root / 'ibug'), 8, seed=2, progress=False)
    return root, train_small(root / 'run' / 'model', root, '--set', 'input_img_size=256',
                             '--per-batch-size', 4, '--lr-epoch-step', 1, '--workers', 0)


def test_a_256_input_checkpoint_is_used_at_256_by_every_tool(run_at_256, tmp_path, capsys,
                                                               caplog):
    root, prefix = run_at_256
    model = resolve(prefix)
    assert model.input_size == 256 and model.number == 1 and 'config.json' in model.source
    figures = {}
    for backend in ('mxnet', 'onnx'):
        assert test_rec_nme.main(['--rec', str(root / 'ibug.rec'), '--prefix', prefix,
                                  '--backend', backend, '--output',
                                  str(tmp_path / backend)]) == 0
        report = capsys.readouterr().out
        assert 'input 256' in report
        figures[backend] = float(re.search(r'nme on ibug is ([0-9.]+)%', report).group(1))
    assert figures['onnx'] == pytest.approx(figures['mxnet'], rel=1e-3)   # argmax near-ties
    assert json.loads(open(prefix + '-0001.onnx.json').read())['input_size'] == 256
    assert export_onnx.main(['--prefix', prefix, '--out', str(tmp_path / 'm.onnx')]) == 0
    dims = onnx.load(str(tmp_path / 'm.onnx')).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, 256, 256]
    synth.write_photos(str(tmp_path / 'photos'), 1, seed=3)
    caplog.set_level('INFO')
    assert test_script.main([str(tmp_path / 'photos'), '--prefix', prefix, '--output',
                             str(tmp_path / 'aligned')]) == 0
    assert 'checkpoint 0001, the only one; configuration from %s-config.json (input 256)' \
        % prefix in caplog.text
    record = json.loads((tmp_path / 'aligned' / 'synth-00.jpg.json').read_text())
    assert record['faces'] and np.array(record['faces'][0]['landmarks']).shape == (68, 2)


def _calibrated(source, target, feeds):
    """quantize_static of `source` into `target`, calibrated on one feed."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.items = iter([feeds])

        def get_next(self):
            return next(self.items, None)
    quantize_static(source, target, Feeds(), quant_format=QuantFormat.QDQ, per_channel=True)
    return [n.op_type for n in onnx.load(target).graph.node]


def test_residual_halvings_stay_in_int8_and_fold_into_its_scales(tmp_path):
    """(a + b) / 2 as Add and Mul, and a Sum of three as two Adds: the same
    values (to the bit for the halving, to float rounding for the sum), and
    ONNX Runtime's quantizer then keeps them in INT8 (QLinearAdd), where a
    Sum stayed in float between a dequantize and a quantize. A Div by 3 is
    left alone. In the quantized graph each Mul by a power of two then folds
    into the quantization before it: no Mul left, the same integers out
    (also for two in a row), and no initializer left unused (ONNX Runtime
    warns of each)."""
    from onnx import TensorProto, helper, numpy_helper

    from core.inference.export import ort_session
    from core.inference.rewrites import halvings_as_products, products_into_scales, sums_as_adds
    shape = [1, 4, 8, 8]
    nodes = [helper.make_node('Sum', ['a', 'b'], ['s']), helper.make_node('Div', ['s', 'two'], ['h']),
             helper.make_node('Sum', ['a', 'b', 'h'], ['t'], name='three'),
             helper.make_node('Div', ['t', 'three'], ['u']),
             helper.make_node('Div', ['u', 'quarter'], ['v']),
             helper.make_node('Div', ['v', 'two'], ['w'])]
    constants = [numpy_helper.from_array(np.array([value], np.float32), name)
                 for name, value in (('two', 2), ('three', 3), ('quarter', 0.25))]
    graph = helper.make_graph(nodes, 'halvings', [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in 'ab'],
        [helper.make_tensor_value_info('w', TensorProto.FLOAT, shape)], constants)
    plain = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model = onnx.ModelProto()
    model.CopyFrom(plain)
    assert sums_as_adds(model) == 2 and halvings_as_products(model) == 3
    assert [n.op_type for n in model.graph.node] == ['Add', 'Mul', 'Add', 'Add', 'Div', 'Mul',
                                                     'Mul']
    assert [n.name for n in model.graph.node[2:4]] == ['three_partial1', 'three']
    paths = {name: str(tmp_path / (name + '.onnx')) for name in ('plain', 'rewritten')}
    onnx.save(plain, paths['plain'])
    onnx.save(model, paths['rewritten'])
    feeds = {name: np.random.RandomState(k).normal(0, 3, shape).astype(np.float32)
             for k, name in enumerate('ab')}
    np.testing.assert_allclose(ort_session(paths['rewritten']).run(None, feeds)[0],
                               ort_session(paths['plain']).run(None, feeds)[0], rtol=0, atol=1e-6)

    plain_ops = _calibrated(paths['plain'], str(tmp_path / 'plain-int8.onnx'), feeds)
    assert 'QuantizeLinear' not in plain_ops                    # nothing it quantizes
    int8 = str(tmp_path / 'int8.onnx')
    ops = _calibrated(paths['rewritten'], int8, feeds)
    assert ops.count('QuantizeLinear') >= 5 and ops.count('Mul') == 3   # Add and Mul in INT8
    assert 'Sum' not in ops
    before = ort_session(int8).run(None, feeds)[0]
    model = onnx.load(int8)
    assert products_into_scales(model) == 3   # (a + b) / 2, and the products by 4 then 1/2
    ops = [n.op_type for n in model.graph.node]
    assert 'Mul' not in ops and ops.count('Div') == 1
    used = {name for node in model.graph.node for name in node.input}
    assert all(t.name in used for t in model.graph.initializer)
    folded = str(tmp_path / 'folded.onnx')
    onnx.save(model, folded)
    assert np.array_equal(ort_session(folded).run(None, feeds)[0], before)


def test_int8_upsampling_stays_channels_first_and_picks_the_same_pixels(tmp_path):
    """ONNX Runtime runs a quantized graph channels-last and moves a nearest
    Resize between two convolutions there (a slow per-pixel path); wrapped
    in transposes swapping batch and channels, the Resize it runs upsamples
    channels-first (scales 1, 1, 2, 2), with the same output to the bit."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from core.inference.rewrites import upsamplings_kept_channels_first
    rng = np.random.RandomState(0)
    weights = {'wa': rng.normal(0, 0.3, (8, 4, 3, 3)), 'wb': rng.normal(0, 0.3, (4, 8, 3, 3)),
               'roi': np.zeros(0), 'scales': np.array([1, 1, 2, 2])}
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'wa'], ['a'], pads=[1] * 4),
         helper.make_node('Relu', ['a'], ['r']),
         helper.make_node('Resize', ['r', 'roi', 'scales'], ['up'], mode='nearest',
                          coordinate_transformation_mode='asymmetric', nearest_mode='floor'),
         helper.make_node('Conv', ['up', 'wb'], ['y'], pads=[1] * 4)],
        'up', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 4, 6, 6])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [2, 4, 12, 12])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    feeds = {'x': rng.uniform(0, 2, (2, 4, 6, 6)).astype(np.float32)}
    outputs, layouts = [], []
    for wrapped in (False, True):
        if wrapped:
            assert upsamplings_kept_channels_first(model) == 1
        fp32, int8 = (str(tmp_path / ('%s-%d.onnx' % (kind, wrapped))) for kind in ('fp32', 'int8'))
        onnx.save(model, fp32)
        assert 'Resize' in _calibrated(fp32, int8, feeds)
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / ('optimized-%d.onnx' % wrapped))
        session = ort.InferenceSession(int8, options, providers=['CPUExecutionProvider'])
        outputs.append(session.run(None, feeds)[0])
        optimized = onnx.load(options.optimized_model_filepath)
        constants = {t.name: numpy_helper.to_array(t) for t in optimized.graph.initializer}
        resize, = [n for n in optimized.graph.node if n.op_type == 'Resize']
        layouts.append(constants[resize.input[2]].tolist())
    assert layouts == [[1, 2, 2, 1], [1, 1, 2, 2]]
    assert np.array_equal(outputs[0], outputs[1])


def test_batchnorms_become_convolutions_that_run_in_int8(tmp_path):
    """A BatchNorm the runtime cannot fold (its input also feeds a sum)
    becomes the 1x1 depthwise convolution it computes: the same values
    within float rounding, and the quantizer then puts it between quantize
    and dequantize pairs with per-channel INT8 weights, where it left the
    BatchNorm in float."""
    from onnx import TensorProto, helper, numpy_helper

    from core.inference.export import ort_session
    from core.inference.rewrites import batchnorms_as_convolutions
    channels, shape = 6, [2, 6, 5, 5]
    rng = np.random.RandomState(0)
    statistics = {'gamma': rng.uniform(0.5, 2, channels), 'beta': rng.normal(0, 1, channels),
                  'mean': rng.normal(0, 1, channels), 'var': rng.uniform(0.2, 3, channels)}
    graph = helper.make_graph(
        [helper.make_node('BatchNormalization', ['x', 'gamma', 'beta', 'mean', 'var'], ['n'],
                          name='bn', epsilon=1e-3),
         helper.make_node('Relu', ['n'], ['r']), helper.make_node('Add', ['r', 'x'], ['y'])],
        'bn', [helper.make_tensor_value_info('x', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in statistics.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    paths = {name: str(tmp_path / (name + '.onnx')) for name in ('bn', 'conv')}
    onnx.save(model, paths['bn'])
    assert batchnorms_as_convolutions(model) == 1
    conv = model.graph.node[0]
    assert (conv.op_type, conv.name, list(conv.output)) == ('Conv', 'bn', ['n'])
    onnx.save(model, paths['conv'])
    feeds = {'x': rng.normal(0, 2, shape).astype(np.float32)}
    outputs = [ort_session(paths[name]).run(None, feeds)[0] for name in ('bn', 'conv')]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    assert 'BatchNormalization' in _calibrated(paths['bn'], str(tmp_path / 'bn-int8.onnx'), feeds)
    ops = _calibrated(paths['conv'], str(tmp_path / 'conv-int8.onnx'), feeds)
    assert 'BatchNormalization' not in ops and ops.count('QuantizeLinear') >= 3
    assert any(t.data_type == onnx.TensorProto.INT8 and t.dims == [channels, 1, 1, 1]
               for t in onnx.load(str(tmp_path / 'conv-int8.onnx')).graph.initializer)


def test_int8_is_checked_against_fp32_before_it_is_written(trained_synth, tmp_path, capsys):
    prefix, root = trained_synth
    out = tmp_path / 'int8.onnx'
    assert export_onnx.main(['--prefix', prefix, '--out', str(out), '--int8']) == 0
    report = capsys.readouterr().out
    fp32, int8 = (float(v) for v in re.search(
        r'held-out NME on 64 crops \(calibration synthetic:128:seed0\): FP32 ([0-9.]+)%, '
        r'INT8 ([0-9.]+)%', report).groups())
    print('synthetic held-out NME: FP32 %.3f%%, INT8 %.3f%%' % (fp32, int8))
    assert fp32 < 60 and int8 <= fp32 * 1.02
    model = onnx.load(str(out))
    ops = {node.op_type for node in model.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    assert any(i.data_type == onnx.TensorProto.INT8 for i in model.graph.initializer)
    refused = tmp_path / 'refused.onnx'
    assert export_onnx.main(['--prefix', prefix, '--out', str(refused), '--int8',
                             '--calibration', str(root / 'synth_test.rec'),
                             '--max-loss', '-100']) == 1
    assert 'nothing written' in capsys.readouterr().err and not refused.exists()
    # 64 faces none of the above saw: on the 10 of synth_test the two
    # backends' figures differ by up to 3% either way with this weak network,
    # depending on the CPU's integer kernels (VNNI or not).
    synth.write_records(str(tmp_path / 'unseen'), 64, seed=7, progress=False)
    figures = {}
    for backend in ('onnx', 'onnx-int8'):
        assert test_rec_nme.main(['--rec', str(tmp_path / 'unseen.rec'), '--prefix', prefix,
                                  '--backend', backend, '--output', str(tmp_path / backend)]) == 0
        figures[backend] = float(re.search(r'nme on unseen is ([0-9.]+)%',
                                           capsys.readouterr().out).group(1))
    print('NME of 64 unseen faces with the test script: %s' % figures)
    assert figures['onnx-int8'] <= figures['onnx'] * 1.03
    assert (Path(prefix).parent / ('model-%04d-int8.onnx' % resolve(prefix).number)).is_file()
