"""The heatmap-loss training loop (docs/training.md).

A run locks its prefix (core.training.record), checks its data (the data gate), builds
the symbol, iterators and the starting weights, and only then (with
--overwrite) clears an earlier run there; it steps until the last epoch step.
Every `validate_every` steps it validates, writes a checkpoint when the NME
improves and saves its resumable state. Ctrl-C (or SIGTERM) finishes the
step under way and saves the state, so a resumed run equals an uninterrupted
one. Weights are checked finite before anything is saved. Distributed
workers agree before every update whether all of them can go on, so they
stop together; a watchdog (core.training.dist) ends a worker whose peers are gone.
"""
import contextlib
import errno
import logging
import math
import os
import random
import signal
import sys
import time

import mxnet as mx
import numpy as np
from tqdm import tqdm

from data import sets
from data.files import WriteError
from data.iterator import FaceSegIter
from data.recordio import gate
from data.workers import default_workers
from symbol import get_symbol

from core.evaluation import protocol
from core.plumbing import runs
from core.plumbing.checkpoint import fit_params, load_checkpoint, params_path, save_checkpoint
from core.plumbing.config import ConfigError, apply_overrides, lookup, schedule
from core.plumbing.devices import contexts as device_contexts
from core.training import dist, record
from core.training.feeder import DeviceFeeder
from core.training.optimizer import EpochStepSchedule, ONadam  # noqa: F401 (registers it)

log = logging.getLogger(__name__)

# Training options a resumed run may change; the rest would change the run.
RUNTIME_OPTIONS = ('prefix', 'gpus', 'workers', 'frequent', 'dist_timeout')
GO, NOT_FINITE, INTERRUPTED, FAILED, BAD_DATA = range(5)
STOP_REASONS = {NOT_FINITE: 'its loss is not finite', INTERRUPTED: 'it was interrupted',
                FAILED: 'it failed', BAD_DATA: 'too many records of its data are unreadable'}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(RuntimeError):
    """Training could not go on; the message says where and why."""


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal, acted on between two steps."""

    def __init__(self, signum=signal.SIGINT):
        super(Interrupted, self).__init__()
        self.exit_code = 128 + signum


class StopRequest(object):
    """SIGINT and SIGTERM while training: the first asks for a stop after
    the step under way (the state is then saved); a second one stops at
    once, keeping the state saved last."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning('%s: stopping after the step under way and saving the state (press Ctrl-C '
                    'again to stop at once and keep the state saved last)',
                    signal.Signals(signum).name)


def resumed_config(prefix, overrides):
    """The configuration a run saved at `prefix`, with only runtime options
    (RUNTIME_OPTIONS) changed by `overrides`; anything else is an error."""
    record.check_resumable(prefix)
    saved = runs.saved_config(prefix)
    changed = sorted(k for k, v in overrides.items()
                     if k.replace('train.', '') not in RUNTIME_OPTIONS
                     and lookup(saved, k) != v)
    if changed:
        raise runs.RunError('--resume continues the configuration saved in %s; it cannot change '
                           '%s (start a new run with --pretrained instead)'
                           % (runs.config_path(prefix), ', '.join(changed)))
    return apply_overrides(saved, {k: v for k, v in overrides.items()
                                   if k.replace('train.', '') in RUNTIME_OPTIONS})


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


def seed_everything(seed):
    """Python, NumPy and MXNet; the data order follows the iterator's seed."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    mx.random.seed(seed)


def random_state():
    """JSON-able state of Python's and NumPy's global generators."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {'python': random.getstate(),
            'numpy': [name, keys.tolist(), position, has_gauss, gauss]}


def restore_random_state(state):
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, gauss = state['numpy']
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))


@contextlib.contextmanager
def local_updates():
    """Module updates the weights on each device itself (the kvstore only
    sums gradients), so optimizer states live here and can be saved."""
    previous = os.environ.get('MXNET_UPDATE_ON_KVSTORE')
    os.environ['MXNET_UPDATE_ON_KVSTORE'] = '0'
    try:
        yield
    finally:
        if previous is None:
            del os.environ['MXNET_UPDATE_ON_KVSTORE']
        else:
            os.environ['MXNET_UPDATE_ON_KVSTORE'] = previous


