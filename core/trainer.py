"""The heatmap-loss training loop of PIPELINE.md section 3."""
import csv
import logging
import math
import os
import signal
import sys

import mxnet as mx
import numpy as np
from tqdm import tqdm

from data.iterator import FaceSegIter
from symbol import get_symbol

from . import evaluate
from .checkpoint import fit_params, load_checkpoint, save_checkpoint
from .optimizer import EpochStepSchedule, ONadam, parse_epoch_steps  # noqa: F401 (registers)

log = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """Training could not go on (a non-finite loss); the message says where."""


def contexts():
    """One GPU per entry of CUDA_VISIBLE_DEVICES, else the CPU."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES', '').strip()
    devices = [d for d in visible.split(',') if d.strip()]
    return [mx.gpu(i) for i in range(len(devices))] if devices else [mx.cpu()]


def initializer():
    """Xavier (gaussian, in, 2); deformable offsets zero; up-sampling bilinear."""
    return mx.init.Mixed(['.*_offset_(weight|bias)', '.*upsampling.*', '.*'],
                         [mx.init.Zero(), mx.init.Bilinear(),
                          mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)])


def optimizer_params(name, lr, wd, rescale, schedule):
    params = {'learning_rate': lr, 'wd': wd, 'rescale_grad': rescale, 'lr_scheduler': schedule}
    if name == 'sgd':
        params['momentum'] = 0.9
    return params


class Improvement(object):
    """Checkpoint rule: save when the first target's NME or the mean NME
    improves on its best so far."""

    def __init__(self):
        self.best_first, self.best_mean = math.inf, math.inf

    def __call__(self, nmes):
        if not nmes:
            return False
        first, mean = nmes[0], float(np.mean(nmes))
        better = first < self.best_first or mean < self.best_mean
        self.best_first = min(self.best_first, first)
        self.best_mean = min(self.best_mean, mean)
        return better


class CsvLog(object):
    """PREFIX-log.csv: step, epoch, lr, loss and each target's NME."""

    def __init__(self, path, targets):
        self.path, self.targets = path, targets
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        new = not os.path.exists(path)
        self.file = open(path, 'a', newline='')
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(['step', 'epoch', 'lr', 'loss'] + ['nme_' + t for t in targets])

    def write(self, step, epoch, lr, loss, nmes=None):
        nmes = nmes or {}
        self.writer.writerow([step, epoch, '%.6g' % lr, '' if loss is None else '%.6g' % loss]
                             + ['%.6f' % nmes[t] if t in nmes else '' for t in self.targets])
        self.file.flush()


