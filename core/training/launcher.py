"""Start a `--kvstore dist_sync` (or dist_device_sync) job as MXNet's own
launcher (dmlc-tracker) does: the scheduler here, servers and workers as
local processes or over ssh, each told its role, the scheduler's address and
its own; then watch them to the end.

    # try it on one machine:
    python -m tools.launch --cluster local --num-workers 2 --num-servers 1 \\
        python train.py --kvstore dist_sync --prefix ./models/dist/model
    # hosts: one per line, each with this checkout (and its .venv) at the same path
    python -m tools.launch --cluster ssh --host-file hosts --num-workers 4 \\
        --gpus-per-worker 2 python train.py --kvstore dist_sync --prefix /shared/dist/model

A line of the host file is `HOST [address=IP] [gpus=0,1,...]`: HOST is what
ssh reaches; `address` is the one the other machines reach it at (default:
the address its ssh server was reached on, so ps-lite never advertises a
docker0 or other private interface; --interface NAME lets ps-lite take that
interface's address on every host instead); `gpus` its CUDA_VISIBLE_DEVICES
(the launcher's own is never forwarded). Servers, then workers, are placed
on the hosts in turn. Each worker learns its rank on its host
(FACE_ALIGN_LOCAL_RANK, of FACE_ALIGN_LOCAL_WORKERS); with
--gpus-per-worker N it takes the N GPUs of its local rank among the host's
visible ones. --port P fixes the ports (scheduler P, the other processes
P+1, ...) so a firewall can open just those.

The command runs through bash in this folder (`$DMLC_TASK_ID`, the worker's
number, can vary an argument); each word `python` is this interpreter, so
every host runs this virtual environment. Over ssh the job's variables
(DMLC_*, PYTHONPATH, LD_LIBRARY_PATH, OMP_NUM_THREADS, MXNET_*, NCCL_*,
FACE_ALIGN_*) are passed on. Every line a process prints comes out here
prefixed with its role. When a worker fails, the launcher names it with its
error, gives the others `--grace` seconds to stop by themselves (they vote to
stop together, or their watchdog gives up after --dist-timeout), then stops
them. Ctrl-C is passed to every worker once (they finish their step and save
the state); a second Ctrl-C stops them at once. The exit status is the worst
of the workers'.
"""
import argparse
import collections
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASS_NAMES = ('PYTHONPATH', 'LD_LIBRARY_PATH', 'OMP_NUM_THREADS')
PASS_PREFIXES = ('DMLC_', 'MXNET_', 'NCCL_', 'FACE_ALIGN_')
HELPER_GRACE = 10       # seconds for scheduler and servers to end after the workers
KILL_GRACE = 10         # seconds between SIGTERM and SIGKILL


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        usage='python -m tools.launch [options] python train.py --kvstore dist_sync ...')
    add = parser.add_argument
    add('--cluster', choices=('local', 'ssh'), default='local')
    add('-n', '--num-workers', type=int, required=True)
    add('-s', '--num-servers', type=int, default=0, help='default: as many as workers')
    add('-H', '--host-file', help='ssh: one host per line, HOST [address=IP] [gpus=LIST] '
        '(servers and workers in turn)')
    add('--host-ip', help='ssh: the address of this machine the hosts reach (default: the one '
        'that routes to the first host)')
    add('--interface', help='ssh: the network interface whose address each process gives '
        'the others (DMLC_INTERFACE), instead of the address ssh reached its host at')
    add('--gpus-per-worker', type=int,
        help='each worker takes this many of its host\'s visible GPUs, by its local rank')
    add('--port', type=int, help='the scheduler\'s port; the other processes take the next '
        'ones (default: free ports chosen at random)')
    add('--ssh-port', type=int, default=22)
    add('--ssh-config', help='ssh: a configuration file for ssh (-F), e.g. with the identity')
    add('--grace', type=float, default=30.0,
        help='seconds the other workers get to stop by themselves after one fails')
    add('command', nargs=argparse.REMAINDER, help='the command of every process')
    args = parser.parse_args(argv)
    if not args.command:
        parser.error('no command given (e.g. python train.py --kvstore dist_sync ...)')
    if args.num_workers < 1:
        parser.error('--num-workers must be at least 1')
    if args.cluster == 'ssh' and not args.host_file:
        parser.error('--cluster ssh needs --host-file')
    if args.gpus_per_worker is not None and args.gpus_per_worker < 1:
        parser.error('--gpus-per-worker must be at least 1, got %d' % args.gpus_per_worker)
    if args.port is not None and not 1024 <= args.port <= 65000:
        parser.error('--port must lie in 1024-65000, got %d' % args.port)
    args.num_servers = args.num_servers or args.num_workers
    return args


def command_line(command, python=sys.executable):
    """The shell line of `command`, each word `python` being `python`."""
    return ' '.join(python if word in ('python', 'python3') else word for word in command)


def passed_environment(environ):
    """The variables an ssh process gets from here."""
    return {k: v for k, v in environ.items() if k in PASS_NAMES or k.startswith(PASS_PREFIXES)}