class Improvement(object):
    """Checkpoint rule: save when the first target's NME or the mean NME
    improves on its best so far; both start at 100% as in the original."""

    def __init__(self, best_first=100.0, best_mean=100.0):
        self.best_first, self.best_mean = best_first, best_mean

    def __call__(self, nmes):
        if not nmes:
            return False
        first, mean = nmes[0], float(np.mean(nmes))
        better = first < self.best_first or mean < self.best_mean
        self.best_first = min(self.best_first, first)
        self.best_mean = min(self.best_mean, mean)
        return better


class Agreement(object):
    """dist_sync: before every update each worker votes (GO or a stop
    reason) through the kvstore, so all stop at the same step. The
    process's watchdog (core.training.dist) ends a worker that waits too long."""

    KEY = 'train-stop-votes'

    def __init__(self, kv):
        self.kv = kv
        self.rank, self.size = kv.rank, kv.num_workers
        kv.init(self.KEY, mx.nd.zeros((self.size,)))

    def vote(self, reason):
        """{rank: reason} of every worker that cannot go on."""
        votes = mx.nd.zeros((self.size,))
        votes[self.rank] = reason
        self.kv.push(self.KEY, votes)
        self.kv.pull(self.KEY, out=votes)
        return {r: int(v) for r, v in enumerate(votes.asnumpy()) if v}


