"""Landmarks on video: faces tracked from frame to frame and their points
smoothed.

The detector runs every `detect_every` frames, on the next frame when a
track is lost, and on every frame while no face is tracked. In between, each
face is found again from its own landmarks of the previous frame, moved on
as their centre moved since the frame before (aligned by their five points,
one network pass). A detected face takes the number of the track whose
expected landmarks' box overlaps its own most (IoU), or a new one. A track
ends when its points leave the frame, or when their mean heatmap peak falls
below `lost_ratio` of what it was at the track's last detection (a ratio,
so that it holds for either loss's scale); a detection where an ended track
is expected within `detect_every` frames takes its number again. All the
faces of a frame go through the network together. Points are smoothed per
track by a One Euro filter: little smoothing when a point moves fast, much
when it stays (so still faces do not jitter and moving ones do not lag).
"""
import collections
import os

import cv2
import numpy as np

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


def read_frames(path):
    """(index, time in seconds, BGR frame) of each frame of a video file;
    VideoError when it holds no frame or ends well before the frame count
    its header announces (a truncated file)."""
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


TrackedFace = collections.namedtuple('TrackedFace',
                                     'track landmarks box score confidence raw detected')
Frame = collections.namedtuple('Frame', 'index time image faces')


class _Track(object):
    def __init__(self, number, score, confidence, smoother):
        self.number, self.score, self.reference = number, score, confidence
        self.smoother, self.raw, self.before, self.seen = smoother, None, None, None

    def moved(self, points):
        self.before, self.raw = self.raw, points

    def expected(self, frames=1):
        """Where the points should be `frames` frames on: shifted as their
        centre moved since the frame before (constant velocity; the shape
        is kept, so one noisy frame does not distort the next crop)."""
        if self.before is None:
            return self.raw
        return self.raw + frames * (self.raw.mean(axis=0) - self.before.mean(axis=0))


class Tracker(object):
    """Faces of the frames of one video, in order (see the module's text).
    `smooth` is (min_cutoff, beta) or None for the raw points."""

    def __init__(self, handler, detect_every=10, smooth=(MIN_CUTOFF, BETA), match_iou=0.3,
                 lost_ratio=0.5):
        if detect_every < 1:
            raise ValueError('--detect-every must be at least 1, got %d' % detect_every)
        self.handler, self.detect_every, self.smooth = handler, detect_every, smooth
        self.match_iou, self.lost_ratio = match_iou, lost_ratio
        self.tracks, self.next_number, self.last_detection = [], 1, None
        self.lost = []          # ended lately: a detection where one is expected revives it
        self.detections = 0

    def _smoother(self):
        return OneEuro(*self.smooth) if self.smooth else None

    def _due(self, index):
        return (self.last_detection is None or not self.tracks
                or index - self.last_detection >= self.detect_every)

    def step(self, index, time, image):
        """[TrackedFace] of one BGR frame."""
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        detect = self._due(index)
        faces = []
        if detect:
            self.last_detection, self.detections = index, self.detections + 1
            faces = self._detected(image, index)
        # Tracks the detector did not find again follow their landmarks,
        # unless a detected face is where they are (then they are that face).
        followed = [t for t in self.tracks if t not in {f[0] for f in faces} and not any(
            iou(points_box(t.expected()), points_box(f[1])) > self.match_iou for f in faces)]
        if followed:
            points, confidence = self.handler.predict_crops(
                [(rgb, self.handler.chain_from_points(rgb, t.expected())) for t in followed])
            faces += [(t, p, c, None) for t, p, c in zip(followed, points, confidence)]
        out, alive = [], []
        height, width = image.shape[:2]
        for track, points, confidence, box in faces:
            level = float(np.mean(confidence))
            inside = np.mean((points[:, 0] >= 0) & (points[:, 0] < width) &
                             (points[:, 1] >= 0) & (points[:, 1] < height))
            if box is None and (level < self.lost_ratio * track.reference or inside < 0.5):
                self.last_detection = None              # lost: detect on the next frame
                self.lost.append(track)
                continue
            if box is not None:
                track.reference = level
            track.moved(points)
            track.seen = index
            shown = track.smoother(points, time) if track.smoother else points
            alive.append(track)
            out.append(TrackedFace(track.number, shown, box if box is not None else
                                   points_box(points), track.score, confidence, points,
                                   box is not None))
        self.tracks = alive
        self.lost = [t for t in self.lost if t not in alive and index - t.seen <= self.detect_every]
        return sorted(out, key=lambda f: f.track)

    def _detected(self, image, index):
        """(track, points, confidence, box) of each face the detector finds,
        matched to the tracks by overlap."""
        image, found = self.handler.find(image)
        faces = self.handler.align([image], [found])[0]
        free = list(self.tracks) + list(self.lost)
        matched = []
        for face in sorted(faces, key=lambda f: -f.score):
            previous = [(iou(points_box(face.landmarks), points_box(t.expected(index - t.seen))),
                         t) for t in free]
            overlap, track = max(previous, key=lambda p: p[0], default=(0.0, None))
            if track is None or overlap < self.match_iou:
                track = _Track(self.next_number, face.score, float(np.mean(face.confidence)),
                               self._smoother())
                self.next_number += 1
            else:
                free.remove(track)
                track.score = face.score
            matched.append((track, face.landmarks, face.confidence, np.asarray(face.box[:4])))
        return matched


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
            'confidence': np.round(face.confidence, 3).tolist()}


def draw_tracks(image, faces, groups):
    """BGR frame with each face's points, box and track number."""
    from core.plumbing.drawing import draw_faces
    out = draw_faces(image, faces, groups)
    for face in faces:
        x1, y1 = int(face.box[0]), int(face.box[1])
        cv2.putText(out, '#%d' % face.track, (x1, max(12, y1 - 18)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (0, 200, 255), 2, cv2.LINE_AA)
    return out


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
    results.commit()
    return results.frames, faces, tracker.next_number - 1
