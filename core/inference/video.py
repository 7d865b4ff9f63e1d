"""Landmarks on video: faces tracked from frame to frame and their points
smoothed.

The detector runs every `detect_every` frames and on every frame while no
face is tracked. In between, each face is found again from its own
landmarks of the previous frame, moved on at the constant velocity of its
box (aligned by their five points, one network pass), as long as the new
points hold: shaped like a face, at the scale of the track's last detection
(within `scale_band`), inside the frame, with a heatmap peak above
`lost_ratio` of the detection's. A track whose points do not hold is looked
for by the detector in that same frame, so a face the detector can find is
reported in every frame whatever the network's points are (a random or
briefly trained network included); one it cannot find is lost, and keeps
its number for a while for a detection where it is expected. Detections
take track numbers by the Hungarian assignment on the IoU of their boxes
with the tracks' predicted boxes (live tracks first, then lost ones; a
track's prediction is the better of the box its points carried on and the
box its detections' own motion predicts, so that a face that passed behind
another keeps its number when the points of a weak network followed the
wrong face); two tracks that come onto one face are merged. A face entering
the frame is found at the next detection, within `detect_every` frames. All the faces of
a frame go through the network together. Points are smoothed per track by a
One Euro filter: little smoothing when a point moves fast, much when it
stays (so still faces do not jitter and moving ones do not lag).
"""
import collections
import contextlib
import os
import signal
import threading

import cv2
import numpy as np

from data.geometry import box_side as side
from data.landmarks import shaped_like_a_face

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')
MIN_CUTOFF, BETA = 1.0, 0.02


class VideoError(ValueError):
    """A video that cannot be read; the message names it and the frame."""


def is_video_name(path):
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def list_videos(folder):
    """Sorted paths of the video files under `folder`."""
    found = []
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()
        found += [os.path.join(directory, n) for n in sorted(names) if is_video_name(n)]
    return found


VideoInfo = collections.namedtuple('VideoInfo', 'fps width height frames')


