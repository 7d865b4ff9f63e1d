"""INT8 inference on the CPU: static QDQ quantization of an ONNX export with
ONNX Runtime's own tools (per-channel INT8 weights, UINT8 activations: the
fast VNNI/AVX2 path of x86 CPUs; INT8 activations are slower there than
FP32), calibrated on the protocol's evaluation crops, and compared with FP32
on held-out crops before anything is written. Three graph rewrites keep the
whole network in INT8: the residual sums and their halvings
(halvings_as_products, then products_into_scales) and the pre-activation
BatchNorms (batchnorms_as_convolutions); the FP32 export is left as it is.

Weights use 7 of their 8 bits (reduce_range): without VNNI, x86 multiplies
u8 x s8 pairs into saturating 16-bit sums, and full-range weights against
the first layer's 0-255 pixels overflow them (a briefly trained network lost
3.3% relative NME on an AVX2-only CPU; with 7 bits, none). The file then
gives the same figures on CPUs with and without VNNI.
"""
import logging
import os
import tempfile

import numpy as np

from data.files import write_atomic
from data.iterator import FaceSegIter
from data.recordio import gate
from data.synth import write_records

from core.evaluation import protocol
from core.inference.export import ort_session, quiet_root_logger

log = logging.getLogger(__name__)

CALIBRATION_FACES, HELD_OUT_FACES = 64, 64
MAX_LOSS = 2.0          # percent: the largest relative NME increase accepted


def _constants(model):
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def halvings_as_products(model):
    """Let ONNX Runtime keep the residual sums in INT8: a Sum of two inputs
    becomes an Add, a Div by a power-of-two constant a Mul by its reciprocal
    (the same values, exactly). Its quantizer makes QLinearAdd and QLinearMul
    of Add and Mul but leaves Sum and Div in float, with a dequantize before
    and a quantize after each: the published CAB graphs halve every residual
    sum ((a + b) / 2; 145 Sums and 138 Divs in hg2d3-cab). Rewrites `model`
    (an onnx ModelProto) in place; returns the number of nodes rewritten."""
    from onnx import numpy_helper
    constants = _constants(model)
    rewritten = 0
    for node in model.graph.node:
        if node.op_type == 'Sum' and len(node.input) == 2:
            node.op_type = 'Add'
        elif node.op_type == 'Div' and node.input[1] in constants and \
                np.all(np.frexp(constants[node.input[1]])[0] == 0.5):
            divisor = constants[node.input[1]]
            name = node.input[1] + '_reciprocal'
            if name not in constants:
                constants[name] = (1 / divisor).astype(divisor.dtype)
                model.graph.initializer.append(numpy_helper.from_array(constants[name], name))
            node.op_type, node.input[1] = 'Mul', name
        else:
            continue
        rewritten += 1
    _prune(model.graph)
    return rewritten


