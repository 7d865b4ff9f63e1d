"""Landmarks on video: short synthetic clips with known points per frame
(a face moving and turning, two faces crossing, a face entering and
leaving, a still face), tracked by test.py and Handler.track."""
import json
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import wait_for
from core.inference import video
from data import landmarks, synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES = 24


def nme(points, truth):
    """Per-face NME (%) by the eye-centre distance of the truth."""
    error = np.linalg.norm(np.asarray(points) - truth, axis=1).mean()
    return 100 * float(error / landmarks.IBUG68.normaliser(np.array([truth]))[0])


@pytest.fixture(scope='module')
def handler(trained_synth):
    from core.inference.handler import Handler
    return Handler(trained_synth[0], backend='mxnet')


def moving(face_seed=3, frames=FRAMES):
    """A face moving right and turning (roll), 0.6 of its 384 frame."""
    return face_seed, [synth.pose(200 + 10 * t, 240, 0.6, -15 + 1.5 * t) for t in range(frames)]


def test_a_moving_turning_face_is_tracked_as_well_as_photos_are_aligned(handler, tmp_path):
    import test
    frames, truth = synth.video_frames([moving()], seed=1)
    clip = synth.write_video(tmp_path / 'clip.avi', frames)
    assert test.main([clip, '--prefix', handler.checkpoint.prefix, '--output',
                      str(tmp_path / 'out'), '--backend', 'mxnet', '--no-smooth']) == 0
    records = [json.loads(line) for line in (tmp_path / 'out' / 'clip.avi.jsonl').open()]
    assert [r['frame'] for r in records] == list(range(FRAMES))
    assert {r['track'] for r in records} == {1}
    assert sum(r['detected'] for r in records) == 3                  # frames 0, 10, 20
    assert records[1]['time'] == pytest.approx(0.1)
    tracked = [nme(r['landmarks'], truth[0][r['frame']]) for r in records]
    photos = []
    for frame, points in zip(frames, truth[0]):
        faces = handler.get_landmarks(frame)
        photos.append(min(nme(f.landmarks, points) for f in faces))
    print('per-frame NME: tracking %.2f%%, each frame as a photo %.2f%%'
          % (np.mean(tracked), np.mean(photos)))
    assert np.mean(tracked) < 1.25 * np.mean(photos) + 1.0
    overlay = cv2.VideoCapture(str(tmp_path / 'out' / 'clip.avi.overlay.mp4'))
    assert overlay.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    assert (overlay.get(cv2.CAP_PROP_FRAME_WIDTH), overlay.get(cv2.CAP_PROP_FRAME_HEIGHT)) == \
        (640, 480)
    assert int(overlay.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


def test_track_numbers_stay_with_their_faces_through_a_crossing(handler):
    left = (11, [synth.pose(140 + 15 * t, 160, 0.5) for t in range(FRAMES)])
    right = (12, [synth.pose(500 - 15 * t, 330, 0.5) for t in range(FRAMES)])
    frames, truth = synth.video_frames([left, right], seed=2)
    owner = {}
    for frame in handler.track(iter(frames), detect_every=5, fps=10):
        assert len(frame.faces) == 2, frame.index
        for face in frame.faces:
            errors = [np.linalg.norm(face.raw - t[frame.index], axis=1).mean() for t in truth]
            owner.setdefault(face.track, set()).add(int(np.argmin(errors)))
    assert sorted(owner) == [1, 2] and sorted(owner.values(), key=min) == [{0}, {1}]


def test_a_face_entering_and_leaving_starts_and_ends_its_track(handler):
    poses = [None] * 3 + [synth.pose(20 + 25 * t, 240, 0.5) for t in range(26)] + [None] * 5
    frames, truth = synth.video_frames([(21, poses)], seed=3)
    seen = {frame.index: [f.track for f in frame.faces]
            for frame in handler.track(iter(frames), detect_every=4, fps=10)}
    inside = [t for t, p in enumerate(truth[0]) if p is not None and p[:, 0].min() > 0
              and p[:, 0].max() < 640]
    assert all(seen[t] == [] for t in range(3))
    assert all(seen[t] == [1] for t in inside[1:]), seen
    assert all(seen[t] == [] for t in range(30, len(frames)))


def test_smoothing_halves_the_jitter_of_a_still_face_and_keeps_a_moving_one(handler):
    still = (31, [synth.pose(320, 240, 0.6, 5)] * FRAMES)
    frames, truth = synth.video_frames([still], seed=4, noise=10.0)
    series = {}
    for smooth in (None, (video.MIN_CUTOFF, video.BETA)):
        series[smooth] = [f.faces[0].landmarks for f in handler.track(
            iter(frames), detect_every=1000, smooth=smooth, fps=25)]
    raw, smoothed = video.jitter(series[None]), video.jitter(series[video.MIN_CUTOFF,
                                                                    video.BETA])
    print('still face jitter: raw %.3f px, smoothed %.3f px' % (raw, smoothed))
    assert raw > 0.05 and smoothed < 0.5 * raw
    frames, truth = synth.video_frames([moving()], seed=5)
    errors = {}
    for smooth in (None, (video.MIN_CUTOFF, video.BETA)):
        errors[smooth] = np.mean([nme(f.faces[0].landmarks, truth[0][f.index]) for f in
                                  handler.track(iter(frames), detect_every=10, smooth=smooth,
                                                fps=10)])
    print('moving face NME: raw %.2f%%, smoothed %.2f%%' % (errors[None], errors[video.MIN_CUTOFF,
                                                                               video.BETA]))
    assert errors[video.MIN_CUTOFF, video.BETA] <= 1.1 * errors[None]


def test_a_truncated_or_corrupt_video_is_one_line_and_keeps_what_was_written(handler,
                                                                           tmp_path):
    frames, _ = synth.video_frames([moving(frames=30)], seed=6)
    clip = synth.write_video(tmp_path / 'whole.avi', frames)
    data = open(clip, 'rb').read()
    (tmp_path / 'cut.avi').write_bytes(data[:len(data) // 2])
    (tmp_path / 'junk.mp4').write_bytes(os.urandom(5000))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'test.py'),
                           str(tmp_path / 'cut.avi'), str(tmp_path / 'junk.mp4'), '--prefix',
                           handler.checkpoint.prefix,
                           '--output', str(tmp_path / 'out'), '--backend', 'mxnet'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if 'cut.avi' in l or 'junk.mp4' in l]
    assert any('cut.avi: ends after frame' in l and 'of the 30 its header announces (truncated)'
               in l and 'wrote frames 0-' in l for l in errors), proc.stderr
    assert any('junk.mp4: OpenCV cannot read it as a video' in l for l in errors), proc.stderr
    assert 'Traceback' not in proc.stderr
    kept = [json.loads(l) for l in (tmp_path / 'out' / 'cut.avi.jsonl').open()]
    assert 0 < len(kept) < 30
    assert cv2.VideoCapture(str(tmp_path / 'out' / 'cut.avi.overlay.mp4')).read()[0]
    assert not (tmp_path / 'out' / 'junk.mp4.jsonl').exists()


@pytest.mark.long
def test_ctrl_c_keeps_every_written_frame_readable(handler, tmp_path):
    """Also when started as a shell's background job, which ignores SIGINT."""
    frames, _ = synth.video_frames([moving(frames=200)], seed=7)
    clip = synth.write_video(tmp_path / 'long.avi', frames)
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'test.py'), clip, '--prefix',
                             handler.checkpoint.prefix, '--output', str(out), '--backend',
                             'mxnet'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for(lambda: any(p.stat().st_size > 20000 for p in out.glob('long.avi.jsonl.tmp-*')),
             timeout=120, what='frames written')
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert 'long.avi: interrupted; wrote frames 0-' in err and 'Traceback' not in err
    kept = [json.loads(l) for l in (out / 'long.avi.jsonl').open()]
    assert 0 < len(kept) < 200 and [r['frame'] for r in kept] == list(range(len(kept)))
    overlay = cv2.VideoCapture(str(out / 'long.avi.overlay.mp4'))
    assert overlay.read()[0]
    assert not list(out.glob('*.tmp-*')) and not list(out.glob('.*.part.mp4'))