class Trainer(object):
    """Train the network of `cfg` (its `train` section holds the options).

    `contexts` overrides the devices chosen from train.gpus /
    CUDA_VISIBLE_DEVICES; `resume` continues the run at cfg.train.prefix,
    `overwrite` starts over there (the earlier run is deleted only once
    everything this run needs has been checked).
    """

    def __init__(self, cfg, contexts=None, resume=False, overwrite=False):
        t = cfg.train
        self.cfg, self.t, self.prefix = cfg, t, t.prefix
        self.lock = self.kv = self.agreement = self.watchdog = None
        if t.kvstore.startswith('dist'):
            dist.require_launcher(t.kvstore)
            self.watchdog = dist.Watchdog(t.dist_timeout, 'worker %s' % os.environ.get(
                'DMLC_TASK_ID', '?'))
        try:
            self.ctx = list(contexts or device_contexts(t.gpus))
            self.kv = mx.kv.create(t.kvstore) if self.watchdog else None
            self.rank, self.num_workers = (self.kv.rank, self.kv.num_workers) if self.kv \
                else (0, 1)
            self.chief = self.rank == 0
            self.lock = record.claim(self.prefix, resume, overwrite) if self.chief else None
            self._setup(resume)
            if self.chief and overwrite and not resume:
                record.clear(self.prefix)
        except BaseException:
            self.close(failed=True)
            raise

    def _setup(self, resume):
        cfg, t = self.cfg, self.t
        seed_everything(t.seed)
        train_rec = os.path.join(cfg.dataset_path, 'train.rec')
        reader = gate(train_rec, t.bad_records, 'train.bad_records', cfg.scheme)
        self.trained_on = reader.origin
        self._fit_to_the_set(len(reader.keys) // self.num_workers)
        cfg, t = self.cfg, self.t
        self.batch_size = cfg.per_batch_size * len(self.ctx)
        self.targets = sets.check_targets(cfg.val_targets, cfg.dataset_path,
                                          'val_targets') if self.chief else []
        sets.check_targets(cfg.test_targets, cfg.dataset_path, 'test_targets')
        if self.chief and not self.targets:
            log.warning('no validation target of %s found in %s; checkpoints are written at the '
                        'end only', cfg.val_targets, cfg.dataset_path)
        for name in self.targets:
            gate(os.path.join(cfg.dataset_path, name + '.rec'), t.bad_records,
                 'train.bad_records', cfg.scheme)
        self.sym = get_symbol(cfg)
        workers = default_workers() if t.workers is None else t.workers
        self.train_iter = FaceSegIter(train_rec, cfg, self.batch_size, cfg.per_batch_size,
                                      aug_level=1, exf=t.exf, coherent=cfg.net_coherent,
                                      workers=workers, seed=t.seed, part_index=self.rank,
                                      num_parts=self.num_workers)
        self.val_iters = [FaceSegIter(os.path.join(cfg.dataset_path, name + '.rec'), cfg,
                                      self.batch_size, aug_level=0, workers=0,
                                      eval_crop=protocol.EvalCrop(name, cfg.input_img_size,
                                                                  cfg.scheme))
                          for name in self.targets]
        self.records = self.train_iter.num_records
        self.schedule = self._schedule(self.batch_size)
        self.end_step = self.schedule.end_step()
        self.state = record.load_state(self.prefix) if resume else None
        earlier = self.state[0] if self.state else {}
        if earlier and (earlier['batch_size'], earlier['records']) != (self.batch_size,
                                                                      self.records):
            raise runs.RunError(
                'cannot resume %s exactly: it ran with a batch of %d on %d records, this run '
                'has %d on %d (keep --per-batch-size and the number of devices)'
                % (self.prefix, earlier['batch_size'], earlier['records'], self.batch_size,
                   self.records))
        self.initial = self._initial_params()
        self.step = earlier.get('step', 0)
        self._reported = self.step          # notices of the samples are said up to here
        self._pending = None                # the last update a GPU step waits for
        self.improvement = Improvement(earlier.get('best_first', 100.0),
                                       earlier.get('best_mean', 100.0))
        self.best = {k: earlier.get(k) for k in ('best_checkpoint', 'best_nme', 'best_step')}
        self.start_nme = earlier.get('start_nme')          # step 0's, of the first target
        self.started = time.time()
        self.saved = set(earlier.get('saved', []))
        self.last_nmes = {}
        if earlier:
            restore_random_state(earlier['random'])
        self.log = record.CsvLog(runs.log_path(self.prefix), self.targets,
                                 self.step if resume else None) if self.chief else None
        log.info('%s: %d records, batch %d (%d per device x %d device%s%s), %d steps per pass; '
                 'training ends at step %d (epoch %.4g)', train_rec, self.records,
                 self.batch_size, cfg.per_batch_size, len(self.ctx),
                 '' if len(self.ctx) == 1 else 's',
                 ' x %d workers' % self.num_workers if self.kv else '',
                 self.train_iter.num_batches, self.end_step, self.schedule.epoch(self.end_step))

    def _schedule(self, batch_size):
        boundaries, in_steps = schedule(self.t)
        return EpochStepSchedule(self.t.lr, boundaries, self.records, batch_size,
                                 in_steps=in_steps)

    def _fit_to_the_set(self, records):
        """A set smaller than one batch lowers the batch to what it holds,
        and a short run validates at least `min_validations` times (a
        smaller --validate-every); both are said, and saved with the configuration."""
        cfg, t = self.cfg, self.t
        changes = {}
        devices = len(self.ctx)
        fit = records * t.exf // devices
        fit -= fit % 2 if cfg.net_coherent else 0
        if fit < 1:
            raise ValueError('%s: %d records cannot give each of %d devices a sample'
                             % (cfg.dataset_path, records, devices))
        if cfg.per_batch_size > fit:
            log.warning('%d records (x%d) do not fill a batch of %d x %d devices: training with '
                        '%d per device (--per-batch-size)', records, t.exf, cfg.per_batch_size,
                        devices, fit)
            changes['per_batch_size'] = fit
        self.records = records
        steps = self._schedule(changes.get('per_batch_size', cfg.per_batch_size) *
                               devices).end_step()
        if t.min_validations and steps // t.validate_every < t.min_validations:
            every = max(1, steps // t.min_validations)
            if every != t.validate_every:
                log.warning('validating every %d steps instead of %d, so that this run of %d '
                            'steps validates at least %d times (--min-validations)', every,
                            t.validate_every, steps, t.min_validations)
                changes['train.validate_every'] = every
        if changes:
            self.cfg = apply_overrides(cfg, changes)
            self.t = self.cfg.train

    def _initial_params(self):
        """(arg_params, aux_params) to start from: the resumed state, the
        --pretrained checkpoint fitted to this network, or None (initialised)."""
        t = self.t
        if self.state:
            return self.state[1], self.state[2]
        if not t.pretrained:
            return None, None
        prefix, _, number = t.pretrained.rpartition(',')
        if not prefix or not number.isdigit():
            raise ConfigError('--pretrained must be PREFIX,NUMBER, got %r' % t.pretrained)
        _, arg_params, aux_params = load_checkpoint(prefix, int(number))
        return fit_params(self.sym, arg_params, aux_params, self.train_iter.provide_data[0].shape,
                          self.train_iter.provide_label[0].shape, t.allow_missing,
                          source='--pretrained %s' % t.pretrained)

    # Set-up -----------------------------------------------------------------

    def _module(self):
        t = self.t
        mod = mx.mod.Module(self.sym, data_names=['data'], label_names=['softmax_label'],
                            context=self.ctx)
        mod.bind(data_shapes=self.train_iter.provide_data,
                 label_shapes=self.train_iter.provide_label, for_training=True)
        arg_params, aux_params = self.initial
        self.initial = None
        mx.random.seed(t.seed)
        mod.init_params(initializer(), arg_params=arg_params, aux_params=aux_params,
                        allow_missing=not self.state)
        rescale = 1.0 / (len(self.ctx) * self.num_workers)
        with local_updates():
            mod.init_optimizer(kvstore=self.kv or t.kvstore, optimizer=t.optimizer,
                               optimizer_params=optimizer_params(t.optimizer, t.lr, t.wd, rescale,
                                                                 self.schedule))
        if self.kv:
            self.agreement = Agreement(self.kv)
            self._share_chief_weights(mod)
        if self.state:
            mod._updater.set_states(self.state[3])   # with the optimizer: counts, schedule
        return mod

    def _share_chief_weights(self, mod):
        """Every worker starts from rank 0's weights (the kvstore holds
        them after init_optimizer)."""
        group = mod._exec_group
        for i, name in enumerate(group.param_names):
            self.kv.pull(name, out=group.param_arrays[i], priority=-i)
        mx.nd.waitall()
        mod._params_dirty = True

    # Pieces of the loop -------------------------------------------------------

    def _health(self, mod):
        """(mean heatmap loss of the stacks, whether the gradients and
        weights are all finite), in one read from the devices. A diverged
        network can keep a finite loss (oneDNN's ReLU maps NaN to 0), so
        the sums of its gradients and weights are read too."""
        group = mod._exec_group
        outputs = mod.get_outputs(merge_multi_context=False)[:self.cfg.net_stacks]
        losses = [mx.nd.mean(o).as_in_context(mx.cpu()) for per_device in outputs
                  for o in per_device]
        sums = [mx.nd.sum(a).as_in_context(mx.cpu()) for arrays in group.grad_arrays + [
            [per_device[0] for per_device in group.param_arrays]] for a in arrays
            if a is not None]
        values = mx.nd.concat(*(losses + [mx.nd.add_n(*sums).reshape((1,))]), dim=0).asnumpy()
        return float(np.mean(values[:-1])), bool(np.isfinite(values).all())

    def validate(self, mod):
        """NME (percent, the protocol's) of every validation target."""
        def predict(batch):
            mod.forward(mx.io.DataBatch(batch.data), is_train=False)
            return mod.get_outputs()[-1].asnumpy()
        results = {}
        for name, it in zip(self.targets, self.val_iters):
            it.reset()
            nme = protocol.evaluate(predict, it, self.cfg.input_img_size, self.cfg.scheme,
                                    self.cfg.landmark_type)['nme']
            results[name] = 100.0 * float(np.mean(nme))
        return results

    def checkpoint_number(self):
        """The number of the weights of this step: step / validate_every
        rounded up, so the end of a run that is not a multiple of it gets a
        number of its own and no number is ever ambiguous."""
        return -(-self.step // self.t.validate_every)

    def _validation(self, mod, loss):
        """Validate, log, and save a checkpoint when it improves."""
        self.train_iter.log_notices('steps %d-%d' % (self._reported + 1, self.step))
        self._reported = self.step
        nmes = self.last_nmes = self.validate(mod)
        for name, value in nmes.items():
            log.info('[step %d] nme on %s is %.3f%%', self.step, name, value)
        self.log.write(self.step, self.schedule.epoch(self.step), self.schedule(self.step), loss,
                       nmes)
        values = [nmes[t] for t in self.targets]
        if self.improvement(values) and self.t.ckpt:
            number = self.checkpoint_number()
            if self._save(mod, number):
                self.best = {'best_checkpoint': number, 'best_nme': values[0],
                             'best_step': self.step}
                log.info('checkpoint %04d is the best so far (nme on %s %.3f%%)', number,
                         self.targets[0], values[0])

    def _finite_params(self, mod, what):
        """The module's weights; TrainingStopped when any is not finite, so
        that nothing non-finite is ever written."""
        arg_params, aux_params = mod.get_params()
        bad = [name for params in (arg_params, aux_params) for name, value in params.items()
               if not np.isfinite(value.asnumpy()).all()]
        if bad:
            best = self.best.get('best_checkpoint')
            raise TrainingStopped(
                'the weights are not finite at step %d (%d of %d arrays, e.g. %s); %s not written'
                '%s' % (self.step, len(bad), len(arg_params) + len(aux_params),
                        ', '.join(bad[:3]), what,
                        '; the best checkpoint stays %04d' % best if best is not None else ''))
        return arg_params, aux_params

    def _save(self, mod, number):
        """Write checkpoint `number` once; never replace an earlier one."""
        if number in self.saved:
            return False
        arg_params, aux_params = self._finite_params(mod, 'checkpoint %04d' % number)
        try:
            path = save_checkpoint(self.prefix, number, self.sym, arg_params, aux_params)
        except WriteError as err:
            if err.errno != errno.EEXIST:
                raise
            log.warning('%s exists from earlier; not replaced', params_path(self.prefix, number))
            return False
        self.saved.add(number)
        log.info('saved %s', path)
        return True

    def save_state(self, mod, finished=False):
        if not self.chief:
            return
        arg_params, aux_params = self._finite_params(mod, 'the resumable state')
        state = dict(self.best, start_nme=self.start_nme, step=self.step,
                     epoch=self.schedule.epoch(self.step),
                      finished=finished, best_first=self.improvement.best_first,
                      best_mean=self.improvement.best_mean, saved=sorted(self.saved),
                      batch_size=self.batch_size, records=self.records, random=random_state())
        record.save_state(self.prefix, state, arg_params, aux_params,
                       mod._updater.get_states(dump_optimizer=True))

    def _decide(self, reason, why):
        """Whether every worker can go on: raises when one cannot, returns
        True when one was asked to stop (after this step)."""
        votes = self.agreement.vote(reason) if self.agreement else (
            {self.rank: reason} if reason else {})
        if not votes:
            return False
        if all(v == INTERRUPTED for v in votes.values()):
            return True
        rank, why_code = sorted((r, v) for r, v in votes.items() if v != INTERRUPTED)[0]
        if rank == self.rank and why_code == NOT_FINITE:
            raise TrainingStopped('%s at step %d (epoch %.2f); stopped before that update%s'
                                  % (why, self.step + 1, self.schedule.epoch(self.step),
                                     self._kept()))
        if rank == self.rank and why_code == BAD_DATA:
            stats = self.train_iter.epoch_stats
            raise TrainingStopped('%s: %d unreadable records in this pass, more than %g%% of it; '
                                  'stopped%s' % (self.train_iter.path, stats['corrupt'],
                                                 100 * self.t.bad_records, self._kept()))
        raise TrainingStopped('worker %d stopped (%s); all workers stop at step %d'
                              % (rank, STOP_REASONS.get(why_code, 'failed'), self.step + 1))

    def _kept(self):
        return '; the checkpoints written so far are kept (%s)' % (
            ', '.join('%04d' % n for n in sorted(self.saved)) or 'none')

    def _settle(self, mod):
        """Wait for this step's update on the CPU: MXNet's engine would
        otherwise queue the next steps on top of it and oversubscribe the
        cores (measured 4-6x slower on 2 cores). On GPUs the wait is for the
        step before, so one step stays queued ahead."""
        params = mod._exec_group.param_arrays[0]
        if all(ctx.device_type == 'cpu' for ctx in self.ctx):
            mx.nd.waitall()
        else:
            if self._pending is not None:
                self._pending.wait_to_read()
            self._pending = params[-1]

    def _beat(self):
        if self.watchdog:
            self.watchdog.beat()

    def _alone(self):
        """Where the chief works on its own (validation, saving): the
        others' updates are received first, then the watchdog pauses."""
        if not self.watchdog:
            return contextlib.nullcontext()
        mx.nd.waitall()
        return self.watchdog.paused()

    # The loop -------------------------------------------------------------------

    def run(self):
        """Train to the end; returns the last validation NMEs."""
        feeder = mod = None
        failed = True
        try:
            with StopRequest() as stop:
                mod = self._module()
                self._beat()
                if self.chief and not self.state:
                    record.save_config(self.prefix, self.cfg, self.trained_on)     # the run starts here
                feeder = DeviceFeeder(self.train_iter, self.ctx, self.step)
                if self.chief and self.step == 0 and self.targets:
                    with self._alone():
                        self._first_validation(mod)
                self._steps(mod, feeder, stop)
                if self.chief:
                    self._chief_work(self._finish, mod, self._last_loss, finished=True)
            failed = False
            return self.last_nmes
        except Interrupted:
            failed = False          # every worker stops at this step: finalise together
            if mod is not None and self.chief:
                with self._alone():
                    self.save_state(mod)
                log.warning('stopped after step %d; the state is saved: continue with '
                            '`train.py --prefix %s --resume`', self.step, self.prefix)
            raise
        except KeyboardInterrupt:
            state = runs.read_state(self.prefix) if self.chief else None
            log.warning('stopped at once during step %d; %s', self.step + 1,
                        'the state saved at step %d is kept: continue with --resume'
                        % state['step'] if state else 'no state had been saved yet')
            raise
        finally:
            if feeder is not None:
                feeder.close()
            self.close(failed)

    def _first_validation(self, mod):
        """Validate the starting weights. Weights of --pretrained are the
        first candidate for the best checkpoint: they are saved as 0000, so
        a fine-tuning run whose later steps are all worse keeps them as its
        best (and every tool loads them). Untrained weights are not saved."""
        nmes = self.validate(mod)
        self.start_nme = nmes[self.targets[0]]
        origin = ('the weights of --pretrained %s' % self.t.pretrained) if self.t.pretrained \
            else 'untrained; not saved'
        for name, value in nmes.items():
            log.info('[step 0] nme on %s is %.3f%% (%s)', name, value, origin)
        self.log.write(0, 0.0, self.schedule(0), None, nmes)
        values = [nmes[t] for t in self.targets]
        try:
            self._finite_params(mod, 'the starting weights')
        except TrainingStopped as err:
            log.warning('%s; they are no candidate for the best checkpoint', err)
            return
        if self.t.pretrained and self.improvement(values) and self.t.ckpt and \
                self._save(mod, 0):
            self.best = {'best_checkpoint': 0, 'best_nme': values[0], 'best_step': 0}
            log.info('checkpoint 0000 holds the starting weights, the best so far (nme on %s '
                     '%.3f%%)', self.targets[0], values[0])

    def _steps(self, mod, feeder, stop):
        t = self.t
        samples_per_pass = self.records * t.exf
        bar = tqdm(total=self.end_step, initial=self.step, unit='step', leave=False,
                   disable=not sys.stderr.isatty())
        started, start_step, loss = time.time(), self.step, None
        while self.step < self.end_step:
            why = None
            try:
                batch = feeder.next()
                mod.forward_backward(batch)
                reason = GO
                if (self.step + 1) % t.frequent == 0 or self.step + 1 == self.end_step:
                    loss, finite = self._health(mod)
                    if not finite:
                        reason = NOT_FINITE
                        why = 'loss is not finite' if not math.isfinite(loss) else \
                            'the gradients or weights are not finite (loss %.6g)' % loss
                if not reason and self.train_iter.epoch_stats['corrupt'] > \
                        t.bad_records * samples_per_pass:
                    reason = BAD_DATA
                if not reason and stop.signum is not None:
                    reason = INTERRUPTED
            except Exception:
                if self.agreement:
                    self.agreement.vote(FAILED)
                raise
            stopping = self._decide(reason, why)
            mod.update()
            self._settle(mod)
            self.step += 1
            self._beat()
            bar.update(1)
            if self.step % t.frequent == 0:
                speed = (self.step - start_step) * self.batch_size / (time.time() - started)
                log.info('epoch %.2f step %d lr %.3g loss %.6f (%.1f samples/s)',
                         self.schedule.epoch(self.step), self.step, self.schedule(self.step),
                         loss, speed)
                if self.chief:
                    self.log.write(self.step, self.schedule.epoch(self.step),
                                   self.schedule(self.step), loss)
            if self.chief and self.step % t.validate_every == 0 and self.step < self.end_step:
                self._chief_work(self._validation, mod, loss)
            if stopping:
                bar.close()
                raise Interrupted(stop.signum or signal.SIGINT)
        bar.close()
        self._last_loss = loss

    def _chief_work(self, work, mod, loss, finished=False):
        """Work of the chief between steps, then the state is saved; a
        failure tells the other workers."""
        try:
            with self._alone():
                work(mod, loss)
                self.save_state(mod, finished)
        except Exception:
            if self.agreement:
                self.agreement.vote(FAILED)
            raise

    def _finish(self, mod, loss):
        """Validate the final weights and write them under their own number
        (once, whether or not they are the best), then say in one line how
        the run went."""
        if self.targets:
            self._validation(mod, loss)
        if self.t.ckpt:
            self._save(mod, self.checkpoint_number())
        log.info('%s', self.summary())

    def summary(self):
        """The run in one line: steps, time, the best checkpoint and its
        NME, and the NME of the start."""
        took = time.time() - self.started
        text = 'finished: %d steps in %s' % (self.step, '%.1f min' % (took / 60) if took >= 60
                                              else '%.0f s' % took)
        best, first = self.best.get('best_checkpoint'), (self.targets or ['?'])[0]
        if best is not None:
            text += '; best checkpoint %04d (step %d, nme on %s %.3f%%)' % (
                best, self.best['best_step'], first, self.best['best_nme'])
            if best == 0:
                text += ': the starting weights are still the best'
        elif self.targets:
            text += '; no validation improved on 100%% (checkpoint %04d holds the final ' \
                'weights)' % self.checkpoint_number()
        else:
            text += '; no validation set (checkpoint %04d holds the final weights)' % \
                self.checkpoint_number()
        if self.start_nme is not None:
            text += '; at the start %.3f%% (%s)' % (
                self.start_nme, 'weights of --pretrained' if self.t.pretrained else 'untrained')
        return text

    def close(self, failed=False):
        for it in [getattr(self, 'train_iter', None)] + getattr(self, 'val_iters', []):
            if it is not None:
                it.close()
        if failed:
            dist.hold(self.kv)     # its finalising barrier would wait for the others
        self.agreement = self.kv = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
