"""Frames per second on video (detect or track, align, decode the
heatmaps, draw the overlay; the best of three runs), three ways on the same
synthetic clip in one run: the detector on every frame, tracking (the detector every 10 frames),
and tracking with smoothing; then the jitter of a still face (mean
frame-to-frame movement of its points, pixels) with and without smoothing;
then how tracks keep to faces with the networks a user has before a good
one (random weights, and the briefly trained one): track numbers per face
and frames with two tracks on one face, on a face walking in front of
another, and (with ../shared beside the checkout) on a camera panning and
zooming over a real photo of two faces.

The network is the demo's small one, trained here for about a minute on
synthetic faces, or --prefix (a larger network's own time dominates each
frame, so tracking gains less there).

    python -m benchmarks.video
    python -m benchmarks.video --prefix ./models/model-hg2d3-cab/model --frames 120
"""
import argparse
import glob
import os
import tempfile
import time


from benchmarks.models import briefly_trained, random_small
from core.inference import video
from core.inference.handler import Handler
from data import synth
from data.workers import usable_cpus

WAYS = (('detector on every frame', dict(detect_every=1, smooth=None)),
        ('tracking (detector every 10 frames)', dict(detect_every=10, smooth=None)),
        ('tracking + smoothing', dict(detect_every=10)))


def clips(frames):
    """(a face moving and turning, a still face), BGR frames at 640x480."""
    moving = [synth.pose(200 + 240.0 * t / frames, 240, 0.6, -15 + 30.0 * t / frames)
              for t in range(frames)]
    return (synth.video_frames([(3, moving)], seed=1)[0],
            synth.video_frames([(4, [synth.pose(320, 240, 0.6, 5)] * frames)], seed=2,
                               noise=10.0)[0])


def fps(handler, frames, options, repeats=3):
    """(frames per second, detector runs) of tracking `frames` with the
    overlay drawn, as test.py does; the best of `repeats` runs."""
    best = 0.0
    for _ in range(repeats):
        tracker = video.Tracker(handler, **options)
        start = time.perf_counter()
        for index, frame in enumerate(frames):
            faces = tracker.step(index, index / 25.0, frame)
            video.draw_tracks(frame, faces, handler.scheme.groups)
        best = max(best, len(frames) / (time.perf_counter() - start))
    return best, tracker.detections


def measure(prefix, moving, still):
    """Print the three ways and the jitter of one checkpoint."""
    handler = Handler(prefix)
    for _ in handler.track(iter(moving[:3]), fps=25):     # warm up (sessions, exports)
        pass
    print('\n%s' % handler.checkpoint.describe())
    baseline = None
    for label, options in WAYS:
        rate, detections = fps(handler, moving, options)
        baseline = baseline or rate
        print('  %-38s %7.2f frames/s %6.2fx  (%d detector runs)' % (label, rate, rate / baseline,
                                                                    detections))
    for label, smooth in (('raw', None), ('smoothed', (video.MIN_CUTOFF, video.BETA))):
        points = [f.faces[0].landmarks for f in handler.track(
            iter(still), detect_every=1000, smooth=smooth, fps=25) if f.faces]
        print('  still-face jitter, %-9s %8.3f px' % (label, video.jitter(points)))


SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                      'shared', 'data', 'dlib-faces')


def identity_clips():
    """{name: (frames, [[true box per face] per frame], frames to judge the
    numbers on)}: a face walking in front of another (judged where they are
    apart) and, where ../shared is present, a pan and zoom over a real photo
    of two faces (its annotated boxes moved with the camera)."""
    count = 30
    behind = (51, [synth.pose(150 + 12 * t, 240, 0.55) for t in range(count)])
    front = (52, [synth.pose(500 - 12 * t, 250, 0.6) for t in range(count)])
    frames, truth = synth.video_frames([behind, front], seed=9)
    boxes = [[video.points_box(t[i]) for t in truth] for i in range(count)]
    found = {'a face walking in front of another': (frames, boxes, [
        i for i, (a, b) in enumerate(boxes) if video.iou(a, b) == 0])}
    photo = os.path.join(SHARED, '2008_001009.jpg')
    if os.path.isfile(photo):
        frames, boxes = synth.photo_clip(photo, glob.glob(os.path.join(SHARED, '*.xml')))
        found['a camera over a real photo of two faces'] = (frames, boxes, range(len(frames)))
    return found


def identities(prefixes):
    """Print track numbers per face and duplicate frames for each network."""
    clips = identity_clips()
    if len(clips) == 1:
        print('  (../shared is not beside the checkout: the real-photo clip is left out)')
    for label, prefix in prefixes.items():
        handler = Handler(prefix)
        for name, (frames, boxes, judged) in clips.items():
            tracker = video.Tracker(handler, detect_every=10)
            faces = [tracker.step(i, i / 10.0, frame) for i, frame in enumerate(frames)]
            _, duplicates = video.identities(faces, boxes)
            owners, _ = video.identities([faces[i] for i in judged], [boxes[i] for i in judged])
            print('  %-16s %-40s track numbers per face %s, frames with two tracks on a face '
                  '%d, %d detector runs in %d frames' % (
                      label, name, [len(owners.get(k, ())) for k in range(len(boxes[0]))],
                      duplicates, tracker.detections, len(frames)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--prefix', help='a trained checkpoint (default: one trained here)')
    args = parser.parse_args(argv)
    moving, still = clips(args.frames)
    print('%d cores; %d frames of 640x480, one face' % (usable_cpus(), args.frames))
    with tempfile.TemporaryDirectory() as tmp:
        if args.prefix is None:
            print('training the demo\'s network for about a minute ...')
        prefix = args.prefix or briefly_trained(tmp)
        measure(prefix, moving, still)
        print('\nTracks and faces (the detector every 10 frames):')
        identities({'random weights': random_small(tmp), 'briefly trained': prefix})
    return 0


if __name__ == '__main__':
    main()
