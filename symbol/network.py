"""`get_symbol(cfg)`: stem, stacks, heads and losses of the training symbol."""
import json

import mxnet as mx


from .blocks import BLOCKS
from .layers import Layers, concat, max_pool2
from .topology import TOPOLOGIES, head_topology, stack_topology

LOSSES = ('heatmap', 'ce')
COHERENT_GRAD_SCALE = 1e-4


def _require(ok, key, value, allowed):
    if not ok:
        raise ValueError("config.%s = %r is not allowed; expected %s" % (key, value, allowed))


def validate(cfg):
    """Raise ValueError naming the key and the allowed values for a config the
    builders cannot build."""
    _require(cfg.network in TOPOLOGIES, 'network', cfg.network, ' or '.join(TOPOLOGIES))
    _require(cfg.net_block in BLOCKS, 'net_block', cfg.net_block, ', '.join(sorted(BLOCKS)))
    _require(isinstance(cfg.net_n, int) and cfg.net_n >= 1, 'net_n', cfg.net_n,
             'an integer >= 1')
    net_sats = sorted(v for t in TOPOLOGIES.values() for v in t.net_sat)
    _require(cfg.net_sat in net_sats, 'net_sat', cfg.net_sat, ', '.join(map(str, net_sats)))
    _require(cfg.net_sat != 2 or cfg.net_n >= 2, 'net_n', cfg.net_n, '>= 2 when net_sat = 2')
    _require(cfg.net_dcn in (0, 1, 2, 3), 'net_dcn', cfg.net_dcn, '0, 1, 2 or 3')
    _require(isinstance(cfg.net_stacks, int) and cfg.net_stacks >= 1, 'net_stacks',
             cfg.net_stacks, 'an integer >= 1')
    _require(cfg.losstype in LOSSES, 'losstype', cfg.losstype, ' or '.join(LOSSES))
    _require(cfg.multiplier > 0, 'multiplier', cfg.multiplier, 'a positive number')
    label = cfg.output_label_size
    _require(cfg.input_img_size % label == 0 and cfg.input_img_size // label in (2, 4),
             'input_img_size', cfg.input_img_size,
             '2 or 4 times output_label_size (%d)' % label)
    _require(label % (2 ** cfg.net_n) == 0, 'output_label_size', label,
             'divisible by 2**net_n = %d' % 2 ** cfg.net_n)
    _require(not cfg.net_coherent or cfg.per_batch_size % 2 == 0, 'per_batch_size',
             cfg.per_batch_size, 'an even number when net_coherent is on')


def widths(multiplier):
    """(stem, middle, stack) channel counts for a width multiplier."""
    return (max(int(64 * multiplier), 32), max(int(128 * multiplier), 32),
            int(256 * multiplier))


def _stem(L, Lbin, block, data, cfg):
    """Normalise, conv0, res0, max-pool, res1, res2 (res2 on is binarized)."""
    stem, mid, C = widths(cfg.multiplier)
    body = (data - 127.5) * 0.0078125
    if cfg.input_img_size // cfg.output_label_size == 4:
        body = L.conv(body, stem, 'conv0', kernel=7, stride=2, pad=3)
    else:
        body = L.conv(body, stem, 'conv0', kernel=3, stride=1, pad=1)
    body = L.bn_relu(body, 'bn0', 'relu0')
    body = block(L, body, mid, 1, stem == mid, 'res0')
    body = max_pool2(body)
    body = block(L, body, mid, 1, True, 'res1')
    return block(Lbin, body, C, 1, mid == C, 'res2')


def _heatmap_loss(pred, label, losstype):
    if losstype == 'ce':
        logp = mx.sym.log_softmax(mx.sym.reshape(pred, shape=(0, 0, -1)), axis=-1)
        loss = mx.sym.mean(-mx.sym.reshape(label, shape=(0, 0, -1)) * logp)
    else:
        loss = mx.sym.mean(mx.sym.square(pred - label))
    return mx.sym.MakeLoss(loss)


