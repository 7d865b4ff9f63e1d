"""Multi-machine jobs across real hosts: two network namespaces, each running
a real OpenSSH server on its own address, joined by a bridge to this
machine, where tools.launch starts MXNet's scheduler and reaches the hosts
over ssh as dmlc-tracker does. Each host's first interface is a decoy no
other host reaches (as docker0 is on many machines), so a process that gave
the others ps-lite's own choice of address could not be reached."""
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

from conftest import SMALL_NETWORK, wait_for

pytestmark = pytest.mark.long
from core.plumbing import checkpoint
from core.plumbing.config import load_config
from core.training.trainer import Trainer
from data import synth
from data.landmarks import IBUG68
from data.recordio import RecordReader, RecordWriter
from netns import Hosts

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ['python', 'train.py', '--kvstore', 'dist_sync', '--per-batch-size', '4', '--optimizer',
         'sgd', '--workers', '0', '--min-validations', '0', '--set', 'losstype=ce'] + SMALL_NETWORK


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    why = Hosts.unavailable()
    if why:
        pytest.skip(why)
    with Hosts(tmp_path_factory.mktemp('hosts'), 2, decoys=(1, 2)) as made:
        yield made


@pytest.fixture(scope='module')
def same_face(tmp_path_factory):
    """17 and 16 copies of one face: any shard holds the same samples."""
    root = tmp_path_factory.mktemp('same-face')
    synth.write_records(str(root / 'one'), 1, seed=3, progress=False)
    payload = RecordReader(str(root / 'one.rec')).read(0)
    for name, count in (('seventeen', 17), ('sixteen', 16)):
        with RecordWriter(str(root / name / 'train'), IBUG68) as writer:
            for _ in range(count):
                writer.write(payload)
    return root


def _host_file(folder, hosts, *extra):
    path = folder / 'hosts'
    path.write_text('# two machines\n' + ''.join('%s %s\n' % (a, ' '.join(extra))
                                                  for a in hosts.addresses))
    return path


def _launch(hosts, host_file, command, *options, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, '-m', 'tools.launch', '--cluster', 'ssh', '--host-file', str(host_file),
         '--ssh-config', hosts.ssh_config, '-n', '2', '-s', '1'] + list(options) + command,
        cwd=str(ROOT), capture_output=True, text=True, timeout=timeout,
        env=env or dict(os.environ))


def test_a_job_across_two_hosts_trains_as_one_machine_would(hosts, same_face, tmp_path):
    """A server on one host, a worker on each; every worker gets its own
    address (not the decoy), its rank on its host, this venv's Python and
    the job's variables but not the launcher's CUDA_VISIBLE_DEVICES; four
    steps give the weights of one machine with two devices on the same
    samples."""
    probe = ('import os; e = os.environ; print("probe", e["DMLC_NODE_HOST"], '
             'e.get("FACE_ALIGN_LOCAL_RANK"), e.get("FACE_ALIGN_PROBE"), e.get("LD_LIBRARY_PATH"), '
             'e.get("CUDA_VISIBLE_DEVICES"), e.get("UNRELATED"))')
    prefix = tmp_path / 'dist' / 'model'
    env = dict(os.environ, FACE_ALIGN_PROBE='passed', LD_LIBRARY_PATH='/opt/mine',
               CUDA_VISIBLE_DEVICES='7', UNRELATED='kept here')
    started = time.time()
    proc = _launch(hosts, _host_file(tmp_path, hosts), [
        'python', '-c', "'%s'" % probe, '&&'] + TRAIN + [
        '--prefix', str(prefix), '--set', 'dataset_path=%s' % (same_face / 'seventeen'),
        '--lr-epoch-step', '2', '--lr', '0.5', '--dist-timeout', '60'], env=env)
    print('the two-host job took %.1f s' % (time.time() - started))
    output = proc.stdout
    assert proc.returncode == 0, output[-4000:]
    a, b = hosts.addresses
    # Servers first, then workers, on the hosts in turn: server 0 and worker 1
    # on the first host, worker 0 on the second.
    assert re.search(r'\[worker 0@%s\] probe %s 0 passed /opt/mine None None' % (b, b), output)
    assert re.search(r'\[worker 1@%s\] probe %s 0 passed /opt/mine None None' % (a, a), output)
    assert '[server 0@%s]' in output or 'server 0@%s' % a in output
    assert '1 record left out so that 2 workers get 8 each' in output
    cfg = load_config('hourglass', 'i2d', [s for s in SMALL_NETWORK if s != '--set'] + [
        'losstype=ce', 'dataset_path=%s' % (same_face / 'sixteen'), 'per_batch_size=4',
        'train.optimizer=sgd', 'train.lr=0.5', "train.lr_epoch_step='2'", 'train.workers=0',
        'train.min_validations=0', 'train.prefix=%s' % (tmp_path / 'one' / 'model')])
    Trainer(cfg, contexts=[mx.cpu(0), mx.cpu(1)]).run()
    last = checkpoint.checkpoint_numbers(str(prefix))[-1]
    assert checkpoint.checkpoint_numbers(str(tmp_path / 'one' / 'model'))[-1] == last
    dist = {k: v.asnumpy() for k, v in mx.nd.load('%s-%04d.params' % (prefix, last)).items()}
    one = {k: v.asnumpy() for k, v in mx.nd.load('%s-%04d.params' % (
        tmp_path / 'one' / 'model', last)).items()}
    weights = [k for k in dist if k.startswith('arg:')]
    apart = max(float(np.abs(dist[k] - one[k]).max()) for k in weights)
    size = max(float(np.abs(one[k]).max()) for k in weights)
    print('two hosts vs one machine after 4 steps: max difference %g (weights up to %g)'
          % (apart, size))
    assert apart <= 1e-5 * max(1.0, size)


