"""Print the parameter count and size of every published configuration.

    python -m tools.summary
"""
import argparse

import numpy as np

from core.config import published_config
from symbol import get_symbol, param_shapes
from symbol.zoo import PUBLISHED


def count_parameters(sym, cfg):
    """Learnable arguments plus BN statistics, without data and label."""
    size, label = cfg.input_img_size, cfg.output_label_size
    shapes = param_shapes(sym, (1, 3, size, size), (1, cfg.num_classes, label, label))
    return sum(int(np.prod(s)) for s in shapes.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.parse_args(argv)
    print('| %-24s | %-9s | %-9s | %4s | %11s | %8s |'
          % ('model', 'network', 'block', 'd', 'parameters', 'size MB'))
    print('|%s|' % '|'.join('-' * w for w in (26, 11, 11, 6, 13, 10)))
    for name, model in PUBLISHED.items():
        cfg = published_config(name)
        params = count_parameters(get_symbol(cfg), cfg)
        print('| %-24s | %-9s | %-9s | %4d | %11s | %8.1f |'
              % (model.title, model.network, model.block, model.net_n,
                 '{:,}'.format(params), params * 4 / 1e6))


if __name__ == '__main__':
    main()
