"""The training loop: the published recipe (schedule, optimizer, checkpoint
rule), runs that never lose work (claimed prefixes, exact resume, durable
writes, data gate, no orphans) and distributed training, all with real runs
of a small network on synthetic faces."""
import csv
import hashlib
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

import train
from conftest import SMALL_NETWORK, synth_sets, wait_for
from core.plumbing import checkpoint
from core.plumbing import runs
from core.training import record
from core.plumbing.config import load_config, published_config
from core.plumbing.config import parse_epoch_steps
from core.training.optimizer import EpochStepSchedule, ONadam
from core.training.trainer import Improvement, Trainer
from data import synth
from data.landmarks import IBUG68
from data.recordio import RecordReader, RecordWriter
from symbol import get_symbol, param_shapes
from symbol.zoo import PUBLISHED

ROOT = Path(__file__).resolve().parents[1]
SMALL = SMALL_NETWORK + ['--set', 'losstype=ce']


def onadam_reference(weight, grads, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, eps=1e-8,
                     decay=0.004):
    """NumPy ONadam: Nadam with the warming momentum schedule."""
    weight = weight.astype(np.float64).copy()
    mean, var, schedule = np.zeros_like(weight), np.zeros_like(weight), 1.0
    for t, grad in enumerate(grads, 1):
        g = np.clip(grad * rescale + wd * weight, -clip, clip)
        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * decay))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * decay))
        schedule *= mu_t
        mean = beta1 * mean + (1 - beta1) * g
        var = beta2 * var + (1 - beta2) * g * g
        m_bar = (1 - mu_t) * g / (1 - schedule) + mu_next * mean / (1 - schedule * mu_next)
        weight -= lr * m_bar / (np.sqrt(var / (1 - beta2 ** t)) + eps)
    return weight


def test_onadam_matches_numpy_reference():
    rng = np.random.RandomState(0)
    weights = [rng.normal(0, 1, (4, 5)), rng.normal(0, 1, (7,))]
    grads = [[rng.normal(0, 4, w.shape) for _ in range(6)] for w in weights]
    opt = mx.optimizer.create('onadam', learning_rate=0.01, wd=0.1, rescale_grad=0.5)
    assert isinstance(opt, ONadam) and opt.clip_gradient == 5.0
    updater = mx.optimizer.get_updater(opt)
    params = [mx.nd.array(w) for w in weights]
    for step in range(6):
        for index, (param, g) in enumerate(zip(params, grads)):
            updater(index, mx.nd.array(g[step]), param)
    for param, weight, g in zip(params, weights, grads):
        expected = onadam_reference(weight, g, 0.01, 0.1, 0.5, 5.0)
        np.testing.assert_allclose(param.asnumpy(), expected, rtol=1e-4, atol=1e-5)
    # The original's precedence bug (grad * (rescale + wd)) gives other weights.
    wrong = onadam_reference(weights[0], [g * (0.5 + 0.1) / 0.5 for g in grads[0]], 0.01, 0.0,
                             0.5, 5.0)
    assert np.abs(params[0].asnumpy() - wrong).max() > 1e-3


def test_lr_schedule_counts_records_and_lowers_after_the_epoch_boundary():
    # 1000 records, batch 10: an epoch is 100 updates.
    schedule = EpochStepSchedule(2.5e-4, parse_epoch_steps('20,35,45'), 1000, 10)
    assert schedule(1) == 2.5e-4 and schedule(2000) == 2.5e-4
    assert schedule(2001) == pytest.approx(5e-5)          # the first update of epoch 20
    assert schedule(3500) == pytest.approx(5e-5) and schedule(3501) == pytest.approx(1e-5)
    assert schedule.end_step() == 4500 and schedule.epoch(4500) == 45
    assert EpochStepSchedule(1, [2], 64, 16).end_step() == 8
    assert EpochStepSchedule(1, [1], 9, 4).end_step() == 3     # a partial epoch counts up
    for bad in ('', '20,10', 'a,b', '0,5'):
        with pytest.raises(ValueError, match='lr-epoch-step'):
            parse_epoch_steps(bad)


def test_checkpoint_rule_starts_at_100_percent_like_the_original():
    rule = Improvement()
    assert not rule([120.0, 130.0])     # worse than the original's initial 100%
    assert rule([10.0, 10.0])
    assert not rule([10.0, 10.0])
    assert rule([9.0, 12.0])            # first target improves, mean does not
    assert rule([9.5, 9.0])             # mean improves (9.25 < 10.0), first does not
    assert not rule([9.5, 9.1])
    assert not rule([float('nan'), 1.0])


