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
