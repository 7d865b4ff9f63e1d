"""Checkpoints for the benchmarks: a published configuration with random
weights, saved like a training run (with its configuration)."""
import os

import mxnet as mx
import numpy as np

from core.plumbing import checkpoint
from core.training import record
from core.plumbing.config import published_config
from symbol import get_symbol, param_shapes


def random_checkpoint(name, folder):
    """PREFIX of published model `name` with random weights, in `folder`."""
    return random_weights(published_config(name), folder)


def random_weights(cfg, folder):
    """PREFIX of a checkpoint of configuration `cfg` with random weights."""
    sym = get_symbol(cfg)
    rng = np.random.RandomState(0)
    aux_names = set(sym.list_auxiliary_states())
    size = cfg.input_img_size
    shapes = param_shapes(sym, (1, 3, size, size),
                          (1, cfg.num_classes, cfg.output_label_size, cfg.output_label_size))
    args = {k: mx.nd.array(rng.normal(0, 0.05, s)) for k, s in shapes.items()
            if k not in aux_names}
    aux = {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('var') else
                          rng.normal(0, 0.05, s)) for k, s in shapes.items() if k in aux_names}
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, 'model')
    checkpoint.save_checkpoint(prefix, 0, sym, args, aux)
    record.save_config(prefix, cfg)
    return prefix


def random_small(folder):
    """PREFIX of the demo's network with random weights."""
    from core.plumbing.config import load_config
    from symbol import zoo
    return random_weights(load_config('hourglass', 'i2d', dict(zoo.DEMO_SETTINGS)),
                          os.path.join(folder, 'random'))


def briefly_trained(folder, faces=160, steps=120):
    """PREFIX of the demo's network trained for about a minute on synthetic
    faces (it finds and follows faces; its NME is far from the demo's)."""
    import train
    from data import synth
    from symbol import zoo
    data = os.path.join(folder, 'data')
    synth.write_records(os.path.join(data, 'train'), faces, seed=11, progress=False)
    synth.write_records(os.path.join(data, 'ibug'), 8, seed=12, progress=False)
    prefix = os.path.join(folder, 'model', 'model')
    code = train.main(['--prefix', prefix, '--set', 'dataset_path=%s' % data, '--optimizer',
                       'adam', '--lr', '2e-3', '--per-batch-size', '16', '--lr-steps',
                       '%d,%d' % (steps - 20, steps), '--validate-every', str(steps), '--workers', '0',
                       '--min-validations', '0'] + zoo.set_flags(zoo.DEMO_SETTINGS))
    if code:
        raise RuntimeError('training the benchmark\'s network failed')
    return prefix
