"""Settings loading, the Cython helpers built by `make`, and the set-up
script's choice of builds."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cython_ext
from core.plumbing.config import ConfigError, apply_overrides, load_config, published_config
from symbol import get_symbol
from symbol.topology import TOPOLOGIES

ROOT = Path(__file__).resolve().parents[1]


def test_sections_layer_over_the_config_and_defaults_are_the_published_models():
    cfg = load_config('satnet', 'i3d', published=True)
    assert (cfg.net_sat, cfg.net_dcn, cfg.net_block, cfg.net_n) == (1, 0, 'cab', 3)
    assert cfg.val_targets == ['AFLW2000-3D'] and cfg.landmark_type == '3d'
    assert (cfg.network, cfg.dataset) == ('satnet', 'i3d')
    cfg = load_config('hourglass', 'i2d', published=True)
    assert (cfg.net_sat, cfg.net_dcn, cfg.network, cfg.per_batch_size) == (0, 0, 'hourglass', 20)
    assert cfg.train.lr_epoch_step == '20,35,45' and cfg.train.seed == 727
    assert 'network' not in cfg.train and 'per_batch_size' not in cfg.train
    with pytest.raises(ConfigError, match='satnet'):
        load_config('unet', 'i2d')


def test_load_config_is_fresh_and_mutates_nothing():
    import sample_config
    before = (dict(sample_config.config), dict(sample_config.default))
    cfg = load_config('hourglass', 'i2d', ['net_block=hpm', 'multiplier=0.5', 'train.lr=0.01',
                                             "val_targets=['a', 'b']"])
    assert cfg.net_block == 'hpm' and cfg.multiplier == 0.5 and cfg.train.lr == 0.01
    assert cfg.val_targets == ['a', 'b']
    again = load_config('hourglass', 'i2d')
    assert again.net_block == 'cab' and again.multiplier == 1.0 and again.train.lr == 2.5e-4
    assert (dict(sample_config.config), dict(sample_config.default)) == before
    changed = apply_overrides(again, {'net_n': 4})
    assert changed.net_n == 4 and again.net_n == 3
    for bad in (['net_blok=hpm'], ['train.lrr=1'], ['train=1'], ['no-equals-sign']):
        with pytest.raises(ConfigError):
            load_config('hourglass', 'i2d', bad)


def test_a_user_config_file_layers_over_the_sample(tmp_path):
    older = tmp_path / 'old_config.py'
    older.write_text(
        'from easydict import EasyDict as edict\n'
        'config = edict(multiplier=0.5)\n'
        'network = edict(hourglass=edict(net_block="hpm", net_sat=0, net_n=3))\n'
        'dataset = edict(i2d=edict(dataset_path="/data", val_targets=["ibug"]))\n'
        'default = edict(lr=0.1, per_batch_size=4, network="hourglass", dataset="i2d")\n')
    cfg = load_config(path=str(older))
    assert cfg.multiplier == 0.5 and cfg.net_block == 'hpm' and cfg.dataset_path == '/data'
    assert cfg.train.lr == 0.1 and cfg.train.validate_every == 200      # missing keys: the sample's
    assert cfg.input_img_size == 128 and cfg.per_batch_size == 4
    assert cfg.net_stacks == 2 and cfg.losstype == 'heatmap'    # the section, key by key


def test_topology_table_chooses_stacks_by_net_sat_and_heads_by_network():
    assert list(TOPOLOGIES) == ['hourglass', 'satnet']
    names = {}
    for network, net_sat in (('hourglass', 0), ('satnet', 1), ('hourglass', 2), ('satnet', 0)):
        cfg = apply_overrides(published_config('hg2d3-cab'),
                              {'network': network, 'net_sat': net_sat, 'multiplier': 0.125})
        names[(network, net_sat)] = get_symbol(cfg).list_arguments()
    assert any(n.startswith('sat0_') for n in names[('hourglass', 2)])
    assert any(n.startswith('stack0_hg') for n in names[('satnet', 0)])
    assert names[('hourglass', 0)] == names[('satnet', 0)]     # net_dcn 0: heads alike


def test_cython_helpers_are_built_and_agree_with_numpy():
    assert cython_ext.BUILT, 'run `make` to build cython_ext'
    rng = np.random.RandomState(0)
    for trial in range(20):
        xy = rng.uniform(0, 200, (300, 2))
        wh = rng.uniform(5, 80, (300, 2))
        dets = np.hstack([xy, xy + wh, rng.uniform(0, 1, (300, 1))]).astype(np.float32)
        if trial % 2:
            dets[:, :4] = np.round(dets[:, :4])
        if trial % 5 == 0:      # degenerate boxes: zero or negative +1-areas
            dets[:20, 2:4] = dets[:20, 0:2] - 1
            dets[20:30, 2] = dets[20:30, 0] - 3
        assert cython_ext.nms(dets, 0.3) == cython_ext.nms_numpy(dets, 0.3)
        np.testing.assert_array_equal(cython_ext.bbox_overlaps(dets[:50, :4], dets[50:80, :4]),
                                      cython_ext.bbox_overlaps_numpy(dets[:50, :4], dets[50:80, :4]))
    base = np.array([[-248, -248, 263, 263], [-120, -120, 135, 135]], np.float32)
    plane = cython_ext.anchors_plane(5, 7, 32, base)
    np.testing.assert_array_equal(plane, cython_ext.anchors_plane_numpy(5, 7, 32, base))
    np.testing.assert_array_equal(plane[2, 3, 1], base[1] + [96, 64, 96, 64])


def test_nms_hand_case():
    dets = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 29, 29, 0.7],
                     [5, 0, 14, 9, 0.6], [7, 0, 16, 9, 0.5]], np.float32)
    # IoU with box 0: box 1 81/119, box 3 50/150 (> 0.3, removed), box 4 30/170 (kept).
    assert cython_ext.nms_numpy(dets, 0.3) == [0, 2, 4]
    assert cython_ext.nms(dets, 0.3) == [0, 2, 4]


# Set-up: the MXNet / ONNX Runtime build is chosen, never swapped ----------------

def _setup_env():
    import importlib.util
    spec = importlib.util.spec_from_file_location('setup_env', str(ROOT / 'tools' / 'install' / 'setup_env.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('requested,installed,expected', [
    ({}, {}, {'mxnet': 'mxnet', 'onnxruntime': 'onnxruntime'}),
    ({'mxnet': 'mxnet-cu112'}, {}, {'mxnet': 'mxnet-cu112', 'onnxruntime': 'onnxruntime'}),
    ({}, {'mxnet': 'mxnet-cu117', 'onnxruntime': 'onnxruntime-gpu'},
     {'mxnet': 'mxnet-cu117', 'onnxruntime': 'onnxruntime-gpu'}),     # make test keeps them
    ({'mxnet': 'mxnet-cu117'}, {'mxnet': 'mxnet-cu117'},
     {'mxnet': 'mxnet-cu117', 'onnxruntime': 'onnxruntime'}),
])
def test_setup_chooses_the_requested_or_installed_build(requested, installed, expected):
    assert _setup_env().choose(requested, installed) == expected


@pytest.mark.parametrize('requested,installed,words', [
    ({'mxnet': 'mxnet'}, {'mxnet': 'mxnet-cu112'}, 'has mxnet-cu112 installed; installing mxnet'),
    ({'mxnet': 'mxnet-cu116'}, {'mxnet': 'mxnet'}, 'would replace it'),
    ({'onnxruntime': 'onnxruntime'}, {'onnxruntime': 'onnxruntime-gpu'}, 'onnxruntime-gpu'),
    ({'mxnet': 'mxnet-cu999'}, {}, 'not a build of mxnet'),
])
def test_setup_never_swaps_a_build_behind_the_users_back(requested, installed, words):
    module = _setup_env()
    with pytest.raises(module.SetupError, match=words):
        module.choose(requested, installed)


def test_setup_dry_runs_on_this_machine():
    script = str(ROOT / 'tools' / 'install' / 'setup_env.py')
    proc = subprocess.run([sys.executable, script, '--dry-run'], capture_output=True, text=True)
    assert proc.returncode == 0
    words = proc.stdout.splitlines()[0].split()
    assert 'mxnet' in words and 'onnxruntime' in words and words[-2] == '-c'
    proc = subprocess.run([sys.executable, script, '--mxnet', 'mxnet-cu112', '--dry-run'],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'has mxnet installed' in proc.stderr
    make = subprocess.run(['make', '-n', 'setup', 'MXNET=mxnet-cu112',
                           'ONNXRUNTIME=onnxruntime-gpu'], cwd=str(ROOT), capture_output=True,
                          text=True)
    assert 'tools/install/setup_env.py --mxnet mxnet-cu112 --onnxruntime onnxruntime-gpu' in make.stdout
    pins = dict(line.split('==') for line in (ROOT / 'constraints.txt').read_text().split())
    for build in _setup_env().FAMILIES['mxnet']:
        assert pins[build] == '1.9.1'
    assert 'onnxruntime-gpu' in pins and 'mxnet' not in (ROOT / 'requirements.txt').read_text()


# The configuration: declared keys, merged key by key, checked once, read-only -------

def test_a_key_or_section_new_in_the_sample_works_under_an_older_config(tmp_path):
    """An older config.py lacks keys and whole sections the sample has now:
    they keep the sample's values."""
    older = tmp_path / 'config.py'
    older.write_text(
        'from easydict import EasyDict as edict\n'
        'config = edict(multiplier=0.5)\n'
        'network = edict(hourglass=edict(net_block="hpm"))\n'
        'dataset = edict(i2d=edict(dataset_path="/data"))\n'
        'default = edict(lr=0.1)\n')
    cfg = load_config('satnet', 'i3d', path=str(older))        # sections the file lacks
    assert cfg.net_sat == 1 and cfg.val_targets == ['AFLW2000-3D'] and cfg.multiplier == 0.5
    cfg = load_config('hourglass', 'i2d', path=str(older))
    assert cfg.net_block == 'hpm' and cfg.net_stacks == 2 and cfg.dataset_path == '/data'
    assert cfg.val_targets == ['ibug', 'cofw_testset', '300W'] and cfg.train.lr == 0.1