class Trainer(object):
    """Builds the symbol, data and module from settings and runs the loop.

    `args` carries the train.py flags: prefix, pretrained, optimizer, lr, wd,
    per_batch_size, lr_epoch_step, ckpt, exf, frequent, verbose, workers,
    seed, kvstore, allow_missing.
    """

    def __init__(self, cfg, args):
        self.cfg, self.args = cfg, args
        self.ctx = contexts()
        cfg.per_batch_size = args.per_batch_size
        self.batch_size = args.per_batch_size * len(self.ctx)
        self.epoch_steps = parse_epoch_steps(args.lr_epoch_step)
        self.sym = get_symbol(cfg)
        self.kvstore = mx.kv.create(args.kvstore)
        train_rec = os.path.join(cfg.dataset_path, 'train.rec')
        self.train_iter = FaceSegIter(self.batch_size, args.per_batch_size, train_rec, aug_level=1,
                                      exf=args.exf, use_coherent=cfg.net_coherent, cfg=cfg,
                                      workers=args.workers, seed=args.seed + self.kvstore.rank,
                                      part_index=self.kvstore.rank,
                                      num_parts=self.kvstore.num_workers)
        # In distributed runs only the chief (rank 0) validates and saves.
        self.chief = self.kvstore.rank == 0
        self.targets = [t for t in cfg.val_targets
                        if self.chief and os.path.isfile(os.path.join(cfg.dataset_path, t + '.rec'))]
        self.val_iters = [FaceSegIter(self.batch_size, args.per_batch_size,
                                      os.path.join(cfg.dataset_path, t + '.rec'), aug_level=0,
                                      cfg=cfg, workers=0) for t in self.targets]
        if self.chief and not self.targets:
            log.warning('no validation target of %s found in %s', cfg.val_targets,
                        cfg.dataset_path)
        self.batches_per_epoch = self.train_iter.num_batches
        self.schedule = EpochStepSchedule(args.lr, self.epoch_steps, self.batches_per_epoch)
        self.improvement = Improvement()
        suffix = '' if self.chief else '-rank%d' % self.kvstore.rank
        self.log = CsvLog(args.prefix + '-log%s.csv' % suffix, self.targets)
        self.step = 0
        self.saved = None

    # Set-up -----------------------------------------------------------------

    def _module(self):
        mod = mx.mod.Module(self.sym, data_names=['data'], label_names=['softmax_label'],
                            context=self.ctx)
        mod.bind(data_shapes=self.train_iter.provide_data,
                 label_shapes=self.train_iter.provide_label, for_training=True)
        arg_params = aux_params = None
        if self.args.pretrained:
            prefix, epoch = self.args.pretrained.rsplit(',', 1)
            _, arg_params, aux_params = load_checkpoint(prefix, int(epoch))
            arg_params, aux_params = fit_params(
                self.sym, arg_params, aux_params, self.train_iter.provide_data[0].shape,
                self.train_iter.provide_label[0].shape, self.args.allow_missing,
                source='--pretrained %s' % self.args.pretrained)
        mod.init_params(initializer(), arg_params=arg_params, aux_params=aux_params,
                        allow_missing=self.args.allow_missing)
        mod.init_optimizer(kvstore=self.kvstore, optimizer=self.args.optimizer,
                           optimizer_params=optimizer_params(
                               self.args.optimizer, self.args.lr, self.args.wd,
                               1.0 / len(self.ctx), self.schedule))
        return mod

    # Pieces of the loop ---------------------------------------------------------

    def validate(self, mod):
        """NME (percent, original protocol) of every validation target."""
        def predict(batch):
            mod.forward(mx.io.DataBatch(batch.data), is_train=False)
            return mod.get_outputs()[-1].asnumpy()
        results = {}
        for name, it in zip(self.targets, self.val_iters):
            it.reset()
            results[name] = 100.0 * float(np.mean(evaluate.evaluate(predict, it, self.cfg)['nme']))
        return results

    def checkpoint_number(self):
        return self.step // self.args.verbose

    def save(self, mod, number=None):
        if not self.chief:
            return None
        arg_params, aux_params = mod.get_params()
        number = self.checkpoint_number() if number is None else number
        path = save_checkpoint(self.args.prefix, number, self.sym, arg_params, aux_params)
        self.saved = (number, self.step)
        log.info('saved %s', path)
        return path

    def _validate_and_save(self, mod, epoch, loss):
        nmes = self.last_nme = self.validate(mod)
        for name, value in nmes.items():
            log.info('[step %d] nme on %s is %.3f%%', self.step, name, value)
        self.log.write(self.step, epoch, self.schedule(self.step), loss, nmes)
        if self.improvement([nmes[t] for t in self.targets]) and self.args.ckpt:
            self.save(mod)

    # The loop -------------------------------------------------------------------

    def run(self):
        mod = self._module()
        interrupted = []
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
        speed = mx.callback.Speedometer(self.batch_size, self.args.frequent, auto_reset=True)
        try:
            self._validate_and_save(mod, 0, None)
            end_epoch = self.epoch_steps[-1]
            loss = None
            for epoch in range(end_epoch):
                if epoch:
                    self.train_iter.reset()
                bar = tqdm(total=self.batches_per_epoch, desc='epoch %d' % epoch, unit='batch',
                           disable=not sys.stderr.isatty(), leave=False)
                for nbatch, batch in enumerate(self.train_iter):
                    mod.forward_backward(batch)
                    loss = float(np.mean([o.asnumpy().mean() for o in
                                          mod.get_outputs()[:self.cfg.net_stacks]]))
                    if not np.isfinite(loss):
                        raise TrainingStopped(
                            'loss is %s at step %d (epoch %d, batch %d); stopped, the last good '
                            'checkpoint is kept' % (loss, self.step + 1, epoch, nbatch))
                    mod.update()
                    self.step += 1
                    bar.update(1)
                    if self.step % self.args.frequent == 0:
                        self.log.write(self.step, epoch, self.schedule(self.step), loss)
                        log.info('epoch %d batch %d lr %.3g loss %.6f', epoch, nbatch,
                                 self.schedule(self.step), loss)
                    speed(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=None,
                                                 locals=None))
                    if self.step % self.args.verbose == 0:
                        self._validate_and_save(mod, epoch, loss)
                    if interrupted:
                        path = self.save(mod, self.checkpoint_number() + 1)
                        log.warning('interrupted at step %d: saved %s', self.step, path)
                        raise KeyboardInterrupt
                bar.close()
            if self.step % self.args.verbose:
                self._validate_and_save(mod, end_epoch, None)
            final = -(-self.step // self.args.verbose)
            if self.args.ckpt and self.saved != (final, self.step):
                self.save(mod, final)
            return self.last_nme
        finally:
            signal.signal(signal.SIGINT, previous)
            self.train_iter.close()
