"""Checkpoints for the benchmarks: a published configuration with random
weights, saved like a training run (with its configuration)."""
import os

import mxnet as mx
import numpy as np

from core import checkpoint, run
from core.config import published_config
from symbol import get_symbol, param_shapes


def random_checkpoint(name, folder):
    """PREFIX of published model `name` with random weights, in `folder`."""
    cfg = published_config(name)
    sym = get_symbol(cfg)
    rng = np.random.RandomState(0)
    aux_names = set(sym.list_auxiliary_states())
    size = cfg.input_img_size
    shapes = param_shapes(sym, (1, 3, size, size), (1, 68, 64, 64))
    args = {k: mx.nd.array(rng.normal(0, 0.05, s)) for k, s in shapes.items()
            if k not in aux_names}
    aux = {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('var') else
                          rng.normal(0, 0.05, s)) for k, s in shapes.items() if k in aux_names}
    prefix = os.path.join(folder, 'model')
    checkpoint.save_checkpoint(prefix, 0, sym, args, aux)
    run.save_config(prefix, cfg)
    return prefix