def _trainers(hosts, index):
    """Pids of the Python processes running train.py on host `index` (not
    the shells that started them)."""
    found = []
    for pid in hosts.pids(index):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                words = f.read().split(b'\0')
            if words[0] == sys.executable.encode() and b'train.py' in words:
                found.append(pid)
        except OSError:
            pass            # ended meanwhile
    return found


def test_a_worker_killed_on_one_host_ends_the_job_by_itself(hosts, same_face, tmp_path):
    prefix = tmp_path / 'model'
    log = tmp_path / 'launch.log'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'tools.launch', '--cluster', 'ssh', '--host-file',
         str(_host_file(tmp_path, hosts)), '--ssh-config', hosts.ssh_config, '-n', '2', '-s',
         '1', '--grace', '60'] + TRAIN + [
            '--prefix', str(prefix), '--set', 'dataset_path=%s' % (same_face / 'seventeen'),
            '--lr-epoch-step', '400', '--validate-every', '1000', '--dist-timeout', '15'],
        cwd=str(ROOT), stdout=open(log, 'w'), stderr=subprocess.STDOUT)

    def training_on_the_second_host():
        found = _trainers(hosts, 1)
        return found and re.search(r'epoch [\d.]+ step \d+', log.read_text()) and found
    wait_for(training_on_the_second_host, 180, 'training on the second host')
    victim = training_on_the_second_host()[0]
    os.kill(victim, signal.SIGKILL)
    killed = time.time()
    code = proc.wait(timeout=120)
    took = time.time() - killed
    output = log.read_text()
    print(output[-1500:])
    print('the job ended %.1f s after the worker on %s was killed' % (took, hosts.addresses[1]))
    assert code != 0
    assert re.search(r'\[launch\] worker 0@%s exited with status' % hosts.addresses[1], output)
    assert took < 60
    assert not _trainers(hosts, 0) and not _trainers(hosts, 1)


def test_the_first_interface_is_not_the_address_to_give(hosts, same_face, tmp_path):
    """ps-lite's own choice is the first interface, here the decoy aa0 that
    no other host reaches (shown by naming it with --interface): the workers
    cannot be reached and their watchdog ends the job. The launcher's
    default, the address ssh reached each host at, trains (the first test)."""
    started = time.time()
    proc = _launch(hosts, _host_file(tmp_path, hosts), TRAIN + [
        '--prefix', str(tmp_path / 'model'), '--set', 'dataset_path=%s' % (
            same_face / 'seventeen'), '--lr-epoch-step', '1', '--dist-timeout', '10'],
        '--interface', 'aa0', '--grace', '5', timeout=180)
    took = time.time() - started
    print(proc.stdout[-1500:])
    print('given the first interface, the job ended by itself after %.1f s' % took)
    assert proc.returncode != 0
    assert 'no answer from the other workers' in proc.stdout or 'exited with status' in \
        proc.stdout
    assert not checkpoint.checkpoint_numbers(str(tmp_path / 'model'))


def test_ctrl_c_reaches_a_worker_on_another_host(hosts, tmp_path):
    host_file = tmp_path / 'hosts'
    host_file.write_text('%s\n' % hosts.addresses[0])
    waiter = ('import os, signal, sys, time; signal.signal(signal.SIGINT, lambda *a: '
              '(print("got SIGINT", flush=True), sys.exit(5))); print("ready", flush=True); '
              'time.sleep(120 if os.environ["DMLC_ROLE"] == "worker" else 1)')
    log = tmp_path / 'log.txt'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'tools.launch', '--cluster', 'ssh', '--host-file', str(host_file),
         '--ssh-config', hosts.ssh_config, '-n', '1', '-s', '1', 'python', '-c', "'%s'" % waiter],
        cwd=str(ROOT), stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    name = '[worker 0@%s]' % hosts.addresses[0]
    wait_for(lambda: '%s ready' % name in log.read_text(), 60, 'the worker')
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 5
    assert '%s got SIGINT' % name in log.read_text()
