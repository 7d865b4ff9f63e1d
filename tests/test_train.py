"""The training loop: optimizer, schedule, checkpoint rule, fine-tuning,
interruption and a real (small) training run on synthetic faces."""
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import train
from core import checkpoint
from core.optimizer import EpochStepSchedule, ONadam, parse_epoch_steps
from core.trainer import Improvement
from data import synth
from symbol import get_symbol, param_shapes
from symbol.zoo import PUBLISHED, config_for

ROOT = Path(__file__).resolve().parents[1]


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


def test_lr_schedule_steps_by_epoch_and_last_step_ends():
    schedule = EpochStepSchedule(2.5e-4, parse_epoch_steps('20,35,45'), batches_per_epoch=100)
    assert schedule(0) == 2.5e-4 and schedule(1999) == 2.5e-4
    assert schedule(2000) == pytest.approx(5e-5)
    assert schedule(3499) == pytest.approx(5e-5) and schedule(3500) == pytest.approx(1e-5)
    assert schedule(4600) == pytest.approx(1e-5)      # the last step ends training
    for bad in ('', '20,10', 'a,b', '0,5'):
        with pytest.raises(ValueError, match='lr-epoch-step'):
            parse_epoch_steps(bad)


def test_checkpoint_on_improvement_of_first_target_or_mean():
    rule = Improvement()
    assert rule([10.0, 10.0])           # first validation always improves
    assert not rule([10.0, 10.0])
    assert rule([9.0, 12.0])            # first target improves, mean does not
    assert rule([9.5, 9.0])             # mean improves (9.25 < 10.0), first does not
    assert not rule([9.5, 9.1])
    assert not rule([float('nan'), 1.0])


@pytest.mark.parametrize('name', [n for n in PUBLISHED if not n.endswith('-3d')])
def test_fine_tuning_loads_every_published_configuration(name, tmp_path):
    cfg = config_for(name)
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (2, 3, 128, 128), (2, 68, 64, 64))
    args = {k: mx.nd.zeros(s) for k, s in shapes.items() if k in sym.list_arguments()}
    aux = {k: mx.nd.ones(s) for k, s in shapes.items() if k in sym.list_auxiliary_states()}
    checkpoint.save_checkpoint(str(tmp_path / 'model'), 0, sym, args, aux)
    loaded_sym, arg_params, aux_params = checkpoint.load_checkpoint(str(tmp_path / 'model'), 0)
    fitted_args, fitted_aux = checkpoint.fit_params(get_symbol(config_for(name)), arg_params,
                                                    aux_params, (2, 3, 128, 128), (2, 68, 64, 64))
    assert set(fitted_args) | set(fitted_aux) == set(shapes)
    assert 'heatmap_output' in loaded_sym.get_internals().list_outputs()


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


def test_missing_checkpoint_names_file_and_download_command(tmp_path):
    with pytest.raises(FileNotFoundError, match='model-symbol.json.*tools.download'):
        checkpoint.load_checkpoint(str(tmp_path / 'model'), 0)


SMALL = ['--set', 'multiplier=0.125', '--set', 'net_stacks=1', '--set', 'net_n=2',
         '--set', 'net_block=resnet', '--set', 'losstype=ce']


@pytest.fixture(scope='module')
def synth_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('trainset')
    synth.write_records(str(root / 'train'), 600, seed=11, progress=False)
    synth.write_records(str(root / 'ibug'), 48, seed=12, progress=False)
    return root


def _read_csv(path):
    import csv
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def trained(synth_dataset, tmp_path_factory):
    """A few hundred steps of a small network on synthetic faces."""
    prefix = str(tmp_path_factory.mktemp('run') / 'model')
    code = train.main(['--prefix', prefix, '--set', 'dataset_path=%s' % synth_dataset,
                       '--per-batch-size', '8', '--lr-epoch-step', '4,5', '--verbose', '100',
                       '--frequent', '50', '--workers', '2', '--lr', '1e-3',
                       '--optimizer', 'adam'] + SMALL)
    assert code == 0
    return prefix, _read_csv(prefix + '-log.csv')


def test_training_reduces_validation_nme(trained):
    prefix, rows = trained
    nmes = [(int(r['step']), float(r['nme_ibug'])) for r in rows if r['nme_ibug']]
    first, last = nmes[0][1], min(n for _, n in nmes)
    print('validation NME before %.2f%%, best after %d steps %.2f%%' % (first, nmes[-1][0], last))
    assert nmes[0][0] == 0 and nmes[-1][0] >= 300
    assert last < 0.5 * first
    saved = sorted(Path(prefix).parent.glob('model-*.params'))
    sym, _, _ = mx.model.load_checkpoint(prefix, int(saved[-1].stem.split('-')[-1]))
    assert 'heatmap_output' in sym.get_internals().list_outputs()
    assert os.path.isfile(prefix + '-log.csv')