@pytest.mark.parametrize('name', [n for n in PUBLISHED if not n.endswith('-3d')])
def test_fine_tuning_loads_every_published_configuration(name, tmp_path):
    cfg = published_config(name)
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (2, 3, 128, 128), (2, 68, 64, 64))
    args = {k: mx.nd.zeros(s) for k, s in shapes.items() if k in sym.list_arguments()}
    aux = {k: mx.nd.ones(s) for k, s in shapes.items() if k in sym.list_auxiliary_states()}
    checkpoint.save_checkpoint(str(tmp_path / 'model'), 0, sym, args, aux)
    loaded_sym, arg_params, aux_params = checkpoint.load_checkpoint(str(tmp_path / 'model'), 0)
    for key, value in args.items():
        np.testing.assert_array_equal(arg_params[key].asnumpy(), value.asnumpy())
    fitted_args, fitted_aux = checkpoint.fit_params(get_symbol(published_config(name)),
                                                    arg_params, aux_params, (2, 3, 128, 128),
                                                    (2, 68, 64, 64))
    assert set(fitted_args) | set(fitted_aux) == set(shapes)
    assert 'heatmap_output' in loaded_sym.get_internals().list_outputs()


def test_params_written_here_are_byte_identical_to_mxnets(tmp_path):
    rng = np.random.RandomState(0)
    args = {'a_weight': mx.nd.array(rng.normal(size=(3, 4))), 'b': mx.nd.ones((2,))}
    aux = {'c_moving_var': mx.nd.array(rng.uniform(size=(5,)))}
    checkpoint.save_params(str(tmp_path / 'ours.params'), args, aux)
    mx.nd.save(str(tmp_path / 'theirs.params'),
               dict([('arg:' + k, v) for k, v in args.items()]
                    + [('aux:' + k, v) for k, v in aux.items()]))
    assert (tmp_path / 'ours.params').read_bytes() == (tmp_path / 'theirs.params').read_bytes()


def test_pretrained_mismatch_names_missing_unexpected_and_misshaped(small_cfg):
    sym = get_symbol(small_cfg(net_n=2))
    shapes = param_shapes(sym, (2, 3, 128, 128), (2, 68, 64, 64))
    args = {k: mx.nd.zeros(s) for k, s in shapes.items() if k in sym.list_arguments()}
    aux = {k: mx.nd.zeros(s) for k, s in shapes.items() if k in sym.list_auxiliary_states()}
    del args['heatmap_bias']
    args['old_fc_weight'] = mx.nd.zeros((3,))
    args['heatmap_weight'] = mx.nd.zeros((10, 32, 1, 1))
    with pytest.raises(ValueError) as err:
        checkpoint.fit_params(sym, args, aux, (2, 3, 128, 128), (2, 68, 64, 64))
    message = str(err.value)
    assert '1 missing: heatmap_bias' in message and '1 unexpected: old_fc_weight' in message
    assert 'heatmap_weight (10, 32, 1, 1) (network expects (68, 32, 1, 1))' in message
    args['heatmap_weight'] = mx.nd.zeros((68, 32, 1, 1))
    with pytest.raises(ValueError, match='--allow-missing'):
        checkpoint.fit_params(sym, args, aux, (2, 3, 128, 128), (2, 68, 64, 64))
    fitted, _ = checkpoint.fit_params(sym, args, aux, (2, 3, 128, 128), (2, 68, 64, 64),
                                      allow_missing=True)
    assert 'old_fc_weight' not in fitted and 'heatmap_weight' in fitted


# Real runs -----------------------------------------------------------------------

@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return synth_sets(tmp_path_factory.mktemp('trainset'), train=64, ibug=16)


FINISHED = ('--lr-epoch-step', '5,6', '--validate-every', '16', '--lr', '2e-3')


def _args(prefix, data, *extra):
    return ['--prefix', str(prefix), '--set', 'dataset_path=%s' % data,
            '--per-batch-size', '8', '--lr', '1e-3', '--optimizer', 'adam',
            '--frequent', '2', '--min-validations', '0'] + SMALL + list(extra)


def _rows(prefix):
    with open(str(prefix) + '-log.csv') as f:
        return list(csv.DictReader(f))


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir()) if not p.name.endswith('.lock')}


def _params(prefix, number):
    return {k: v.asnumpy() for k, v in mx.nd.load('%s-%04d.params' % (prefix, number)).items()}


