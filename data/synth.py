"""Procedurally drawn faces whose 68 landmarks are known exactly.

    python -m data.synth --out demo/train --count 2000
    python -m data.synth --photos sample-images --count 4

Each face starts from the neutral face, gets an identity, an expression and a
3D-ish pose, and is drawn *through* its points: the jaw is the face outline,
brows, eyelids, nose and lips are polylines and polygons on the points. Then
lighting, blur, noise and occlusion. Records go through the same 5-point
alignment as the real-data builders.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from . import geometry, landmarks
from .build import aligned_record
from .files import write_atomic
from .recordio import RecordWriter

JAW, BROWS, NOSE_BRIDGE, NOSE_BASE = range(0, 17), range(17, 27), range(27, 31), range(31, 36)
LEFT_EYE, RIGHT_EYE, OUTER_LIPS, INNER_LIPS = range(36, 42), range(42, 48), range(48, 60), range(60, 68)


def _depth(points):
    """A rough depth per point: a rounded face, a protruding nose."""
    centre_x = points[:, 0].mean()
    half_width = (points[:, 0].max() - points[:, 0].min()) / 2
    u = np.clip((points[:, 0] - centre_x) / (1.1 * half_width), -1, 1)
    z = 90 * np.sqrt(1 - u ** 2)
    z[list(NOSE_BRIDGE)] += [12, 22, 32, 45]
    z[list(NOSE_BASE)] += [22, 28, 32, 28, 22]
    z[list(LEFT_EYE) + list(RIGHT_EYE)] -= 6
    return z


def random_face_points(rng):
    """68 (x, y) points in the 384 frame: identity, expression and pose."""
    pts = geometry.NEUTRAL_FACE.copy()
    centre = pts.mean(axis=0)
    # Identity: face width and length, eye spacing, nose and mouth size.
    pts = centre + (pts - centre) * [rng.uniform(0.88, 1.12), rng.uniform(0.9, 1.1)]
    for group, spread in ((LEFT_EYE, -1), (RIGHT_EYE, 1)):
        pts[list(group)] += [spread * rng.uniform(-4, 4), 0]
    mouth = list(OUTER_LIPS) + list(INNER_LIPS)
    mouth_centre = pts[mouth].mean(axis=0)
    pts[mouth] = mouth_centre + (pts[mouth] - mouth_centre) * rng.uniform(0.85, 1.2)
    # Expression: open mouth, smile, raised brows, closing eyes.
    opening = rng.uniform(0, 28) if rng.uniform() < 0.5 else 0.0
    pts[[65, 66, 67]] += [0, opening]
    pts[[55, 56, 57, 58, 59]] += [0, opening]
    pts[5:12] += np.array([0, opening * 0.6]) * np.sin(np.linspace(0.3, np.pi - 0.3, 7))[:, None]
    smile = rng.uniform(-4, 8)
    pts[[48, 60]] += [-smile * 0.4, -smile]
    pts[[54, 64]] += [smile * 0.4, -smile]
    pts[list(BROWS)] += [0, -rng.uniform(-3, 10)]
    for upper, lower in (((37, 38), (41, 40)), ((43, 44), (47, 46))):
        closure = rng.uniform(0, 0.7) if rng.uniform() < 0.3 else 0.0
        pts[list(upper)] += (pts[list(lower)] - pts[list(upper)]) * closure
    # Pose: yaw and pitch rotate the rough 3D face, orthographic projection.
    z = _depth(pts)
    yaw, pitch = np.deg2rad(rng.uniform(-35, 35)), np.deg2rad(rng.uniform(-15, 15))
    x, y = pts[:, 0] - centre[0], pts[:, 1] - centre[1]
    x, z = x * np.cos(yaw) + z * np.sin(yaw), -x * np.sin(yaw) + z * np.cos(yaw)
    y = y * np.cos(pitch) - z * np.sin(pitch)
    return np.stack([x + centre[0], y + centre[1]], axis=1)


def _colour(rng, low, high):
    return tuple(float(v) for v in rng.uniform(np.broadcast_to(low, 3), np.broadcast_to(high, 3)))


def _background(rng, size):
    a, b = np.array(_colour(rng, 0, 255)), np.array(_colour(rng, 0, 255))
    t = np.linspace(0, 1, size)[:, None, None]
    image = (a * (1 - t) + b * t) * np.ones((size, size, 3))
    for _ in range(rng.integers(3, 12)):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        if rng.uniform() < 0.5:
            cv2.circle(image, centre, int(rng.uniform(5, size / 4)), _colour(rng, 0, 255), -1)
        else:
            corner = tuple(int(v) for v in rng.uniform(0, size, 2))
            cv2.rectangle(image, centre, corner, _colour(rng, 0, 255), -1)
    return image


def _poly(points, scale=1.0):
    return np.round(points * scale).astype(np.int32).reshape(-1, 1, 2)


def draw_face(image, pts, rng):
    """Draw a face through its 68 (x, y) points onto a float RGB image."""
    face_w = np.linalg.norm(pts[16] - pts[0])
    thick = max(1, int(face_w / 60))
    tone = rng.uniform()
    skin = (np.array([95, 62, 45]) * (1 - tone) + np.array([245, 210, 185]) * tone
            + rng.uniform(-12, 12, 3))
    hair = _colour(rng, 0, 120)
    brow_y = pts[list(BROWS)].min(axis=0)[1]
    centre_x = (pts[0, 0] + pts[16, 0]) / 2
    # Forehead: an arc over the brows joining the jaw ends.
    top = brow_y - face_w * rng.uniform(0.25, 0.4)
    angles = np.linspace(0, np.pi, 20)
    forehead = np.stack([centre_x + (pts[16, 0] - centre_x) * np.cos(angles),
                         pts[16, 1] + (top - pts[16, 1]) * np.sin(angles)], axis=1)
    neck_end = pts[8, 1] + face_w * 0.7
    neck = np.array([[pts[5, 0], pts[8, 1]], [pts[11, 0], pts[8, 1]],
                     [pts[11, 0] + 5, neck_end], [pts[5, 0] - 5, neck_end]])
    cv2.fillPoly(image, [_poly(neck)], tuple(skin * 0.8), cv2.LINE_AA)
    outline = np.concatenate([pts[list(JAW)], forehead[1:-1]])
    if rng.uniform() < 0.8:
        hair_top = forehead + [0, -face_w * rng.uniform(0.05, 0.2)]
        cv2.fillPoly(image, [_poly(np.concatenate([hair_top, pts[[16]], pts[[0]]]))], hair,
                     cv2.LINE_AA)
    cv2.fillPoly(image, [_poly(outline)], tuple(skin), cv2.LINE_AA)
    # Soft shading: darker eye sockets and a shadow under the nose.
    shade = np.zeros(image.shape[:2], np.float32)
    for group in (LEFT_EYE, RIGHT_EYE):
        eye = pts[list(group)]
        centre = tuple(int(v) for v in eye.mean(axis=0))
        axes = (int(0.9 * np.ptp(eye[:, 0]) + 1), int(0.45 * np.ptp(eye[:, 0]) + 1))
        cv2.ellipse(shade, centre, axes, 0, 0, 360, 0.35, -1)
    nose = pts[33]
    cv2.ellipse(shade, (int(nose[0]), int(nose[1] + thick)),
                (int(face_w * 0.12) + 1, int(face_w * 0.03) + 1), 0, 0, 360, 0.3, -1)
    shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, face_w / 25))
    image *= (1 - shade)[:, :, None]
    cv2.polylines(image, [_poly(pts[list(JAW)])], False, tuple(skin * 0.6), thick, cv2.LINE_AA)
    # Brows.
    brow = _colour(rng, 10, 90)
    for group in (range(17, 22), range(22, 27)):
        cv2.polylines(image, [_poly(pts[list(group)])], False, brow, thick * 3, cv2.LINE_AA)
    # Eyes: white, iris clipped to the eye, lids.
    iris_colour = _colour(rng, 20, 140)
    for group in (LEFT_EYE, RIGHT_EYE):
        eye = pts[list(group)]
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [_poly(eye)], 1, cv2.LINE_AA)
        layer = image.copy()
        cv2.fillPoly(layer, [_poly(eye)], (235, 235, 235), cv2.LINE_AA)
        centre = eye.mean(axis=0) + [rng.uniform(-0.15, 0.15) * np.ptp(eye[:, 0]), 0]
        radius = max(1, int(0.3 * np.ptp(eye[:, 0])))
        cv2.circle(layer, tuple(int(v) for v in centre), radius, iris_colour, -1, cv2.LINE_AA)
        cv2.circle(layer, tuple(int(v) for v in centre), max(1, radius // 2), (10, 10, 10), -1,
                   cv2.LINE_AA)
        image[mask > 0] = layer[mask > 0]
        cv2.polylines(image, [_poly(eye)], True, (30, 20, 20), thick, cv2.LINE_AA)
    # Nose: bridge shading, base line, nostrils.
    cv2.polylines(image, [_poly(pts[list(NOSE_BRIDGE)])], False, tuple(skin * 0.75), thick * 2,
                  cv2.LINE_AA)
    cv2.polylines(image, [_poly(pts[list(NOSE_BASE)])], False, tuple(skin * 0.5), thick,
                  cv2.LINE_AA)
    for i in (32, 34):
        cv2.circle(image, tuple(int(v) for v in pts[i] + [0, -thick]), thick + 1, (40, 25, 25), -1,
                   cv2.LINE_AA)
    # Lips: outer polygon, mouth interior, the line between the lips.
    lips = _colour(rng, [120, 30, 40], [220, 110, 120])
    cv2.fillPoly(image, [_poly(pts[list(OUTER_LIPS)])], lips, cv2.LINE_AA)
    cv2.fillPoly(image, [_poly(pts[list(INNER_LIPS)])], (50, 10, 15), cv2.LINE_AA)
    cv2.polylines(image, [_poly(pts[list(INNER_LIPS)])], True, tuple(np.array(lips) * 0.6),
                  thick, cv2.LINE_AA)
    return image


def _finish(image, rng, face_box, occlusion=True):
    """Lighting, occlusion (optional), blur and noise; returns uint8 RGB."""
    size = image.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / float(size)
    light = 1 + rng.uniform(0, 0.5) * ((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle))
    image = image * light[:, :, None] * rng.uniform(0.7, 1.2)
    if occlusion and rng.uniform() < 0.25:
        x0, y0, x1, y1 = face_box
        w, h = (x1 - x0) * rng.uniform(0.2, 0.5), (y1 - y0) * rng.uniform(0.15, 0.4)
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        cv2.ellipse(image, (int(cx), int(cy)), (int(w / 2), int(h / 2)), rng.uniform(0, 180), 0,
                    360, _colour(rng, 0, 255), -1, cv2.LINE_AA)
    sigma = rng.uniform(0, 2.0)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0, rng.uniform(0, 8), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def place(points, rng, size, scale_range=(0.75, 1.1), max_roll=25, shift=0.08):
    """Random similarity (roll, scale, shift) from the 384 frame to a photo."""
    centre = points.mean(axis=0)
    matrix = geometry.crop_transform(centre, geometry.RECORD_SIZE / rng.uniform(*scale_range),
                                     rng.uniform(-max_roll, max_roll), size)
    matrix[:, 2] += rng.uniform(-shift, shift, 2) * size
    return geometry.apply(matrix, points)


def synth_face(rng, size=geometry.RECORD_SIZE):
    """(RGB uint8 image, (68, 2) points) of one synthetic face."""
    points = place(random_face_points(rng), rng, size)
    image = draw_face(_background(rng, size), points, rng)
    box = np.concatenate([points.min(axis=0), points.max(axis=0)])
    return _finish(image, rng, box), points


def synth_photo(rng, size=640, faces=3):
    """A photo with several non-overlapping, unoccluded faces of little roll
    (sample photos for the detector): (image, [points])."""
    image = _background(rng, size)
    placed, boxes = [], []
    cell = size // faces
    for i in range(faces):
        pts = random_face_points(rng)
        matrix = geometry.crop_transform(pts.mean(axis=0), geometry.RECORD_SIZE * rng.uniform(1.0, 1.3),
                                         rng.uniform(-8, 8), cell)
        matrix[0, 2] += i * cell
        matrix[1, 2] += rng.uniform(0, size - cell)
        pts = geometry.apply(matrix, pts)
        draw_face(image, pts, rng)
        placed.append(pts)
        boxes.append(np.concatenate([pts.min(axis=0), pts.max(axis=0)]))
    union = np.concatenate([np.min(boxes, axis=0)[:2], np.max(boxes, axis=0)[2:]])
    return _finish(image, rng, union, occlusion=False), placed


def write_records(out_prefix, count, seed=0, progress=True, overwrite=False,
                  scheme=landmarks.IBUG68):
    """Write `count` synthetic faces as an aligned record set of landmark
    scheme `scheme` (placed from the drawn 68 points by its mapping; the
    faces are drawn through the 68 iBUG points, so those are the default)."""
    if scheme.from_ibug68 is None:
        raise ValueError('synthetic faces cannot carry the %s scheme: it has no mapping from '
                         'the 68 points they are drawn through' % scheme.name)
    rng = np.random.default_rng(seed)
    origin = {'faces': 'synthetic', 'made by': 'data.synth', 'seed': seed}
    bar = tqdm(total=count, disable=not progress, unit='face', desc='synth')
    try:
        with RecordWriter(out_prefix, scheme, overwrite, origin) as writer:
            for _ in range(count):
                image, points = synth_face(rng)
                writer.write(aligned_record(image, scheme.from_ibug68 @ points, writer.count,
                                            scheme))
                bar.update(1)
    finally:
        bar.close()
    return count


def pose(x, y, scale=1.0, angle=0.0):
    """Similarity from the 384 face frame to a video frame: the frame's
    centre to (x, y), scaled and rotated by `angle` degrees."""
    matrix = cv2.getRotationMatrix2D((geometry.RECORD_SIZE / 2.0,) * 2, angle, scale)
    matrix[:, 2] += [x - geometry.RECORD_SIZE / 2.0, y - geometry.RECORD_SIZE / 2.0]
    return matrix


def video_frames(faces, size=(480, 640), seed=0, noise=4.0):
    """Frames of a synthetic video and their faces' exact points.

    `faces` holds per face (its seed, [pose matrix or None per frame]); a
    face looks the same in every frame (its own seed) and is drawn through
    its 68 points moved by the frame's pose; None leaves it out. Each frame
    gets fresh sensor noise of `noise` grey levels. Returns ([BGR uint8
    frame], [[(68, 2) points or None per frame] per face])."""
    height, width = size
    rng = np.random.default_rng(seed)
    scene = cv2.resize(_background(rng, 384), (width, height), interpolation=cv2.INTER_LINEAR)
    bases = [random_face_points(np.random.default_rng(face_seed)) for face_seed, _ in faces]
    count = len(faces[0][1])
    frames, truth = [], [[] for _ in faces]
    for t in range(count):
        image = scene.copy()
        for k, (face_seed, poses) in enumerate(faces):
            if poses[t] is None:
                truth[k].append(None)
                continue
            points = geometry.apply(poses[t], bases[k])
            draw_face(image, points, np.random.default_rng(face_seed + 1))
            truth[k].append(points)
        image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
        frames.append(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return frames, truth


def pan_zoom(photo, frames, start, end, size=(480, 640)):
    """A clip filmed over a photo: a camera whose view moves from `start` to
    `end`, each (x, y, zoom) of the photo point at the frame's centre and
    the frame pixels per photo pixel, linearly over `frames` frames. Returns
    ([BGR frame], [2x3 matrix photo -> frame]), so that anything marked on
    the photo (its faces' boxes and points) can be followed in the clip."""
    height, width = size
    clip, matrices = [], []
    for t in np.linspace(0.0, 1.0, frames):
        x, y, zoom = (1 - t) * np.asarray(start, np.float64) + t * np.asarray(end, np.float64)
        matrix = np.array([[zoom, 0, width / 2.0 - zoom * x], [0, zoom, height / 2.0 - zoom * y]])
        clip.append(cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT))
        matrices.append(matrix)
    return clip, matrices


