"""Frames per second on video (detect or track, align, decode the
heatmaps, draw the overlay; the best of three runs), three ways on the same
synthetic clip in one run: the detector on every frame, tracking (the detector every 10 frames),
and tracking with smoothing; then the jitter of a still face (mean
frame-to-frame movement of its points, pixels) with and without smoothing.

The network is the demo's small one, trained here for about a minute on
synthetic faces (random weights lose every track: their points collapse),
or --prefix (a larger network's own time dominates each frame, so tracking
gains less there).

    python -m benchmarks.video
    python -m benchmarks.video --prefix ./models/model-hg2d3-cab/model --frames 120
"""
import argparse
import tempfile
import time

from benchmarks.models import briefly_trained
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
        measure(args.prefix or briefly_trained(tmp), moving, still)
    return 0


if __name__ == '__main__':
    main()
