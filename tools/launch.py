"""Start distributed training (`--kvstore dist_sync`): MXNet's parameter
server roles over ssh (MXNet's own tracker) or as local processes.

    # hosts: one hostname per line, each with this checkout at the same path
    python -m tools.launch --cluster ssh --num-workers 2 --num-servers 2 \\
        --host-file hosts python train.py --kvstore dist_sync --prefix ./models/dist/model
    # try it on one machine:
    python -m tools.launch --cluster local --num-workers 2 --num-servers 1 \\
        python train.py --kvstore dist_sync ...

The options are those of MXNet's dmlc tracker (`--help`). The command is run
through bash, so `$DMLC_TASK_ID` (the worker's number) can vary an argument;
quote values that hold brackets or quotes twice. The local launcher exits
with the first failing worker's code, and ends the scheduler and servers
once every worker is gone, so a failed run never leaves it waiting.
"""
import os
import socket
import subprocess
import sys
import threading
import time

from dmlc_tracker import opts, ssh

GRACE_SECONDS = 30


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_local(command, workers, servers):
    """Scheduler, servers and workers as local processes; returns the exit
    code of the first worker that failed, else 0."""
    base = dict(os.environ, DMLC_PS_ROOT_URI='127.0.0.1', DMLC_PS_ROOT_PORT=str(free_port()),
                DMLC_NUM_WORKER=str(workers), DMLC_NUM_SERVER=str(servers),
                DMLC_JOB_CLUSTER='local')
    line = ' '.join(command)

    def start(role, task):
        env = dict(base, DMLC_ROLE=role, DMLC_TASK_ID=str(task))
        return subprocess.Popen(line, shell=True, executable='/bin/bash', env=env)
    helpers = [start('scheduler', 0)] + [start('server', workers + i) for i in range(servers)]
    started = [start('worker', i) for i in range(workers)]
    codes = [proc.wait() for proc in started]
    deadline = time.time() + GRACE_SECONDS
    for proc in helpers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    failed = [code for code in codes if code]
    return failed[0] if failed else 0


def main(argv=None):
    args = opts.get_opts(argv)
    if args.cluster not in ('local', 'ssh'):
        sys.exit('--cluster must be local or ssh, got %r' % args.cluster)
    if args.num_servers == 0:
        args.num_servers = args.num_workers
    if args.cluster == 'local':
        return run_local(args.command, args.num_workers, args.num_servers)
    if not hasattr(threading.Thread, 'isAlive'):     # the tracker calls the pre-3.9 name
        threading.Thread.isAlive = threading.Thread.is_alive
    ssh.submit(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
