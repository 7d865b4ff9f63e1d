"""Compare checkpoint parameters with a symbol, and wrap symbols for Gluon."""
import mxnet as mx

from .network import inference_symbol


def param_shapes(sym, data_shape, label_shape=None):
    """{name: shape} of every argument and auxiliary state except the inputs."""
    shapes = {'data': data_shape}
    if label_shape is not None and 'softmax_label' in sym.list_arguments():
        shapes['softmax_label'] = label_shape
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    result = {n: s for n, s in zip(sym.list_arguments(), arg_shapes)
              if n not in ('data', 'softmax_label')}
    result.update(zip(sym.list_auxiliary_states(), aux_shapes))
    return result


def compare_params(sym, arg_params, aux_params, data_shape, label_shape=None):
    """(missing, unexpected, mis-shaped) lists of a checkpoint against `sym`;
    mis-shaped entries are (name, checkpoint shape, expected shape)."""
    expected = param_shapes(sym, data_shape, label_shape)
    given = dict(arg_params)
    given.update(aux_params)
    missing = sorted(n for n in expected if n not in given)
    unexpected = sorted(n for n in given if n not in expected)
    misshaped = sorted((n, tuple(given[n].shape), tuple(expected[n]))
                       for n in expected if n in given and tuple(given[n].shape) != tuple(expected[n]))
    return missing, unexpected, misshaped


def describe_mismatch(missing, unexpected, misshaped, limit=20):
    """Human-readable report of `compare_params` results ('' when they match)."""
    lines = []
    for title, items in (('missing', missing), ('unexpected', unexpected)):
        if items:
            shown = ', '.join(items[:limit]) + (' ...' if len(items) > limit else '')
            lines.append('%d %s: %s' % (len(items), title, shown))
    if misshaped:
        shown = ', '.join('%s %s (network expects %s)' % m for m in misshaped[:limit])
        lines.append('%d mis-shaped: %s' % (len(misshaped), shown))
    return '; '.join(lines)


def to_gluon(sym, arg_params, aux_params, ctx=None, data_shape=(1, 3, 128, 128)):
    """Wrap the prediction of `sym` with its parameters as a
    `gluon.SymbolBlock` taking `data`; they must match exactly (ValueError
    names what does not)."""
    ctx = ctx or mx.cpu()
    pred = inference_symbol(sym)
    net = mx.gluon.SymbolBlock(outputs=pred, inputs=mx.sym.var('data', dtype='float32'))
    missing, _, misshaped = compare_params(pred, arg_params, aux_params, data_shape)
    if missing or misshaped:
        raise ValueError('parameters do not fit the network: '
                         + describe_mismatch(missing, [], misshaped))
    for name, param in net.collect_params().items():
        param._load_init(arg_params.get(name, aux_params.get(name)), ctx)
    return net