def open_video(path):
    """(cv2.VideoCapture, VideoInfo); VideoError when OpenCV cannot read it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError('%s: OpenCV cannot read it as a video (corrupt, truncated before its '
                         'index, or of an unknown format)' % path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(fps if fps and np.isfinite(fps) and fps > 0 else 25.0,
                     int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))))
    return capture, info


# Containers whose frame count is read from their index (exact), not
# estimated from the duration.
INDEXED = ('.avi', '.mp4', '.mov', '.m4v')


def read_frames(path):
    """(index, time in seconds, BGR frame) of each frame of a video file;
    VideoError when it holds no frame, ends well before the frame count its
    header announces (a truncated file), or holds fewer frames than that
    (damaged ones: OpenCV skips them and gives no timestamps to place the
    ones after, so their numbers and times are early)."""
    capture, info = open_video(path)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, index / info.fps, frame
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise VideoError('%s: no frame decodes (a corrupt or empty video)' % path)
    if info.frames and index < 0.9 * info.frames:
        raise VideoError('%s: ends after frame %d of the %d its header announces (truncated)'
                         % (path, index, info.frames))
    tolerance = 0 if str(path).lower().endswith(INDEXED) else max(2, info.frames // 100)
    if info.frames and index < info.frames - tolerance:
        raise VideoError('%s: %d of the %d frames its header announces did not decode '
                         '(damaged); the frames after a damaged one are numbered and timed '
                         'early by up to %d' % (path, info.frames - index, info.frames,
                                                info.frames - index))


class OneEuro(object):
    """One Euro filter (Casiez et al. 2012) of an array of values: the
    cut-off frequency grows with the speed, min_cutoff + beta |speed|."""

    def __init__(self, min_cutoff=MIN_CUTOFF, beta=BETA, d_cutoff=1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value = self.speed = self.time = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value, time):
        value = np.asarray(value, dtype=np.float64)
        if self.value is None or time <= self.time:
            self.value, self.speed, self.time = value, np.zeros_like(value), time
            return value
        dt = time - self.time
        speed = (value - self.value) / dt
        a = self._alpha(self.d_cutoff, dt)
        self.speed = a * speed + (1 - a) * self.speed
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        a = self._alpha(cutoff, dt)
        self.value = a * value + (1 - a) * self.value
        self.time = time
        return self.value


def iou(a, b):
    """Intersection over union of boxes (x1, y1, x2, y2)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def points_box(points):
    points = np.asarray(points)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def centre(box):
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def inside_share(box, width, height):
    """The share of `box`'s area inside a width x height frame."""
    w = min(box[2], width) - max(box[0], 0)
    h = min(box[3], height) - max(box[1], 0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(w, 0) * max(h, 0) / area if area > 0 else 0.0


TrackedFace = collections.namedtuple('TrackedFace',
                                     'track landmarks box score confidence raw detected '
                                     'shape_error')
Frame = collections.namedtuple('Frame', 'index time image faces')


class _Track(object):
    """One face's track: its box in the detector's convention, moving at a
    constant velocity; the scale of its last detection; its last points,
    and how its detected box sat on those points (to carry the box along
    with the points between detections)."""

    def __init__(self, number, box, score, smoother):
        self.number, self.score, self.smoother = number, score, smoother
        self.box = np.asarray(box[:4], dtype=np.float64)
        self.velocity = np.zeros(2)
        self.scale = side(self.box)
        self.raw = self.before = self.offset = None
        self.seen = self.detected_at = None
        # The detector's own motion of this face: its last detected box and
        # the velocity between its last two detections.
        self.detected_box, self.detected_velocity = self.box, np.zeros(2)

    def predicted(self, frames=1):
        """The box expected `frames` frames on (constant velocity)."""
        return self.box + np.tile(frames * self.velocity, 2)

    def predicted_by_detections(self, index):
        """The box expected at frame `index` from the detections alone: where
        a face is hidden by another, the points of the one in front can carry
        the box of the one behind (or leave it between the two), and the
        detector's motion still says where each face went."""
        frames = index - self.detected_at if self.detected_at is not None else 0
        return self.detected_box + np.tile(frames * self.detected_velocity, 2)

    def expected_points(self, frames=1):
        return self.raw + frames * self.velocity

    def box_of_points(self, points):
        """The detector-convention box of `points`, placed on them as the
        last detection's box sat on that detection's points."""
        box = points_box(points)
        if self.offset is None:
            return box
        size = side(box)
        return np.concatenate([centre(box) + self.offset[:2] * size,
                               centre(box) + self.offset[2:] * size])

    def moved(self, index, box, points, detected):
        step = max(1, index - self.seen) if self.seen is not None else 1
        if self.seen is not None:
            self.velocity = (centre(box) - centre(self.box)) / step
        self.box, self.before, self.raw, self.seen = np.asarray(box, np.float64), self.raw, \
            points, index
        if detected:
            if self.detected_at is not None and index > self.detected_at:
                self.detected_velocity = (centre(box) - centre(self.detected_box)) / (
                    index - self.detected_at)
            self.detected_box = np.asarray(box[:4], np.float64)
            self.scale, self.detected_at = side(box), index
            size = side(points_box(points))
            if size > 0:
                self.offset = np.concatenate([box[:2], box[2:4]]) - np.tile(
                    centre(points_box(points)), 2)
                self.offset = self.offset / size


class Tracker(object):
    """Faces of the frames of one video, in order (see the module's text).
    `smooth` is (min_cutoff, beta) or None for the raw points.

    A track's box is the detector's, carried between detections by its
    landmarks while they hold: plausibly shaped, at a scale within
    `scale_band` of its last detection, inside the frame, and with a heatmap
    peak above `lost_ratio` of the detection's. Otherwise the detector runs
    on that same frame, and the track is re-seeded from the detection its
    predicted box overlaps (IoU `match_iou`), or is lost; a lost track keeps
    its number for `keep` frames (default: 3 x detect_every) for a detection
    where it is expected. Detections take the numbers of live tracks, then of
    lost ones, by the Hungarian assignment on IoU; two tracks on one face
    (IoU > `merge_iou`) become one: the one the detector found, else the
    older number."""

    def __init__(self, handler, detect_every=10, smooth=(MIN_CUTOFF, BETA), match_iou=0.3,
                 lost_ratio=0.5, scale_band=1.5, merge_iou=0.5, keep=None):
        if detect_every < 1:
            raise ValueError('--detect-every must be at least 1, got %d' % detect_every)
        self.handler, self.detect_every, self.smooth = handler, detect_every, smooth
        self.match_iou, self.lost_ratio, self.scale_band = match_iou, lost_ratio, scale_band
        self.merge_iou, self.keep = merge_iou, keep or 3 * detect_every
        self.tracks, self.lost, self.next_number = [], [], 1
        self.last_detection, self.detections = None, 0
        self.reference = {}         # track number -> mean heatmap peak at its last detection

    def _smoother(self):
        return OneEuro(*self.smooth) if self.smooth else None

    def _due(self, index):
        return (self.last_detection is None or not self.tracks
                or index - self.last_detection >= self.detect_every)

    def step(self, index, time, image):
        """[TrackedFace] of one BGR frame."""
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        height, width = image.shape[:2]
        results = {}                    # track -> (points, confidence, box, detected)
        detected = self._due(index)
        if detected:
            results.update(self._detect(image, index, self.tracks + self.lost, results))
        followed = [t for t in self.tracks if t not in results]
        failed = [t for t in followed if not self._plausible(t.raw)]
        followed = [t for t in followed if t not in failed]
        if followed:
            points, confidence = self.handler.predict_crops(
                [(rgb, self.handler.chain_from_points(rgb, t.expected_points())) for t in followed])
            for track, p, c in zip(followed, points, confidence):
                box = track.box_of_points(p)
                if self._holds(track, p, c, box, width, height):
                    results[track] = (p, c, box, False)
                else:
                    failed.append(track)
        if failed and not detected:
            # Looked for by the detector in this same frame, every track
            # competing for its faces (a detection of a face followed well
            # goes to that face's track, not to one that lost it).
            results.update(self._detect(image, index, self.tracks + self.lost, {}))
        self.lost += [t for t in failed if t not in results]
        self._merge(results)
        out = []
        for track, (points, confidence, box, found) in results.items():
            if found:
                self.reference[track.number] = float(np.mean(confidence))
            track.moved(index, box, points, found)
            shown = track.smoother(points, time) if track.smoother else points
            clipped = np.clip(box, 0, [width, height, width, height])
            out.append(TrackedFace(track.number, shown, clipped, track.score, confidence, points,
                                   found, self.handler.scheme.shape_error(points)))
        self.tracks = sorted(results, key=lambda t: t.number)
        self.lost = [t for t in self.lost if t not in results and index - t.seen <= self.keep]
        return sorted(out, key=lambda f: f.track)

    def _plausible(self, points):
        return shaped_like_a_face(self.handler.scheme.shape_error(points))

    def _holds(self, track, points, confidence, box, width, height):
        """Whether a followed track's new points may carry it on."""
        peak = float(np.mean(confidence))
        return (self._plausible(points)
                and track.scale / self.scale_band <= side(box) <= track.scale * self.scale_band
                and inside_share(box, width, height) >= 0.5
                and peak > self.lost_ratio * self.reference.get(track.number, 0.0)
                and peak > 0)

    def _detect(self, image, index, candidates, taken):
        """{track: (points, confidence, box, True)} of the faces the
        detector finds in `image`: each takes the number of the candidate
        track it matches (live before lost), else a new number, unless it
        lies on a face already `taken` this frame."""
        self.last_detection, self.detections = index, self.detections + 1
        image, found = self.handler.find(image)
        faces = self.handler.align([image], [found])[0]
        live = [t for t in candidates if t in self.tracks]
        lost = [t for t in candidates if t not in self.tracks]
        free = list(range(len(faces)))
        results = {}
        for group in (live, lost):
            for track, k in self._assign(group, faces, free, index):
                free.remove(k)
                track.score = faces[k].score
                results[track] = (faces[k].landmarks, faces[k].confidence,
                                  np.asarray(faces[k].box[:4], np.float64), True)
        boxes = [r[2] for r in list(taken.values()) + list(results.values())]
        for k in free:
            if any(iou(faces[k].box, box) > self.merge_iou for box in boxes):
                continue                    # on a face already followed
            track = _Track(self.next_number, faces[k].box, faces[k].score, self._smoother())
            self.next_number += 1
            results[track] = (faces[k].landmarks, faces[k].confidence,
                              np.asarray(faces[k].box[:4], np.float64), True)
        return results

    def _assign(self, tracks, faces, free, index):
        """[(track, face index)] pairs of the Hungarian assignment on the IoU
        of each free face's box with each track's predicted box, the better
        of the box carried by its points and the box its detections alone
        predict."""
        if not tracks or not free:
            return []
        from scipy.optimize import linear_sum_assignment
        overlap = np.array([[max(iou(t.predicted(index - t.seen), faces[k].box),
                                 iou(t.predicted_by_detections(index), faces[k].box))
                             for k in free] for t in tracks])
        rows, cols = linear_sum_assignment(-overlap)
        return [(tracks[r], free[c]) for r, c in zip(rows, cols)
                if overlap[r, c] >= self.match_iou]

    def _merge(self, results):
        """Two tracks on one face become one: the one the detector found this
        frame, else the older number; the other waits among the lost (a face
        hidden by another in a crossing comes back under its own number)."""
        ordered = sorted(results, key=lambda t: t.number)
        for n, a in enumerate(ordered):
            for b in ordered[n + 1:]:
                if a not in results or b not in results or results[a][3] and results[b][3] \
                        or iou(results[a][2], results[b][2]) <= self.merge_iou:
                    continue
                gone = a if results[b][3] and not results[a][3] else b
                del results[gone]
                self.lost.append(gone)


def track(handler, source, **options):
    """Frame(index, time, image, [TrackedFace]) of each frame of `source`: a
    video path, or an iterable of BGR frames (at `fps`, default 25)."""
    fps = options.pop('fps', 25.0)
    tracker = Tracker(handler, **options)
    frames = read_frames(source) if isinstance(source, (str, os.PathLike)) else \
        ((i, i / fps, frame) for i, frame in enumerate(source))
    for index, time, image in frames:
        yield Frame(index, time, image, tracker.step(index, time, image))


def face_record(frame, face):
    """The JSON Lines record of one face in one frame."""
    return {'frame': frame.index, 'time': round(frame.time, 4), 'track': face.track,
            'detected': bool(face.detected),
            'box': [round(float(v), 2) for v in face.box[:4]],
            'score': round(float(face.score), 4),
            'landmarks': np.round(face.landmarks, 2).tolist(),
            'confidence': np.round(face.confidence, 3).tolist(),
            'shape_error': None if face.shape_error is None else round(face.shape_error, 4)}


def draw_tracks(image, faces, groups):
    """BGR frame with each face's points, box and track number."""
    from core.plumbing.drawing import draw_faces
    out = draw_faces(image, faces, groups)
    for face in faces:
        x1, y1 = int(face.box[0]), int(face.box[1])
        cv2.putText(out, '#%d' % face.track, (x1, max(12, y1 - 18)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (0, 200, 255), 2, cv2.LINE_AA)
    return out


def identities(faces_per_frame, truth_per_frame, min_iou=0.3):
    """How well tracks keep to faces whose true boxes are known: ({face:
    the track numbers seen on it}, the number of (frame, face) with two
    tracks on it). A track is on the face its box overlaps most (IoU above
    `min_iou`). `faces_per_frame` holds each frame's [TrackedFace],
    `truth_per_frame` its [true box or None] per face."""
    owners, duplicates = collections.defaultdict(set), 0
    for faces, truths in zip(faces_per_frame, truth_per_frame):
        on = collections.defaultdict(set)
        for face in faces:
            overlaps = [iou(face.box, t) if t is not None else 0.0 for t in truths]
            if overlaps and max(overlaps) > min_iou:
                on[int(np.argmax(overlaps))].add(face.track)
        for k, tracks in on.items():
            owners[k] |= tracks
            duplicates += len(tracks) > 1
    return dict(owners), duplicates


def jitter(series):
    """Mean frame-to-frame movement (pixels) of the points of a face:
    `series` (frames, points, 2)."""
    series = np.asarray(series, dtype=np.float64)
    return float(np.linalg.norm(np.diff(series, axis=0), axis=2).mean())



class VideoResults(object):
    """The JSON Lines file and the overlay video of one video, written
    under temporary names and renamed by `commit()`, also after Ctrl-C or a
    truncated input (what was written is whole: a frame's lines are written
    at once, and the overlay is closed properly)."""

    def __init__(self, jsonl_path, overlay_path, info):
        from data.files import AtomicFile
        self.jsonl = AtomicFile(jsonl_path, 'w')
        self.lines = self.jsonl.__enter__()
        self.overlay_path, self.writer, self.frames = overlay_path, None, 0
        if overlay_path:
            self.overlay_temp = os.path.join(os.path.dirname(overlay_path) or '.',
                                             '.%s.part.mp4' % os.path.basename(overlay_path))
            self.writer = cv2.VideoWriter(self.overlay_temp, cv2.VideoWriter_fourcc(*'mp4v'),
                                          info.fps, (info.width, info.height))
            if not self.writer.isOpened():
                self.jsonl._discard()
                raise VideoError('%s: OpenCV cannot write an mp4v video here' % overlay_path)

    def add(self, frame, groups):
        import json
        self.lines.write(''.join(json.dumps(face_record(frame, face)) + '\n'
                                 for face in frame.faces))
        if self.writer is not None:
            self.writer.write(draw_tracks(frame.image, frame.faces, groups))
        self.lines.flush()
        self.frames += 1

    def commit(self):
        self.jsonl.__exit__(None, None, None)
        if self.writer is not None:
            self.writer.release()
            os.replace(self.overlay_temp, self.overlay_path)

    def discard(self):
        self.jsonl._discard()
        if self.writer is not None:
            self.writer.release()
            try:
                os.remove(self.overlay_temp)
            except OSError:
                pass


def align_video(handler, path, jsonl_path, overlay_path=None, progress=False, **options):
    """Track the faces of the video at `path`; writes its JSON Lines (a
    line per face and frame) and, with `overlay_path`, the overlay video at
    the same frame rate and size. Returns (frames, faces, tracks). Ctrl-C
    and a truncated video keep what was written, renamed into place; the
    error then says how far it got."""
    from tqdm import tqdm
    capture, info = open_video(path)
    capture.release()
    tracker = Tracker(handler, **options)
    results = VideoResults(jsonl_path, overlay_path, info)
    faces = 0
    bar = tqdm(total=info.frames or None, unit='frame', disable=not progress,
               desc=os.path.basename(path))
    try:
        for index, time, image in read_frames(path):
            frame = Frame(index, time, image, tracker.step(index, time, image))
            results.add(frame, handler.scheme.groups)
            faces += len(frame.faces)
            bar.update(1)
    except (KeyboardInterrupt, VideoError) as err:
        with held_interrupts():
            bar.close()
            results.commit()
        written = 'wrote frames 0-%d to %s' % (results.frames - 1, jsonl_path) \
            if results.frames else 'wrote no frame'
        if isinstance(err, KeyboardInterrupt):
            raise KeyboardInterrupt('%s: interrupted; %s' % (path, written))
        raise VideoError('%s; %s before it' % (err, written))
    except BaseException:
        results.discard()
        raise
    finally:
        bar.close()
    with held_interrupts():         # a Ctrl-C now waits until both files are whole
        results.commit()
    return results.frames, faces, tracker.next_number - 1


@contextlib.contextmanager
def held_interrupts():
    """A Ctrl-C (SIGINT) during the block is held until its end, then
    raised: the files being closed and renamed come out whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt
