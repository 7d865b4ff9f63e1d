"""Multi-machine jobs end by themselves: real dist_sync runs of a small
network started by tools.launch as local processes (test_hosts.py runs them
across real hosts over ssh)."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from conftest import SMALL_NETWORK, synth_sets, wait_for
from core.plumbing import checkpoint
from core.plumbing import runs
from core.training import launcher as launch

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, 'train.py', '--kvstore', 'dist_sync', '--per-batch-size', '4',
         '--optimizer', 'sgd', '--lr', '1e-3', '--workers', '0', '--frequent', '1',
         '--min-validations', '0', '--set', 'losstype=ce'] + SMALL_NETWORK


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return synth_sets(tmp_path_factory.mktemp('dist-data'), train=32, ibug=8)


def _launcher(args, log_path, env=None):
    return subprocess.Popen([sys.executable, '-m', 'tools.launch'] + [str(a) for a in args],
                            cwd=str(ROOT), stdout=open(log_path, 'w'), stderr=subprocess.STDOUT,
                            env=env)


def _workers(role='worker'):
    """{task id: pid} of the python processes of a launched job."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as f:
                env = dict(v.split(b'=', 1) for v in f.read().split(b'\0') if b'=' in v)
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        if env.get(b'DMLC_ROLE') == role.encode() and b'train.py' in cmdline \
                and cmdline.startswith(sys.executable.encode()):
            found[int(env[b'DMLC_TASK_ID'])] = int(entry)
    return found