def photo_clip(photo, annotations, frames=50):
    """5 s at 10 frames/s over a photo: the camera pans from its first
    annotated face (dlib XML `annotations`) to its second and zooms in 2x.
    Returns (frames, [[box of each face's annotated points, moved with the
    camera] per frame])."""
    from .build import faces_from_dlib_xml
    faces = [points() for name, _, points in faces_from_dlib_xml(annotations)
             if name.split('#')[0] == os.path.abspath(photo)]
    (a, b), (c, d) = [p.mean(axis=0) for p in faces[:2]]
    clip, matrices = pan_zoom(cv2.imread(photo), frames, (a, b + 40, 1.3), (c, d, 2.6))
    moved = [[geometry.apply(m, p) for p in faces] for m in matrices]
    return clip, [[np.concatenate([p.min(axis=0), p.max(axis=0)]) for p in frame]
                  for frame in moved]


def write_video(path, frames, fps=10.0):
    """Frames as an MJPG AVI (or mp4v for .mp4) that OpenCV reads back."""
    height, width = frames[0].shape[:2]
    codec = 'mp4v' if str(path).endswith('.mp4') else 'MJPG'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def write_sample_video(path, frames=40, seed=0, fps=10.0):
    """A clip of two synthetic faces crossing, one turning as it goes."""
    steps = np.arange(frames) / max(1, frames - 1)
    first = [pose(150 + 340 * t, 170, 0.5, -15 + 30 * t) for t in steps]
    second = [pose(500 - 340 * t, 330, 0.55) for t in steps]
    return write_video(path, video_frames([(seed + 3, first), (seed + 4, second)], seed=seed)[0],
                       fps)


