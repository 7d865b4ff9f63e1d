"""Landmarks on photos (docs/protocol.md, "Photos"), and the Python API.

    from core.inference.handler import Handler
    handler = Handler('models/model-hg2d3-cab/model')     # its best checkpoint
    for face in handler.get_landmarks('photo.jpg'):       # a path or a BGR array
        face.landmarks      # (P, 2) x, y in photo pixels (68 for the iBUG scheme)
        face.box            # x1, y1, x2, y2
        face.score          # the detector's score in [0, 1]
        face.confidence     # (P,) heatmap peak of each point

Faces come from the detector (`essh.create`), or from `boxes` you give.
Faces whose detector gives plausible five points (libfacedetection, ESSH)
are aligned by them in one network pass; boxes only take two: a first
prediction in the box's crop gives the five points. `align` predicts the
faces of several photos together.
"""
import collections
import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import essh
from data import geometry
from data.images import ImageError, list_images, read_image, to_bgr8
from data.landmarks import shaped_like_a_face
from data.sets import DEFAULT_TOP_RAISE

from core.evaluation import protocol
from core.evaluation.protocol import box_crop, landmark_box
from core.inference.predictor import make_predictor
from core.plumbing.runs import resolve, trained_on

log = logging.getLogger(__name__)

# Smallest image side (pixels) in which a face is looked for.
MIN_FACE_SIDE = 20


class Photo(collections.namedtuple('Photo', 'source image faces error')):
    """A photo of `Handler.each_photo`: its path (or array), the BGR image,
    its [Face] (its detections before it is aligned), or the error that
    stopped it."""


class Face(collections.namedtuple('Face', 'landmarks box score confidence five shape_error')):
    """One face: its (x, y) landmarks (of the model's landmark scheme), the
    detector's box (x1, y1, x2, y2), score and five points (None for boxes
    given or a detector without points), a per-point confidence (heatmap
    peak), and how far the landmarks are from a face shape
    (data.landmarks.Scheme.shape_error; None for a scheme without a mean
    shape)."""

    @property
    def plausible(self):
        """Whether the landmarks look like a face: their shape is close to
        the scheme's mean shape and some point's heatmap has a peak."""
        return shaped_like_a_face(self.shape_error) and \
            bool(np.max(self.confidence, initial=0) > 0)

    def to_json(self):
        return {'box': [round(float(v), 2) for v in self.box], 'score': round(float(self.score), 4),
                'five': None if self.five is None else np.round(self.five, 2).tolist(),
                'landmarks': np.round(self.landmarks, 2).tolist(),
                'confidence': np.round(self.confidence, 3).tolist(),
                'shape_error': None if self.shape_error is None else round(self.shape_error, 4),
                'plausible': self.plausible}


_WARNED = set()


def warn_of_synthetic_training(prefix):
    """One warning per checkpoint and process when its network learnt from
    synthetic faces: its landmarks on photos mean nothing."""
    origin = trained_on(prefix)
    if origin and origin.get('faces') == 'synthetic' and prefix not in _WARNED:
        _WARNED.add(prefix)
        log.warning('%s was trained on synthetic faces (%s): its landmarks on photos are not '
                    'meaningful; for real faces take a published model (python -m '
                    'tools.download hg2d3-cab) or train on annotated photos', prefix,
                    origin.get('made by', 'no photos'))


def plausible_five(five, box):
    """Whether 5 points look like a face in `box`: eye distance 20-80% of
    the box side, the mouth below the eyes by 0.5-2 eye distances. A first
    pass failing this is kept as the answer rather than re-aligned."""
    side = geometry.box_side(box)
    eyes = five[1] - five[0]
    distance = np.linalg.norm(eyes)
    if not 0.2 * side < distance < 0.8 * side:
        return False
    normal = np.array([-eyes[1], eyes[0]]) / distance
    drop = np.dot((five[3] + five[4]) / 2 - (five[0] + five[1]) / 2, normal)
    return 0.5 * distance < drop < 2.0 * distance


def detector_crop(box, size, scale, shift):
    """First-pass crop of a detector box: side scale x max(w, h), centre
    moved down by shift x max(w, h) (how the protocol's crop sits on it)."""
    side = geometry.box_side(box)
    return box_crop(np.asarray(box[:4], dtype=np.float64) + [0, shift * side, 0, shift * side],
                    size, scale)


