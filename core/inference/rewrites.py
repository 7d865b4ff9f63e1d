"""ONNX graph rewrites that let ONNX Runtime run the exported networks
faster, each computing the same values (to the bit, or to float rounding
where said). Every rewrite takes an onnx ModelProto, changes it in place and
returns how many nodes it changed; the tables below say where each applies.
"""
import numpy as np


class _Constants(object):
    """The initializers of `model` by name, each read as an array when first
    asked for (a rewrite looks at a few of them, not at every weight);
    add() stores a new one in the model."""

    def __init__(self, model):
        self.graph = model.graph
        self.tensors = {t.name: t for t in model.graph.initializer}
        self.arrays = {}

    def __contains__(self, name):
        return name in self.tensors

    def __getitem__(self, name):
        from onnx import numpy_helper
        if name not in self.arrays:
            self.arrays[name] = numpy_helper.to_array(self.tensors[name])
        return self.arrays[name]

    def add(self, name, array):
        """Store `array` as initializer `name` unless there is one; returns name."""
        from onnx import numpy_helper
        if name not in self.tensors:
            self.tensors[name] = numpy_helper.from_array(array, name)
            self.arrays[name] = array
            self.graph.initializer.append(self.tensors[name])
        return name


def nearest_by_whole_factors(model):
    """Ask ONNX Runtime for its fast nearest upsampling: MXNet's exporter
    writes UpSampling as a nearest Resize with half-pixel coordinates rounded
    half down, which for a whole factor s picks source pixel floor(x / s),
    exactly what asymmetric coordinates rounded down pick, and ONNX Runtime
    runs the latter faster (hg2d3-cab's six upsamplings: 1.2 against 11.7 ms
    a face in FP32, 5.0 against 10.6 in INT8)."""
    from onnx import helper
    constants = _Constants(model)
    changed = 0
    for node in model.graph.node:
        if node.op_type != 'Resize' or len(node.input) < 3 or node.input[2] not in constants:
            continue
        attributes = {a.name: a for a in node.attribute}
        text = {name: a.s.decode() for name, a in attributes.items() if a.s}
        scales = constants[node.input[2]]
        if text.get('mode') != 'nearest' or \
                text.get('coordinate_transformation_mode') != 'half_pixel' or \
                text.get('nearest_mode', 'round_prefer_floor') != 'round_prefer_floor' or \
                not scales.size or not np.all((scales >= 1) & (scales == np.round(scales))):
            continue
        for name, value in (('coordinate_transformation_mode', b'asymmetric'),
                            ('nearest_mode', b'floor')):
            if name in attributes:
                attributes[name].s = value
            else:
                node.attribute.extend([helper.make_attribute(name, value)])
        changed += 1
    return changed


def sums_as_adds(model):
    """A Sum becomes the chain of Adds it computes: a Sum of two one Add, of
    three two (the same values, to float rounding of the order
    ((a + b) + c)). ONNX Runtime's quantizer makes QLinearAdd of an Add but
    leaves a Sum in float, between dequantizations and a quantization. In
    hg2d3-cab the Sum of three between stacks also split the channels-last
    INT8 graph in two: with the transposes, dequantizations and float max
    pooling it brought, 10.9 ms a face against 0.3 after (ONNX Runtime's
    profiler, AVX-512, 2 threads). The 145 Sums of two of the published CAB
    graphs' halved residuals run faster as Adds in FP32 too (21 against 31
    ms a face)."""
    from onnx import helper

    def adds(node):
        if node.op_type != 'Sum' or len(node.input) < 2:
            return None
        chain, total = [], node.input[0]
        for k, term in enumerate(node.input[1:], 1):
            last = k == len(node.input) - 1
            out = node.output[0] if last else '%s_partial%d' % (node.output[0], k)
            chain.append(helper.make_node('Add', [total, term], [out], name=node.name if last
                                          else '%s_partial%d' % (node.name, k)))
            total = out
        return chain
    return _replace_each(model.graph, adds)


