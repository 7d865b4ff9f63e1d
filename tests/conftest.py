"""Shared fixtures: the read-only `../shared` material and small configs."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / 'shared'

os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
if os.environ.get('PYTEST_XDIST_WORKER'):
    # Test processes side by side (pytest -n 2): one core each, not two
    # threads each fighting over both.
    os.environ.setdefault('OMP_NUM_THREADS', '1')
# The suite runs on the CPU, also with a CUDA build of MXNet on a GPU box:
# the GPUs are hidden (a scheduler's own selection is replaced).
os.environ['CUDA_VISIBLE_DEVICES'] = ''
os.environ.pop('NVIDIA_VISIBLE_DEVICES', None)


# Fixtures that train a network for minutes: their tests are long ones.
LONG_FIXTURES = ('trained_synth',)


def pytest_collection_modifyitems(config, items):
    """Tests using a LONG_FIXTURES are marked long (make test-long)."""
    for item in items:
        if any(name in item.fixturenames for name in LONG_FIXTURES):
            item.add_marker(pytest.mark.long)


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


def write_small_checkpoint(prefix, input_size=128, seed=0, fill=None):
    """A checkpoint of a small network with Xavier weights (or every weight
    `fill`: 0 gives flat heatmaps, NaN heatmaps that are not finite), its
    configuration saved beside it as a training run does."""
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
            if fill is None:
                init(mx.init.InitDesc(name), args[name])
            else:
                args[name][:] = fill
    checkpoint.save_checkpoint(str(prefix), 0, sym, args, aux)
    record.save_config(str(prefix), cfg)
    return str(prefix)


def made_once(tmp_path_factory, name, make):
    """`make(folder)`'s result, made once for the whole run: test processes
    running side by side (pytest -n) share it, the first making it under a
    lock while the others wait (it is kept as JSON beside the folder)."""
    import fcntl
    import json
    base = tmp_path_factory.getbasetemp()
    shared_root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
    folder = shared_root / ('once-' + name)
    with open(str(shared_root / ('once-%s.lock' % name)), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared_root / ('once-%s.json' % name)
        if done.is_file():
            return json.loads(done.read_text())
        folder.mkdir(exist_ok=True)
        result = make(folder)
        done.write_text(json.dumps(result))
        return result


@pytest.fixture(scope='session')
def small_checkpoint(tmp_path_factory):
    return made_once(tmp_path_factory, 'small-checkpoint',
                     lambda folder: write_small_checkpoint(folder / 'ckpt0' / 'model'))


def _trained_synth(root):
    data = synth_sets(root / 'data', train=160, ibug=12, synth_test=10)
    prefix = train_small(root / 'trained' / 'model', data, '--set', 'losstype=ce',
                         '--optimizer', 'adam', '--lr', '2e-3', '--per-batch-size', '16',
                         '--lr-steps', '100,120', '--validate-every', '40', '--workers', '0')
    return prefix, str(data)


@pytest.fixture(scope='session')
def trained_synth(tmp_path_factory):
    """A small network trained for a minute on synthetic faces (NME well
    under the untrained one): (prefix, record folder)."""
    prefix, data = made_once(tmp_path_factory, 'trained-synth', _trained_synth)
    return prefix, Path(data)
