"""Landmark schemes: which index is which part of the face, one definition
per scheme. A scheme holds the point count, the mirror pairs, the drawing
groups, the five alignment points, the normalisations of its NME and, where
it can be drawn on synthetic faces, its mapping from the 68 iBUG points.

The network (heatmap count, coherent loss), the data pipeline (records,
mirroring, alignment), the evaluation protocol and the drawing all take a
Scheme. A configuration's `landmark_scheme` is one of SCHEMES by name, or a
user's scheme by content: the path of its JSON file (`docs/schemes.md` gives
its form) is read once, when the configuration is formed (`resolve`), and
its content travels with the run, its record sets and its workers. Adding a
scheme is one entry in SCHEMES.
"""
import json
import os
from collections import namedtuple

import numpy as np

DEFAULT = 'ibug68'
# The largest Scheme.shape_error of a plausible face. Calibrated on the 43
# annotated dlib faces (at most 0.12), 300 synthetic faces (at most 0.12) and
# a small network's points on synthetic faces like those it learnt (NME 8%:
# at most 0.27), against the points on the dlib photos of that network (at
# least 0.52) and of random weights (at least 1.5).
PLAUSIBLE_SHAPE_ERROR = 0.4


def shaped_like_a_face(shape_error):
    """Whether a Scheme.shape_error is a plausible face's (None, a scheme
    without a mean shape, cannot tell, so yes)."""
    return shape_error is None or shape_error <= PLAUSIBLE_SHAPE_ERROR


class SchemeError(ValueError):
    """A scheme that is unknown or does not hold together; names the file."""


class Scheme(namedtuple('Scheme', 'name count pairs groups five norms norm about from_ibug68 '
                                   'spec')):
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
    spec        a user's scheme: its JSON content; None for the built-in ones
    """

    @property
    def mean_shape(self):
        """(count, 2) mean face in the 384 record frame, or None: the neutral
        68-point face placed by `from_ibug68`, or a user scheme's
        "mean_shape"."""
        if self.spec is not None and 'mean_shape' in self.spec:
            return np.asarray(self.spec['mean_shape'], dtype=np.float64)
        if self.from_ibug68 is None:
            return None
        from .geometry import NEUTRAL_FACE
        return self.from_ibug68 @ NEUTRAL_FACE

    def shape_error(self, points):
        """How far one face's (count, 2) points are from a face: the RMS
        distance between them and the mean shape moved onto them by the best
        similarity, over the size of that moved shape (sqrt of its box's
        area). None for a scheme without a mean shape. A face is plausible
        up to PLAUSIBLE_SHAPE_ERROR."""
        mean = self.mean_shape
        points = np.asarray(points, dtype=np.float64)
        if mean is None or not np.isfinite(points).all():
            return None
        from .geometry import apply, umeyama
        fitted = apply(umeyama(mean, points), mean)
        size = box_size(fitted[None])[0]
        if not size > 0:
            return float('inf')
        return float(np.sqrt(((points - fitted) ** 2).sum(axis=1).mean()) / size)

    @property
    def value(self):
        """What a configuration or a record set stores: the name of a
        built-in scheme, the content of a user's."""
        return self.spec if self.spec is not None else self.name

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
                  'iBUG 68 points', np.eye(68), None)


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
                  'WFLW 98 points', np.array(rows), None)


def _cofw29():
    """COFW's 29 points (Burgos-Artizzu et al.): brows 0-7, eyes 8-17
    (pupils 16, 17), nose 18-21, mouth 22-27, chin 28."""
    pairs = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
             (18, 19), (22, 23)]
    return Scheme('cofw29', 29, pairs, (), ((16,), (17,), (20,), (22,), (23,)),
                  {'ocular': ((8,), (9,)), 'pupils': ((16,), (17,))}, 'ocular',
                  'COFW 29 points', None, None)


SCHEMES = {s.name: s for s in (_ibug68(), _wflw98(), _cofw29())}


SPEC_KEYS = ('name', 'points', 'flip_pairs', 'groups', 'five', 'normalisations',
             'normalisation', 'about', 'mean_shape')


def read_spec(path):
    """The JSON content of a user's scheme file; SchemeError naming it."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as err:
        raise SchemeError('landmark scheme %s cannot be read: %s' % (path, err))
    if not isinstance(spec, dict):
        raise SchemeError('landmark scheme %s: expected a JSON object (docs/schemes.md)' % path)
    return spec


def from_spec(spec, where):
    """A user's scheme from its content: {"name", "points", "flip_pairs",
    "groups": [{"points": [...], "closed": bool}], "five": [[...] x 5],
    "normalisations": {name: [[...], [...]]}, "normalisation", "about"}.
    SchemeError names `where` and the key at fault."""
    where = 'landmark scheme %s' % where
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise SchemeError('%s: unknown key%s %s (a scheme has %s)' % (
            where, 's' if len(unknown) > 1 else '', ', '.join(map(repr, unknown)),
            ', '.join(SPEC_KEYS)))

    def need(key, kind):
        if key not in spec or not isinstance(spec[key], kind):
            raise SchemeError('%s: key %r is missing or not a %s' % (where, key, kind.__name__))
        return spec[key]
    name = need('name', str)
    if name in SCHEMES:
        raise SchemeError('%s: its name %r is a built-in scheme\'s; give it a name of its own '
                          '(a file cannot redefine %s)' % (where, name, name))
    count = need('points', int)
    pairs, five = need('flip_pairs', list), need('five', list)
    norms = need('normalisations', dict)
    if count < 5:
        raise SchemeError('%s: points must be at least 5 (the alignment takes five), got %d'
                          % (where, count))

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
    mean = spec.get('mean_shape')
    if mean is not None and np.shape(mean) != (count, 2):
        raise SchemeError('%s: mean_shape must list %d [x, y] points, got shape %s'
                          % (where, count, np.shape(mean)))
    return Scheme(name, count, [tuple(p) for p in pairs], groups,
                  tuple(indices(f, 'five') for f in five), norms, norm,
                  spec.get('about', '%s %d points' % (name, count)), None,
                  json.loads(json.dumps(spec)))


def is_path(value):
    return isinstance(value, str) and (value.endswith('.json') or os.path.sep in value)


def resolve(value, base=None):
    """What a configuration stores for `value`: a built-in scheme's name, or
    a user's scheme by content, its file (a path relative to `base`, the
    current folder by default) read and checked now."""
    if isinstance(value, str) and value in SCHEMES:
        return value
    if is_path(value):
        path = os.path.join(base or os.getcwd(), os.path.expanduser(value))
        return from_spec(read_spec(path), path).value
    return get(value).value


def get(value):
    """The Scheme of `value`: a Scheme, a built-in name, a user's scheme
    content (a dict) or the path of its JSON file."""
    if isinstance(value, Scheme):
        return value
    if isinstance(value, dict):
        return from_spec(value, 'named %r' % value.get('name', '?'))
    if value in SCHEMES:
        return SCHEMES[value]
    if is_path(value):
        return from_spec(read_spec(value), value)
    raise SchemeError('unknown landmark scheme %r: one of %s, or the path of a JSON file'
                      % (value, ', '.join(SCHEMES)))


IBUG68 = SCHEMES[DEFAULT]