def _max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope='module')
def finished(dataset, tmp_path_factory):
    """A whole run: 64 faces, batch 8, 6 epochs (48 steps), validation every 16."""
    prefix = tmp_path_factory.mktemp('finished') / 'model'
    assert train.main(_args(prefix, dataset, *FINISHED, '--workers', '1')) == 0
    return prefix


def test_a_run_validates_step_0_without_saving_and_checkpoints_each_number_once(finished):
    rows = _rows(finished)
    validated = [(int(r['step']), float(r['nme_ibug'])) for r in rows if r['nme_ibug']]
    print('validation NME by step: %s' % validated)
    assert [s for s, _ in validated] == [0, 16, 32, 48]
    assert min(n for _, n in validated) < 0.6 * validated[0][1]
    saved = checkpoint.checkpoint_numbers(str(finished))
    assert 0 not in saved and saved[-1] == 3          # the final checkpoint: step 48 / 16
    state = runs.read_state(str(finished))
    assert state['finished'] and state['step'] == 48 and state['saved'] == saved
    assert state['best_checkpoint'] in saved
    assert state['best_nme'] == pytest.approx(min(n for s, n in validated if s > 0), abs=1e-6)
    assert runs.choose_checkpoint(str(finished))[0] == state['best_checkpoint']
    lrs = {int(r['step']): float(r['lr']) for r in rows}
    assert lrs[40] == pytest.approx(2e-3) and lrs[42] == pytest.approx(4e-4)
    saved_cfg = runs.saved_config(str(finished))
    assert saved_cfg.multiplier == 0.125 and saved_cfg.train.lr == 2e-3
    assert saved_cfg.per_batch_size == 8 and saved_cfg.train.validate_every == 16


def test_exf_copies_do_not_stretch_the_schedule(dataset, tmp_path):
    """2 epochs of 64 faces at batch 16 end at step 8, whatever --exf is."""
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--per-batch-size', '16', '--exf', '2',
                            '--lr-epoch-step', '1,2', '--frequent', '1', '--validate-every', '100',
                            '--workers', '0')) == 0
    rows = _rows(prefix)
    steps = [int(r['step']) for r in rows]
    assert max(steps) == 8
    lrs = {int(r['step']): float(r['lr']) for r in rows if int(r['step'])}
    assert lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(2e-4)


@pytest.mark.long
def test_seeded_runs_give_identical_weights(dataset, tmp_path):
    common = ('--lr-epoch-step', '1', '--validate-every', '100')
    for name, seed, workers in (('a', '5', '0'), ('b', '5', '2'), ('c', '6', '0')):
        assert train.main(_args(tmp_path / name / 'model', dataset, '--seed', seed,
                                '--workers', workers, *common)) == 0
    a, b, c = (_params(tmp_path / n / 'model', 1) for n in 'abc')
    assert _max_difference(a, b) == 0.0
    assert _max_difference(a, c) > 1e-3


def test_an_occupied_prefix_is_refused_and_left_byte_identical(finished, dataset, capsys):
    before = _digests(finished.parent)
    code = train.main(_args(finished, dataset, '--lr-epoch-step', '1'))
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith('error: prefix %s already holds a run' % finished)
    assert '--resume' in err and '--overwrite' in err and 'Traceback' not in err
    assert _digests(finished.parent) == before


def test_a_downloaded_model_is_never_replaced(tmp_path, dataset, capsys):
    published = tmp_path / 'models' / 'model-hg2d3-cab'
    published.mkdir(parents=True)
    (published / 'model-symbol.json').write_text('{}')
    (published / 'model-0000.params').write_bytes(b'weights')
    before = _digests(published)
    assert train.main(_args(published / 'model', dataset)) == 1
    assert 'already holds a run' in capsys.readouterr().err
    assert train.main(_args(published / 'model', dataset, '--resume')) == 1
    assert 'no resumable state' in capsys.readouterr().err
    assert _digests(published) == before


def test_a_mistake_with_overwrite_leaves_the_earlier_run_byte_identical(finished, dataset,
                                                                         capsys):
    """--overwrite deletes only once every check has passed: a typo in the
    network, a missing dataset or a bad --pretrained leave the run as it was."""
    before = _digests(finished.parent)
    for extra, words in ((['--set', 'net_block=hmp'], "net_block = 'hmp' is not allowed"),
                         (['--set', 'dataset_path=/nonexistent'], 'train.rec does not exist'),
                         (['--pretrained', '/nonexistent/model,0'], 'does not exist')):
        assert train.main(_args(finished, dataset, '--overwrite', *extra)) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert _digests(finished.parent) == before