def halvings_as_products(model):
    """A Div by a power-of-two constant becomes a Mul by its reciprocal (the
    same values, to the bit). The published CAB graphs halve every residual
    sum ((a + b) / 2; 138 Divs in hg2d3-cab): in FP32 Mul runs faster (11
    against 13 ms a face), and ONNX Runtime's quantizer makes QLinearMul of
    it (folded into the scales by products_into_scales) where it leaves Div
    in float, with a dequantize before and a quantize after each."""
    constants = _Constants(model)
    rewritten = 0
    for node in model.graph.node:
        if node.op_type == 'Div' and node.input[1] in constants and \
                np.all(np.frexp(constants[node.input[1]])[0] == 0.5):
            divisor = constants[node.input[1]]
            node.op_type = 'Mul'
            node.input[1] = constants.add(node.input[1] + '_reciprocal',
                                          (1 / divisor).astype(divisor.dtype))
            rewritten += 1
    _prune(model.graph)
    return rewritten


def upsamplings_kept_channels_first(model):
    """Keep each nearest upsampling of height and width on ONNX Runtime's
    fast path in INT8. Its INT8 graph runs channels-last (NHWC) and moves
    every Resize between NCHW and NHWC layouts along; channels-last a nearest
    Resize takes a generic per-pixel path (2.0 to 2.7 ms for 32x32x256 ->
    64x64, AVX-512, 2 threads) where channels-first it copies rows (0.09 ms).
    Between two transposes swapping batch and channels, a layout ONNX
    Runtime does not move Resize into, the upsampling (written asymmetric by
    nearest_by_whole_factors, which its fast path needs) stays channels-first
    (the same pixels), for two UINT8 transposes (0.06 and 0.29 ms): 6.5
    against 1.6 ms a face for hg2d3-cab's six. For the quantizer's copy of
    the graph only: FP32 runs its Resizes channels-first already."""
    from onnx import helper
    constants = _Constants(model)

    def wrapped(node):
        scales = constants[node.input[2]] if node.op_type == 'Resize' and \
            len(node.input) > 2 and node.input[2] in constants else np.zeros(0)
        text = {a.name: a.s for a in node.attribute if a.s}
        if scales.shape != (4,) or not np.all(scales[:2] == 1) or \
                text.get('mode') != b'nearest' or \
                text.get('coordinate_transformation_mode') != b'asymmetric':
            return None
        source, result = node.input[0], node.output[0]
        node.input[0], node.output[0] = result + '_cnhw_in', result + '_cnhw'
        return [helper.make_node('Transpose', [source], [result + '_cnhw_in'],
                                 name=result + '_cnhw_in', perm=[1, 0, 2, 3]),
                node,
                helper.make_node('Transpose', [result + '_cnhw'], [result],
                                 name=result + '_cnhw_out', perm=[1, 0, 2, 3])]
    return _replace_each(model.graph, wrapped)


def batchnorms_as_convolutions(model):
    """A BatchNormalization that ONNX Runtime could not fold into the
    convolution before it (the pre-activation BNs of the HPM and resnet
    blocks, whose input also feeds a concatenation or a residual sum) becomes
    the 1x1 depthwise convolution it computes, x * scale + shift per channel.
    The quantizer leaves BatchNormalization in float, between a dequantize and
    a quantize and, in the channels-last INT8 graph, between two transposes;
    as a convolution it runs in INT8 with per-channel weights (within float
    rounding of the BatchNorm's values)."""
    from onnx import helper
    constants = _Constants(model)
    graph = model.graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in list(graph.input) +
             list(graph.value_info)}
    rewritten = 0
    for node in graph.node:
        if node.op_type != 'BatchNormalization' or len(node.output) != 1 or \
                ranks.get(node.input[0]) != 4 or \
                not all(name in constants for name in node.input[1:5]):
            continue
        epsilon = next((a.f for a in node.attribute if a.name == 'epsilon'), 1e-5)
        gamma, beta, mean, var = (constants[name].astype(np.float64) for name in node.input[1:5])
        scale = gamma / np.sqrt(var + epsilon)
        weight = constants.add(node.output[0] + '_scale_as_conv',
                               scale.reshape(-1, 1, 1, 1).astype(np.float32))
        bias = constants.add(node.output[0] + '_shift_as_conv',
                             (beta - mean * scale).astype(np.float32))
        node.CopyFrom(helper.make_node('Conv', [node.input[0], weight, bias], list(node.output),
                                       name=node.name, group=len(scale), kernel_shape=[1, 1]))
        rewritten += 1
    _prune(graph)
    return rewritten


