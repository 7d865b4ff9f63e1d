"""The builders reproduce the published graphs and build every option."""
import mxnet as mx
import numpy as np
import pytest

from core.plumbing.config import load_config
from symbol import get_symbol, inference_symbol, param_shapes, to_gluon
from core.plumbing.config import published_config
from symbol.zoo import PUBLISHED

PUBLISHED_COUNTS = {'hg2d4-resnet': 6617928, 'hg2d3-hpm': 9681736, 'hg2d4-cab': 11650408,
                    'sat2d3-cab': 10119016, 'hg2d3-cab': 9307624}


def _random_params(shapes, seed=0):
    rng = np.random.RandomState(seed)
    return {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('moving_var')
                           else rng.normal(0, 0.05, s)) for k, s in shapes.items()}


def _forward(sym, params, data):
    args = {k: v for k, v in params.items() if k in sym.list_arguments()}
    args['data'] = data
    aux = {k: params[k] for k in sym.list_auxiliary_states()}
    exe = sym.bind(mx.cpu(), args=args, aux_states=aux)
    exe.forward(is_train=False)
    return exe.outputs[0].asnumpy()


def test_hg2d3_cab_matches_published_graph(shared):
    ref = mx.sym.load(str(shared / 'reference' / 'model-hg2d3-cab-symbol.json'))
    cfg = load_config('hourglass', 'i2d')
    sym = get_symbol(cfg)
    assert sym.list_arguments() == ref.list_arguments()
    assert sym.list_auxiliary_states() == ref.list_auxiliary_states()
    assert sym.list_outputs() == ref.list_outputs()
    shapes = param_shapes(sym, (2, 3, 128, 128), (2, 68, 64, 64))
    assert shapes == param_shapes(ref, (2, 3, 128, 128), (2, 68, 64, 64))
    params = _random_params(shapes)
    data = mx.nd.array(np.random.RandomState(1).uniform(0, 255, (2, 3, 128, 128)))
    ours = _forward(inference_symbol(sym), params, data)
    theirs = _forward(ref.get_internals()['heatmap_output'], params, data)
    assert ours.shape == (2, 68, 64, 64)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.abs(ours).max() > 1e-3


@pytest.mark.parametrize('name', sorted(PUBLISHED_COUNTS))
def test_published_parameter_counts(name):
    assert name in PUBLISHED
    sym = get_symbol(published_config(name))
    shapes = param_shapes(sym, (1, 3, 128, 128), (1, 68, 64, 64))
    assert sum(int(np.prod(s)) for s in shapes.values()) == PUBLISHED_COUNTS[name]


OPTIONS = [
    ('hourglass', dict(net_block='inception', multiplier=0.5, net_n=1)),
    ('hourglass', dict(net_block='resnet', net_n=2)),
    ('hourglass', dict(net_block='hpm', net_n=2)),
    ('satnet', dict(net_sat=2)),
    ('hourglass', dict(net_sat=2, net_block='resnet')),
] + [(net, dict(net_dcn=d)) for net in ('hourglass', 'satnet') for d in (1, 2, 3)] + [
    ('hourglass', dict(net_coherent=1, per_batch_size=4)),
    ('satnet', dict(net_coherent=1, per_batch_size=4)),
    ('hourglass', dict(net_binarize=1)),
    ('hourglass', dict(net_binarize=1, net_block='hpm')),
    ('hourglass', dict(net_binarize=1, net_block='resnet')),
    ('hourglass', dict(losstype='ce')),
    ('hourglass', dict(multiplier=0.5, net_n=2)),
    ('hourglass', dict(input_img_size=256, net_block='resnet')),
    ('satnet', dict(input_img_size=256, net_n=2)),
]


@pytest.mark.parametrize('network,options', OPTIONS,
                         ids=['%s-%s' % (n, '-'.join('%s%s' % kv for kv in o.items()))
                              for n, o in OPTIONS])
def test_option_forward_backward(small_cfg, network, options):
    cfg = small_cfg(network, **options)
    sym = get_symbol(cfg)
    n, size, label = cfg.per_batch_size, cfg.input_img_size, cfg.output_label_size
    exe = sym.simple_bind(mx.cpu(), data=(n, 3, size, size),
                          softmax_label=(n, cfg.num_classes, label, label))
    rng = np.random.RandomState(0)
    for name, arr in exe.arg_dict.items():
        if name == 'data':
            arr[:] = rng.uniform(0, 255, arr.shape)
        elif name != 'softmax_label':
            arr[:] = rng.normal(0, 0.05, arr.shape)
    exe.arg_dict['softmax_label'][:] = rng.uniform(0, 1, exe.arg_dict['softmax_label'].shape)
    exe.forward(is_train=True)
    exe.backward()
    pred = exe.outputs[-1].asnumpy()
    assert pred.shape == (n, cfg.num_classes, label, label)
    assert np.isfinite(pred).all()
    assert len(exe.outputs) == cfg.net_stacks + 1 + int(bool(cfg.net_coherent))
    grads = [g.asnumpy() for k, g in exe.grad_dict.items() if g is not None and k != 'data']
    assert all(np.isfinite(g).all() for g in grads)
    assert sum(float(np.abs(g).sum()) for g in grads) > 0


