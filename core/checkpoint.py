"""Checkpoints: atomic saving and strict loading with a clear report."""
import logging
import os

import mxnet as mx

from symbol import compare_params, describe_mismatch

log = logging.getLogger(__name__)


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def save_checkpoint(prefix, epoch, sym, arg_params, aux_params):
    """Write PREFIX-symbol.json and PREFIX-%04d.params atomically (temporary
    file, then rename), so an interrupted save never leaves a broken file."""
    directory = os.path.dirname(prefix)
    if directory:
        os.makedirs(directory, exist_ok=True)
    symbol_file = '%s-symbol.json' % prefix
    sym.save(symbol_file + '.tmp')
    os.replace(symbol_file + '.tmp', symbol_file)
    params = {'arg:' + k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    params.update({'aux:' + k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    path = params_path(prefix, epoch)
    mx.nd.save(path + '.tmp', params)
    os.replace(path + '.tmp', path)
    return path


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params); FileNotFoundError names the file."""
    for path in ('%s-symbol.json' % prefix, params_path(prefix, epoch)):
        if not os.path.isfile(path):
            raise FileNotFoundError('checkpoint file %s does not exist (download published '
                                    'models with `python -m tools.download NAME`)' % path)
    return mx.model.load_checkpoint(prefix, epoch)


def fit_params(sym, arg_params, aux_params, data_shape, label_shape, allow_missing=False,
               source='checkpoint'):
    """Check loaded parameters against `sym`. Mis-shaped parameters are always
    an error; missing ones are an error unless `allow_missing` (they are then
    initialised); unexpected ones are dropped with a warning."""
    missing, unexpected, misshaped = compare_params(sym, arg_params, aux_params, data_shape,
                                                    label_shape)
    if misshaped or (missing and not allow_missing):
        raise ValueError('%s does not fit the network: %s%s' % (
            source, describe_mismatch(missing, unexpected, misshaped),
            '' if misshaped else ' (use --allow-missing to initialise missing parameters)'))
    if missing:
        log.warning('%s: %d parameters missing, initialised: %s', source, len(missing),
                    ', '.join(missing[:10]) + (' ...' if len(missing) > 10 else ''))
    if unexpected:
        log.warning('%s: %d unexpected parameters ignored: %s', source, len(unexpected),
                    ', '.join(unexpected[:10]) + (' ...' if len(unexpected) > 10 else ''))
    names = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    return ({k: v for k, v in arg_params.items() if k in names},
            {k: v for k, v in aux_params.items() if k in names})