def write_photos(folder, count, seed=0):
    """Write `count` multi-face photos as JPEG + a JSON of their landmarks."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, faces = synth_photo(rng, faces=int(rng.integers(1, 4)))
        name = os.path.join(folder, 'synth-%02d' % i)
        jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        write_atomic(name + '.jpg', jpeg, overwrite=False)
        write_atomic(name + '.json', json.dumps({'landmarks': [p.round(2).tolist()
                                                               for p in faces]}), overwrite=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Synthetic faces with exact 68-point landmarks.')
    parser.add_argument('--out', help='record prefix to write (PREFIX.rec/.idx)')
    parser.add_argument('--photos', help='folder to write multi-face JPEG photos into')
    parser.add_argument('--video', help='a clip (.avi or .mp4) of two faces crossing, --count '
                        'frames')
    parser.add_argument('--count', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out set')
    parser.add_argument('--scheme', default=landmarks.DEFAULT,
                        help='landmark scheme of the records (%s)' % ', '.join(
                            n for n, s in landmarks.SCHEMES.items() if s.from_ibug68 is not None))
    args = parser.parse_args(argv)
    if not args.out and not args.photos and not args.video:
        parser.error('give --out PREFIX (records), --photos DIR or --video FILE')
    try:
        if args.out:
            write_records(args.out, args.count, args.seed, overwrite=args.overwrite,
                          scheme=landmarks.get(args.scheme))
            print('wrote %d synthetic faces to %s.rec' % (args.count, args.out))
        if args.photos:
            write_photos(args.photos, args.count, args.seed)
            print('wrote %d photos to %s' % (args.count, args.photos))
        if args.video:
            if os.path.exists(args.video) and not args.overwrite:
                raise ValueError('%s exists; add --overwrite to replace it' % args.video)
            write_sample_video(args.video, args.count, args.seed)
            print('wrote %d frames to %s' % (args.count, args.video))
    except (OSError, ValueError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted; nothing half-written is left (a record set is written whole or '
              'not at all)', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