@pytest.fixture(scope='module')
def real_clip(shared):
    """5 s over a real photo of two faces, panning from one to the other and
    zooming in 2x, with each face's box per frame."""
    folder = shared / 'data' / 'dlib-faces'
    return synth.photo_clip(str(folder / '2008_001009.jpg'), [str(p) for p in folder.glob('*.xml')])


@pytest.mark.long
@pytest.mark.parametrize('network', ['random weights', 'briefly trained'])
def test_real_faces_keep_one_track_number_whatever_the_network(real_clip, network, handler,
                                                               small_checkpoint):
    """Random weights and a network trained a minute on synthetic faces give
    garbage points on real faces; the tracks hold by the detector: one number
    per face, never two tracks on one face, every face reported in every
    frame where the detector finds it, boxes within the frame."""
    from core.inference.handler import Handler
    model = Handler(small_checkpoint, backend='onnx') if network == 'random weights' else handler
    frames, truth = real_clip
    tracker = video.Tracker(model, detect_every=10)
    faces = [tracker.step(i, i / 10.0, frame) for i, frame in enumerate(frames)]
    owners, duplicates = video.identities(faces, truth)
    found = [[k for k, box in enumerate(t) if any(video.iou(f, box) > 0.3 for f in
                                                  model.detect(frame).boxes)]
             for frame, t in zip(frames, truth)]
    reported = [[k for k, box in enumerate(t) if any(video.iou(f.box, box) > 0.3 for f in fs)]
                for fs, t in zip(faces, truth)]
    print('%s: track numbers per face %s, frames with two tracks on a face %d, %d detector '
          'runs' % (network, {k: sorted(v) for k, v in owners.items()}, duplicates,
                    tracker.detections))
    assert all(len(numbers) == 1 for numbers in owners.values()) and len(owners) == 2
    assert duplicates == 0
    assert all(set(f) <= set(r) for f, r in zip(found, reported))
    assert all(0 <= f.box[0] < f.box[2] <= 640 and 0 <= f.box[1] < f.box[3] <= 480
               for fs in faces for f in fs)