def products_into_scales(model):
    """In the quantized graph, fold each multiplication by a positive
    power-of-two constant (the halvings above, the input's 1/128) into the
    quantization before it: Q(s1) -> DQ -> Mul(c) -> Q(s2) becomes Q(s2 / c),
    whose integers the consumers read with their own DQ(s2). One rounding
    instead of two, and one node instead of three; with the min-max
    calibration (s2 = c * s1) the integers are the same as before. Returns
    the number of products folded."""
    constants = _Constants(model)
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    kept = {out.name for out in graph.output}

    def only_reader(name, op_type):
        """The one node reading tensor `name`, if it is an `op_type`."""
        nodes = readers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type and \
            name not in kept else None

    def scalar(name):
        node = producer.get(name)
        if name in constants:
            value = constants[name]
        elif node is not None and node.op_type == 'DequantizeLinear' and \
                all(i in constants for i in node.input):
            q, scale, zero = (constants[i] for i in node.input)
            value = (q.astype(np.float64) - zero) * scale
        else:
            return None
        if value.size != 1:
            return None
        value = float(value.reshape(()))
        if not value > 0:
            return None
        power = 2.0 ** np.round(np.log2(value))
        return power if abs(value / power - 1) < 1e-4 else None

    removed, folded = [], {}        # folded: tensor -> factor already in its quantization
    for mul in list(graph.node):
        factor = scalar(mul.input[1]) if mul.op_type == 'Mul' else None
        dequantize = producer.get(mul.input[0])
        if factor is None or dequantize is None or dequantize.op_type != 'DequantizeLinear':
            continue
        first = producer.get(dequantize.input[0])
        second = only_reader(mul.output[0], 'QuantizeLinear')
        if first is None or first.op_type != 'QuantizeLinear' or second is None or \
                only_reader(first.output[0], 'DequantizeLinear') is None or \
                only_reader(dequantize.output[0], 'Mul') is None:     # theirs alone
            continue
        factor *= folded.pop(first.output[0], 1.0)
        first.input[1] = constants.add(second.input[1] + '_over_%g' % factor,
                                       (constants[second.input[1]] / factor).astype(np.float32))
        first.input[2] = second.input[2]
        first.output[0] = second.output[0]
        producer[first.output[0]], folded[first.output[0]] = first, factor
        removed += [dequantize, mul, second]
    for node in removed:
        graph.node.remove(node)
    _prune(graph)
    return len(removed) // 3


def _replace_each(graph, replacement):
    """Put the nodes `replacement(node)` returns (a list, or None to keep
    the node) in place of each node, in order; returns how many were
    replaced."""
    nodes, replaced = [], 0
    for node in graph.node:
        instead = replacement(node)
        nodes += [node] if instead is None else instead
        replaced += instead is not None
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
    return replaced


def _prune(graph):
    """Drop the nodes and initializers nothing reads any more (ONNX Runtime
    warns about each unused initializer)."""
    kept = {out.name for out in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | kept
        dead = [node for node in graph.node if not any(out in read for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    unused = [t for t in graph.initializer if t.name not in read]
    for tensor in unused:
        graph.initializer.remove(tensor)


# Applied by the export to the FP32 graph (which INT8 is made from).
EXPORT = (nearest_by_whole_factors, sums_as_adds, halvings_as_products)
# Applied by the quantizer to its temporary copy before quantizing, and to
# the quantized graph.
BEFORE_INT8 = (batchnorms_as_convolutions, upsamplings_kept_channels_first)
AFTER_INT8 = (products_into_scales,)
# The revision of these rewrites (and so of the graphs exported with them),
# kept in the record of a cached export, which is made again when it differs:
# raise it when a rewrite changes.
REVISION = 3


def apply(model, rewrites):
    """Run `rewrites` on `model` in order."""
    for rewrite in rewrites:
        rewrite(model)
    return model


def apply_to_file(path, rewrites):
    """Run `rewrites` on the ONNX file at `path`, in place."""
    import onnx
    onnx.save(apply(onnx.load(path), rewrites), path)
