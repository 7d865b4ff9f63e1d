"""Train a heatmap network (docs/training.md).

    python train.py --network hourglass --dataset i2d --prefix ./models/hg/model
    CUDA_VISIBLE_DEVICES=0,1 python train.py --per-batch-size 16 --lr 1e-4 \\
        --pretrained ./models/model-hg2d3-cab/model,0 --prefix ./models/ft/model
    python train.py --prefix ./models/hg/model --resume        # continue that run
"""
import argparse
import sys

from core.plumbing import cli
from core.plumbing.config import KVSTORES, OPTIMIZERS, apply_overrides, load_config, parse_overrides
from core.training import dist
from core.plumbing.devices import DeviceError
from core.training.dist import LaunchError
from core.plumbing.runs import RunError, read_state
from core.training.trainer import Trainer, TrainingStopped, resumed_config

EPILOG = '''A run's configuration is formed in this order: config.py (a copy of
sample_config.py), its --network and --dataset sections, --set KEY=VALUE,
then the flags above. It is saved as PREFIX-config.json beside the
checkpoints; --resume continues with that saved configuration.'''

# Flags that set a training option (train.<dest>); the rest set config keys.
TRAIN_FLAGS = ('prefix', 'pretrained', 'allow_missing', 'optimizer', 'lr', 'wd', 'lr_epoch_step',
               'lr_steps', 'ckpt', 'exf', 'frequent', 'validate_every', 'min_validations', 'workers',
               'seed', 'kvstore', 'gpus', 'bad_records', 'dist_timeout')


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Train a face alignment network.',
                                     epilog=EPILOG)
    add = parser.add_argument
    add('--network', help='hourglass or satnet (a section of config.py)')
    add('--dataset', help='i2d or i3d (a section of config.py)')
    add('--prefix', help='checkpoint prefix, e.g. ./models/my-hg/model')
    add('--resume', action='store_true', help='continue the run saved at --prefix')
    add('--overwrite', action='store_true',
        help='start over at a --prefix that holds a run, deleting its files')
    add('--pretrained', help='PREFIX,NUMBER of a checkpoint to start from')
    add('--allow-missing', action='store_true', default=None,
        help='initialise parameters missing from --pretrained instead of failing')
    add('--optimizer', choices=OPTIMIZERS)
    add('--lr', type=float)
    add('--wd', type=float)
    add('--per-batch-size', type=int, help='samples per device')
    add('--lr-epoch-step', help="epochs where lr is multiplied by 0.2; the last ends training")
    add('--lr-steps', help="the same in steps, e.g. 300,450,500 (replaces --lr-epoch-step)")
    add('--ckpt', type=int, choices=[0, 1],
        help='1 saves a checkpoint when the validation NME improves, 0 never')
    add('--exf', type=int, help='shuffled copies of the records per pass')
    add('--frequent', type=int, help='log (and check the loss) every N batches')
    add('--validate-every', type=int,
        help='validate, maybe checkpoint, save the state every N batches')
    add('--min-validations', type=int,
        help='validate at least this often in a run, lowering --validate-every (default 5)')
    add('--workers', type=int, help='data worker processes (default: the usable CPUs but one)')
    add('--seed', type=int, help='seeds Python, NumPy, MXNet and the data order')
    add('--kvstore', choices=KVSTORES)
    add('--gpus', help="GPUs to use, e.g. 0,1; -1 for the CPU (default: CUDA_VISIBLE_DEVICES, "
        "else every GPU)")
    add('--bad-records', type=float,
        help='stop when more than this share of a pass is unreadable (default 0.01)')
    add('--dist-timeout', type=int, help='dist_sync: seconds to wait for the other workers')
    add('--set', action='append', default=[], metavar='KEY=VALUE',
        help='override a config key, e.g. --set net_block=hpm (repeatable)')
    add('--config', help='settings file to use instead of config.py')
    cli.add_flags(parser)
    for flag, value in zip(argv, list(argv[1:]) + ['']):
        if flag == '--verbose' and value.isdigit():
            parser.error('--verbose %s: the validation interval is now --validate-every %s '
                         '(--verbose shows third-party messages)' % (value, value))
    return parser.parse_args(argv)


def overrides(args):
    """{key: value} of --set and the flags given on the command line."""
    found = parse_overrides(args.set)
    for dest in TRAIN_FLAGS:
        if getattr(args, dest) is not None:
            found['train.' + dest] = getattr(args, dest)
    if args.per_batch_size is not None:
        found['per_batch_size'] = args.per_batch_size
    return found


def _main(argv):
    args = parse_args(argv)
    cli.setup_logging(args.debug)
    given = overrides(args)
    if args.resume:
        prefix = args.prefix or load_config(path=args.config).train.prefix
        for key in ('network', 'dataset'):
            if getattr(args, key):
                given[key] = getattr(args, key)
        cfg = resumed_config(prefix, given)
        cfg = apply_overrides(cfg, {'train.prefix': prefix})
        state = read_state(prefix)
        if state.get('finished'):
            print('the run at %s has finished (step %d, epoch %g; best checkpoint %s); nothing '
                  'to resume. Start a new run with --pretrained %s,N to train on'
                  % (prefix, state['step'], state['epoch'],
                     '%04d' % state['best_checkpoint'] if state.get('best_checkpoint') is not None
                     else 'none', prefix))
            return 0
    else:
        cfg = load_config(args.network, args.dataset, given, path=args.config)
    Trainer(cfg, resume=args.resume, overwrite=args.overwrite).run()
    return 0


def main(argv=None):
    code = cli.run(_main, argv, errors=(RunError, DeviceError, TrainingStopped, LaunchError))
    return dist.finish(code)


if __name__ == '__main__':
    sys.exit(main())
