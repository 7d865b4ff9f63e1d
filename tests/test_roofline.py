"""The operation count the benchmarks' roofline divides by: the MXNet
graph's count against the arithmetic of a hand-built graph, and against a
count of the exported ONNX graph read apart."""
import mxnet as mx

from benchmarks.inference import count_flops, onnx_flops
from conftest import write_small_checkpoint
from core.inference.export import export
from core.plumbing.checkpoint import load_checkpoint
from symbol import inference_symbol


def test_a_hand_built_graph_counts_what_arithmetic_says():
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1), name='conv')
    down = mx.sym.Convolution(conv, num_filter=6, kernel=(1, 1), stride=(2, 2), name='down')
    up = mx.sym.Deconvolution(down, num_filter=4, kernel=(4, 4), stride=(2, 2), pad=(1, 1),
                              name='up')
    # 16x16 outputs of 3x3x3 products per filter; 8x8 of 8; each of the 8x8x6
    # inputs spread over 4 filters of 4x4.
    expected = 2 * (16 * 16 * 8 * 3 * 9 + 8 * 8 * 6 * 8 + 8 * 8 * 6 * 4 * 16)
    assert count_flops(up, 16) == expected


def test_the_network_and_its_onnx_export_count_the_same(tmp_path):
    prefix = write_small_checkpoint(tmp_path / 'model', input_size=128)
    sym, arg_params, aux_params = load_checkpoint(prefix, 0)
    path = str(tmp_path / 'model.onnx')
    export(sym, arg_params, aux_params, path, 'dynamic', 128)
    counted = count_flops(inference_symbol(sym), 128)
    assert counted > 1e7
    assert onnx_flops(path, 128) == counted
    assert onnx_flops(path, 128, batch=4) == counted


def test_the_channels_last_int8_peak_computes_the_standard_convolution(tmp_path):
    """The INT8 roof times ONNX Runtime's channels-last QLinearConv (the way
    its INT8 graphs run convolutions, no layout change in the timing); on
    the same integers it gives the standard channels-first convolution's
    output, transposed."""
    import numpy as np

    from benchmarks.machine import _one_node_model, _peak_cases
    from core.inference.export import ort_session
    case = next(c for c in _peak_cases(np.random.RandomState(0), size=8, channels=8, side=6,
                                       batch=2) if c[0] == 'int8_convolution')
    _, what, _, inputs, constants, output, attributes = case
    assert what.startswith('QLinearConv') and attributes['channels_last'] == 1
    last = str(tmp_path / 'last.onnx')
    _one_node_model(last, 'QLinearConv', inputs, constants, output, **attributes)
    first = str(tmp_path / 'first.onnx')
    nchw = {'x': inputs['x'].transpose(0, 3, 1, 2).copy()}
    _one_node_model(first, 'QLinearConv', nchw, constants, ('y', np.uint8, nchw['x'].shape),
                    pads=attributes['pads'])
    y_last = ort_session(last).run(None, inputs)[0]
    y_first = ort_session(first).run(None, nchw)[0]
    assert y_last.shape == inputs['x'].shape and len(np.unique(y_first)) > 10
    assert np.array_equal(y_last.transpose(0, 3, 1, 2), y_first)