def _coherent_term(pred, per_batch_size, scheme):
    """L2 between the first half (flipped on W and re-indexed by the flip
    order of the landmark scheme) and the second half, which holds the
    mirrors."""
    half = per_batch_size // 2
    order = scheme.flip_order
    first = mx.sym.flip(mx.sym.slice_axis(pred, axis=0, begin=0, end=half), axis=3)
    first = concat([mx.sym.slice_axis(first, axis=1, begin=j, end=j + 1) for j in order],
                   [1] * len(order))
    second = mx.sym.slice_axis(pred, axis=0, begin=half, end=per_batch_size)
    return mx.sym.mean(mx.sym.square(first - second))


def _conv_bias(x, num_filter, name, workspace):
    return mx.sym.Convolution(data=x, num_filter=num_filter, kernel=(1, 1), pad=(0, 0),
                              no_bias=False, workspace=workspace, name=name)


def _head(L, Lbin, block, body, shortcut, i, cfg):
    """Head of stack i (written once for both topologies).

    Returns (prediction used by the loss, heatmap layer, next stack input).
    """
    _, _, C = widths(cfg.multiplier)
    last = i == cfg.net_stacks - 1
    deformable = cfg.net_dcn >= 2
    refine = cfg.net_dcn in (1, 3)
    name = 'stack%d' % i
    body = block(Lbin, body, C, 1, True, name + '_unit0')
    if deformable:
        ll = L.deformable_conv(body, C, name + '_ll_conv')
        ll = L.bn_relu(ll, name + '_ll_bn', name + '_ll_relu')
    else:
        ll = L.lin(body, C, name + '_ll', kernel=1)
    heat_name = 'heatmap' if last else 'heatmap%d' % i
    if deformable:
        out = L.deformable_conv(ll, cfg.num_classes, heat_name)
    else:
        out = _conv_bias(ll, cfg.num_classes, heat_name, L.workspace)
    pred, next_body = out, None
    refine_last = refine and head_topology(cfg).refine_last
    if not last or refine_last:
        merged = mx.sym.add_n(shortcut, _conv_bias(ll, C, name + '_ll2', L.workspace),
                              _conv_bias(out, C, name + '_out2', L.workspace))
        next_body = merged
        if refine_last:
            out3 = L.deformable_conv(merged, cfg.num_classes, name + '_out3')
            if last:
                pred = out3
            else:
                next_body = _conv_bias(out3, C, name + '_body', L.workspace)
        elif refine:
            next_body = L.deformable_conv(merged, C, name + '_out3')
    return pred, next_body


def get_symbol(cfg):
    """Training symbol: Group([MakeLoss per stack, (coherent loss),
    BlockGrad(prediction)]) with inputs `data` and `softmax_label`."""
    validate(cfg)
    with mx.name.NameManager():
        return _build(cfg)


def _build(cfg):
    L = Layers(cfg.bn_mom, cfg.workspace)
    Lbin = L.binarized(cfg.net_binarize)
    block = BLOCKS[cfg.net_block]
    _, _, C = widths(cfg.multiplier)
    data = mx.sym.Variable('data')
    label = mx.sym.Variable('softmax_label')
    body = _stem(L, Lbin, block, data, cfg)
    stack = stack_topology(cfg).stack
    outputs, coherent = [], []
    for i in range(cfg.net_stacks):
        stacked = stack(Lbin, block, body, C, i, cfg)
        pred, body = _head(L, Lbin, block, stacked, body, i, cfg)
        outputs.append(_heatmap_loss(pred, label, cfg.losstype))
        if cfg.net_coherent:
            coherent.append(_coherent_term(pred, cfg.per_batch_size, cfg.scheme)
                            / cfg.net_stacks)
    if coherent:
        outputs.append(mx.sym.MakeLoss(mx.sym.add_n(*coherent),
                                       grad_scale=COHERENT_GRAD_SCALE, name='coherent_loss'))
    outputs.append(mx.sym.BlockGrad(pred))
    return mx.sym.Group(outputs)


def inference_symbol(sym):
    """The prediction of a training symbol: the input of its last output
    (the BlockGrad), or the internal `heatmap_output` for other graphs."""
    last = sym[len(sym.list_outputs()) - 1]
    if json.loads(last.tojson())['nodes'][-1]['op'] == 'BlockGrad':
        return last.get_children()[0]
    return sym.get_internals()['heatmap_output']
