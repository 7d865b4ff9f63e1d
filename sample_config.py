"""Settings of the toolkit.

`make` copies this file to `config.py` (git-ignored) the first time; edit
`config.py` to change a run. `generate_config(network, dataset)` copies the
chosen network's and dataset's keys into `config` and `default`.
"""
from easydict import EasyDict as edict

config = edict()
config.num_classes = 68
config.record_img_size = 384      # side of the aligned face stored in a record
config.base_scale = 256           # crop side (in the record) that becomes the input
config.input_img_size = 128
config.output_label_size = 64
config.label_xfirst = False       # records store (y, x) per point
config.gaussian = 1               # heatmap sigma; 0 puts a single pixel
config.mirror_heatmaps = False    # True: mirror rendered heatmaps as the original (half a pixel off)
config.multiplier = 1.0           # channel width multiplier
config.bn_mom = 0.9
config.workspace = 256
config.per_batch_size = 20
config.losstype = 'heatmap'       # 'heatmap' (L2) or 'ce' (spatial softmax)
config.net_coherent = 0
config.net_binarize = 0

# Network settings: network keys override `config` in generate_config.
network = edict()

network.hourglass = edict()
network.hourglass.net_block = 'cab'      # resnet | inception | hpm | cab
network.hourglass.net_n = 3              # down-samplings per stack (the d of hg2d3)
network.hourglass.net_sat = 0            # 0 hourglass stacks, 1 or 2 SAT stacks
network.hourglass.net_dcn = 0            # 0..3, deformable heads
network.hourglass.net_stacks = 2
network.hourglass.net_coherent = 0
network.hourglass.net_binarize = 0
network.hourglass.losstype = 'heatmap'

network.satnet = edict()
network.satnet.net_block = 'cab'
network.satnet.net_n = 3
network.satnet.net_sat = 1
network.satnet.net_dcn = 0
network.satnet.net_stacks = 2
network.satnet.net_coherent = 0
network.satnet.net_binarize = 0
network.satnet.losstype = 'heatmap'

# Dataset settings.
dataset = edict()

dataset.i2d = edict()
dataset.i2d.dataset = '2D'
dataset.i2d.landmark_type = '2d'
dataset.i2d.dataset_path = './data_2d'
dataset.i2d.num_classes = 68
dataset.i2d.record_img_size = 384
dataset.i2d.base_scale = 256
dataset.i2d.input_img_size = 128
dataset.i2d.output_label_size = 64
dataset.i2d.label_xfirst = False
dataset.i2d.val_targets = ['ibug', 'cofw_testset', '300W']

dataset.i3d = edict()
dataset.i3d.dataset = '3D'
dataset.i3d.landmark_type = '3d'
dataset.i3d.dataset_path = './data_3d'
dataset.i3d.num_classes = 68
dataset.i3d.record_img_size = 384
dataset.i3d.base_scale = 256
dataset.i3d.input_img_size = 128
dataset.i3d.output_label_size = 64
dataset.i3d.label_xfirst = False
dataset.i3d.val_targets = ['AFLW2000-3D']

# Training defaults (command-line flags of train.py fall back to these).
default = edict()
default.network = 'hourglass'
default.dataset = 'i2d'
default.prefix = './models/model'
default.pretrained = ''
default.optimizer = 'nadam'
default.lr = 2.5e-4
default.wd = 0.0
default.per_batch_size = 20
default.lr_epoch_step = '20,35,45'
default.ckpt = 1
default.exf = 1
default.frequent = 20
default.verbose = 200
default.kvstore = 'device'
default.seed = 0


def generate_config(network_name, dataset_name):
    """Copy the keys of `network[network_name]` and `dataset[dataset_name]` into
    `config` and `default`; returns (config, default)."""
    if network_name not in network:
        raise ValueError("network must be one of %s, got %r" % (sorted(network), network_name))
    if dataset_name not in dataset:
        raise ValueError("dataset must be one of %s, got %r" % (sorted(dataset), dataset_name))
    for source in (network[network_name], dataset[dataset_name]):
        for key, value in source.items():
            config[key] = value
            default[key] = value
    config.network = default.network = network_name
    config.dataset = default.dataset = dataset_name
    return config, default