def test_no_lock_is_left_after_a_run_ends(dataset, tmp_path):
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--lr-epoch-step', '1', '--validate-every', '100')) == 0
    assert not os.path.exists(str(prefix) + '.lock')
    assert train.main(_args(prefix, dataset, '--lr-epoch-step', '1')) == 1     # refused
    assert not os.path.exists(str(prefix) + '.lock')


def test_overwrite_starts_over(dataset, tmp_path):
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--lr-epoch-step', '1', '--validate-every', '4')) == 0
    first = checkpoint.checkpoint_numbers(str(prefix))
    assert train.main(_args(prefix, dataset, '--lr-epoch-step', '1', '--validate-every', '100',
                            '--overwrite')) == 0
    assert first != [1] and checkpoint.checkpoint_numbers(str(prefix)) == [1]
    assert [r['step'] for r in _rows(prefix) if r['nme_ibug']] == ['0', '8']


def _start(args, log_path):
    return subprocess.Popen([sys.executable, 'train.py'] + [str(a) for a in args], cwd=str(ROOT),
                            stdout=open(log_path, 'w'), stderr=subprocess.STDOUT)


def _state_step(prefix):
    try:
        return runs.read_state(str(prefix))['step']
    except (TypeError, ValueError, KeyError):
        return -1


@pytest.mark.long
def test_sigkill_then_resume_equals_the_uninterrupted_run(finished, dataset, tmp_path):
    prefix = tmp_path / 'model'
    proc = _start(_args(prefix, dataset, *FINISHED, '--workers', '2'), tmp_path / 'log.txt')
    wait_for(lambda: _state_step(prefix) >= 16, what='the state at step 16')
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert train.main(['--prefix', str(prefix), '--resume', '--workers', '0']) == 0
    difference = _max_difference(_params(finished, 3), _params(prefix, 3))
    print('resumed run vs uninterrupted run: max weight difference %g' % difference)
    assert difference <= 1e-6
    rows = _rows(prefix)
    assert [int(r['step']) for r in rows] == [int(r['step']) for r in _rows(finished)]


def _arrays(path):
    """Every array of a .params file (weights and BatchNorm statistics)."""
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


@pytest.mark.long
def test_ctrl_c_then_resume_equals_the_uninterrupted_run_in_every_array(finished, dataset,
                                                                         tmp_path):
    """Ctrl-C lets the step under way finish (its forward pass has moved the
    BatchNorm statistics) and saves that state: resuming gives exactly the
    uninterrupted run's weights, optimizer counts and running statistics."""
    prefix = tmp_path / 'model'
    proc = _start(_args(prefix, dataset, *FINISHED, '--workers', '2'), tmp_path / 'log.txt')
    wait_for(lambda: 'step 20 ' in (tmp_path / 'log.txt').read_text(), what='step 20')
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    output = (tmp_path / 'log.txt').read_text()
    assert 'stopping after the step under way' in output and '--resume' in output, output
    stopped_at = _state_step(prefix)
    assert 20 <= stopped_at < 48, output
    assert not os.path.exists(str(prefix) + '.lock')
    assert train.main(['--prefix', str(prefix), '--resume', '--workers', '0']) == 0
    ours, theirs = _arrays(str(prefix) + '-0003.params'), _arrays(str(finished) + '-0003.params')
    assert any(k.startswith('aux:') for k in ours)
    different = sorted(k for k in ours if not np.array_equal(ours[k], theirs[k]))
    assert ours.keys() == theirs.keys() and not different, different[:5]
    assert [r['nme_ibug'] for r in _rows(prefix)] == [r['nme_ibug'] for r in _rows(finished)]


def test_sigterm_stops_after_the_step_and_resume_finishes(dataset, tmp_path):
    prefix = tmp_path / 'model'
    proc = _start(_args(prefix, dataset, '--lr-epoch-step', '2', '--validate-every', '100',
                        '--workers', '1'), tmp_path / 'log.txt')
    wait_for(lambda: 'step 4 ' in (tmp_path / 'log.txt').read_text(), what='step 4')
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    output = (tmp_path / 'log.txt').read_text()
    assert 'SIGTERM: stopping after the step under way' in output and 'the state is saved' \
        in output, output
    interrupted_at = _state_step(prefix)
    assert 4 <= interrupted_at < 16 and not checkpoint.checkpoint_numbers(str(prefix))
    assert train.main(['--prefix', str(prefix), '--resume']) == 0
    assert _state_step(prefix) == 16 and checkpoint.checkpoint_numbers(str(prefix)) == [1]


