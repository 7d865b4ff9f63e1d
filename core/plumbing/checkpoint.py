"""Checkpoints (PREFIX-symbol.json + PREFIX-%04d.params): durable saving, and
loading that names the file and what is wrong with it."""
import glob
import json
import logging
import os
import re
import struct

import mxnet as mx

from data.files import write_atomic
from symbol import compare_params, describe_mismatch

log = logging.getLogger(__name__)

NDARRAY_LIST_MAGIC = 0x112      # header of MXNet's NDArray list files


class CheckpointError(ValueError):
    """A checkpoint file that is missing or does not load; names the file."""


def params_path(prefix, number):
    return '%s-%04d.params' % (prefix, number)


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def checkpoint_numbers(prefix):
    """Sorted numbers N of the PREFIX-NNNN.params files present."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4})\.params$')
    names = (os.path.basename(p) for p in glob.glob(glob.escape(prefix) + '-*.params'))
    return sorted(int(m.group(1)) for m in map(pattern.match, names) if m)


def params_bytes(arg_params, aux_params):
    """The bytes of a .params file (`mx.nd.save` format: 'arg:'/'aux:'
    names), built in memory so that writing them can report a full disk."""
    named = [('arg:' + k, v) for k, v in arg_params.items()]
    named += [('aux:' + k, v) for k, v in aux_params.items()]
    parts = [struct.pack('<QQQ', NDARRAY_LIST_MAGIC, 0, len(named))]
    parts += [v.as_in_context(mx.cpu()).__getstate__()['handle'] for _, v in named]
    parts.append(struct.pack('<Q', len(named)))
    for name, _ in named:
        encoded = name.encode()
        parts += [struct.pack('<Q', len(encoded)), encoded]
    return b''.join(parts)


def save_params(path, arg_params, aux_params, overwrite=False):
    return write_atomic(path, params_bytes(arg_params, aux_params), overwrite=overwrite)


def save_checkpoint(prefix, number, sym, arg_params, aux_params):
    """Write PREFIX-symbol.json and PREFIX-%04d.params durably. An existing
    params file of that number is never replaced (WriteError)."""
    write_atomic(symbol_path(prefix), sym.tojson())
    return save_params(params_path(prefix, number), arg_params, aux_params)


def load_symbol(path):
    if not os.path.isfile(path):
        raise CheckpointError('%s does not exist' % path)
    try:
        with open(path, 'rb') as f:
            json.loads(f.read().decode('utf-8'))
        return mx.sym.load(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError('%s is not a readable symbol file (truncated or corrupt?): %s'
                              % (path, err))
    except mx.base.MXNetError as err:
        raise CheckpointError('%s is not a readable symbol file (truncated or corrupt?): %s'
                              % (path, str(err).strip().splitlines()[-1]))


def load_params(path):
    """(arg_params, aux_params) of a .params file."""
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise CheckpointError('%s is not a readable params file (truncated or corrupt?): %s'
                              % (path, str(err).strip().splitlines()[-1]))
    if not isinstance(saved, dict):
        raise CheckpointError('%s holds unnamed arrays, not checkpoint parameters' % path)
    arg_params, aux_params = {}, {}
    for name, value in saved.items():
        kind, _, key = name.partition(':')
        (aux_params if kind == 'aux' else arg_params)[key or name] = value
    return arg_params, aux_params


def check_files(prefix, number):
    """CheckpointError naming a missing file of checkpoint `number`, with
    the checkpoint numbers the prefix does hold."""
    path = params_path(prefix, number)
    if not os.path.isfile(path) or not os.path.isfile(symbol_path(prefix)):
        missing = path if not os.path.isfile(path) else symbol_path(prefix)
        numbers = checkpoint_numbers(prefix)
        held = ('this prefix holds %s' % ', '.join('%04d' % n for n in numbers)) if numbers \
            else 'download published models with `python -m tools.download NAME`'
        raise CheckpointError('checkpoint file %s does not exist (%s)' % (missing, held))


def load_checkpoint(prefix, number):
    """(symbol, arg_params, aux_params). A missing file is named together
    with the checkpoint numbers the prefix does hold."""
    check_files(prefix, number)
    path = params_path(prefix, number)
    sym = load_symbol(symbol_path(prefix))
    arg_params, aux_params = load_params(path)
    return sym, arg_params, aux_params


def fit_params(sym, arg_params, aux_params, data_shape, label_shape, allow_missing=False,
               source='checkpoint'):
    """Check loaded parameters against `sym`. Mis-shaped parameters are always
    an error; missing ones are an error unless `allow_missing` (they are then
    initialised); unexpected ones are dropped with a warning."""
    missing, unexpected, misshaped = compare_params(sym, arg_params, aux_params, data_shape,
                                                    label_shape)
    if misshaped or (missing and not allow_missing):
        raise CheckpointError('%s does not fit the network: %s%s' % (
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