def test_a_formed_configuration_is_read_only_and_survives_pickling():
    import pickle
    cfg = load_config('hourglass', 'i2d')
    for change in (lambda: setattr(cfg, 'net_n', 4), lambda: cfg.train.__setitem__('lr', 1),
                   lambda: cfg.update(net_n=4), lambda: cfg.pop('net_n')):
        with pytest.raises(TypeError, match='read-only'):
            change()
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and type(again.train).__name__ == 'Config'
    with pytest.raises(AttributeError, match="no key 'net_blok'"):
        cfg.net_blok


@pytest.mark.parametrize('override,words', [
    ('input_img_size=abc', "input_img_size = 'abc' is not allowed; expected an integer"),
    ('input_img_size=127.5', 'input_img_size = 127.5 is not allowed; expected an integer'),
    ('multiplier=big', "multiplier = 'big' is not allowed; expected a number"),
    ('label_xfirst=1', 'label_xfirst = 1 is not allowed; expected True or False'),
    ('val_targets=ibug', "val_targets = 'ibug' is not allowed; expected a list of names"),
    ('train.lr=fast', "train.lr = 'fast' is not allowed; expected a number"),
    ('train.lr=-1', "train.lr = -1 is not allowed; expected a positive number"),
    ('net_block=hmp', "net_block = 'hmp' is not allowed; expected cab, hpm, inception, resnet"),
    ('train.optimizer=adamw', "train.optimizer = 'adamw' is not allowed"),
    ('no_such_key=1', "unknown config key 'no_such_key'"),
    ('no equals sign', "'no equals sign' is not of the form KEY=VALUE"),
])
def test_a_wrong_value_is_one_line_naming_the_key_and_the_type(override, words):
    with pytest.raises(ConfigError) as err:
        load_config('hourglass', 'i2d', [override])
    assert words in str(err.value) and '\n' not in str(err.value)


