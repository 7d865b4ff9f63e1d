"""Stack topologies and the table that chooses them.

A topology is a stack builder plus the one way its heads differ: whether the
deformable refinement of net_dcn 1 and 3 also refines the last stack's
prediction (hourglass) or only the bodies handed to later stacks (SAT).
Adding a topology is one entry in TOPOLOGIES (and its section in the
settings file).
"""
import collections

import mxnet as mx

from .blocks import cab_unit, lattice
from .layers import avg2, max_pool2, upsample2


def hourglass(L, block, x, C, n, name):
    """Recursive hourglass of depth n: `name_up1_0`, `name_low1_0`, the inner
    hourglass `name_{n-1}` (or `name_low2_0` at n = 1), `name_low3_0`."""
    up1 = block(L, x, C, 1, True, name + '_up1_0')
    low1 = block(L, max_pool2(x), C, 1, True, name + '_low1_0')
    if n > 1:
        low2 = hourglass(L, block, low1, C, n - 1, '%s_%d' % (name, n - 1))
    else:
        low2 = block(L, low1, C, 1, True, name + '_low2_0')
    low3 = block(L, low2, C, 1, True, name + '_low3_0')
    up2 = upsample2(low3, '%s_upsampling_%d' % (name, n))
    return mx.sym.add_n(up1, up2)


def sat(L, x, C, n, name, gated=False):
    """SAT stack over an (n x n) lattice of CABs (n = net_n + 1).

    Bottom row: CAB, max-pool, CAB. Upper cells average X (depthwise-refined
    on odd rows) with Y up-sampled: a deconvolution + BN + ReLU for w > 1,
    nearest up-sampling + CAB for w = 1. `gated` (net_sat 2) multiplies cell
    (2, 3) by the global average of cell (3, 3).
    """
    def cell_name(w, h):
        return '%s_w%d_h%d' % (name, w, h)

    def bottom(w, below):
        body = cab_unit(L, below, C, cell_name(w, n) + '_1')
        return cab_unit(L, max_pool2(body), C, cell_name(w, n) + '_2')

    def merge(w, h, refine, upper, left, cell):
        x_sym = upper
        if refine:
            x_sym = L.lin(x_sym, C, cell_name(w, h) + '_x', kernel=3, group=C)
        up_name = '%s_upsampling_w%d_h%d' % (name, w, h)
        if w > 1:
            y_sym = mx.sym.Deconvolution(data=left, num_filter=C, kernel=(2, 2), stride=(2, 2),
                                         no_bias=True, workspace=L.workspace, name=up_name)
            y_sym = L.bn_relu(y_sym, cell_name(w, h) + '_y_bn', cell_name(w, h) + '_y_act')
        else:
            y_sym = cab_unit(L, upsample2(left, up_name), C, cell_name(w, h) + '_4')
        merged = avg2(x_sym, y_sym, name=cell_name(w, h) + '_add')
        if gated and (w, h) == (2, 3):
            gate = mx.sym.Pooling(data=cell(3, 3), global_pool=True, kernel=(1, 1),
                                  pool_type='avg', name=cell_name(w, h) + '_gate')
            merged = mx.sym.broadcast_mul(merged, gate)
        return merged

    return lattice(n, x, bottom, merge)


def hourglass_stack(L, block, x, C, i, cfg):
    return hourglass(L, block, x, C, cfg.net_n, 'stack%d_hg' % i)


def sat_stack(L, block, x, C, i, cfg):
    return sat(L, x, C, cfg.net_n + 1, 'sat%d' % i, gated=cfg.net_sat == 2)


# stack(L, block, x, C, index, cfg); net_sat: the values of config.net_sat
# that build these stacks; refine_last: see the module docstring.
Topology = collections.namedtuple('Topology', 'stack net_sat refine_last')

TOPOLOGIES = collections.OrderedDict([
    ('hourglass', Topology(hourglass_stack, net_sat=(0,), refine_last=True)),
    ('satnet', Topology(sat_stack, net_sat=(1, 2), refine_last=False)),
])


def stack_topology(cfg):
    """The topology whose stacks are built: chosen by net_sat whatever the
    network is (docs/architecture.md, "Stacks"); the published settings keep
    the two consistent."""
    return next(t for t in TOPOLOGIES.values() if cfg.net_sat in t.net_sat)


def head_topology(cfg):
    """The topology whose head variant is built: the network's."""
    return TOPOLOGIES[cfg.network]