# On the remote host the command runs in the background while a reader on
# the ssh channel (kept as fd 3: bash gives background jobs /dev/null) turns
# each line (a signal name) into that signal for it, and the end of the
# channel (the launcher is gone) into SIGTERM. $3 is the address the host's
# ssh server was reached on (SSH_CONNECTION: client, port, server, port).
REMOTE = '''cd {workdir} || exit 1
exec 3<&0
set -- $SSH_CONNECTION
env {exports} /bin/bash -c {line} </dev/null & pid=$!
(while read -r sig; do kill -"$sig" $pid; done; kill -TERM $pid) <&3 >/dev/null 2>&1 & reader=$!
exec 3<&-
wait $pid; code=$?
kill $reader 2>/dev/null
exit $code'''


# The value of DMLC_NODE_HOST that stands for "the address ssh reached".
SSH_ADDRESS = object()


def ssh_command(host, port, environ, workdir, line, config=None):
    """argv of ssh running `line` on `host` in `workdir` with `environ` (a
    value SSH_ADDRESS is the address its ssh server was reached on)."""
    exports = ' '.join('%s=%s' % (k, '"$3"' if v is SSH_ADDRESS else shlex.quote(str(v)))
                       for k, v in sorted(environ.items()))
    remote = REMOTE.format(workdir=shlex.quote(workdir), exports=exports, line=shlex.quote(line))
    return ['ssh'] + (['-F', config] if config else []) + [
        '-o', 'StrictHostKeyChecking=no', '-o', 'BatchMode=yes', '-p', str(port), host, remote]


Host = collections.namedtuple('Host', 'name address gpus')


def parse_hosts(text, where='--host-file'):
    """[Host] of a host file's text: `HOST [address=IP] [gpus=0,1]` a line,
    `#` starting a comment. ValueError names the line at fault."""
    hosts = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split('#')[0].split()
        if not words:
            continue
        options = dict(word.partition('=')[::2] for word in words[1:])
        unknown = sorted(set(options) - {'address', 'gpus'})
        if unknown or any('=' not in word for word in words[1:]):
            raise ValueError('%s line %d: %r; a line is HOST [address=IP] [gpus=0,1,...]'
                             % (where, number, line.strip()))
        gpus = options.get('gpus')
        if gpus is not None and not all(g.strip().isdigit() for g in gpus.split(',')):
            raise ValueError('%s line %d: gpus=%s is not a list of GPU numbers like 0,1'
                             % (where, number, gpus))
        hosts.append(Host(words[0], options.get('address'), gpus))
    if not hosts:
        raise ValueError('%s lists no host' % where)
    return hosts


def read_hosts(path):
    try:
        with open(path) as f:
            return parse_hosts(f.read(), '--host-file %s' % path)
    except OSError as err:
        raise ValueError('cannot read --host-file %s: %s' % (path, err.strerror))


def placement(num_servers, num_workers, hosts):
    """[(role, task id, host or None, local rank, workers on that host)]:
    the scheduler here, then servers and workers on the hosts in turn (all
    here without hosts)."""
    roles = [('scheduler', 0, None)]
    roles += [('server', i, hosts[i % len(hosts)] if hosts else None)
              for i in range(num_servers)]
    roles += [('worker', i, hosts[(num_servers + i) % len(hosts)] if hosts else None)
              for i in range(num_workers)]
    per_host = collections.Counter(host for role, _, host in roles if role == 'worker')
    seen = collections.Counter()
    placed = []
    for role, task, host in roles:
        rank = seen[host] if role == 'worker' else 0
        seen[host] += role == 'worker'
        placed.append((role, task, host, rank, per_host[host] if role == 'worker' else 0))
    return placed


def local_address(host):
    """The address of this machine on the route to `host` (a UDP socket
    is connected, which sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((socket.gethostbyname(host), 9))
        return sock.getsockname()[0]


def free_port():
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def exit_status(code):
    """A process's exit code as a shell reports it (signals as 128 + N)."""
    return 128 - code if code < 0 else code


def _die_with_parent():
    """Children get SIGTERM when the launcher dies (Linux), so a killed
    launcher leaves no job behind."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)        # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


class Process(object):
    """A role's process whose output is printed with its name; `remote`
    ones are ssh clients whose signals travel as lines on the channel."""

    def __init__(self, name, argv, env, remote=False):
        self.name, self.remote = name, remote
        self.lines = collections.deque(maxlen=50)
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE if remote else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self):
        for raw in iter(self.proc.stdout.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            self.lines.append(line)
            sys.stdout.write('[%s] %s\n' % (self.name, line))
            sys.stdout.flush()

    def error(self):
        """The process's own error line, else its last line."""
        lines = [line for line in self.lines if line.strip()]
        errors = [line for line in lines if line.startswith('error:')]
        return (errors or lines or ['(no output)'])[-1]

    def poll(self):
        return self.proc.poll()

    def signal(self, signum):
        if self.proc.poll() is not None:
            return
        try:
            if self.remote and signum != signal.SIGKILL:
                self.proc.stdin.write(('%s\n' % signal.Signals(signum).name[3:]).encode())
                self.proc.stdin.flush()
            else:
                os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, BrokenPipeError):
            pass

    def wait(self):
        code = self.proc.wait()
        self.reader.join(timeout=5)
        return code


