"""Samples/s of the training step (forward, backward, update) with its batch
already in memory, against the same step fed by the loader (FaceSegIter
workers + the device feeder), measured in one run: the ratio is the share
of the step the loader costs.

    python -m benchmarks.training_step                   # a small network, CPU
    python -m benchmarks.training_step --model hg2d3-cab --batch 4 --steps 5

On a GPU box the step is far faster than here; the loader must then supply
batch x steps/s samples: compare with `python -m benchmarks.data_loader`.
"""
import argparse
import os
import tempfile
import time

import mxnet as mx

from core.plumbing.config import apply_overrides, load_config, published_config
from core.training.feeder import DeviceFeeder
from core.training.trainer import initializer
from data.iterator import FaceSegIter
from data.synth import write_records
from data.workers import default_workers
from symbol import get_symbol

SMALL = {'multiplier': 0.25, 'net_stacks': 1, 'net_n': 2, 'net_block': 'resnet'}


def module_for(cfg, batch):
    sym = get_symbol(cfg)
    size, label = cfg.input_img_size, cfg.output_label_size
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'],
                        context=[mx.cpu()])
    mod.bind(data_shapes=[('data', (batch, 3, size, size))],
             label_shapes=[('softmax_label', (batch, cfg.num_classes, label, label))])
    mod.init_params(initializer())
    mod.init_optimizer(optimizer='adam', optimizer_params={'learning_rate': 1e-4})
    return mod


def step_rate(mod, next_batch, batch, steps, loss_every=20):
    """Samples/s over `steps` steps after two warm-up steps."""
    def step(i):
        mod.forward_backward(next_batch())
        mod.update()
        if i % loss_every == 0:
            mod.get_outputs(merge_multi_context=False)[0][0].asnumpy()
    for i in range(2):
        step(i)
    mx.nd.waitall()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    mx.nd.waitall()
    return steps * batch / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='a published configuration (default: a small network)')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--workers', type=int, default=default_workers())
    args = parser.parse_args(argv)
    cfg = published_config(args.model) if args.model else apply_overrides(load_config(), SMALL)
    cfg = apply_overrides(cfg, {'per_batch_size': args.batch})
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, 'train.rec')
        write_records(rec[:-4], max(200, 4 * args.batch), progress=False)
        it = FaceSegIter(rec, cfg, args.batch, aug_level=1, workers=args.workers, exf=20)
        fixed = it.next()
        mod = module_for(cfg, args.batch)
        in_memory = step_rate(mod, lambda: fixed, args.batch, args.steps)
        feeder = DeviceFeeder(it, [mx.cpu()])
        try:
            fed = step_rate(mod, feeder.next, args.batch, args.steps)
        finally:
            feeder.close()
            it.close()
    print('%s, batch %d, %d data worker%s, CPU' % (args.model or 'small network', args.batch,
                                                  args.workers, '' if args.workers == 1 else 's'))
    print('  %-34s %8.1f samples/s  (1.00x)' % ('step, batch already in memory', in_memory))
    print('  %-34s %8.1f samples/s  (%.2fx)' % ('step fed by the loader and feeder', fed,
                                                fed / in_memory))
    print('  the loader costs %.0f%% of the step here' % max(0.0, 100 * (1 - fed / in_memory)))


if __name__ == '__main__':
    main()