class Handler(object):
    """Face alignment on photos with the checkpoint at `prefix`.

    epoch: the checkpoint number (None: the run's best); gpu: -1 for the
    CPU; detector: a name of `essh.DETECTORS`, a Detector, or None for the
    default, made with `threshold`, `gpu` and `detector_options` (e.g.
    {'prefix': ...} for ESSH) as `essh.create` makes every detector; backend:
    'auto' (ONNX Runtime on the CPU when the network exports, else MXNet),
    'mxnet' or 'onnx'; decoder: 'subpixel' or 'argmax' (the original).
    """

    def __init__(self, prefix, epoch=None, gpu=-1, detector=None, threshold=None,
                 decoder='subpixel', backend='auto', predictor=None, detector_options=None):
        self.checkpoint = resolve(prefix, epoch)
        log.info('%s', self.checkpoint.describe())
        warn_of_synthetic_training(prefix)
        self.predictor = predictor or make_predictor(self.checkpoint, backend, gpu)
        self.input_size, self.decoder = self.checkpoint.input_size, decoder
        self.scheme = self.checkpoint.cfg.scheme
        self.detector = detector if isinstance(detector, essh.Detector) else \
            essh.create(detector, threshold, gpu, **(detector_options or {}))

    # Pieces -----------------------------------------------------------------

    def predict_crops(self, items):
        """(points in photo pixels, heatmap peaks) of each (image_rgb, chain
        of transforms photo -> crop), all crops in one predictor call."""
        if not items:
            return np.zeros((0, self.scheme.count, 2)), np.zeros((0, self.scheme.count))
        crops = []
        for image_rgb, chain in items:
            current = image_rgb
            for matrix, size in chain:
                current = geometry.warp(current, matrix, size)
            crops.append(current.transpose(2, 0, 1))
        heatmaps = self.predictor(np.array(crops, dtype=np.float32))
        crop_points = protocol.decode(heatmaps, self.input_size, self.decoder)
        out = []
        for (_, chain), points in zip(items, crop_points):
            for matrix, _ in reversed(chain):
                points = geometry.apply(geometry.invert(matrix), points)
            out.append(points)
        return np.array(out), protocol.peak_values(heatmaps)

    def _box_crop(self, box):
        """The crop of one of the detector's boxes (its own convention)."""
        return detector_crop(box, self.input_size, self.detector.box_scale,
                             self.detector.box_shift)

    def _frame_crop(self, image_rgb, align, first_points):
        """The crop in the aligned 384 frame: of the detector's box found
        again there, nearest the centre, for faces aligned by the detector's
        points; of the box of the first prediction carried into that frame
        otherwise."""
        if first_points is not None:
            return box_crop(landmark_box(geometry.apply(align, first_points), DEFAULT_TOP_RAISE),
                            self.input_size)
        aligned = geometry.warp(image_rgb, align, geometry.RECORD_SIZE)
        found = self.detector.detect(np.ascontiguousarray(aligned[:, :, ::-1]))
        if not len(found):
            return box_crop(landmark_box(geometry.NEUTRAL_FACE, DEFAULT_TOP_RAISE),
                            self.input_size)
        centres = (found.boxes[:, :2] + found.boxes[:, 2:4]) / 2
        return self._box_crop(found.boxes[np.argmin(np.linalg.norm(
            centres - geometry.RECORD_SIZE / 2, axis=1))])

    def chain_from_points(self, image_rgb, points):
        """The transforms (photo -> record frame -> crop) of a face whose
        landmarks are known (the previous frame's, in a video)."""
        align = geometry.umeyama(self.scheme.five_points(points), geometry.TEMPLATE_384)
        return [(align, geometry.RECORD_SIZE), (self._frame_crop(image_rgb, align, points),
                                                self.input_size)]

    def track(self, video, **options):
        """Frame(index, time, image, faces) of each frame of a video path or
        of an iterable of BGR frames; each face (core.inference.video.TrackedFace) has
        its track number. Options: detect_every, smooth ((min_cutoff, beta)
        or None), fps (of frames given as arrays). See core.inference.video."""
        from core.inference import video as videos
        return videos.track(self, video, **options)

    def align(self, images_bgr, founds):
        """[[Face]] of each image given its detections, the faces of all the
        images predicted together. A face whose detector gave plausible five
        points takes one network pass; the others take two (a first
        prediction in the box's crop gives the five points), and keep the
        first when its five points are not plausible either."""
        rgbs = [np.ascontiguousarray(image[:, :, ::-1]) for image in images_bgr]
        size, frame = self.input_size, geometry.RECORD_SIZE
        faces = [(i, k) for i, found in enumerate(founds) for k in range(len(found))]
        fives = {}
        for i, k in faces:
            points = founds[i].points
            if points is not None and plausible_five(points[k], founds[i].boxes[k]):
                fives[i, k] = points[k]
        boxed = [face for face in faces if face not in fives]
        first = dict(zip(boxed, zip(*self.predict_crops(
            [(rgbs[i], [(self._box_crop(founds[i].boxes[k]), size)]) for i, k in boxed]))))
        for (i, k), (points, _) in first.items():
            five = self.scheme.five_points(points)
            if plausible_five(five, founds[i].boxes[k]):
                fives[i, k] = five
        second = [face for face in faces if face in fives]
        items = []
        for i, k in second:
            align = geometry.umeyama(fives[i, k], geometry.TEMPLATE_384)
            before = first[i, k][0] if (i, k) in first else None
            items.append((rgbs[i], [(align, frame), (self._frame_crop(rgbs[i], align, before),
                                                     size)]))
        results = dict(first)
        results.update(zip(second, zip(*self.predict_crops(items))))
        out = [[] for _ in images_bgr]
        for i, k in faces:
            landmarks, confidence = results[i, k]
            five = None if founds[i].points is None else founds[i].points[k]
            out[i].append(Face(landmarks, founds[i].boxes[k], founds[i].scores[k], confidence,
                               five, self.scheme.shape_error(landmarks)))
        return out

    # Public API -------------------------------------------------------------

    def detect(self, image):
        """The detector's faces (essh.Detections) of an image or path."""
        return self.detector.detect(self._image(image))

    def get_landmarks(self, image, boxes=None):
        """[Face] of a BGR image (grey, BGRA, 16-bit converted) or an image
        path; `boxes` (N, 4) or (N, 5) with scores skips the detector (see
        `find`)."""
        image, found = self.find(image, boxes)
        return self.align([image], [found])[0]

    def find(self, image, boxes=None):
        """(BGR image, essh.Detections): the detector's faces, or `boxes`
        checked against the image (a box reaching out of it is clipped, with
        a warning; an empty, inverted or wholly outside box is a BoxError).
        An image smaller than MIN_FACE_SIDE is an ImageError."""
        image = self._image(image)
        height, width = image.shape[:2]
        if min(height, width) < MIN_FACE_SIDE:
            raise ImageError('the image is %dx%d pixels, smaller than a face can be (%d pixels)'
                             % (width, height, MIN_FACE_SIDE))
        if boxes is None:
            found = self.detector.detect(image)
        else:
            boxes, clipped = essh.checked_boxes(boxes, width, height)
            for k in clipped:
                log.warning('box %d reaches out of the %dx%d image; clipped to %s', k, width,
                            height, np.round(boxes[k, :4], 1).tolist())
            found = essh.Detections.from_boxes(boxes)
        return image, found

    def each_photo(self, photos, boxes_of=None, batch=8):
        """Photo(source, image, faces, error) for each photo (a path or a BGR
        array), in order. A thread reads and searches the next photos while
        the network aligns the faces of the current ones, up to `batch` faces
        of several photos per network call; memory stays flat whatever the
        number of photos. `boxes_of(photo)` gives a photo's boxes instead of
        the detector. A photo that cannot be used carries its error."""
        def load(photo):
            try:
                image, found = self.find(photo, None if boxes_of is None else boxes_of(photo))
                return Photo(photo, image, found, None)
            except (ImageError, essh.BoxError, OSError) as err:
                name = photo if isinstance(photo, str) else 'photo'
                text = str(err) if str(err).startswith(name) else '%s: %s' % (name, err)
                return Photo(photo, None, None, text)

        def flush(group):
            usable = [p for p in group if p.error is None]
            aligned = iter(self.align([p.image for p in usable], [p.faces for p in usable]))
            return [p if p.error else p._replace(faces=next(aligned)) for p in group]

        ahead = max(2, batch)
        group, count = [], 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = collections.deque()
            for photo in itertools.chain(photos, [None] * ahead):
                if photo is not None:
                    pending.append(pool.submit(load, photo))
                if len(pending) > ahead or (photo is None and pending):
                    found = pending.popleft().result()
                    group.append(found)
                    count += len(found.faces) if found.error is None else 0
                    if count >= batch:
                        yield from flush(group)
                        group, count = [], 0
        yield from flush(group)

    def get_landmarks_from_directory(self, folder, recursive=True, batch=8):
        """{image path: [Face]} for every image under `folder` (see
        `each_photo`); unreadable images are left out, with a warning."""
        found = collections.OrderedDict()
        for photo in self.each_photo(list_images(folder, recursive), batch=batch):
            if photo.error:
                log.warning('%s', photo.error)
            else:
                found[photo.source] = photo.faces
        return found

    @staticmethod
    def _image(image):
        return read_image(image) if isinstance(image, (str, os.PathLike)) else to_bgr8(image)