def say(text):
    sys.stdout.write('[launch] %s\n' % text)
    sys.stdout.flush()


class Job(object):
    """Scheduler, servers and workers of one job, watched to the end."""

    def __init__(self, args, environ=None):
        self.args = args
        environ = dict(os.environ if environ is None else environ)
        line = command_line(args.command)
        hosts = read_hosts(args.host_file) if args.cluster == 'ssh' else None
        address = (args.host_ip or local_address(hosts[0].name)) if hosts else '127.0.0.1'
        common = {'DMLC_PS_ROOT_URI': address,
                  'DMLC_PS_ROOT_PORT': str(args.port or free_port()),
                  'DMLC_NUM_WORKER': str(args.num_workers),
                  'DMLC_NUM_SERVER': str(args.num_servers)}
        if args.gpus_per_worker:
            common['FACE_ALIGN_GPUS_PER_WORKER'] = str(args.gpus_per_worker)
        self.helpers, self.workers = [], []
        placed = placement(args.num_servers, args.num_workers, hosts)
        for number, (role, task, host, rank, local) in enumerate(placed):
            env = dict(common, DMLC_ROLE=role, DMLC_TASK_ID=str(task),
                       DMLC_JOB_CLUSTER=args.cluster)
            if role == 'worker':
                env.update(FACE_ALIGN_LOCAL_RANK=str(rank), FACE_ALIGN_LOCAL_WORKERS=str(local))
            if args.port and number:
                env['PORT'] = str(args.port + number)        # ps-lite's own port
            if host is None:
                argv = ['/bin/bash', '-c', line]
                env = dict(environ, DMLC_NODE_HOST=address, **env)
            else:
                remote = dict(passed_environment(environ), **env)
                if host.address or not args.interface:
                    remote['DMLC_NODE_HOST'] = host.address or SSH_ADDRESS
                else:
                    remote['DMLC_INTERFACE'] = args.interface
                if host.gpus:
                    remote['CUDA_VISIBLE_DEVICES'] = host.gpus
                argv = ssh_command(host.name, args.ssh_port, remote, ROOT, line, args.ssh_config)
                env = environ
            name = role if role == 'scheduler' else '%s %d%s' % (
                role, task, '@' + host.name if host else '')
            process = Process(name, argv, env, remote=host is not None)
            (self.workers if role == 'worker' else self.helpers).append(process)
        self.interrupts = 0

    def _interrupt(self, signum, frame):
        self.interrupts += 1
        say('%s: passed to the workers (%s)' % (
            signal.Signals(signum).name, 'they finish their step and save the state; again to '
            'stop them at once' if self.interrupts == 1 else 'stopping at once'))
        for worker in self.workers:
            worker.signal(signum if self.interrupts == 1 else signal.SIGKILL)

    def run(self):
        """Watch the workers to the end; returns the worst exit status."""
        previous = {s: signal.signal(s, self._interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            codes = self._watch_workers()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self._end_helpers()
        worst = max(exit_status(c) for c in codes)
        say('workers exited with %s; exit status %d'
            % (', '.join('%s: %d' % (w.name, exit_status(c)) for w, c in zip(self.workers,
                                                                            codes)), worst))
        return worst

    def _watch_workers(self):
        deadline = None
        reported = set()
        while True:
            codes = [w.poll() for w in self.workers]
            for worker, code in zip(self.workers, codes):
                if code and worker.name not in reported:
                    reported.add(worker.name)
                    say('%s exited with status %d: %s' % (worker.name, exit_status(code),
                                                          worker.error()))
                    if deadline is None:
                        deadline = time.time() + self.args.grace
                        if any(c is None for c in codes):
                            say('the other workers get %g s to stop by themselves'
                                % self.args.grace)
            if all(c is not None for c in codes):
                return [w.wait() for w in self.workers]
            if deadline is not None and time.time() > deadline:
                say('stopping the workers still running after %g s' % self.args.grace)
                self._stop(self.workers)
                deadline = float('inf')
            time.sleep(0.2)

    def _end_helpers(self):
        """Scheduler and servers end by themselves after a clean finish;
        otherwise they are stopped."""
        end = time.time() + HELPER_GRACE
        while time.time() < end and any(h.poll() is None for h in self.helpers):
            time.sleep(0.2)
        self._stop(self.helpers)

    @staticmethod
    def _stop(processes):
        for process in processes:
            process.signal(signal.SIGTERM)
        end = time.time() + KILL_GRACE
        while time.time() < end and any(p.poll() is None for p in processes):
            time.sleep(0.2)
        for process in processes:
            process.signal(signal.SIGKILL)
            process.wait()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        job = Job(args)
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    return job.run()

