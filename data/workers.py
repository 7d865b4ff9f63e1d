"""Data worker processes: plain child interpreters (`python -m data.workers`)
that fill batches in shared memory from plans sent over a pipe.

They import NumPy, OpenCV and this package only, never MXNet or the script
that started them, and they exit as soon as their pipe closes: they never
outlive the process that started them, however it ends (SIGKILL included).
"""
import math
import os
import pickle
import signal
import struct
import subprocess
import sys
from multiprocessing.connection import wait

from .batch import SharedBuffer, make_slots

HEADER = struct.Struct('<Q')
MAX_DEFAULT_WORKERS = 8


def usable_cpus():
    """CPUs this process may use: its affinity, bounded by a cgroup quota
    (containers), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    for path, parse in (('/sys/fs/cgroup/cpu.max', lambda t: t.split()[:2]),
                        ('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', None)):
        try:
            with open(path) as f:
                text = f.read()
            if parse:
                quota, period = parse(text)
            else:
                quota = text.strip()
                with open('/sys/fs/cgroup/cpu/cpu.cfs_period_us') as f:
                    period = f.read().strip()
            if quota not in ('max', '-1'):
                cpus = min(cpus, max(1, int(math.ceil(int(quota) / float(int(period))))))
            break
        except (OSError, ValueError):
            continue
    return max(1, cpus)


def default_workers():
    """Worker processes by default: the usable CPUs but one (for the main
    process), at least 1, at most MAX_DEFAULT_WORKERS."""
    return max(1, min(usable_cpus() - 1, MAX_DEFAULT_WORKERS))


def send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream, count):
    chunks = []
    while count:
        chunk = stream.read(count)
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b''.join(chunks)


def receive(stream):
    """The next message, or None at end of stream."""
    head = _read_exact(stream, HEADER.size)
    if head is None:
        return None
    body = _read_exact(stream, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)


class WorkerPool(object):
    """`count` worker processes sharing `buffer`, which holds `slot_count`
    slots of `layout`; each fills entries with `maker` (a BatchMaker)."""

    def __init__(self, count, maker, buffer, layout, slot_count):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join([root] + ([env['PYTHONPATH']]
                                                      if env.get('PYTHONPATH') else []))
        self.procs = []
        for _ in range(count):
            proc = subprocess.Popen([sys.executable, '-m', 'data.workers'], cwd=root, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                    pass_fds=(buffer.fd,))
            self.procs.append(proc)
            send(proc.stdin, (buffer.fd, buffer.nbytes, layout, slot_count, maker))

    def __len__(self):
        return len(self.procs)

    def submit(self, worker, task):
        send(self.procs[worker].stdin, task)

    def receive(self):
        """The next (token, slot, stats, error) reply of any worker."""
        streams = {proc.stdout: proc for proc in self.procs}
        ready = wait(list(streams))
        reply = receive(ready[0])
        if reply is None:
            proc = streams[ready[0]]
            raise RuntimeError('data worker (pid %d) exited with code %s'
                               % (proc.pid, proc.wait()))
        return reply

    def close(self):
        for proc in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self.procs = []


def main():
    """Worker: fill the entries of each task until the pipe closes."""
    import cv2
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                          # stray prints must not corrupt replies
    init = receive(stdin)
    if init is None:
        return
    fd, nbytes, layout, slot_count, maker = init
    slots = make_slots(SharedBuffer(nbytes, fd), layout, slot_count)
    while True:
        task = receive(stdin)
        if task is None:
            return
        token, slot_id, entries = task
        try:
            reply = (token, slot_id, maker.fill(slots[slot_id], entries), None)
        except Exception as err:  # reported to the parent, which raises it
            reply = (token, slot_id, None, '%s: %s' % (type(err).__name__, err))
        try:
            send(stdout, reply)
        except BrokenPipeError:
            return


if __name__ == '__main__':
    main()