@pytest.mark.long
def test_the_best_checkpoint_holds_the_best_weights_when_the_last_validation_improves(
        dataset, tmp_path, capsys, caplog):
    """48 steps validated every 20: the end (step 48) is not a multiple of
    20, gets number 3 of its own, and the run's record, its log and every
    script name it when it is the best."""
    caplog.set_level('INFO')
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--lr-epoch-step', '5,6', '--lr', '2e-3',
                            '--validate-every', '20', '--workers', '0')) == 0
    validated = {int(r['step']): float(r['nme_ibug']) for r in _rows(prefix) if r['nme_ibug']}
    assert sorted(validated) == [0, 20, 40, 48]
    assert validated[48] < min(validated[20], validated[40]), validated
    state = runs.read_state(str(prefix))
    assert (state['best_checkpoint'], state['best_step']) == (3, 48)
    assert state['best_nme'] == pytest.approx(validated[48], abs=1e-6)
    assert 'checkpoint 0003 is the best so far' in caplog.text
    assert runs.choose_checkpoint(str(prefix))[0] == 3
    import test_rec_nme
    assert test_rec_nme.main(['--rec', str(dataset / 'ibug.rec'), '--prefix', str(prefix),
                              '--decoder', 'argmax', '--output', str(tmp_path / 'nme')]) == 0
    assert 'nme on ibug is %.3f%%' % validated[48] in capsys.readouterr().out


def _all_finite(folder):
    found = [p for p in Path(folder).iterdir() if p.suffix == '.params']
    return found, all(np.isfinite(v.asnumpy()).all() for p in found
                      for v in mx.nd.load(str(p)).values())


@pytest.mark.parametrize('frequent,words', [
    ('2', 'the gradients or weights are not finite (loss '),
    ('50', 'the weights are not finite at step 4'),
])
def test_a_diverging_run_never_saves_non_finite_weights(dataset, tmp_path, capsys, frequent,
                                                        words):
    """ce loss with a huge rate: the loss stays finite while the weights go
    NaN (oneDNN's ReLU maps NaN to 0). The check every --frequent steps, and
    the one before every save, stop the run and write nothing non-finite."""
    prefix = tmp_path / 'model'
    code = train.main(_args(prefix, dataset, '--optimizer', 'sgd', '--lr', '1e8',
                            '--frequent', frequent, '--validate-every', '4', '--lr-epoch-step', '3',
                            '--workers', '0'))
    err = capsys.readouterr().err
    assert code == 1 and words in err and 'Traceback' not in err, err
    assert len(err.strip().splitlines()) == 1
    files, finite = _all_finite(tmp_path)
    assert finite, files
    assert not checkpoint.checkpoint_numbers(str(prefix))


def test_two_runs_on_one_prefix(dataset, tmp_path, capsys):
    prefix = tmp_path / 'model'
    first = _start(_args(prefix, dataset, '--lr-epoch-step', '50', '--workers', '0'),
                   tmp_path / 'log.txt')
    try:
        wait_for(lambda: 'step 2 ' in (tmp_path / 'log.txt').read_text(), what='first run')
        assert train.main(_args(prefix, dataset, '--overwrite')) == 1
        err = capsys.readouterr().err
        assert 'in use by another training run (pid %d on' % first.pid in err
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()


def _children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def test_no_orphans_after_sigkill(dataset, tmp_path):
    prefix = tmp_path / 'model'
    proc = _start(_args(prefix, dataset, '--lr-epoch-step', '50', '--workers', '2'),
                  tmp_path / 'log.txt')
    wait_for(lambda: 'step 2 ' in (tmp_path / 'log.txt').read_text(), what='training')
    children = _children(proc.pid)
    assert len(children) >= 2
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(_alive(pid) for pid in children), timeout=15,
              what='the workers to exit')


def test_garbage_records_stop_before_anything_is_written(dataset, tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    for name in ('train.idx', 'ibug.rec', 'ibug.idx'):
        (data / name).write_bytes((dataset / name).read_bytes())
    size = (dataset / 'train.rec').stat().st_size
    (data / 'train.rec').write_bytes(np.random.RandomState(0).bytes(size))
    prefix = tmp_path / 'run' / 'model'
    assert train.main(_args(prefix, data)) == 1
    err = capsys.readouterr().err
    assert '64 of 64 records are unreadable' in err and 'train.rec' in err
    assert not runs.run_files(str(prefix))


def test_unreadable_share_during_training_stops_the_run(dataset, tmp_path, capsys):
    """Records that pass the header check but do not decode count in the pass."""
    data = tmp_path / 'data'
    data.mkdir()
    reader = RecordReader(str(dataset / 'train.rec'))
    with RecordWriter(str(data / 'train'), IBUG68) as writer:
        for key in reader.keys:
            payload = reader.read(key)
            if key % 4 == 0:            # label and JPEG signature intact, then zeros
                keep = 24 + 4 * 136 + 2
                payload = payload[:keep] + b'\x00' * (len(payload) - keep)
            writer.write(payload)
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, data, '--bad-records', '0.05', '--lr-epoch-step', '4',
                            '--workers', '0')) == 1
    err = capsys.readouterr().err
    assert 'unreadable records in this pass, more than 5%' in err and 'train.rec' in err


