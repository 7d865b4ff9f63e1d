"""The evaluation protocol of docs/protocol.md, in one place: the
ground-truth box crop with its per-set top raise, heatmap decoding, the
ground-truth round trip, the normalisations and NME, plus the field's usual
extras (CED curve, AUC, failure rate).

Training validation, `test_rec_nme.py` and the photo handler all use it.
Evaluation takes a predictor (a function from a data batch to heatmaps), so
that a test can pass an oracle and the trainer its own module.
"""
import cv2
import numpy as np

from data import geometry, sets

EVAL_BOX_SCALE = 1.2


# The crop ----------------------------------------------------------------------

def landmark_box(points, top_raise):
    """Box (x1, y1, x2, y2) of landmarks with its top raised, clamped at 0."""
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return np.array([x1, max(y1 - top_raise, 0), x2, y2])


def box_crop(box, size, box_scale=EVAL_BOX_SCALE):
    """Crop transform of section 4.3: max(w, h) x box_scale to `size`, no
    rotation, the box centre (each coordinate truncated) to the crop centre."""
    x1, y1, x2, y2 = box[:4]
    scale = size / (box_scale * max(x2 - x1, y2 - y1))
    centre = np.array([int((x1 + x2) / 2), int((y1 + y2) / 2)], dtype=np.float64)
    return np.array([[scale, 0, size / 2.0 - scale * centre[0]],
                     [0, scale, size / 2.0 - scale * centre[1]]])


def eval_transforms(points, top_raise, input_size, scheme):
    """The two transforms of the protocol: the 5-point similarity (by the
    landmark scheme's five points) to the record template, then the box
    crop to the input size."""
    align = geometry.alignment_transform(points, scheme)
    box = landmark_box(geometry.apply(align, points), top_raise)
    return align, box_crop(box, input_size)


class EvalCrop(object):
    """The protocol's crop for one test set, as the evaluation iterator
    takes it: points -> (align, crop) transforms."""

    def __init__(self, dataset, input_size, scheme):
        self.top_raise, self.input_size = sets.get(dataset).top_raise, input_size
        self.scheme = scheme

    def __call__(self, points):
        return eval_transforms(points, self.top_raise, self.input_size, self.scheme)


# Decoding ------------------------------------------------------------------------

def resize_heatmaps(heatmaps, size):
    """(N, C, h, w) -> (N, C, size, size) with cv2.resize (bilinear,
    half-pixel centres), as the original decoding did."""
    out = np.empty(heatmaps.shape[:2] + (size, size), dtype=np.float32)
    for n, maps in enumerate(heatmaps):
        resized = cv2.resize(np.ascontiguousarray(maps.transpose(1, 2, 0)), (size, size),
                             interpolation=cv2.INTER_LINEAR)
        out[n] = resized.reshape(size, size, -1).transpose(2, 0, 1)
    return out


