"""What a training run left at its prefix, read by every tool: its files,
its configuration, and which checkpoint to take.

    PREFIX-symbol.json, PREFIX-NNNN.params   checkpoints (each number written once)
    PREFIX-config.json                        the resolved configuration, versions, command
    PREFIX-log.csv                            step, epoch, lr, loss, validation NME
    PREFIX-state.json (+ -state-STEP.params/.states)
                                              the resumable state (weights, optimizer, step)
    PREFIX.lock                               held while a run writes the prefix

Writing them is training's work (core.training.record); a checkpoint is
resolved here once (`resolve`): its number (the run's best when not given)
and its configuration (the run's PREFIX-config.json, the zoo's for a
published model), so that every tool uses the input size and network it was
trained with.
"""
import collections
import csv
import glob
import json
import os

from core.plumbing import checkpoint
from core.plumbing.config import load_config, published_config, restore


class RunError(ValueError):
    """A prefix that cannot be used as asked; the message says what to do."""


def config_path(prefix):
    return prefix + '-config.json'


def log_path(prefix):
    return prefix + '-log.csv'


def log_plot_path(prefix):
    return prefix + '-log.png'


def report_path(prefix):
    return prefix + '-report.html'


def state_path(prefix):
    return prefix + '-state.json'


def prefix_of_log(path):
    """The prefix of a run whose CSV log is at `path`."""
    if not path.endswith('-log.csv'):
        raise RunError('%s is not a run\'s log (PREFIX-log.csv)' % path)
    return path[:-len('-log.csv')]


def run_files(prefix):
    """Files of a run present at `prefix` (not the lock)."""
    own = [checkpoint.symbol_path(prefix), config_path(prefix), log_path(prefix),
           state_path(prefix), log_plot_path(prefix), report_path(prefix)]
    found = [p for p in own if os.path.isfile(p)]
    found += [checkpoint.params_path(prefix, n) for n in checkpoint.checkpoint_numbers(prefix)]
    found += sorted(glob.glob(glob.escape(prefix) + '-state-*'))
    return found


def summary(paths, limit=3):
    """'a, b, c and 2 more' of the file names of `paths`."""
    names = [os.path.basename(p) for p in paths]
    return ', '.join(names[:limit]) + (' and %d more' % (len(names) - limit)
                                       if len(names) > limit else '')


def read_json(path, what):
    """The JSON object of a run file, or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise RunError('%s is not a readable %s: %s' % (path, what, err))


def saved_config(prefix):
    """The configuration a run saved at `prefix`, or None."""
    record = read_json(config_path(prefix), 'run configuration')
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get('config'), dict):
        raise RunError('%s is not a readable run configuration: it has no "config"'
                       % config_path(prefix))
    return restore(record['config'], config_path(prefix))


def checkpoint_config(prefix):
    """(configuration, where it came from) of the checkpoint at `prefix`:
    the run's saved configuration; for a published model (no such file) its
    zoo configuration, found by its folder name; else the settings' defaults."""
    from symbol import zoo
    cfg = saved_config(prefix)
    if cfg is not None:
        return cfg, config_path(prefix)
    name = zoo.name_of_directory(os.path.basename(os.path.dirname(os.path.abspath(prefix))))
    if name:
        return published_config(name), 'the published %s configuration' % name
    return load_config(), 'the settings defaults (no %s)' % os.path.basename(config_path(prefix))


def read_log(prefix):
    """{column: [(step, value), ...]} of the non-empty cells of the run's
    CSV log."""
    series = {}
    with open(log_path(prefix), newline='') as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != 'step' and value not in ('', None):
                    series.setdefault(key, []).append((int(row['step']), float(value)))
    return series


def validations(prefix):
    """The rows of the run's CSV log that hold a validation NME."""
    with open(log_path(prefix), newline='') as f:
        return [r for r in csv.DictReader(f) if any(r[k] for k in r if k.startswith('nme_'))]


def best_checkpoint(prefix):
    """(step, checkpoint, NME) of the run's best checkpoint, or None."""
    try:
        state = read_state(prefix) or {}
        best = state['best_step'], state['best_checkpoint'], state['best_nme']
    except (RunError, KeyError, TypeError):
        return None
    return best if None not in best else None


def saved_settings(prefix):
    """The configuration saved with the run, as plain data (not checked:
    for showing it), or None."""
    try:
        return read_json(config_path(prefix), 'run configuration')['config']
    except (RunError, KeyError, TypeError):
        return None


def trained_on(prefix):
    """Where the run's training faces came from when they were not photos
    (e.g. {'faces': 'synthetic', ...}), or None."""
    try:
        return (read_json(config_path(prefix), 'run configuration') or {}).get('trained_on')
    except (RunError, AttributeError):
        return None


def read_state(prefix):
    """The resumable state's record, or None."""
    return read_json(state_path(prefix), 'run state')


def choose_checkpoint(prefix, number=None):
    """(checkpoint number, why): `number` when given; else the best one the
    run recorded (the last saved on improvement); else the only or latest
    checkpoint of the prefix."""
    if number is not None:
        return number, 'checkpoint %04d' % number
    state = read_state(prefix)
    numbers = checkpoint.checkpoint_numbers(prefix)
    if state and state.get('best_checkpoint') in numbers:
        best = state['best_checkpoint']
        return best, 'the best checkpoint %04d (validation NME %.3f%% at step %d)' % (
            best, state['best_nme'], state['best_step'])
    if not numbers:
        raise checkpoint.CheckpointError('no checkpoint %s-NNNN.params exists (download published '
                                         'models with `python -m tools.download NAME`)' % prefix)
    if len(numbers) == 1:
        return numbers[0], 'checkpoint %04d, the only one' % numbers[0]
    return numbers[-1], 'checkpoint %04d, the latest (no record of the best)' % numbers[-1]


class Checkpoint(collections.namedtuple('Checkpoint', 'prefix number cfg why source')):
    """A resolved checkpoint: its prefix and number, its configuration, why
    that number was taken and where the configuration came from."""

    @property
    def input_size(self):
        return self.cfg.input_img_size

    @property
    def params(self):
        return checkpoint.params_path(self.prefix, self.number)

    def describe(self):
        return '%s: %s; configuration from %s (input %d)' % (self.prefix, self.why, self.source,
                                                             self.input_size)


def resolve(prefix, number=None):
    """The Checkpoint of `prefix` (number None: the run's best); a number
    the prefix does not hold is named with the ones it does."""
    number, why = choose_checkpoint(prefix, number)
    checkpoint.check_files(prefix, number)
    cfg, source = checkpoint_config(prefix)
    return Checkpoint(prefix, number, cfg, why, source)