def test_non_finite_loss_stops_before_the_update(dataset, tmp_path, capsys, small_cfg):
    sym = get_symbol(load_config('hourglass', 'i2d', ['multiplier=0.125', 'net_stacks=1',
                                                      'net_n=2', 'net_block=resnet',
                                                      'per_batch_size=8']))
    shapes = param_shapes(sym, (8, 3, 128, 128), (8, 68, 64, 64))
    args = {k: mx.nd.ones(s) * np.nan if k == 'heatmap_bias' else mx.nd.ones(s) * 0.01
            for k, s in shapes.items() if k in sym.list_arguments()}
    aux = {k: mx.nd.ones(s) for k, s in shapes.items() if k in sym.list_auxiliary_states()}
    checkpoint.save_checkpoint(str(tmp_path / 'poison'), 0, sym, args, aux)
    prefix = tmp_path / 'run' / 'model'
    assert train.main(_args(prefix, dataset, '--pretrained', str(tmp_path / 'poison') + ',0',
                            '--frequent', '1', '--workers', '0')) == 1
    err = capsys.readouterr().err
    assert 'loss is not finite at step 1' in err and 'stopped before that update' in err
    assert not checkpoint.checkpoint_numbers(str(prefix))


def test_user_mistakes_are_one_line(dataset, tmp_path, capsys):
    sym = get_symbol(load_config('hourglass', 'i2d', ['multiplier=0.125']))
    (tmp_path / 'bad-symbol.json').write_text(sym.tojson()[:500])
    (tmp_path / 'bad-0000.params').write_bytes(b'garbage')
    (tmp_path / 'good-symbol.json').write_text(sym.tojson())
    (tmp_path / 'good-0002.params').write_bytes(b'garbage')
    lonely = tmp_path / 'lonely'
    lonely.mkdir()
    (lonely / 'train.rec').write_bytes((dataset / 'train.rec').read_bytes())
    cases = [
        (['--pretrained', str(tmp_path / 'bad') + ',0'], 'bad-symbol.json is not a readable'),
        (['--pretrained', str(tmp_path / 'good') + ',2'], 'good-0002.params is not a readable'),
        (['--pretrained', str(tmp_path / 'good') + ',3'],
         'good-0003.params does not exist (this prefix holds 0002)'),
        (['--set', 'dataset_path=%s' % lonely], 'lonely/train.idx is missing'),
        (['--set', 'dataset_path=%s' % tmp_path], 'train.rec does not exist'),
        (['--set', 'net_blok=hpm'], "unknown config key 'net_blok'"),
        (['--gpus', '0'], 'this MXNet build has no CUDA'),
        (['--lr-epoch-step', '5,2'], 'lr-epoch-step'),
    ]
    for extra, words in cases:
        code = train.main(_args(tmp_path / 'run' / 'model', dataset, *extra))
        err = capsys.readouterr().err
        assert code == 1 and words in err and 'Traceback' not in err, (extra, err)
        assert len(err.strip().splitlines()) == 1, err


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / 'disk'
    mount.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mount)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip('cannot mount a 1 MB tmpfs here (%s); CI runs as root and can'
                    % result.stderr.strip())
    yield mount
    subprocess.run(['umount', '-l', str(mount)])