def decode_argmax(heatmaps, input_size):
    """The original: resize each map to the input size, take its argmax
    (row, col) as (y, x)."""
    maps = resize_heatmaps(np.asarray(heatmaps, dtype=np.float32), input_size)
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1).argmax(axis=2)
    return np.stack([flat % input_size, flat // input_size], axis=2).astype(np.float64)


def decode_subpixel(heatmaps, input_size):
    """Sub-pixel decoding on the heatmap grid: the argmax refined by the
    vertex of a parabola through it and its two neighbours on each axis,
    then mapped to input pixels (label pixel j covers input [j*s, (j+1)*s))."""
    maps = np.asarray(heatmaps, dtype=np.float64)
    n, c, h, w = maps.shape
    flat = maps.reshape(n, c, -1).argmax(axis=2)
    ys, xs = flat // w, flat % w
    ii, jj = np.meshgrid(np.arange(n), np.arange(c), indexing='ij')

    def offset(centre, before, after):
        curvature = before - 2 * centre + after
        with np.errstate(divide='ignore', invalid='ignore'):
            delta = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
        return np.clip(delta, -0.5, 0.5)

    centre = maps[ii, jj, ys, xs]
    dx = offset(centre, maps[ii, jj, ys, np.clip(xs - 1, 0, w - 1)],
                maps[ii, jj, ys, np.clip(xs + 1, 0, w - 1)])
    dy = offset(centre, maps[ii, jj, np.clip(ys - 1, 0, h - 1), xs],
                maps[ii, jj, np.clip(ys + 1, 0, h - 1), xs])
    dx = np.where((xs == 0) | (xs == w - 1), 0, dx)
    dy = np.where((ys == 0) | (ys == h - 1), 0, dy)
    scale = input_size / float(w)
    return np.stack([(xs + dx + 0.5) * scale - 0.5, (ys + dy + 0.5) * scale - 0.5], axis=2)


# The heatmap decoders, by name: heatmaps (N, C, h, w) and the input size
# -> (N, C, 2) points in the input crop. Scripts offer these names.
DECODERS = {'argmax': decode_argmax, 'subpixel': decode_subpixel}


def uninformative(heatmaps):
    """(N, C) True where a map says nothing of where its point is: a value
    that is not finite, or the same value everywhere (a network unsure of a
    face, INT8 of random weights)."""
    flat = np.asarray(heatmaps).reshape(len(heatmaps), np.shape(heatmaps)[1], -1)
    with np.errstate(invalid='ignore'):
        return ~np.isfinite(flat).all(axis=2) | ~(flat.max(axis=2) > flat.min(axis=2))


def decode(heatmaps, input_size, decoder='argmax'):
    """(N, C, 2) points in the input crop by one of the DECODERS, always
    finite: a map that says nothing (`uninformative`) gives the crop's
    centre, and its confidence (`peak_values`) is 0."""
    if decoder not in DECODERS:
        raise ValueError('decoder must be one of %s, got %r' % (', '.join(DECODERS), decoder))
    heatmaps = np.asarray(heatmaps)
    blank = uninformative(heatmaps)
    points = DECODERS[decoder](np.where(blank[:, :, None, None], 0, heatmaps), input_size)
    points[blank] = (input_size - 1) / 2.0
    return points


def peak_values(heatmaps):
    """(N, C) maximum of each heatmap: the per-point confidence (the
    published models are trained towards a peak of 20); 0 for a map that
    says nothing of its point."""
    heatmaps = np.asarray(heatmaps)
    blank = uninformative(heatmaps)
    peaks = np.where(blank[:, :, None, None], 0, heatmaps)
    return peaks.reshape(heatmaps.shape[0], heatmaps.shape[1], -1).max(axis=2) * ~blank


# Ground truth and errors -------------------------------------------------------------

def to_record_frame(crop_points, align, crop):
    """Map points of the input crop back through both inverse transforms."""
    return geometry.apply(geometry.invert(align),
                          geometry.apply(geometry.invert(crop), crop_points))


def round_trip_ground_truth(points, align, crop, landmark_type):
    """Ground truth into the crop, floored (2D) or rounded (3D), and back."""
    in_crop = geometry.apply(crop, geometry.apply(align, points))
    in_crop = np.floor(in_crop) if landmark_type == '2d' else np.round(in_crop)
    return to_record_frame(in_crop, align, crop)


def normaliser(gt, scheme, landmark_type, norm=None):
    """Per-image normalising distance of (N, P, 2) ground truth: by the
    landmark scheme's normalisation `norm` (its published one when None;
    for the 68 points `eyes`, the eye-centre distance, and `ocular`, the
    outer eye corners 36-45); `box` = sqrt(w h) of the landmark box, which
    the 3D sets always use."""
    if landmark_type == '3d':
        norm = 'box'
    return scheme.normaliser(gt, norm)


def nme(pred, gt, scheme, landmark_type, norm=None):
    """Per-image normalised mean error: mean point-to-point distance over
    the points divided by the normaliser."""
    errors = np.linalg.norm(np.asarray(pred, dtype=np.float64) - gt, axis=2).mean(axis=1)
    return errors / normaliser(gt, scheme, landmark_type, norm)


def ced(errors, threshold, steps=1000):
    """(x, fraction of images with error <= x) on [0, threshold]."""
    x = np.linspace(0, threshold, steps + 1)
    errors = np.sort(np.asarray(errors))
    return x, np.searchsorted(errors, x, side='right') / float(len(errors))


def auc(errors, threshold):
    """Area under the CED curve up to `threshold`, divided by `threshold`."""
    x, y = ced(errors, threshold)
    return float(np.trapz(y, x) / threshold)


def failure_rate(errors, threshold):
    """Fraction of images whose NME is above `threshold`."""
    return float(np.mean(np.asarray(errors) > threshold))


def metrics(pred, trips, scheme, landmark_type):
    """Per-image NME under the protocol's normalisation (`nme`) and each
    other one of the scheme (`nme_NAME`, e.g. nme_ocular, nme_box)."""
    found = {'nme': nme(pred, trips, scheme, landmark_type)}
    for norm in scheme.norm_names[1:]:
        found['nme_' + norm] = nme(pred, trips, scheme, landmark_type, norm)
    return found


# Running it --------------------------------------------------------------------------

def predict_record_frame(predictor, batches, input_size, landmark_type, decoders=('argmax',)):
    """Run `predictor(batch) -> (N, 68, h, w) heatmaps` over evaluation
    batches (aug_level 0 iterator). Returns ({decoder: predicted points},
    round-tripped ground truth, record keys), in the record frame, for the
    valid samples."""
    preds = {d: [] for d in decoders}
    trips, keys = [], []
    for batch in batches:
        keep = np.flatnonzero(batch.valid)
        if keep.size == 0:
            continue
        heatmaps = np.asarray(predictor(batch))[keep]
        for decoder in decoders:
            crop_points = decode(heatmaps, input_size, decoder)
            preds[decoder] += [to_record_frame(p, *batch.transforms[i])
                               for p, i in zip(crop_points, keep)]
        for i in keep:
            trips.append(round_trip_ground_truth(batch.points[i], *batch.transforms[i],
                                                 landmark_type))
            keys.append(int(batch.keys[i]))
    return {d: np.array(p) for d, p in preds.items()}, np.array(trips), keys


def evaluate(predictor, batches, input_size, scheme, landmark_type, decoder='argmax'):
    """Per-image NMEs ({'nme', 'nme_ocular', 'nme_box', ...}) of one decoder."""
    preds, trips, _ = predict_record_frame(predictor, batches, input_size, landmark_type,
                                           (decoder,))
    return metrics(preds[decoder], trips, scheme, landmark_type)
