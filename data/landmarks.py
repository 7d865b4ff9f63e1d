"""Landmark schemes: which index is which part of the face, one definition
per scheme. A scheme holds the point count, the mirror pairs, the drawing
groups, the five alignment points, the normalisations of its NME and, where
it can be drawn on synthetic faces, its mapping from the 68 iBUG points.

The network (heatmap count, coherent loss), the data pipeline (records,
mirroring, alignment), the evaluation protocol and the drawing all read the
scheme named by the configuration's `landmark_scheme`: one of SCHEMES, or
the path of a user's JSON file (`docs/schemes.md` gives its form). Adding a
scheme is one entry in SCHEMES.
"""
import json
import os
from collections import namedtuple

import numpy as np

DEFAULT = 'ibug68'


class SchemeError(ValueError):
    """A scheme that is unknown or does not hold together; names the file."""


class Scheme(namedtuple('Scheme', 'name count pairs groups five norms norm about from_ibug68')):
    """One landmark scheme.

    pairs       (i, j) mirror pairs; points in no pair lie on the mid-line
    groups      ((indices, closed), ...) polylines drawn on a face
    five        five index tuples whose means are the alignment points: left
                eye, right eye, nose tip, left and right mouth corner
    norms       {name: (indices, indices)}: the distance between the two means
                normalises the NME; `box` (sqrt of the landmark box's area) is
                always there too
    norm        the normalisation papers report for this scheme
    about       one line naming the scheme and its normalisation
    from_ibug68 (count, 68) matrix placing this scheme's points from 68
                iBUG points (synthetic faces), or None
    """

    @property
    def flip_order(self):
        """Point i of a mirrored face is point flip_order[i] of the original."""
        order = list(range(self.count))
        for i, j in self.pairs:
            order[i], order[j] = j, i
        return order

    def centres(self, points, indices):
        return np.asarray(points, dtype=np.float64)[..., list(indices), :].mean(axis=-2)

    def five_points(self, points):
        """The (5, 2) alignment points of one face's (count, 2) points."""
        return np.vstack([self.centres(points, group) for group in self.five])

    def normaliser(self, gt, norm=None):
        """Per-face normalising distance of (N, count, 2) ground truth."""
        norm = norm or self.norm
        gt = np.asarray(gt, dtype=np.float64)
        if norm == 'box':
            return box_size(gt)
        if norm not in self.norms:
            raise SchemeError('the %s scheme has no %r normalisation (it has: %s)'
                              % (self.name, norm, ', '.join(self.norm_names)))
        first, second = self.norms[norm]
        return np.linalg.norm(self.centres(gt, first) - self.centres(gt, second), axis=-1)

    def describe(self, norm=None):
        """'<scheme>, normalised by <what>' for a report line."""
        norm = norm or self.norm
        if norm == 'box':
            what = 'the landmark box (sqrt of its area)'
        else:
            what = ' to '.join('+'.join(map(str, side)) for side in self.norms[norm])
            what = '%s (point%s %s)' % (norm, 's' if len(what) > 2 else '', what)
        return '%s, normalised by %s' % (self.about, what)

    @property
    def norm_names(self):
        return [self.norm] + [n for n in list(self.norms) + ['box'] if n != self.norm]


def box_size(gt):
    """sqrt(w h) of the landmark box of each face of (N, P, 2) points (the
    `box` normalisation, the same for every scheme)."""
    size = np.asarray(gt, dtype=np.float64).max(axis=1) - np.asarray(gt).min(axis=1)
    return np.sqrt(size[:, 0] * size[:, 1])


def _mix(*terms):
    """One row of a from_ibug68 matrix: (index, weight) pairs."""
    row = np.zeros(68)
    for index, weight in terms:
        row[index] += weight
    return row


def _mid(i, j):
    return _mix((i, 0.5), (j, 0.5))


def _one(i):
    return _mix((i, 1.0))


