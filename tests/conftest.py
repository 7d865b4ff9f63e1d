"""Shared fixtures: the read-only `../shared` material and small configs."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / 'shared'

os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
# The suite runs on the CPU, even where a scheduler preset the GPU variables.
for _name in ('CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES'):
    os.environ.pop(_name, None)


@pytest.fixture(scope='session')
def shared():
    """Path of ../shared; tests using it skip on a clone without it."""
    if not SHARED.is_dir():
        pytest.skip('../shared (spec, reference graph, dlib faces) is not beside this checkout')
    return SHARED


@pytest.fixture
def small_cfg():
    """A factory of configs with a small width so that builds run fast on CPU."""
    from core.config import load_config

    def make(network='hourglass', **overrides):
        cfg = load_config(network, 'i2d')
        cfg.multiplier = 0.125
        cfg.per_batch_size = 2
        cfg.update(overrides)
        return cfg
    return make
