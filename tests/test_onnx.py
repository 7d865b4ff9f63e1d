"""ONNX export of the published graph and the inference backend switch."""
import mxnet as mx
import numpy as np
import onnx
import pytest

from core import checkpoint
from core.onnx_export import ExportError, export
from core.predictor import make_predictor
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


def test_onnx_backend_predicts_like_mxnet(small_cfg, tmp_path):
    sym = get_symbol(small_cfg(net_n=2, net_block='resnet'))
    arg, aux = _params(sym, seed=4)
    prefix = str(tmp_path / 'model')
    checkpoint.save_checkpoint(prefix, 3, sym, arg, aux)
    data = np.random.RandomState(5).uniform(0, 255, (3, 3, 128, 128)).astype(np.float32)
    ours = make_predictor(prefix, 3, backend='onnx')(data)
    assert (tmp_path / 'model-0003.onnx').is_file()
    np.testing.assert_allclose(ours, make_predictor(prefix, 3, backend='mxnet')(data), atol=1e-4)