def test_a_full_disk_stops_with_the_path_and_keeps_every_checkpoint(dataset, tiny_disk):
    prefix = tiny_disk / 'model'
    started = time.time()
    proc = subprocess.run([sys.executable, 'train.py'] + _args(prefix, dataset, '--lr-epoch-step',
                                                                '3', '--validate-every', '4',
                                                                '--workers', '0'),
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    print('stopped %.1f s after the start on a full 1 MB disk' % (time.time() - started))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert lines[-1].startswith('error: cannot write %s' % tiny_disk)
    assert lines[-1].endswith('No space left on device')
    numbers = checkpoint.checkpoint_numbers(str(prefix))
    for number in numbers:
        checkpoint.load_checkpoint(str(prefix), number)
    saved, _, _, _ = record.load_state(str(prefix))
    assert saved['step'] % 4 == 0
    assert not [p for p in os.listdir(str(tiny_disk)) if '.tmp-' in p]


# Distributed training --------------------------------------------------------------

def _launch(tmp_path, data, prefix, *extra, timeout=240):
    return subprocess.run(
        [sys.executable, '-m', 'tools.launch', '--cluster', 'local', '--num-workers', '2',
         '--num-servers', '1', sys.executable, 'train.py', '--kvstore', 'dist_sync',
         '--prefix', str(prefix), '--set', 'dataset_path=%s' % data, '--per-batch-size', '4',
         '--optimizer', 'sgd', '--workers', '0', '--min-validations', '0'] + SMALL + list(extra),
        cwd=str(ROOT), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def same_face(tmp_path_factory):
    """9 copies of one face: any shard of it holds the same samples."""
    root = tmp_path_factory.mktemp('same')
    synth.write_records(str(root / 'one'), 1, seed=3, progress=False)
    payload = RecordReader(str(root / 'one.rec')).read(0)
    for name, count in (('nine', 9), ('eight', 8)):
        (root / name).mkdir()
        with RecordWriter(str(root / name / 'train'), IBUG68) as writer:
            for _ in range(count):
                writer.write(payload)
    return root


def test_dist_sync_step_equals_one_machine_with_the_same_devices(same_face, tmp_path):
    """9 records, 2 workers x 4: equal shards (one record left out), the
    run finishes, and its one step equals one step of a single machine with
    two devices on the same samples (gradients summed over all devices)."""
    prefix = tmp_path / 'dist' / 'model'
    proc = _launch(tmp_path, same_face / 'nine', prefix, '--lr-epoch-step', '1', '--lr', '0.5')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and 'Traceback' not in output, output[-3000:]
    assert '1 record left out so that 2 workers get 4 each' in output
    cfg = load_config('hourglass', 'i2d', [s for s in SMALL if s != '--set'] + [
        'dataset_path=%s' % (same_face / 'eight'), 'per_batch_size=4', 'train.optimizer=sgd',
        'train.lr=0.5', "train.lr_epoch_step='1'", 'train.workers=0',
        'train.prefix=%s' % (tmp_path / 'one' / 'model')])
    Trainer(cfg, contexts=[mx.cpu(0), mx.cpu(1)]).run()
    dist, one = _params(prefix, 1), _params(tmp_path / 'one' / 'model', 1)
    weights = [k for k in dist if k.startswith('arg:')]
    step = max(float(np.abs(dist[k] - one[k]).max()) for k in weights)
    size = max(float(np.abs(one[k]).max()) for k in weights)
    print('dist_sync vs one machine after one step: max difference %g (weights up to %g)'
          % (step, size))
    assert step <= 1e-5 * max(1.0, size)


def test_a_non_finite_loss_on_one_worker_stops_both(same_face, tmp_path):
    lr = '$([ "$DMLC_TASK_ID" = 1 ] && echo 1e30 || echo 1e-3)'
    prefix = tmp_path / 'model'
    started = time.time()
    proc = _launch(tmp_path, same_face / 'nine', prefix, '--lr-epoch-step', '20', '--lr', lr,
                   '--frequent', '1', '--set', 'losstype=heatmap')
    output = proc.stdout + proc.stderr
    print('both workers stopped after %.1f s' % (time.time() - started))
    assert 'loss is not finite at step' in output, output[-3000:]
    # The kvstore numbers the workers in the order they connect.
    assert re.search(r'worker [01] stopped \(its loss is not finite\); all workers stop at step',
                     output)
    assert _state_step(prefix) == -1 and not checkpoint.checkpoint_numbers(str(prefix))


def test_resuming_a_finished_run_says_so(finished, capsys):
    before = _digests(finished.parent)
    assert train.main(['--prefix', str(finished), '--resume']) == 0
    out = capsys.readouterr().out
    assert 'the run at %s has finished (step 48' % finished in out and 'nothing to resume' in out
    assert _digests(finished.parent) == before


def test_train_sh_detach_fails_when_the_run_is_refused_at_once(tmp_path):
    env = dict(os.environ, MODEL_DIR=str(tmp_path / 'run'), PY=sys.executable,
               DATASET='i2d')
    proc = subprocess.run(['./train.sh', '--detach'], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'train.rec does not exist' in proc.stderr
    assert 'the run ended at once (exit 1); nothing runs in the background' in proc.stderr
    assert 'training in the background' not in proc.stdout


@pytest.mark.long
def test_an_18_face_set_trains_with_the_readme_command_and_validates_often(tmp_path, caplog):
    """The README's command as written (a small network for the CPU): the
    batch lowers to the 18 faces, the run validates at least 5 times, and
    the re-drawn samples are said once per validation, not once per pass."""
    caplog.set_level('INFO')
    synth.write_records(str(tmp_path / 'data' / 'train'), 18, seed=41, progress=False)
    synth.write_records(str(tmp_path / 'data' / 'my_test'), 6, seed=42, progress=False)
    prefix = tmp_path / 'my-models' / 'hg' / 'model'
    assert train.main(['--prefix', str(prefix), '--set', 'dataset_path=%s' % (tmp_path / 'data'),
                       '--set', "val_targets=['my_test']", '--lr-epoch-step', '20,30',
                       '--workers', '0'] + SMALL) == 0
    assert 'training with 18 per device' in caplog.text
    assert 'validating every 6 steps instead of 200' in caplog.text
    validated = [int(r['step']) for r in _rows(prefix) if r['nme_my_test']]
    assert validated == [0, 6, 12, 18, 24, 30]
    saved = runs.saved_config(str(prefix))
    assert saved.per_batch_size == 18 and saved.train.validate_every == 6
    notices = [r for r in caplog.records if 'taken from the next record' in r.getMessage()]
    assert len(notices) <= 5, [r.getMessage() for r in notices]
    assert all(re.search(r'steps \d+-\d+:', r.getMessage()) for r in notices)
    assert not os.path.exists(str(prefix) + '.lock')


def test_the_schedule_can_be_given_in_steps(dataset, tmp_path):
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--lr-steps', '3,5', '--validate-every', '100',
                            '--frequent', '1', '--workers', '0')) == 0
    lrs = {int(r['step']): float(r['lr']) for r in _rows(prefix) if int(r['step'])}
    assert max(lrs) == 5 and lrs[3] == pytest.approx(1e-3) and lrs[4] == pytest.approx(2e-4)
    assert train.main(_args(tmp_path / 'bad', dataset, '--lr-steps', '5,3')) == 1


def test_no_lock_is_left_after_an_error(dataset, tmp_path):
    prefix = tmp_path / 'model'
    assert train.main(_args(prefix, dataset, '--pretrained', '/nonexistent/model,0')) == 1
    assert not os.path.exists(str(prefix) + '.lock')


def test_fine_tuning_keeps_the_starting_weights_when_later_steps_are_worse(trained_synth,
                                                                          tmp_path, caplog):
    """From a trained network, a learning rate far too high makes every later
    validation worse: the starting weights (checkpoint 0000) stay the best,
    every tool takes them, and the run ends with its summary line."""
    pretrained, data = trained_synth
    start = runs.best_checkpoint(pretrained)[1]
    prefix = tmp_path / 'tuned' / 'model'
    caplog.set_level('INFO')
    assert train.main(['--prefix', str(prefix), '--set', 'dataset_path=%s' % data,
                       '--pretrained', '%s,%d' % (pretrained, start), '--set', 'losstype=ce',
                       '--per-batch-size', '16', '--optimizer', 'adam', '--lr', '0.05',
                       '--lr-steps', '12,16', '--validate-every', '4', '--workers', '0',
                       '--min-validations', '0'] + SMALL_NETWORK) == 0
    rows = [r for r in _rows(prefix) if r['nme_ibug']]
    nmes = [float(r['nme_ibug']) for r in rows]
    print('fine-tuning: step 0 %.2f%%, later %s' % (nmes[0], ', '.join('%.1f' % v
                                                                        for v in nmes[1:])))
    assert int(rows[0]['step']) == 0 and min(nmes[1:]) > nmes[0]
    state = runs.read_state(str(prefix))
    assert state['best_checkpoint'] == 0 and state['best_step'] == 0
    assert state['best_nme'] == pytest.approx(nmes[0], abs=1e-4)
    assert runs.choose_checkpoint(str(prefix))[0] == 0
    tuned = _params(prefix, 0)
    original = _params(pretrained, start)
    assert _max_difference(tuned, original) == 0
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith('finished: ')]
    assert len(summary) == 1
    assert 'best checkpoint 0000 (step 0, nme on ibug %.3f%%): the starting weights are still ' \
        'the best' % nmes[0] in summary[0]
    assert 'at the start %.3f%% (weights of --pretrained)' % nmes[0] in summary[0]