@pytest.mark.parametrize('text,words', [
    ('config = {\n', 'line 1: '),
    ('import easydict\nconfig = undefined_name\n', "NameError: name 'undefined_name'"),
    ('config = {}\n', 'does not define network, dataset, default'),
    ('config = {"multiplier": "wide"}\nnetwork = {}\ndataset = {}\ndefault = {}\n',
     "multiplier = 'wide' is not allowed"),
    ('config = {"net_blok": 1}\nnetwork = {}\ndataset = {}\ndefault = {}\n',
     "unknown config key 'net_blok' in "),
])
def test_a_broken_config_file_is_one_line_naming_it(tmp_path, text, words):
    broken = tmp_path / 'config.py'
    broken.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path=str(broken))
    assert words in str(err.value) and '\n' not in str(err.value)
    if 'line' in words or 'NameError' in words or 'define' in words:
        assert str(broken) in str(err.value)


def test_train_py_says_a_broken_config_in_one_line(tmp_path):
    broken = tmp_path / 'config.py'
    broken.write_text('config = {\n')
    proc = subprocess.run([sys.executable, 'train.py', '--config', str(broken), '--prefix',
                           str(tmp_path / 'model')], cwd=str(ROOT), capture_output=True,
                          text=True)
    assert proc.returncode == 1 and proc.stderr.startswith('error: %s, line 1' % broken)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_no_library_reads_the_configuration_with_a_default():
    found = subprocess.run(['grep', '-rn', 'cfg.get(', 'core', 'data', 'symbol', 'essh'],
                           cwd=str(ROOT), capture_output=True, text=True).stdout
    assert found == ''


def test_the_scripts_and_the_api_work_from_any_folder(tmp_path):
    """make setup puts the checkout on the venv's path."""
    proc = subprocess.run([sys.executable, '-m', 'data.build', '--help'], cwd=str(tmp_path),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and 'usage:' in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, '-c', 'from core.inference.handler import Handler; print(1)'],
                          cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.stdout.strip() == '1', proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / 'test.py'), '--help'], cwd=str(tmp_path),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and '--batch' in proc.stdout
