"""The one definition of every layer helper: convolution, BN, ReLU, `lin`,
deformable convolution, and their 1-bit (binarized) forms.

All parameter names are made here from the layer name, so that they can be
checked against the naming rules of docs/architecture.md in one place.
"""
import mxnet as mx


def _sign_ste(x):
    """sign(x) forward, hard-tanh straight-through gradient backward."""
    clipped = mx.sym.clip(x, -1.0, 1.0)
    return clipped + mx.sym.BlockGrad(mx.sym.sign(x) - clipped)


def _binary_weight(weight):
    """Weights scaled by the mean absolute value of each filter, in {-a, a}."""
    alpha = mx.sym.mean(mx.sym.abs(weight), axis=(1, 2, 3), keepdims=True)
    binary = mx.sym.broadcast_mul(mx.sym.sign(weight), alpha)
    return weight + mx.sym.BlockGrad(binary - weight)


class Layers(object):
    """Builds layers with shared settings: BN momentum, workspace and whether
    convolutions are binarized (1-bit inputs and weights)."""

    def __init__(self, bn_mom=0.9, workspace=256, binarize=False):
        self.bn_mom = bn_mom
        self.workspace = workspace
        self.binarize = bool(binarize)

    def binarized(self, flag=True):
        """A copy of these settings with binarization switched to `flag`."""
        return Layers(self.bn_mom, self.workspace, flag)

    def conv(self, x, num_filter, name, kernel=1, stride=1, pad=None, dilate=1,
             group=1, bias=False):
        """Convolution `name` (weight `name_weight`); pad defaults to
        `dilate` for 3x3 kernels and (k-1)/2 otherwise."""
        if pad is None:
            pad = dilate if kernel == 3 else (kernel - 1) // 2
        kwargs = dict(num_filter=num_filter, kernel=(kernel, kernel), stride=(stride, stride),
                      pad=(pad, pad), dilate=(dilate, dilate), num_group=group,
                      no_bias=not bias, workspace=self.workspace, name=name)
        if self.binarize:
            x = _sign_ste(x)
            kwargs['weight'] = _binary_weight(mx.sym.Variable(name + '_weight'))
        return mx.sym.Convolution(data=x, **kwargs)

    def bn(self, x, name):
        return mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=self.bn_mom,
                                name=name)

    @staticmethod
    def relu(x, name):
        return mx.sym.Activation(data=x, act_type='relu', name=name)

    def bn_relu(self, x, bn_name, relu_name):
        return self.relu(self.bn(x, bn_name), relu_name)

    def lin(self, x, num_filter, name, kernel=1, group=1, dilate=1, act=True):
        """conv `name_conv` -> BN `name_bn` -> ReLU `name_relu` (ReLU optional)."""
        x = self.bn(self.conv(x, num_filter, name + '_conv', kernel=kernel, dilate=dilate,
                              group=group), name + '_bn')
        return self.relu(x, name + '_relu') if act else x

    def deformable_conv(self, x, num_filter, name):
        """3x3 DeformableConvolution with bias, one deformable group, its 18
        offsets from a plain 3x3 conv with bias named `name_offset`."""
        offset = mx.sym.Convolution(data=x, num_filter=18, kernel=(3, 3), pad=(1, 1),
                                    no_bias=False, workspace=self.workspace,
                                    name=name + '_offset')
        return mx.sym.contrib.DeformableConvolution(
            data=x, offset=offset, num_filter=num_filter, kernel=(3, 3), pad=(1, 1),
            num_deformable_group=1, no_bias=False, workspace=self.workspace, name=name)


def concat(inputs, channels):
    """Concatenate on channels.

    oneDNN in mxnet 1.9.1 (CPU) dies with SIGFPE in Concat's backward when an
    input's channel count is not a multiple of 16 and the incoming gradient is
    in a blocked layout. An identity `slice_axis` after such a concat has a
    plain-layout backward and avoids it; widths of the published models are
    all multiples of 16, so their graphs are unchanged.
    """
    out = mx.sym.Concat(*inputs, dim=1)
    if any(c % 16 for c in channels):
        out = mx.sym.slice_axis(out, axis=1, begin=0, end=None)
    return out


def avg2(*inputs, name):
    """Mean of two same-shaped tensors as the published graphs compute it:
    an `add_n` named `name` divided by 2."""
    return mx.sym.add_n(*inputs, name=name) / 2


def max_pool2(x, name=None):
    return mx.sym.Pooling(data=x, kernel=(2, 2), stride=(2, 2), pad=(0, 0), pool_type='max',
                          name=name)


def upsample2(x, name):
    return mx.sym.UpSampling(x, scale=2, sample_type='nearest', num_args=1, name=name)