def _ibug68():
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + \
        [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
         (48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
    groups = ((range(0, 17), False), (range(17, 22), False), (range(22, 27), False),
              (range(27, 31), False), (range(31, 36), False), (range(36, 42), True),
              (range(42, 48), True), (range(48, 60), True), (range(60, 68), True))
    return Scheme('ibug68', 68, pairs, groups, ((36, 39), (42, 45), (30,), (48,), (54,)),
                  {'eyes': ((36, 39), (42, 45)), 'ocular': ((36,), (45,))}, 'eyes',
                  'iBUG 68 points', np.eye(68))


def _wflw98():
    """WFLW's 98 points: jaw 0-32, brows 33-50 (upper edge, then lower),
    nose 51-59, eyes 60-75 (8 each, from the outer corner of the left one),
    lips 76-95, pupils 96 and 97."""
    pairs = [(i, 32 - i) for i in range(16)] + [(33 + i, 46 - i) for i in range(5)] + \
        [(38 + i, 50 - i) for i in range(4)] + [(55, 59), (56, 58)] + \
        [(60 + i, 72 - i) for i in range(5)] + [(65, 75), (66, 74), (67, 73)] + \
        [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95),
         (96, 97)]
    groups = ((range(0, 33), False), (range(33, 42), True), (range(42, 51), True),
              (range(51, 55), False), (range(55, 60), False), (range(60, 68), True),
              (range(68, 76), True), (range(76, 88), True), (range(88, 96), True))
    # From 68 points (synthetic faces only): the jaw's points and their
    # midpoints; the lower brow edge between the upper edge and the eyelid;
    # eye outlines at the corners and the midpoints of the 68-point ones;
    # pupils at the eye centres.
    rows = [_one(i // 2) if i % 2 == 0 else _mid(i // 2, i // 2 + 1) for i in range(33)]
    rows += [_one(i) for i in range(17, 22)]
    rows += [_mix((a, .425), (b, .425), (eye, .15)) for a, b, eye in
             ((20, 21, 38), (19, 20, 38), (18, 19, 37), (17, 18, 37))]
    rows += [_one(i) for i in range(22, 27)]
    rows += [_mix((a, .425), (b, .425), (eye, .15)) for a, b, eye in
             ((26, 25, 44), (25, 24, 44), (24, 23, 43), (23, 22, 43))]
    rows += [_one(i) for i in range(27, 36)]
    for r in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
        rows += [_one(r[0]), _mid(r[0], r[1]), _mid(r[1], r[2]), _mid(r[2], r[3]), _one(r[3]),
                 _mid(r[3], r[4]), _mid(r[4], r[5]), _mid(r[5], r[0])]
    rows += [_one(i) for i in range(48, 68)]
    rows += [_mix(*[(i, 1 / 6.0) for i in range(36, 42)]), _mix(*[(i, 1 / 6.0)
                                                                  for i in range(42, 48)])]
    return Scheme('wflw98', 98, pairs, groups, ((96,), (97,), (54,), (76,), (82,)),
                  {'ocular': ((60,), (72,)), 'pupils': ((96,), (97,))}, 'ocular',
                  'WFLW 98 points', np.array(rows))


def _cofw29():
    """COFW's 29 points (Burgos-Artizzu et al.): brows 0-7, eyes 8-17
    (pupils 16, 17), nose 18-21, mouth 22-27, chin 28."""
    pairs = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
             (18, 19), (22, 23)]
    return Scheme('cofw29', 29, pairs, (), ((16,), (17,), (20,), (22,), (23,)),
                  {'ocular': ((8,), (9,)), 'pupils': ((16,), (17,))}, 'ocular',
                  'COFW 29 points', None)


SCHEMES = {s.name: s for s in (_ibug68(), _wflw98(), _cofw29())}


def _user_scheme(path):
    """A scheme from a JSON file: {"name", "points", "flip_pairs",
    "groups": [{"points": [...], "closed": bool}], "five": [[...] x 5],
    "normalisations": {name: [[...], [...]]}, "normalisation": name}."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as err:
        raise SchemeError('landmark scheme %s cannot be read: %s' % (path, err))
    where = 'landmark scheme %s' % path

    def need(key, kind):
        if key not in spec or not isinstance(spec[key], kind):
            raise SchemeError('%s: key %r is missing or not a %s' % (where, key, kind.__name__))
        return spec[key]
    count = need('points', int)
    name, pairs, five = need('name', str), need('flip_pairs', list), need('five', list)
    norms = need('normalisations', dict)

    def indices(value, key):
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(i, int) and 0 <= i < count for i in values):
            raise SchemeError('%s: %s must hold point numbers 0 to %d, got %r'
                              % (where, key, count - 1, value))
        return tuple(values)
    pairs = [indices(p, 'flip_pairs') for p in pairs]
    if any(len(p) != 2 for p in pairs) or len({i for p in pairs for i in p}) != 2 * len(pairs):
        raise SchemeError('%s: flip_pairs must be pairs of distinct points, each point in one '
                          'pair at most' % where)
    if len(five) != 5:
        raise SchemeError('%s: five must list 5 points (or point lists): left eye, right eye, '
                          'nose tip, left and right mouth corner' % where)
    groups = tuple((indices(g.get('points'), 'groups'), bool(g.get('closed', False)))
                   for g in spec.get('groups', []))
    norms = {k: (indices(v[0], 'normalisations'), indices(v[1], 'normalisations'))
             for k, v in norms.items() if isinstance(v, list) and len(v) == 2}
    norm = spec.get('normalisation', next(iter(norms), 'box'))
    if norm != 'box' and norm not in norms:
        raise SchemeError('%s: normalisation %r is not among %s' % (where, norm, sorted(norms)))
    return Scheme(name, count, [tuple(p) for p in pairs], groups,
                  tuple(indices(f, 'five') for f in five), norms, norm,
                  spec.get('about', '%s %d points' % (name, count)), None)


def get(name):
    """The scheme `name` (one of SCHEMES) or of a JSON file path."""
    if isinstance(name, Scheme):
        return name
    if name in SCHEMES:
        return SCHEMES[name]
    if str(name).endswith('.json') or os.path.sep in str(name):
        return _user_scheme(name)
    raise SchemeError('unknown landmark scheme %r: one of %s, or the path of a JSON file'
                      % (name, ', '.join(SCHEMES)))


IBUG68 = SCHEMES[DEFAULT]
# The 68-point names the rest of the code has always used.
NUM_POINTS = IBUG68.count
FLIP_ORDER = IBUG68.flip_order
GROUPS = IBUG68.groups
OUTER_EYE_CORNERS = (36, 45)


def eye_centres(points):
    """(left, right) eye centres of (..., 68, 2) points: means of the corners."""
    return IBUG68.centres(points, (36, 39)), IBUG68.centres(points, (42, 45))


def five_points(points, scheme=IBUG68):
    """The five alignment points of a face's points as (5, 2): eye centres,
    nose tip, mouth corners."""
    return scheme.five_points(points)
