"""Per-sample transforms of docs/data.md ("Training samples"): training crops with
rotation, scale and mirror, and heatmap targets; plus the warp of a record
through given evaluation transforms (the protocol itself is the caller's)."""

import numpy as np

from . import geometry

HEATMAP_PEAK = 20.0
MAX_ROTATION = 40          # rotation r is an integer in [-40, 40)
SCALE_SIGMA, SCALE_MIN, SCALE_MAX = 0.2, 0.8, 1.2
DRAW_TRIES = 3


def render_heatmaps(points, input_size, label_size, sigma):
    """(P, label, label) float32 targets for (P, 2) (x, y) points in the
    input crop: each point at int(p * label/input); sigma 0 puts 1.0 on that
    pixel, else exp(-d^2 / 2 sigma^2) * 20 within a half-width of int(3 sigma)."""
    centres = (np.asarray(points, dtype=np.float64) * (label_size / float(input_size))).astype(int)
    grid = np.arange(label_size)
    dx = grid[None, :] - centres[:, 0:1]          # (P, label)
    dy = grid[None, :] - centres[:, 1:2]
    if sigma <= 0:
        gx, gy = (dx == 0).astype(np.float32), (dy == 0).astype(np.float32)
        return np.einsum('py,px->pyx', gy, gx)
    half = int(3 * sigma)
    gx = np.where(np.abs(dx) <= half, np.exp(-dx ** 2 / (2.0 * sigma ** 2)), 0.0)
    gy = np.where(np.abs(dy) <= half, np.exp(-dy ** 2 / (2.0 * sigma ** 2)), 0.0)
    return (HEATMAP_PEAK * np.einsum('py,px->pyx', gy, gx)).astype(np.float32)


def mirror_points(points, size, scheme):
    """Mirror (x, y) points in a crop of `size` and re-index by the flip
    order of the landmark scheme."""
    mirrored = np.array(points, dtype=np.float64)
    mirrored[:, 0] = size - 1 - mirrored[:, 0]
    return mirrored[scheme.flip_order]


def heatmap_target(points, mirrored, cfg):
    """Targets for points in the input crop. With `cfg.mirror_heatmaps` a
    mirrored sample is rendered unmirrored and its heatmaps flipped (column
    j -> label-1-j), as the original did; otherwise the mirrored coordinates
    are rendered directly."""
    size, label, sigma = cfg.input_img_size, cfg.output_label_size, cfg.gaussian
    if mirrored and cfg.mirror_heatmaps:
        heat = render_heatmaps(mirror_points(points, size, cfg.scheme), size, label, sigma)
        return np.ascontiguousarray(heat[cfg.scheme.flip_order][:, :, ::-1])
    return render_heatmaps(points, size, label, sigma)


def draw_transform(rng, cfg):
    """A random training crop transform (record -> input): rotation, scale."""
    rotation = int(rng.integers(-MAX_ROTATION, MAX_ROTATION))
    ratio = float(np.clip(rng.normal(1.0, SCALE_SIGMA), SCALE_MIN, SCALE_MAX))
    centre = (cfg.record_img_size / 2.0, cfg.record_img_size / 2.0)
    side = int(cfg.base_scale * ratio)
    return geometry.crop_transform(centre, side, rotation, cfg.input_img_size), rotation, ratio


def inside(points, size):
    return bool(np.all((points >= 0) & (points < size)))


def training_sample(image, points, rng, cfg, mirror=None):
    """Augmented (input RGB uint8, points in the input crop, mirrored) or None
    when DRAW_TRIES draws all push a landmark out of the crop.

    mirror None flips with probability 0.5 (decided after the draw);
    True/False forces it.
    """
    size = cfg.input_img_size
    for _ in range(DRAW_TRIES):
        matrix, _, _ = draw_transform(rng, cfg)
        crop_points = geometry.apply(matrix, points)
        if inside(crop_points, size):
            break
    else:
        return None
    crop = geometry.warp(image, matrix, size)
    if mirror is None:
        mirror = bool(rng.integers(0, 2))
    if mirror:
        crop = crop[:, ::-1]
        crop_points = mirror_points(crop_points, size, cfg.scheme)
    return np.ascontiguousarray(crop), crop_points, mirror


def eval_sample(image, points, transforms, cfg):
    """(input RGB uint8, points in the input crop) of a record through the
    evaluation transforms (alignment to the record frame, then the crop)."""
    align, crop = transforms
    aligned = geometry.warp(image, align, cfg.record_img_size)
    return (geometry.warp(aligned, crop, cfg.input_img_size),
            geometry.apply(crop, geometry.apply(align, points)))