def batchnorms_as_convolutions(model):
    """A BatchNormalization that ONNX Runtime could not fold into the
    convolution before it (the pre-activation BNs of the HPM and resnet
    blocks, whose input also feeds a concatenation or a residual sum) becomes
    the 1x1 depthwise convolution it computes, x * scale + shift per channel.
    The quantizer leaves BatchNormalization in float, between a dequantize and
    a quantize and, in the channels-last INT8 graph, between two transposes;
    as a convolution it runs in INT8 with per-channel weights. Rewrites
    `model` in place; returns the number of nodes rewritten."""
    from onnx import helper, numpy_helper
    constants = _constants(model)
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
        weight, bias = node.output[0] + '_scale_as_conv', node.output[0] + '_shift_as_conv'
        graph.initializer.extend([
            numpy_helper.from_array(scale.reshape(-1, 1, 1, 1).astype(np.float32), weight),
            numpy_helper.from_array((beta - mean * scale).astype(np.float32), bias)])
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
    calibration (s2 = c * s1) the integers are the same as before. Rewrites
    `model` in place; returns the number of products folded."""
    from onnx import numpy_helper
    constants = _constants(model)
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
        if value.size != 1 or not value.reshape(()) > 0:
            return None
        power = 2.0 ** np.round(np.log2(float(value.reshape(()))))
        return power if abs(value.reshape(()) / power - 1) < 1e-4 else None

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
        name = second.input[1] + '_over_%g' % factor
        if name not in constants:
            constants[name] = (constants[second.input[1]] / factor).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(constants[name], name))
        first.input[1], first.input[2] = name, second.input[2]
        first.output[0] = second.output[0]
        producer[first.output[0]], folded[first.output[0]] = first, factor
        removed += [dequantize, mul, second]
    for node in removed:
        graph.node.remove(node)
    _prune(graph)
    return len(removed) // 3


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


def _rewrite(path, *steps):
    """Apply graph rewrites to the ONNX file at `path`, in place."""
    import onnx
    model = onnx.load(path)
    for step in steps:
        step(model)
    onnx.save(model, path)


class QuantizationRefused(ValueError):
    """INT8 loses more accuracy than allowed; nothing was written."""


def _batches(rec, cfg, dataset):
    it = FaceSegIter(rec, cfg, 8, aug_level=0, workers=0,
                     eval_crop=protocol.EvalCrop(dataset, cfg.input_img_size, cfg.scheme))
    return list(it)


def held_out_nme(session, batches, cfg):
    """Mean NME (%, the protocol's argmax figure) of an ONNX session."""
    name = session.get_inputs()[0].name
    preds, trips, _ = protocol.predict_record_frame(
        lambda batch: session.run(None, {name: batch.data[0].asnumpy()})[0], batches,
        cfg.input_img_size, cfg.landmark_type)
    return 100.0 * float(np.mean(protocol.nme(preds['argmax'], trips, cfg.scheme,
                                              cfg.landmark_type)))


def calibration_set(calibration, folder, seed=0):
    """(record set, description): the given NAME.rec, else synthetic faces
    made now (CALIBRATION_FACES + HELD_OUT_FACES)."""
    if calibration:
        if len(gate(calibration, 0.0, 'a calibration set must read whole')) < 2:
            raise ValueError('%s: calibration needs at least 2 records' % calibration)
        return calibration, os.path.abspath(calibration)
    rec = os.path.join(folder, 'calibration.rec')
    write_records(rec[:-4], CALIBRATION_FACES + HELD_OUT_FACES, seed=seed, progress=False)
    return rec, 'synthetic:%d:seed%d' % (CALIBRATION_FACES + HELD_OUT_FACES, seed)


def quantize(fp32_path, out_path, cfg, calibration=None, max_loss=MAX_LOSS):
    """Write the INT8 model of `fp32_path` to `out_path`; returns (FP32 NME,
    INT8 NME) on the held-out crops. QuantizationRefused when INT8 is worse
    by more than `max_loss` percent (relative); None accepts any loss."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        rec, source = calibration_set(calibration, tmp)
        name = os.path.splitext(os.path.basename(rec))[0]
        batches = _batches(rec, cfg, name)
        split = max(1, min(len(batches) // 2, CALIBRATION_FACES // 8))
        calibrating, held_out = batches[:split], batches[split:] or batches
        # One crop per call: ONNX Runtime's calibration graph keeps every
        # activation of a call alive until its end (about 0.7 GB per crop
        # for hg2d3-cab), so batches of 8 would peak near 6 GB.
        crops = [crop[None] for b in calibrating for crop in b.data[0].asnumpy()[b.valid]]

        class Crops(CalibrationDataReader):
            def __init__(self):
                self.items = iter(crops)

            def get_next(self):
                item = next(self.items, None)
                return None if item is None else {'data': item}

        prepared = os.path.join(tmp, 'prepared.onnx')
        int8 = os.path.join(tmp, 'int8.onnx')
        with quiet_root_logger(logging.ERROR):
            quant_pre_process(fp32_path, prepared)
            _rewrite(prepared, halvings_as_products, batchnorms_as_convolutions)
            quantize_static(prepared, int8, Crops(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            _rewrite(int8, products_into_scales)
        nme32 = held_out_nme(ort_session(fp32_path), held_out, cfg)
        nme8 = held_out_nme(ort_session(int8), held_out, cfg)
        loss = 100.0 * (nme8 - nme32) / nme32
        count = sum(int(b.valid.sum()) for b in held_out)
        print('held-out NME on %d crops (calibration %s): FP32 %.3f%%, INT8 %.3f%% (%+.2f%% '
              'relative)' % (count, source, nme32, nme8, loss))
        if max_loss is not None and loss > max_loss:
            raise QuantizationRefused(
                'INT8 is %.2f%% worse than FP32 on the held-out crops (more than %g%%); nothing '
                'written. Calibrate on real faces (--calibration data_2d/ibug.rec) or accept the '
                'loss with --max-loss' % (loss, max_loss))
        with open(int8, 'rb') as f:
            write_atomic(out_path, f.read())
    return nme32, nme8
