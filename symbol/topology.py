"""Stack topologies: the stacked Hourglass and the Scale Aggregation Topology."""
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