def test_a_face_entering_between_detections_is_found_at_the_next_one(handler):
    """Present from the start, a face is tracked at once; one walking in on
    frame 7 (detector every 5 frames) is found by frame 10 at the latest."""
    here = (41, [synth.pose(180, 240, 0.5)] * FRAMES)
    coming = (42, [None] * 7 + [synth.pose(470, 240, 0.5)] * (FRAMES - 7))
    frames, _ = synth.video_frames([here, coming], seed=8)
    counts = [len(frame.faces) for frame in handler.track(iter(frames), detect_every=5, fps=10)]
    assert counts[:7] == [1] * 7
    assert counts[10:] == [2] * (FRAMES - 10)


def test_a_face_walking_in_front_of_another_never_gives_one_face_two_tracks(handler):
    """The second face passes in front of the first (it hides it); after
    they part, each keeps its own number (their motion tells them apart)."""
    frames_count = 30
    behind = (51, [synth.pose(150 + 12 * t, 240, 0.55) for t in range(frames_count)])
    front = (52, [synth.pose(500 - 12 * t, 250, 0.6) for t in range(frames_count)])
    frames, truth = synth.video_frames([behind, front], seed=9)
    faces = [frame.faces for frame in handler.track(iter(frames), detect_every=5, fps=10)]
    boxes = [[video.points_box(t[i]) for t in truth] for i in range(frames_count)]
    _, duplicates = video.identities(faces, boxes)
    apart = [i for i, (a, b) in enumerate(boxes) if video.iou(a, b) == 0]
    owners, _ = video.identities([faces[i] for i in apart], [boxes[i] for i in apart])
    print('crossing: track numbers per face while apart %s (%d of %d frames), frames with two '
          'tracks on a face %d' % ({k: sorted(v) for k, v in owners.items()}, len(apart),
                                    frames_count, duplicates))
    assert duplicates == 0
    assert min(apart) == 0 and max(apart) == frames_count - 1      # before and after
    assert owners[0] != owners[1]
    assert all(len(numbers) == 1 for numbers in owners.values())
