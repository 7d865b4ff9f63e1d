"""Geometry shared by the builders, the augmentation and the evaluation:
the 5-point template, Umeyama similarity estimation and affine helpers."""
import os

import cv2
import numpy as np


# 5-point template (eye centres, nose tip, mouth corners) of a 112x112 face.
TEMPLATE_112 = np.array([[38.2946, 41.6963], [73.5318, 41.5014], [56.0252, 61.7366],
                         [41.5493, 82.3655], [70.7299, 82.2041]], dtype=np.float64)
RECORD_SIZE = 384
# The template placed at the centre of the 384 record frame.
TEMPLATE_384 = TEMPLATE_112 * 2 + 80

NEUTRAL_FACE = np.loadtxt(os.path.join(os.path.dirname(__file__), 'neutral_face.txt'))


def box_side(box):
    """The longer side of an (x1, y1, x2, y2, ...) box: the face's scale."""
    return max(box[2] - box[0], box[3] - box[1])


def umeyama(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation) taking
    src (N, 2) onto dst (N, 2), as a 2x3 matrix (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    spread = src_c.var(axis=0).sum()
    # Points all in one place (a network that says nothing) fix no rotation
    # or scale: the similarity is then a translation, never NaN.
    scale = (s * d).sum() / spread if spread > 1e-12 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def alignment_transform(points, scheme):
    """Similarity taking a face's 5 points (by its landmark scheme) onto the
    384 record template."""
    return umeyama(scheme.five_points(points), TEMPLATE_384)


def apply(matrix, points):
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix):
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp(image, matrix, size):
    """cv2.warpAffine, bilinear, border 0, square output of side `size`."""
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_transform(center, side, rotation_deg, output_size):
    """Affine map of a square of `side` around `center`, rotated by
    `rotation_deg`, onto an `output_size` square (center -> output centre)."""
    scale = output_size / float(side)
    angle = np.deg2rad(rotation_deg)
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    matrix = np.zeros((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = output_size / 2.0 - linear @ np.asarray(center, dtype=np.float64)
    return matrix