def test_deformable_heads_are_named_as_published(small_cfg):
    args = get_symbol(small_cfg('hourglass', net_dcn=3)).list_arguments()
    for name in ('stack0_ll_conv_weight', 'stack0_ll_conv_bias', 'stack0_ll_conv_offset_weight',
                 'heatmap_offset_bias', 'stack1_out3_weight', 'stack1_out3_offset_weight',
                 'stack0_body_weight', 'stack1_ll2_weight', 'stack1_out2_weight'):
        assert name in args
    sat_args = get_symbol(small_cfg('satnet', net_dcn=1)).list_arguments()
    assert 'stack0_out3_weight' in sat_args and 'stack1_out3_weight' not in sat_args


def test_sat_names_nest(small_cfg):
    args = get_symbol(small_cfg('satnet')).list_arguments()
    assert 'sat0_w3_h4_1_w3_h4_1_conv_weight' in args
    assert 'sat1_upsampling_w2_h3_weight' in args
    assert 'sat0_w1_h1_4_w3_h4_1_conv_weight' in args


def test_binarized_hpm_adds_bn4_and_sc_bn(small_cfg):
    args = get_symbol(small_cfg(net_block='hpm', net_binarize=1, multiplier=0.25)).list_arguments()
    assert 'res2_bn4_gamma' in args and 'res2_sc_bn_gamma' in args
    assert 'res0_bn4_gamma' not in args


@pytest.mark.long
def test_module_training_reduces_loss(small_cfg):
    cfg = small_cfg(net_n=2, net_stacks=1, multiplier=0.125, per_batch_size=4)
    sym = get_symbol(cfg)
    rng = np.random.RandomState(0)
    data = rng.uniform(0, 255, (4, 3, 128, 128)).astype(np.float32)
    label = np.zeros((4, 68, 64, 64), np.float32)
    label[:, :, 20:24, 30:34] = 20.0
    batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)])
    mx.random.seed(0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'],
                        context=mx.cpu())
    mod.bind(data_shapes=[('data', data.shape)], label_shapes=[('softmax_label', label.shape)])
    mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    mod.init_optimizer(optimizer='adam', optimizer_params={'learning_rate': 1e-3})
    losses = []
    for _ in range(40):
        mod.forward(batch, is_train=True)
        losses.append(float(mod.get_outputs()[0].asnumpy()))
        mod.backward()
        mod.update()
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize('key,value,words', [
    ('network', 'unet', 'hourglass or satnet'),
    ('net_block', 'dense', 'resnet'),
    ('net_n', 0, 'integer >= 1'),
    ('input_img_size', 100, 'output_label_size'),
    ('losstype', 'l1', 'heatmap or ce'),
])
def test_bad_config_names_key_and_allowed_values(small_cfg, key, value, words):
    from core.plumbing.config import Config, ConfigError, apply_overrides
    cfg = Config(dict(small_cfg(), **{key: value}))        # not formed: the builder checks
    with pytest.raises(ValueError) as err:
        get_symbol(cfg)
    assert key in str(err.value) and words in str(err.value)
    with pytest.raises(ConfigError, match=key):            # formed: refused at once
        apply_overrides(small_cfg(), {key: value})


def test_gluon_block_matches_symbol_prediction(small_cfg):
    cfg = small_cfg(net_n=2)
    sym = get_symbol(cfg)
    pred = inference_symbol(sym)
    shapes = param_shapes(pred, (1, 3, 128, 128))
    params = _random_params(shapes, seed=3)
    arg = {k: v for k, v in params.items() if k in pred.list_arguments()}
    aux = {k: v for k, v in params.items() if k in pred.list_auxiliary_states()}
    net = to_gluon(sym, arg, aux)
    data = mx.nd.array(np.random.RandomState(2).uniform(0, 255, (1, 3, 128, 128)))
    np.testing.assert_allclose(net(data).asnumpy(), _forward(pred, params, data), atol=1e-5)
    del arg['heatmap_weight']
    with pytest.raises(ValueError, match='heatmap_weight'):
        to_gluon(sym, arg, aux)