@pytest.mark.long
def test_a_worker_failing_at_start_up_ends_the_whole_job(faces, tmp_path):
    """One worker is given a missing dataset: it says so, the others (in
    kvstore creation or init) end, and the launcher exits non-zero, naming it."""
    data = '$([ "$DMLC_TASK_ID" = 1 ] && echo %s || echo %s)' % (tmp_path / 'missing', faces)
    started = time.time()
    proc = subprocess.run([sys.executable, '-m', 'tools.launch', '-n', '2', '-s', '1',
                           '--grace', '5'] + TRAIN + [
        '--prefix', str(tmp_path / 'model'), '--set', 'dataset_path=%s' % data,
        '--lr-epoch-step', '2', '--dist-timeout', '20'],
        cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    took = time.time() - started
    print(proc.stdout[-2000:])
    print('the whole job ended %.1f s after the start' % took)
    assert took < 60
    assert proc.returncode != 0
    assert re.search(r'\[launch\] worker 1 exited with status 1: error: record file .*missing/'
                     r'train.rec does not exist', proc.stdout)
    statuses = dict(re.findall(r'worker (\d): (\d+)', proc.stdout.splitlines()[-1]))
    assert set(statuses) == {'0', '1'} and all(int(v) != 0 for v in statuses.values())
    assert proc.returncode == max(int(v) for v in statuses.values())
    assert not _workers() and not _workers('server') and not _workers('scheduler')


@pytest.mark.long
@pytest.mark.parametrize('trial', range(2))
def test_sigkill_of_one_worker_ends_the_other_within_the_timeout(faces, tmp_path, trial):
    """No help from the launcher (a long --grace): the survivor's watchdog
    ends it, wherever it waits (update, loss read, vote, validation)."""
    timeout = 6
    log_path = tmp_path / 'log.txt'
    proc = _launcher(['-n', '2', '-s', '1', '--grace', '600'] + TRAIN + [
        '--prefix', tmp_path / 'model', '--set', 'dataset_path=%s' % faces,
        '--lr-epoch-step', '50', '--validate-every', '3', '--dist-timeout', str(timeout)], log_path)
    try:
        step = 2 + 2 * trial          # different places of the loop
        wait_for(lambda: 'step %d ' % step in log_path.read_text(), 120, 'step %d' % step)
        victim = 1 if trial % 2 else 0
        os.kill(_workers()[victim], signal.SIGKILL)
        killed = time.time()
        survivor = 1 - victim
        wait_for(lambda: survivor not in _workers(), timeout + 10,
                  'worker %d to end after its peer was killed' % survivor)
        print('trial %d: worker %d killed at step %d, worker %d ended %.1f s later'
              % (trial, victim, step, survivor, time.time() - killed))
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    output = log_path.read_text()
    assert 'worker %d exited with status 137' % victim in output
    assert re.search(r'worker %d: no answer from the other workers for %d s'
                     % (survivor, timeout), output), output[-2000:]


@pytest.mark.long
def test_ctrl_c_stops_every_worker_after_the_same_step_and_resume_is_exact(faces, tmp_path):
    """Ctrl-C on the launcher reaches each worker once; they stop after the
    same step, the chief saves, and the resumed job ends with exactly the
    weights and BatchNorm statistics of an uninterrupted job."""
    common = TRAIN + ['--set', 'dataset_path=%s' % faces, '--lr-epoch-step', '3',
                      '--validate-every', '100', '--dist-timeout', '60']
    whole = subprocess.run([sys.executable, '-m', 'tools.launch', '-n', '2', '-s', '1'] + common
                           + ['--prefix', str(tmp_path / 'whole' / 'model')],
                           cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stdout[-3000:]
    prefix = tmp_path / 'cut' / 'model'
    log_path = tmp_path / 'log.txt'
    proc = _launcher(['-n', '2', '-s', '1'] + common + ['--prefix', prefix], log_path)
    wait_for(lambda: 'step 5 ' in log_path.read_text(), 120, 'step 5')
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    output = log_path.read_text()
    assert 'SIGINT: passed to the workers' in output and 'the state is saved' in output
    stopped = runs.read_state(str(prefix))['step']
    assert 5 <= stopped < 12
    resumed = subprocess.run([sys.executable, '-m', 'tools.launch', '-n', '2', '-s', '1']
                             + common + ['--prefix', str(prefix), '--resume'],
                             cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    number = checkpoint.checkpoint_numbers(str(prefix))[-1]
    ours = mx.nd.load('%s-%04d.params' % (prefix, number))
    theirs = mx.nd.load('%s-%04d.params' % (tmp_path / 'whole' / 'model', number))
    assert any(k.startswith('aux:') for k in ours) and ours.keys() == theirs.keys()
    different = [k for k in ours if not np.array_equal(ours[k].asnumpy(), theirs[k].asnumpy())]
    assert not different, different[:5]


def test_dist_sync_without_a_launcher_is_one_line(faces, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('DMLC_')}
    proc = subprocess.run(TRAIN + ['--prefix', str(tmp_path / 'model'),
                                   '--set', 'dataset_path=%s' % faces],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'python -m tools.launch --cluster local' in lines[0], proc.stderr
    assert not (tmp_path / 'model-config.json').exists()


def test_the_launchers_decisions():
    assert launch.command_line(['python', 'train.py', '--x'], '/venv/bin/python') == \
        '/venv/bin/python train.py --x'
    assert launch.command_line(['./run.sh', '&&', 'python3', 'x.py'], '/p') == './run.sh && /p x.py'
    passed = launch.passed_environment({'CUDA_VISIBLE_DEVICES': '0,1', 'MXNET_ENGINE_TYPE': 'x',
                                        'HOME': '/root', 'FACE_ALIGN_DRIVE_URL': 'u',
                                        'NCCL_DEBUG': 'INFO', 'PYTHONPATH': '/p',
                                        'LD_LIBRARY_PATH': '/opt/cuda/lib64'})
    # This machine's GPU selection may be wrong on another: a host sets its own.
    assert sorted(passed) == ['FACE_ALIGN_DRIVE_URL', 'LD_LIBRARY_PATH', 'MXNET_ENGINE_TYPE',
                              'NCCL_DEBUG', 'PYTHONPATH']


def test_a_host_file_names_hosts_their_addresses_and_gpus():
    hosts = launch.parse_hosts('# lab\nnode-a\nnode-b address=10.0.0.2 gpus=0,1  # big one\n\n')
    assert hosts == [launch.Host('node-a', None, None), launch.Host('node-b', '10.0.0.2', '0,1')]
    for bad, words in (('node-a gpu=0', 'HOST [address=IP] [gpus=0,1,...]'),
                       ('node-a gpus=a,b', 'gpus=a,b is not a list of GPU numbers'),
                       ('# nothing', 'lists no host')):
        with pytest.raises(ValueError, match=re.escape(words)):
            launch.parse_hosts(bad)


def test_workers_learn_their_rank_on_their_host():
    a, b = launch.Host('a', None, None), launch.Host('b', None, None)
    placed = launch.placement(1, 4, [a, b])
    assert [(role, task, host.name if host else None, rank, local)
            for role, task, host, rank, local in placed] == [
        ('scheduler', 0, None, 0, 0), ('server', 0, 'a', 0, 0), ('worker', 0, 'b', 0, 2),
        ('worker', 1, 'a', 0, 2), ('worker', 2, 'b', 1, 2), ('worker', 3, 'a', 1, 2)]
