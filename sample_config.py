"""Settings of the toolkit.

`make setup` copies this file to `config.py` (git-ignored) the first time; edit
`config.py` to change your runs. A run's configuration is formed once, in this
order (see `core.plumbing.config.load_config`):

1. `config` below,
2. the chosen `network.<name>` section (train.py --network),
3. the chosen `dataset.<name>` section (train.py --dataset),
4. `--set key=value` overrides and train.py's flags.

`default` holds the training options; they form the `train` section of the
run's configuration, which train.py saves beside the checkpoints
(PREFIX-config.json).
"""
from easydict import EasyDict as edict

config = edict()
config.landmark_scheme = 'ibug68'   # ibug68 | wflw98 | cofw29 | a JSON file (docs/schemes.md)
config.num_classes = 68           # heatmaps: the scheme's point count
config.test_targets = []          # sets test_rec_nme.py --all evaluates besides val_targets
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
config.per_batch_size = 20        # samples per device (train.py --per-batch-size)
config.losstype = 'heatmap'       # 'heatmap' (L2) or 'ce' (spatial softmax)
config.net_coherent = 0
config.net_binarize = 0

# Network settings: the chosen section overrides `config`.
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

# Dataset settings: the chosen section overrides `config` and the network.
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

# WFLW (98 points): python -m data.build --format wflw ... (README, "Other landmark
# schemes"); the test set and its six attribute subsets, NME by the outer eye corners.
dataset.wflw = edict()
dataset.wflw.dataset = 'WFLW'
dataset.wflw.landmark_scheme = 'wflw98'
dataset.wflw.landmark_type = '2d'
dataset.wflw.dataset_path = './data_wflw'
dataset.wflw.num_classes = 98
dataset.wflw.val_targets = ['wflw_test']
dataset.wflw.test_targets = ['wflw_test'] + ['wflw_test_' + a for a in (
    'largepose', 'expression', 'illumination', 'makeup', 'occlusion', 'blur')]

# COFW with its own 29 points, NME by points 8-9.
dataset.cofw29 = edict()
dataset.cofw29.dataset = 'COFW'
dataset.cofw29.landmark_scheme = 'cofw29'
dataset.cofw29.landmark_type = '2d'
dataset.cofw29.dataset_path = './data_cofw29'
dataset.cofw29.num_classes = 29
dataset.cofw29.val_targets = ['cofw29_test']

# Training options (the `train` section; train.py's flags override them).
default = edict()
default.network = 'hourglass'
default.dataset = 'i2d'
default.prefix = './models/model'
default.pretrained = ''           # PREFIX,EPOCH of a checkpoint to start from
default.allow_missing = False     # initialise parameters --pretrained lacks instead of failing
default.optimizer = 'nadam'       # nadam | onadam | adam | rmsprop | sgd
default.lr = 2.5e-4
default.wd = 0.0
default.lr_epoch_step = '20,35,45'   # epochs where lr x 0.2; the last one ends training
default.lr_steps = ''             # the same in steps ('300,450,500'); replaces lr_epoch_step
default.ckpt = 1                  # 1 saves a checkpoint when validation improves, 0 never
default.exf = 1                   # shuffled copies of the records per pass
default.frequent = 20             # log (and check the loss) every N batches
default.validate_every = 200      # validate, maybe checkpoint, save the state every N batches
default.min_validations = 5       # validate at least this often in a run (lowers validate_every)
default.kvstore = 'device'        # device | local | dist_sync
default.seed = 727                # seeds Python, NumPy, MXNet and the data order
default.gpus = None               # '0,1', '-1' for the CPU; None: CUDA_VISIBLE_DEVICES, else all GPUs
default.workers = None            # data worker processes; None: the usable CPUs but one (max 8)
default.bad_records = 0.01        # stop when more than this share of a pass is unreadable
default.dist_timeout = 1800       # dist_sync: seconds to wait for the other workers
