"""The life of a `dist_sync` worker, so that a job never hangs.

MXNet's distributed kvstore blocks in every collective (creation, `init`,
push/pull, the reads that wait for a pull, and the finalising barrier of its
destructor) until every worker takes part; a worker that failed or died
leaves the others waiting for ever. So:

- a `Watchdog` is armed before the kvstore is created and stays armed until
  the process ends: when the worker makes no progress for `timeout` seconds
  outside a `paused()` section (the chief's own validation and saving) it
  says so and ends the process;
- a worker that fails never finalises its kvstore (the barrier would wait for
  the others): `hold()` keeps it referenced and `finish()` ends the
  process after its one-line error;
- `kvstore()` refuses to start without the launcher's environment.
"""
import contextlib
import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

LAUNCH_HINT = ('python -m tools.launch --cluster local --num-workers 2 python train.py '
               '--kvstore dist_sync ... (README, "Several machines")')
_HELD = []          # kvstores of a failed worker: never finalised


class LaunchError(RuntimeError):
    """A distributed run started without its launcher."""


def is_worker(environ=None):
    """Whether this process is a worker started by a dist launcher."""
    return (os.environ if environ is None else environ).get('DMLC_ROLE') == 'worker'


def require_launcher(kind, environ=None):
    """LaunchError unless this process is a worker a launcher started."""
    if not is_worker(environ):
        raise LaunchError('--kvstore %s needs a launcher that starts the scheduler, servers and '
                          'workers: %s' % (kind, LAUNCH_HINT))


class Watchdog(object):
    """Ends the process when it makes no progress for `timeout` seconds.

    `beat()` marks progress; `paused()` stops the clock while this worker
    does long work of its own (not a wait on the others). The thread holds
    no reference to the kvstore.
    """

    def __init__(self, timeout, rank_name='worker', exit_code=3, poll=None):
        self.timeout, self.exit_code = float(timeout), exit_code
        self.name = rank_name
        self._since = [time.time()]
        self._poll = poll or min(5.0, max(0.2, self.timeout / 10.0))
        threading.Thread(target=self._watch, name='dist-watchdog', daemon=True).start()

    def _watch(self):
        while True:
            time.sleep(self._poll)
            started = self._since[0]
            if started is not None and time.time() - started > self.timeout:
                log.error('%s: no answer from the other workers for %d s (one of them stopped or '
                          'died; see its own message); giving up', self.name, self.timeout)
                logging.shutdown()
                sys.stderr.flush()
                os._exit(self.exit_code)

    def beat(self):
        if self._since[0] is not None:
            self._since[0] = time.time()

    @contextlib.contextmanager
    def paused(self):
        self._since[0] = None
        try:
            yield
        finally:
            self._since[0] = time.time()


def hold(kv):
    """Keep a failed worker's kvstore alive: its destructor would wait for
    the other workers at the finalising barrier."""
    if kv is not None:
        _HELD.append(kv)


def finish(code):
    """`code`, or (a worker that failed) the end of the process now, with its
    output flushed and without finalising its kvstore."""
    if not _HELD:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 1)