def test_resume_reproduces_saved_validation_nme(trained, synth_dataset, tmp_path):
    prefix, rows = trained
    saved = sorted(Path(prefix).parent.glob('model-*.params'))[-1]
    number = int(saved.stem.split('-')[-1])
    step = max(int(r['step']) for r in rows)
    saved_nme = [float(r['nme_ibug']) for r in rows if r['nme_ibug'] and int(r['step']) == step][-1]
    resumed = str(tmp_path / 'resumed')
    assert train.main(['--prefix', resumed, '--pretrained', '%s,%d' % (prefix, number),
                       '--set', 'dataset_path=%s' % synth_dataset, '--per-batch-size', '16',
                       '--lr-epoch-step', '1', '--verbose', '1000', '--workers', '0',
                       '--ckpt', '0', '--lr', '0'] + SMALL) == 0
    first = _read_csv(resumed + '-log.csv')[0]
    assert first['step'] == '0'
    assert float(first['nme_ibug']) == pytest.approx(saved_nme, abs=1e-4)


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_nan_stops_training_and_keeps_last_checkpoint(trained, synth_dataset, tmp_path, caplog):
    prefix, _ = trained
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    run = str(tmp_path / 'model')
    checkpoint.save_checkpoint(run, 0, sym, arg_params, aux_params)
    before = _digest(run + '-0000.params')
    poisoned = dict(arg_params)
    poisoned['heatmap_bias'] = arg_params['heatmap_bias'] * np.nan
    checkpoint.save_checkpoint(str(tmp_path / 'poison'), 0, sym, poisoned, aux_params)
    code = train.main(['--prefix', run, '--pretrained', str(tmp_path / 'poison') + ',0',
                       '--set', 'dataset_path=%s' % synth_dataset, '--per-batch-size', '16',
                       '--lr-epoch-step', '1', '--verbose', '5', '--workers', '0'] + SMALL)
    assert code == 1
    assert 'loss is nan at step 1' in caplog.text
    assert _digest(run + '-0000.params') == before
    assert sorted(p.name for p in tmp_path.glob('model-*.params')) == ['model-0000.params']


def test_sigint_writes_a_loadable_checkpoint(synth_dataset, tmp_path):
    prefix = str(tmp_path / 'model')
    proc = subprocess.Popen(
        [sys.executable, 'train.py', '--prefix', prefix, '--set',
         'dataset_path=%s' % synth_dataset, '--per-batch-size', '8', '--lr-epoch-step', '50',
         '--verbose', '10000', '--frequent', '2', '--workers', '1', '--ckpt', '0'] + SMALL,
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if 'batch 3 ' in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    output.append(rest)
    assert proc.returncode == 130, ''.join(output)
    assert 'interrupted at step' in ''.join(output)
    sym, arg_params, _ = mx.model.load_checkpoint(prefix, 1)
    assert 'heatmap_output' in sym.get_internals().list_outputs()
    assert np.isfinite(arg_params['heatmap_weight'].asnumpy()).all()


def test_dist_sync_with_the_launcher(tmp_path):
    """The README's multi-machine command, as local processes: 2 workers
    sharing the data through a parameter server; only rank 0 saves."""
    synth.write_records(str(tmp_path / 'train'), 64, seed=21, progress=False)
    synth.write_records(str(tmp_path / 'ibug'), 16, seed=22, progress=False)
    prefix = str(tmp_path / 'model')
    proc = subprocess.run(
        [sys.executable, '-m', 'tools.launch', '--cluster', 'local', '--num-workers', '2',
         '--num-servers', '1', sys.executable, 'train.py', '--kvstore', 'dist_sync',
         '--prefix', prefix, '--set', 'dataset_path=%s' % tmp_path, '--per-batch-size', '8',
         '--lr-epoch-step', '2', '--lr', '1e-3', '--optimizer', 'adam', '--verbose', '4',
         '--workers', '0'] + SMALL, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and 'Traceback' not in output, output[-3000:]
    rows = _read_csv(prefix + '-log.csv')
    assert [r['step'] for r in rows if r['nme_ibug']] == ['0', '4', '8']
    assert len(_read_csv(prefix + '-log-rank1.csv')) > 0
    before = mx.model.load_checkpoint(prefix, 0)[1]['heatmap_weight'].asnumpy()
    after = mx.model.load_checkpoint(prefix, 2)[1]['heatmap_weight'].asnumpy()
    assert np.abs(after - before).max() > 1e-4    # the server applied the updates
