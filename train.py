"""Train a heatmap network (PIPELINE.md section 3).

    python train.py --network hourglass --dataset i2d --prefix ./models/hg/model
    CUDA_VISIBLE_DEVICES=0,1 python train.py --per-batch-size 16 --lr 1e-4 \\
        --pretrained ./models/model-hg2d3-cab/model,0 --set net_block=cab
"""
import argparse
import logging
import sys

from core.config import load_config, settings_module
from core.trainer import Trainer, TrainingStopped


def parse_args(argv=None):
    default = settings_module().default
    parser = argparse.ArgumentParser(description='Train a face alignment network.')
    parser.add_argument('--network', default=default.network, help='hourglass or satnet')
    parser.add_argument('--dataset', default=default.dataset, help='i2d or i3d')
    parser.add_argument('--prefix', default=default.prefix, help='checkpoint prefix')
    parser.add_argument('--pretrained', default=default.pretrained,
                        help='PREFIX,EPOCH of a checkpoint to start from')
    parser.add_argument('--allow-missing', action='store_true',
                        help='initialise parameters missing from --pretrained instead of failing')
    parser.add_argument('--optimizer', default=default.optimizer,
                        choices=['nadam', 'onadam', 'adam', 'rmsprop', 'sgd'])
    parser.add_argument('--lr', type=float, default=default.lr)
    parser.add_argument('--wd', type=float, default=default.wd)
    parser.add_argument('--per-batch-size', type=int, default=default.per_batch_size)
    parser.add_argument('--lr-epoch-step', default=default.lr_epoch_step,
                        help="epochs where lr is multiplied by 0.2; the last ends training")
    parser.add_argument('--ckpt', type=int, default=default.ckpt, choices=[0, 1],
                        help='1 saves a checkpoint when the validation NME improves, 0 never')
    parser.add_argument('--exf', type=int, default=default.exf,
                        help='shuffled copies of the training list per epoch')
    parser.add_argument('--frequent', type=int, default=default.frequent,
                        help='log speed and loss every N batches')
    parser.add_argument('--verbose', type=int, default=default.verbose,
                        help='validate (and maybe save) every N batches')
    parser.add_argument('--workers', type=int, default=None,
                        help='data worker processes (default: all cores)')
    parser.add_argument('--seed', type=int, default=default.seed)
    parser.add_argument('--kvstore', default=default.kvstore,
                        choices=['device', 'local', 'dist_sync'])
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config key, e.g. --set net_block=hpm (repeatable)')
    return parser.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    args = parse_args(argv)
    cfg, _ = load_config(args.network, args.dataset, args.set)
    try:
        Trainer(cfg, args).run()
    except TrainingStopped as err:
        logging.error('%s', err)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
