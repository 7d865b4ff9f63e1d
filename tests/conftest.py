"""Shared fixtures: the read-only `../shared` material and small configs."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / 'shared'

os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
# The suite runs on the CPU, also with a CUDA build of MXNet on a GPU box:
# the GPUs are hidden (a scheduler's own selection is replaced).
os.environ['CUDA_VISIBLE_DEVICES'] = ''
os.environ.pop('NVIDIA_VISIBLE_DEVICES', None)


@pytest.fixture(scope='session')
def shared():
    """Path of ../shared; tests using it skip on a clone without it."""
    if not SHARED.is_dir():
        pytest.skip('../shared (spec, reference graph, dlib faces) is not beside this checkout')
    return SHARED


@pytest.fixture
def small_cfg():
    """A factory of configs with a small width so that builds run fast on CPU."""
    from core.plumbing.config import load_config

    def make(network='hourglass', **overrides):
        return load_config(network, 'i2d', dict({'multiplier': 0.125, 'per_batch_size': 2},
                                                **overrides))
    return make


def synth_sets(root, **counts):
    """Synthetic record sets in `root`, e.g. train=64 and ibug=16, each with
    its own seed (in the order given, from 11); returns `root`."""
    from data import synth
    for seed, (name, count) in enumerate(counts.items(), 11):
        synth.write_records(str(root / name), count, seed=seed, progress=False)
    return root


def wait_for(predicate, timeout=120, what='condition'):
    """Poll `predicate` until it holds; AssertionError after `timeout` s."""
    import time
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError('timed out waiting for %s' % what)


# A network small enough to train in seconds on the CPU.
SMALL_NETWORK = ['--set', 'multiplier=0.125', '--set', 'net_stacks=1', '--set', 'net_n=2',
                 '--set', 'net_block=resnet']


def train_small(prefix, dataset_path, *flags):
    """Train the small network with train.py on the records in dataset_path."""
    import train
    assert train.main(['--prefix', str(prefix), '--set', 'dataset_path=%s' % dataset_path,
                       '--min-validations', '0'] + SMALL_NETWORK + [str(f) for f in flags]) == 0
    return str(prefix)


def write_small_checkpoint(prefix, input_size=128, seed=0):
    """A checkpoint of a small network with Xavier weights, its configuration
    saved beside it as a training run does."""
    import mxnet as mx

    from core.plumbing import checkpoint
    from core.training import record
    from core.plumbing.config import load_config
    from symbol import get_symbol, param_shapes
    cfg = load_config('hourglass', 'i2d', ['multiplier=0.125', 'net_stacks=1', 'net_n=2',
                                           'net_block=resnet', 'input_img_size=%d' % input_size])
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (1, 3, input_size, input_size), (1, 68, 64, 64))
    mx.random.seed(seed)
    init = mx.init.Xavier()
    args, aux = {}, {}
    for name, shape in shapes.items():
        if name in sym.list_auxiliary_states():
            aux[name] = mx.nd.ones(shape) if name.endswith('var') else mx.nd.zeros(shape)
        else:
            args[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name), args[name])
    checkpoint.save_checkpoint(str(prefix), 0, sym, args, aux)
    record.save_config(str(prefix), cfg)
    return str(prefix)


@pytest.fixture(scope='session')
def small_checkpoint(tmp_path_factory):
    return write_small_checkpoint(tmp_path_factory.mktemp('ckpt') / 'model')


@pytest.fixture(scope='session')
def trained_synth(tmp_path_factory):
    """A small network trained for a minute on synthetic faces (NME well
    under the untrained one): (prefix, record folder)."""
    root = tmp_path_factory.mktemp('trained-synth')
    data = synth_sets(root / 'data', train=160, ibug=12, synth_test=10)
    prefix = train_small(root / 'trained' / 'model', data, '--set', 'losstype=ce',
                         '--optimizer', 'adam', '--lr', '2e-3', '--per-batch-size', '16',
                         '--lr-steps', '100,120', '--validate-every', '40', '--workers', '0')
    return prefix, data
