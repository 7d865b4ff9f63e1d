"""Writing a training run's record at its prefix (core.plumbing.runs names
the files and reads them): the lock, the saved configuration, the resumable
state and the CSV log.

A prefix that holds a run is never written by another one unless asked:
`--resume` continues it, `--overwrite` deletes it once the new run has
passed every check.
"""
import csv
import fcntl
import glob
import io
import json
import logging
import os
import platform
import socket
import sys
import time

from core.plumbing import checkpoint
from core.plumbing.runs import (RunError, config_path, read_state, run_files, state_path,
                                summary)
from data.files import WriteError, write_atomic

log = logging.getLogger(__name__)


class PrefixLock(object):
    """An exclusive lock on PREFIX.lock, held until released or until the
    process ends (however it ends); it names its holder. The file is removed
    on release; one left by a killed run is taken over (and said so)."""

    def __init__(self, prefix):
        self.path = prefix + '.lock'
        directory = os.path.dirname(self.path)
        while True:
            try:
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise WriteError(err.errno, 'cannot write %s: %s' % (self.path, err.strerror))
            holder = os.pread(self.fd, 4096, 0).decode('utf-8', 'replace').strip()
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise RunError('prefix %s is in use by another training run (%s); wait for it to '
                               'end or choose another --prefix' % (prefix,
                                                                   holder or 'unknown process'))
            if self._current():
                break
            os.close(self.fd)       # released and removed meanwhile: lock the new file
        if holder:
            log.info('%s: taking over the lock of a run that ended without releasing it (%s)',
                     self.path, holder)
        info = 'pid %d on %s since %s' % (os.getpid(), socket.gethostname(),
                                          time.strftime('%Y-%m-%d %H:%M:%S'))
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, info.encode(), 0)

    def _current(self):
        """Whether the locked file is still the one at the path."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return False

    def release(self):
        if self.fd is not None:
            try:
                os.remove(self.path)
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def check_resumable(prefix):
    """RunError saying why `prefix` holds no run to continue, if it does not."""
    if os.path.isfile(state_path(prefix)) and os.path.isfile(config_path(prefix)):
        return
    existing = run_files(prefix)
    what = ('it holds %s but no resumable state' % summary(existing)) if existing \
        else 'nothing was trained there'
    raise RunError('cannot resume %s: %s (%s missing). Start a new run, e.g. with '
                   '--pretrained PREFIX,N to begin from a checkpoint'
                   % (prefix, what, os.path.basename(state_path(prefix))))


def claim(prefix, resume=False, overwrite=False):
    """Lock `prefix` for a run. A prefix holding files of a run is refused
    unless `resume` (it must hold a resumable state) or `overwrite` (its
    files are deleted by `clear`, once the new run is known to be able to
    start). Returns the lock."""
    lock = PrefixLock(prefix)
    try:
        existing = run_files(prefix)
        if resume:
            check_resumable(prefix)
        elif existing and not overwrite:
            raise RunError('prefix %s already holds a run (%s). Continue it with --resume, or '
                           'start over with --overwrite (deletes those files)'
                           % (prefix, summary(existing)))
    except Exception:
        lock.release()
        raise
    return lock


def clear(prefix):
    """Delete the files of the run at `prefix` (--overwrite)."""
    existing = run_files(prefix)
    for path in existing:
        os.remove(path)
    if existing:
        log.info('--overwrite: deleted %d files of the earlier run at %s', len(existing), prefix)


def versions():
    """Versions of the packages a run depends on."""
    from importlib import metadata
    found = {'python': platform.python_version()}
    for name in ('numpy', 'mxnet', 'mxnet-cu112', 'mxnet-cu113', 'mxnet-cu114', 'mxnet-cu115',
                 'mxnet-cu116', 'mxnet-cu117', 'opencv-python-headless', 'onnx', 'onnxruntime',
                 'onnxruntime-gpu'):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def save_config(prefix, cfg, trained_on=None):
    """PREFIX-config.json: every config key, the training options, versions,
    the command line, and where the training faces came from when they are
    not photos (`trained_on`, the training set's NAME.origin.json)."""
    record = {'config': cfg, 'versions': versions(), 'command': sys.argv,
              'created': time.strftime('%Y-%m-%d %H:%M:%S')}
    if trained_on is not None:
        record['trained_on'] = trained_on
    return write_atomic(config_path(prefix), json.dumps(record, indent=1, sort_keys=True))


def state_files(prefix, step):
    return '%s-state-%08d.params' % (prefix, step), '%s-state-%08d.states' % (prefix, step)


def save_state(prefix, record, arg_params, aux_params, optimizer_states):
    """Weights, optimizer states, then the record naming them (the commit
    point); older state files are deleted after the commit."""
    params, states = state_files(prefix, record['step'])
    checkpoint.save_params(params, arg_params, aux_params, overwrite=True)
    write_atomic(states, optimizer_states)
    record = dict(record, params=os.path.basename(params), states=os.path.basename(states))
    write_atomic(state_path(prefix), json.dumps(record, indent=1, sort_keys=True))
    for old in glob.glob(glob.escape(prefix) + '-state-*'):
        if os.path.basename(old) not in (record['params'], record['states']):
            os.remove(old)
    return record


def load_state(prefix):
    """(record, arg_params, aux_params, optimizer states bytes)."""
    record = read_state(prefix)
    if record is None:
        raise RunError('no resumable state at %s' % state_path(prefix))
    folder = os.path.dirname(prefix)
    params, states = (os.path.join(folder, record[k]) for k in ('params', 'states'))
    for path in (params, states):
        if not os.path.isfile(path):
            raise RunError('%s names %s, which does not exist' % (state_path(prefix), path))
    arg_params, aux_params = checkpoint.load_params(params)
    with open(states, 'rb') as f:
        return record, arg_params, aux_params, f.read()


class CsvLog(object):
    """PREFIX-log.csv: step, epoch, lr, loss and each target's NME. Every
    row rewrites the file durably; a resumed run keeps the rows up to its
    step and appends."""

    def __init__(self, path, targets, resume_step=None):
        self.path, self.targets = path, list(targets)
        self.header = ['step', 'epoch', 'lr', 'loss'] + ['nme_' + t for t in self.targets]
        self.rows = []
        if resume_step is not None and os.path.isfile(path):
            with open(path, newline='') as f:
                self.rows = [[row.get(k, '') for k in self.header] for row in csv.DictReader(f)
                             if int(row['step']) <= resume_step]

    def write(self, step, epoch, lr, loss, nmes=None):
        nmes = nmes or {}
        self.rows.append([step, '%.4f' % epoch, '%.6g' % lr,
                          '' if loss is None else '%.6g' % loss]
                         + ['%.6f' % nmes[t] if t in nmes else '' for t in self.targets])
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        write_atomic(self.path, text.getvalue())
