"""Face records: MXNet indexed RecordIO (`NAME.rec` + `NAME.idx`) holding a
384x384 JPEG and its landmarks stored (y, x) in the IRHeader label. A set of
another scheme than the 68 iBUG points has `NAME.scheme.json` beside it
naming the scheme and its point count.

The reader and writer are plain Python (byte-compatible with
`mx.recordio.MXIndexedRecordIO`) so that worker processes need no MXNet, and
so that a damaged record is reported instead of crashing a run.
"""
import errno
import logging
import os
import struct

import json

import cv2
import numpy as np

from . import landmarks
from .files import AtomicFile, WriteError, write_atomic

MAGIC = 0xced7230a
HEADER = struct.Struct('IfQQ')      # flag, label, id, id2 (mx.recordio.IRHeader)
IMAGE_SIGNATURES = (b'\xff\xd8', b'\x89PNG')


log = logging.getLogger(__name__)


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and record."""


def index_path(rec_path):
    return os.path.splitext(rec_path)[0] + '.idx'


def names_path(rec_path):
    """NAME.names: the source image of each record (key TAB name), written
    by the builders so that reports can name every image."""
    return os.path.splitext(rec_path)[0] + '.names'


def scheme_path(rec_path):
    return os.path.splitext(rec_path)[0] + '.scheme.json'


def origin_path(rec_path):
    """NAME.origin.json: where a set's faces come from, when they are not
    photos (synthetic faces say so, and a network trained on them says so)."""
    return os.path.splitext(rec_path)[0] + '.origin.json'


def scheme_record(scheme):
    """The content of NAME.scheme.json for a set of `scheme` (a user's
    scheme travels with its set by content)."""
    record = {'scheme': scheme.name, 'points': scheme.count}
    if scheme.spec is not None:
        record['spec'] = scheme.spec
    return record


def scheme_of(rec_path, expected=None, label_points=lambda: None):
    """The Scheme of a record set: NAME.scheme.json's (a built-in scheme by
    name, a user's by its content); a set without it holds the 68 iBUG
    points, or, when its records hold another count (`label_points()`),
    the `expected` scheme of that count (the configuration's). RecordError
    says what to do where neither fits."""
    path = scheme_path(rec_path)
    if not os.path.isfile(path):
        count = label_points()
        if count in (None, landmarks.IBUG68.count):
            return landmarks.IBUG68
        if expected is not None and expected.count == count:
            return expected
        raise RecordError(
            '%s holds faces of %d points but has no %s saying their landmark scheme (a set '
            'without one holds the 68 iBUG points): set the configuration\'s landmark_scheme '
            '(e.g. --set landmark_scheme=%s), or write %s as {"scheme": NAME, "points": %d}'
            % (rec_path, count, os.path.basename(path),
               next((s.name for s in landmarks.SCHEMES.values() if s.count == count),
                    'my-scheme.json'), os.path.basename(path), count))
    try:
        with open(path) as f:
            found = json.load(f)
        name, count = str(found['scheme']), int(found['points'])
        scheme = landmarks.get(found['spec'] if 'spec' in found else name) \
            if 'spec' in found or name in landmarks.SCHEMES else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RecordError('%s: cannot read the scheme of the set: %s' % (path, err))
    if scheme is None and expected is not None and (expected.name, expected.count) == (name,
                                                                                      count):
        scheme = expected           # written by an older version: the name only
    if scheme is None:
        raise RecordError('%s names the scheme %r without its content (an older version wrote '
                          'it): give its JSON with --set landmark_scheme=FILE' % (path, name))
    if scheme.count != count:
        raise RecordError('%s says %d points, but the scheme %s has %d'
                          % (path, count, scheme.name, scheme.count))
    return scheme


def pack_face(image_rgb, points, count, record_id=0, quality=95):
    """Record payload for an RGB image and `count` (x, y) points (stored (y, x))."""
    points = np.asarray(points, dtype=np.float32)
    if points.shape != (count, 2):
        raise ValueError('expected %d (x, y) points, got shape %s' % (count, points.shape))
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError('JPEG encoding failed')
    label = points[:, ::-1].reshape(-1)
    return (HEADER.pack(len(label), 0.0, record_id, 0) + label.astype('<f4').tobytes()
            + jpeg.tobytes())


def unpack_label(payload, where='record'):
    """(label floats, image bytes) of a payload."""
    if len(payload) < HEADER.size:
        raise RecordError('%s: payload of %d bytes is shorter than a header' % (where, len(payload)))
    flag, label, _, _ = HEADER.unpack_from(payload)
    body = payload[HEADER.size:]
    if flag == 0:
        return np.array([label], dtype=np.float32), body
    if len(body) < 4 * flag:
        raise RecordError('%s: header announces %d label floats, payload is too short' % (where, flag))
    return np.frombuffer(body[:4 * flag], dtype='<f4').astype(np.float32), body[4 * flag:]


def unpack_face(payload, count, label_xfirst=False, where='record'):
    """(RGB uint8 image, (count, 2) float32 (x, y) points) of a payload."""
    label, jpeg = unpack_label(payload, where)
    if label.size != 2 * count:
        raise RecordError('%s: label has %d floats, expected %d (%d points)'
                          % (where, label.size, 2 * count, count))
    points = label.reshape(count, 2)
    if not label_xfirst:
        points = points[:, ::-1]
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RecordError('%s: image bytes do not decode' % where)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.ascontiguousarray(points)


class RecordReader(object):
    """Random access to the records of `NAME.rec` through `NAME.idx`.

    The file is opened lazily per process, so a reader can be handed to
    forked workers. `scheme` is the one expected (the configuration's): it
    is taken for a set of its point count without NAME.scheme.json.
    """

    def __init__(self, rec_path, scheme=None):
        self.path = str(rec_path)
        idx = index_path(self.path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError('record file %s does not exist' % self.path)
        if not os.path.isfile(idx):
            raise FileNotFoundError('index %s is missing (every %s needs its .idx beside it)'
                                    % (idx, os.path.basename(self.path)))
        self.keys, self.offsets = [], {}
        with open(idx) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split('\t')
                if len(parts) != 2:
                    raise RecordError('%s line %d: expected "key<TAB>offset"' % (idx, line_no))
                key = int(parts[0])
                self.keys.append(key)
                self.offsets[key] = int(parts[1])
        self.size = os.path.getsize(self.path)
        # Opened by this absolute path: workers run in another folder.
        self._where = os.path.abspath(self.path)
        self._fd, self._pid = None, None
        self.scheme = scheme_of(self.path, scheme, self._label_points)
        self.count = self.scheme.count
        self.origin = _origin(self.path)

    def __len__(self):
        return len(self.keys)

    def _label_points(self):
        """The number of points the first readable record holds, or None."""
        for key in self.keys[:8]:
            try:
                label, _ = unpack_label(self.read(key))
                return label.size // 2
            except (RecordError, OSError):
                continue
        return None

    def _file(self):
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self._where, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, key):
        """Payload bytes of record `key`; RecordError when it is damaged."""
        where = '%s record %d' % (self.path, key)
        offset = self.offsets[key]
        head = os.pread(self._file(), 8, offset)
        if len(head) < 8:
            raise RecordError('%s: file ends before the record (truncated)' % where)
        magic, lrec = struct.unpack('<II', head)
        if magic != MAGIC:
            raise RecordError('%s: bad magic number (corrupt file)' % where)
        if lrec >> 29:
            raise RecordError('%s: multi-part records are not supported' % where)
        length = lrec & ((1 << 29) - 1)
        payload = os.pread(self._file(), length, offset + 8)
        if len(payload) < length:
            raise RecordError('%s: record is truncated (%d of %d bytes)'
                              % (where, len(payload), length))
        return payload

    def check(self, key):
        """RecordError when record `key`'s framing, label header or image
        signature is damaged; reads a few hundred bytes, not the image."""
        where = '%s record %d' % (self.path, key)
        offset = self.offsets[key]
        if offset + 8 > self.size:
            raise RecordError('%s: offset %d is beyond the end of the file' % (where, offset))
        magic, lrec = struct.unpack('<II', os.pread(self._file(), 8, offset))
        if magic != MAGIC:
            raise RecordError('%s: bad magic number (corrupt file)' % where)
        length = lrec & ((1 << 29) - 1)
        if offset + 8 + length > self.size:
            raise RecordError('%s: record is truncated' % where)
        head = os.pread(self._file(), min(length, HEADER.size + 8 * self.count + 4), offset + 8)
        label, image = unpack_label(head, where)
        if label.size != 2 * self.count:
            raise RecordError('%s: label has %d floats, expected %d (%d points)'
                              % (where, label.size, 2 * self.count, self.count))
        if not image.startswith(IMAGE_SIGNATURES):
            raise RecordError('%s: the payload after the label is not a JPEG or PNG image' % where)

    def scan(self):
        """Messages of every damaged record (see `check`)."""
        problems = []
        for key in self.keys:
            try:
                self.check(key)
            except RecordError as err:
                problems.append(str(err))
        return problems

    def read_face(self, key, label_xfirst=False):
        return unpack_face(self.read(key), self.count, label_xfirst,
                           '%s record %d' % (self.path, key))

    def require_scheme(self, scheme):
        """RecordError unless the set holds the points of `scheme`."""
        if (self.scheme.name, self.count) != (scheme.name, scheme.count):
            raise RecordError(
                '%s holds %s faces (%d points), but the configuration\'s landmark scheme is %s '
                '(%d points); choose the dataset section of this set or --set landmark_scheme=%s'
                % (self.path, self.scheme.name, self.count, scheme.name, scheme.count,
                   self.scheme.name if self.scheme.spec is None else 'FILE.json'))


def _origin(rec_path):
    """The content of NAME.origin.json, or None (photos)."""
    try:
        with open(origin_path(rec_path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gate(path, limit, setting, scheme=None):
    """Check every record's framing and label header; RecordError (before
    anything is written) when more than a `limit` share is unreadable, the
    message naming `setting`, the option that sets the limit. `scheme`: the
    one expected (see RecordReader)."""
    reader = RecordReader(path, scheme)
    problems = reader.scan()
    if len(problems) > limit * len(reader):
        raise RecordError('%s: %d of %d records are unreadable (first: %s); the data gate allows '
                          '%g%% (%s)' % (path, len(problems), len(reader), problems[0],
                                         100 * limit, setting))
    if problems:
        log.warning('%s: %d of %d records are unreadable and will be skipped (first: %s)',
                    path, len(problems), len(reader), problems[0])
    return reader


def far_outside(reader, size, margin=0.5):
    """Keys of the records with a landmark more than `margin` x `size`
    beyond the border of their `size` x `size` image: their error says
    nothing about the network."""
    keys = []
    for key in reader.keys:
        try:
            label, _ = unpack_label(reader.read(key))
        except RecordError:
            continue
        if label.size and (label.min() < -margin * size or label.max() > (1 + margin) * size):
            keys.append(key)
    return keys


class RecordWriter(object):
    """Write `PREFIX.rec` + `PREFIX.idx` (+ `PREFIX.names` when records are
    named) safely: records go to temporary files, flushed, fsynced and
    renamed into place by `commit()`; leaving the `with` block through an
    exception deletes them, so a failed build never leaves a half set. An
    existing set is replaced only with `overwrite`. A failed write raises
    WriteError naming the file and the cause."""

    def __init__(self, prefix, scheme, overwrite=False, origin=None):
        self.scheme, self.origin = scheme, origin
        self.rec_path = str(prefix) + '.rec'
        self.idx_path = str(prefix) + '.idx'
        existing = [p for p in (self.rec_path, self.idx_path) if os.path.exists(p)]
        if existing and not overwrite:
            raise WriteError(errno.EEXIST, '%s exists; not replacing a record set (choose '
                             'another output or overwrite it deliberately)' % existing[0])
        self._files = [AtomicFile(self.rec_path, 'wb'), AtomicFile(self.idx_path, 'w')]
        self._rec = self._files[0].__enter__()
        try:
            self._idx = self._files[1].__enter__()
        except WriteError:
            self._files[0]._discard()
            raise
        self.count = 0
        self.names = []

    def write(self, payload, name=None):
        """Append a payload; its key is the running count. `name` (the
        source image) goes to PREFIX.names."""
        if name is not None:
            self.names.append('%d\t%s\n' % (self.count, name.replace('\n', ' ')))
        try:
            offset = self._rec.tell()
            self._rec.write(struct.pack('<II', MAGIC, len(payload)) + payload)
            self._rec.write(b'\x00' * (-len(payload) % 4))
            self._idx.write('%d\t%d\n' % (self.count, offset))
        except OSError as err:
            raise WriteError(err.errno, 'cannot write %s: %s' % (self.rec_path, err.strerror))
        self.count += 1

    def commit(self):
        for atomic in self._files:
            atomic.__exit__(None, None, None)
        if self.names:
            write_atomic(names_path(self.rec_path), ''.join(self.names))
        if self.origin is not None:
            write_atomic(origin_path(self.rec_path), json.dumps(self.origin))
        elif os.path.exists(origin_path(self.rec_path)):       # a replaced set
            os.remove(origin_path(self.rec_path))
        sidecar = scheme_path(self.rec_path)
        if self.scheme is not landmarks.IBUG68:
            write_atomic(sidecar, json.dumps(scheme_record(self.scheme)))
        elif os.path.exists(sidecar):          # a replaced set of another scheme
            os.remove(sidecar)

    def abort(self):
        for atomic in self._files:
            atomic._discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
