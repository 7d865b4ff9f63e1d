"""INT8 inference on the CPU: static QDQ quantization of an ONNX export with
ONNX Runtime's own tools (per-channel INT8 weights, UINT8 activations: the
fast VNNI/AVX2 path of x86 CPUs; INT8 activations are slower there than
FP32), calibrated on the protocol's evaluation crops, and compared with FP32
on held-out crops before anything is written. With the export's rewrites,
those before and after quantization (core.inference.rewrites) keep the whole
network in INT8 and channels-last: the residual sums and their halvings, the
sums between stacks, the pre-activation BatchNorms, and the upsamplings on
their fast path.

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
from core.inference import rewrites
from core.inference.export import ort_session, quiet_root_logger

log = logging.getLogger(__name__)

CALIBRATION_FACES, HELD_OUT_FACES = 64, 64
MAX_LOSS = 2.0          # percent: the largest relative NME increase accepted


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
            # auto_merge: its symbolic shape inference cannot tell that the
            # batch of an upsampling's output is the batch of the Add it meets.
            quant_pre_process(fp32_path, prepared, auto_merge=True)
            rewrites.apply_to_file(prepared, rewrites.BEFORE_INT8)
            quantize_static(prepared, int8, Crops(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            rewrites.apply_to_file(int8, rewrites.AFTER_INT8)
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
