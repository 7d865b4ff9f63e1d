"""Print the parameter count and size of every published configuration, or
of a configuration of your own.

    python -m tools.summary
    python -m tools.summary --network satnet --set net_block=hpm --set net_n=4
"""
import argparse
import sys

import numpy as np

from core.plumbing import cli
from core.plumbing.config import load_config, parse_overrides, published_config
from symbol import get_symbol, param_shapes
from symbol.zoo import PUBLISHED


def count_parameters(sym, cfg):
    """Learnable arguments plus BN statistics, without data and label."""
    size, label = cfg.input_img_size, cfg.output_label_size
    shapes = param_shapes(sym, (1, 3, size, size), (1, cfg.num_classes, label, label))
    return sum(int(np.prod(s)) for s in shapes.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--network', help='count this section of config.py instead of the zoo')
    parser.add_argument('--dataset', help='the dataset section (default: the settings\')')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config key (repeatable)')
    cli.add_flags(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda _: _summary(args), [])


def _summary(args):
    if args.network or args.dataset or args.set:
        cfg = load_config(args.network, args.dataset, parse_overrides(args.set))
        params = count_parameters(get_symbol(cfg), cfg)
        print('%s, block %s, net_n %d, net_sat %d, net_dcn %d, %d stacks, multiplier %g, input '
              '%d: %s parameters (%.1f MB)' % (
                  cfg.network, cfg.net_block, cfg.net_n, cfg.net_sat, cfg.net_dcn, cfg.net_stacks,
                  cfg.multiplier, cfg.input_img_size, '{:,}'.format(params), params * 4 / 1e6))
        return 0
    print('| %-24s | %-9s | %-9s | %4s | %11s | %8s |'
          % ('model', 'network', 'block', 'd', 'parameters', 'size MB'))
    print('|%s|' % '|'.join('-' * w for w in (26, 11, 11, 6, 13, 10)))
    for name, model in PUBLISHED.items():
        cfg = published_config(name)
        params = count_parameters(get_symbol(cfg), cfg)
        print('| %-24s | %-9s | %-9s | %4d | %11s | %8.1f |'
              % (model.title, model.network, model.block, model.net_n,
                 '{:,}'.format(params), params * 4 / 1e6))
    return 0


if __name__ == '__main__':
    sys.exit(main())
