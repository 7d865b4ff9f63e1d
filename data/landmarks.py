"""The 68-point iBUG scheme: which index is which part of the face.

One home for the flip order, the drawing groups, the five alignment points
and the points the normalisations use; the network (coherent loss), the data
pipeline, the evaluation protocol and the drawing all read them from here.
"""
import numpy as np

NUM_POINTS = 68

# Point i of a mirrored face is point FLIP_ORDER[i] of the original.
FLIP_ORDER = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
              + list(range(35, 30, -1)) + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
              + list(range(54, 47, -1)) + list(range(59, 54, -1)) + list(range(64, 59, -1))
              + [67, 66, 65])

# Polylines drawn on a face (range, closed): jaw, brows, nose bridge, nose
# base, eyes, outer and inner lips.
GROUPS = ((range(0, 17), False), (range(17, 22), False), (range(22, 27), False),
          (range(27, 31), False), (range(31, 36), False), (range(36, 42), True),
          (range(42, 48), True), (range(48, 60), True), (range(60, 68), True))

LEFT_EYE_CORNERS = (36, 39)
RIGHT_EYE_CORNERS = (42, 45)
NOSE_TIP = 30
MOUTH_CORNERS = (48, 54)
OUTER_EYE_CORNERS = (36, 45)      # the inter-ocular normalisation


def eye_centres(points):
    """(left, right) eye centres of (..., 68, 2) points: means of the corners."""
    points = np.asarray(points, dtype=np.float64)
    left = points[..., LEFT_EYE_CORNERS, :].mean(axis=-2)
    right = points[..., RIGHT_EYE_CORNERS, :].mean(axis=-2)
    return left, right


def five_points(points):
    """The five alignment points of 68 (x, y) points as (5, 2): eye centres,
    nose tip, mouth corners."""
    points = np.asarray(points, dtype=np.float64)
    left, right = eye_centres(points)
    return np.vstack([left, right, points[NOSE_TIP], points[list(MOUTH_CORNERS)]])
