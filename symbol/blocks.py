"""Building blocks: resnet, hpm, inception and cab, plus the (w, h) lattice
that both the CAB and the SAT stack evaluate.

Every block has the signature block(L, x, C, stride, dim_match, name, dilate=1)
where L is a `layers.Layers`. Inner convolutions have stride 1; only the
shortcut takes `stride`.
"""

from .layers import avg2, concat


def _shortcut(L, x, first_act, C, stride, dim_match, name):
    """x when dim_match, else a 1x1 conv `name_sc` of the block's first ReLU
    output (with a BN `name_sc_bn` in binarized HPM blocks, see `hpm`)."""
    if dim_match:
        return x
    return L.conv(first_act, C, name + '_sc', kernel=1, stride=stride)


def resnet(L, x, C, stride, dim_match, name, dilate=1):
    """Pre-activation bottleneck: 1x1 C/2, 3x3 C/2, 1x1 C."""
    act1 = L.bn_relu(x, name + '_bn1', name + '_relu1')
    body = L.conv(act1, C // 2, name + '_conv1', kernel=1)
    body = L.bn_relu(body, name + '_bn2', name + '_relu2')
    body = L.conv(body, C // 2, name + '_conv2', kernel=3, dilate=dilate)
    body = L.bn_relu(body, name + '_bn3', name + '_relu3')
    body = L.conv(body, C, name + '_conv3', kernel=1)
    return body + _shortcut(L, x, act1, C, stride, dim_match, name)


def hpm(L, x, C, stride, dim_match, name, dilate=1):
    """Hierarchical, parallel, multi-scale: three chained 3x3 convs
    (C/2, C/4, C/4) whose outputs are concatenated."""
    act1 = L.bn_relu(x, name + '_bn1', name + '_relu1')
    conv1 = L.conv(act1, C // 2, name + '_conv1', kernel=3, dilate=dilate)
    act2 = L.bn_relu(conv1, name + '_bn2', name + '_relu2')
    conv2 = L.conv(act2, C // 4, name + '_conv2', kernel=3, dilate=dilate)
    act3 = L.bn_relu(conv2, name + '_bn3', name + '_relu3')
    conv3 = L.conv(act3, C // 4, name + '_conv3', kernel=3, dilate=dilate)
    body = concat((conv1, conv2, conv3), (C // 2, C // 4, C // 4))
    shortcut = _shortcut(L, x, act1, C, stride, dim_match, name)
    if L.binarize:
        body = L.bn(body, name + '_bn4')
        if not dim_match:
            shortcut = L.bn(shortcut, name + '_sc_bn')
    return body + shortcut


def inception(L, x, C, stride, dim_match, name, dilate=1):
    """Inception-resnet unit `name_block35` (three towers, 1x1 back to C,
    unscaled residual, ReLU); the resnet block when shapes change."""
    if stride > 1 or not dim_match:
        return resnet(L, x, C, stride, dim_match, name, dilate)
    unit = name + '_block35'
    tower0 = L.lin(x, C // 4, unit + '_conv', kernel=1)
    tower1 = L.lin(x, C // 4, unit + '_conv1_0', kernel=1)
    tower1 = L.lin(tower1, C // 4, unit + '_conv1_1', kernel=3, dilate=dilate)
    tower2 = L.lin(x, C // 4, unit + '_conv2_0', kernel=1)
    tower2 = L.lin(tower2, 3 * C // 8, unit + '_conv2_1', kernel=3, dilate=dilate)
    tower2 = L.lin(tower2, C // 2, unit + '_conv2_2', kernel=3, dilate=dilate)
    mixed = concat((tower0, tower1, tower2), (C // 4, C // 4, C // 2))
    out = L.lin(mixed, C, unit + '_conv_out', kernel=1, act=False)
    return L.relu(x + out, unit + '_relu')


def lattice(n, top, bottom, merge):
    """Evaluate the triangular lattice of cells (w, h), 1 <= w <= h <= n, and
    return cell (1, 1).

    Cell (n, n) is `top`; bottom-row cells (w, n) are `bottom(w, cell(w+1, n))`;
    every other cell is `merge(w, h, refine, cell(w+1, h+1), cell(w, h+1), cell)`
    where `refine` says whether X gets its depthwise conv (h odd and h != w).
    Cells are memoised and built depth first, which gives the layer order of
    the published graphs.
    """
    cells = {(n, n): top}

    def cell(w, h):
        if (w, h) not in cells:
            if h == n:
                cells[(w, h)] = bottom(w, cell(w + 1, n))
            else:
                refine = h % 2 == 1 and h != w
                cells[(w, h)] = merge(w, h, refine, cell(w + 1, h + 1), cell(w, h + 1), cell)
        return cells[(w, h)]

    return cell(1, 1)


def cab_unit(L, x, C, name, n=4, dilate=1, group=1):
    """Channel aggregation block: cells hold (tensor, channels); the bottom row
    halves channels with 3x3 `lin`s, upper cells average X with Y doubled."""
    def bottom(w, below):
        tensor, channels = below
        d = dilate if w == n - 1 else 1
        return L.lin(tensor, channels // 2, '%s_w%d_h%d_1' % (name, w, n), kernel=3,
                     group=group, dilate=d), channels // 2

    def merge(w, h, refine, upper, left, _cell):
        x_sym, channels = upper
        if refine:
            x_sym = L.lin(x_sym, channels, '%s_w%d_h%d_2' % (name, w, h), kernel=3,
                          group=channels)
        y_sym = concat((left[0], left[0]), (left[1], left[1]))
        return avg2(x_sym, y_sym, name='%s_w%d_h%d_add' % (name, w, h)), channels

    return lattice(n, (x, C), bottom, merge)[0]


def cab(L, x, C, stride, dim_match, name, dilate=1):
    """CAB (n = 4, group 1) when shapes are kept, else the HPM block."""
    if stride > 1 or not dim_match:
        return hpm(L, x, C, stride, dim_match, name, dilate)
    return cab_unit(L, x, C, name, dilate=dilate)


BLOCKS = {'resnet': resnet, 'inception': inception, 'hpm': hpm, 'cab': cab}
