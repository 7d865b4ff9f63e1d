"""Build face record sets (docs/data.md) from the public raw datasets.

    python -m data.build --format pts --input lfpw/trainset helen/trainset afw --out data_2d/train
    python -m data.build --format ljson --input menpo_folder --out set
    python -m data.build --format cofw --input COFW_test_color.mat --cofw-points test_annotations \\
        --out data_2d/cofw_testset
    python -m data.build --format aflw2000 --input AFLW2000 --out data_3d/AFLW2000-3D
    python -m data.build --format 300w-lp --input 300W_LP --out data_3d/train
    python -m data.build --format dlib-xml --input training_with_face_landmarks.xml --out faces
    python -m data.build --input pts:my-faces dlib-xml:more/faces.xml --out my-data --split train

Inputs of several formats go into one set when each is written FORMAT:PATH
(--format is the format of the others). With --split NAME the set is
OUT/NAME.rec (train for the training set, as train.py expects).

Every face is similarity-aligned by its 5 points to the template x2+80 and
stored as a 384x384 JPEG with its 68 points (y, x); the image name goes to
OUT.names. Points outside the image are kept (the aligned crop pads with
black) and counted; a face whose points are not all finite is refused with
the reason. The set is written atomically.

Which points each format gives (all 0-based pixels once read):
  pts       300-W .pts beside each image (header `version: 1`, `n_points: 68`);
            1-based, so 1 is subtracted unless --pts-one-based-keep
  ljson     menpo .ljson (versions 1-3) beside each image; (y, x), 0-based
  cofw      COFW-68: images from IsT of COFW_test_color.mat (MATLAB v7.3 or
            v5), points from --cofw-points DIR/{i}_points.mat ('Points', 1-based)
  aflw2000  AFLW2000-3D: pt3d_68 (3 x 68) of the .mat beside each image, rows x, y
  300w-lp   300W-LP: SUBSET/NAME.jpg with landmarks/SUBSET/NAME_pts.mat; pts_3d
            (the projected 3D points, as AFLW2000-3D) or --lp-points pts_2d;
            the *_Flip copies have no landmark files and are skipped
  dlib-xml  dlib's imglab XML (<part name x y/>)
"""
import argparse
import itertools
import json
import os
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from . import geometry
from .images import list_images
from .landmarks import NUM_POINTS
from .recordio import RecordWriter, pack_face

PUBLISHED_COUNTS = {'ibug': 135, 'cofw_testset': 507, '300W': 600, 'AFLW2000-3D': 2000}


class Skip(Exception):
    """An input that cannot become a record; the message says why."""


def read_image(path):
    """RGB uint8 of an image file; Skip when it does not decode."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise Skip('unreadable image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_points(points):
    """(68, 2) finite points, or Skip with the reason."""
    points = np.asarray(points, dtype=np.float64)
    if points.size != 2 * NUM_POINTS:
        raise Skip('wrong point count: %d instead of 68' % (points.size // 2))
    points = points.reshape(NUM_POINTS, 2)
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points)).any(axis=1).sum())
        raise Skip('%d landmark%s not finite (missing or NaN)' % (bad, ' is' if bad == 1
                                                                   else 's are'))
    return points


def outside(points, image):
    height, width = image.shape[:2]
    return bool((points < 0).any() or (points[:, 0] > width - 1).any()
                or (points[:, 1] > height - 1).any())


def aligned_record(image, points, record_id):
    """Record payload of a face aligned to the 384 frame."""
    matrix = geometry.alignment_transform(points)
    aligned = geometry.warp(image, matrix, geometry.RECORD_SIZE)
    return pack_face(aligned, geometry.apply(matrix, points), record_id)


# Readers: each yields (name, image loader, points loader) per face. ------------

def _beside(inputs, extension):
    """(image, annotation) pairs: images under the inputs with the
    annotation file of the same stem beside them, then annotation files
    without an image as (None, annotation)."""
    for root in inputs:
        if os.path.isfile(root) and root.endswith(extension):
            images, annotations = [], [root]
        elif os.path.isfile(root):
            images, annotations = [root], []
        else:
            images = list_images(root)
            annotations = sorted(os.path.join(d, n) for d, _, names in os.walk(root)
                                 for n in names if n.endswith(extension))
        stems = {os.path.splitext(p)[0] for p in images}
        for image_path in images:
            yield image_path, os.path.splitext(image_path)[0] + extension
        for annotation in annotations:
            if annotation[:-len(extension)] not in stems:
                yield None, annotation


def read_pts(path, one_based=True):
    """68 (x, y) points of a 300-W `.pts` file."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    try:
        header = dict(line.split(':', 1) for line in lines[:lines.index('{')] if ':' in line)
        count = int(header.get('n_points', NUM_POINTS))
        start, end = lines.index('{') + 1, lines.index('}')
        points = np.array([[float(v) for v in line.split()[:2]] for line in lines[start:end]])
    except (ValueError, IndexError):
        raise Skip('malformed .pts file')
    if count != NUM_POINTS or len(points) != count:
        raise Skip('.pts has %d points (n_points %d), not 68' % (len(points), count))
    return points - 1 if one_based else points


def read_ljson(path):
    """68 (x, y) points of a menpo .ljson (versions 1-3 store (y, x))."""
    try:
        with open(path) as f:
            data = json.load(f)
        version = data.get('version', 1)
        if version == 1:
            points = [p['point'] for g in data['groups'] for p in g['landmarks']]
        elif version == 2:
            points = data['landmarks']['points']
        else:
            points = next(iter(data['groups'].values()))['landmarks']['points']
        points = np.array([[np.nan if v is None else v for v in p] for p in points],
                          dtype=np.float64)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise Skip('malformed .ljson file')
    return points[:, ::-1]


def faces_from_annotated_images(inputs, extension, reader):
    for image_path, annotation in _beside(inputs, extension):
        if image_path is None:
            yield annotation, None, Skip('no image of the same name beside this %s file'
                                         % extension)
            continue
        if not os.path.isfile(annotation):
            yield image_path, None, Skip('no %s file beside the image' % extension)
            continue
        yield image_path, (lambda p=image_path: read_image(p)), (lambda a=annotation: reader(a))


def _matlab(path):
    """A .mat file: scipy for v5, h5py for v7.3 (HDF5)."""
    try:
        return scipy.io.loadmat(path)
    except (NotImplementedError, ValueError):
        import h5py
        return h5py.File(path, 'r')


def faces_from_cofw(inputs, points_dir):
    """COFW-68 test: images from the `IsT` cell array, points from
    `points_dir/{i}_points.mat` ('Points', 68 x 2, 1-based)."""
    for mat_path in inputs:
        mat = _matlab(mat_path)
        cells = mat['IsT']
        v73 = not isinstance(mat, dict)
        refs = np.asarray(cells).reshape(-1)

        for i, ref in enumerate(refs):
            def image(ref=ref):
                array = np.asarray(mat[ref]).T if v73 else np.asarray(ref)
                if array.ndim == 2:
                    array = np.stack([array] * 3, axis=-1)
                return np.ascontiguousarray(array.astype(np.uint8))

            def points(i=i):
                path = os.path.join(points_dir, '%d_points.mat' % (i + 1))
                if not os.path.isfile(path):
                    raise Skip('no %s' % path)
                return np.asarray(scipy.io.loadmat(path)['Points'], dtype=np.float64) - 1
            yield '%s[%d]' % (mat_path, i + 1), image, points


def faces_from_aflw2000(inputs):
    """AFLW2000-3D: `name.jpg` beside `name.mat` holding pt3d_68 (3 x 68);
    its first two rows are the projected x, y."""
    def points(path):
        mat = scipy.io.loadmat(path)
        if 'pt3d_68' not in mat:
            raise Skip('no pt3d_68 in %s' % path)
        return np.asarray(mat['pt3d_68'])[:2].T
    return faces_from_annotated_images(inputs, '.mat', points)


def faces_from_300w_lp(inputs, which='pts_3d'):
    """300W-LP: SUBSET/NAME.jpg with landmarks/SUBSET/NAME_pts.mat."""
    for root in inputs:
        for image_path in list_images(root):
            subset, name = os.path.basename(os.path.dirname(image_path)), os.path.basename(
                image_path)
            if os.path.basename(os.path.dirname(os.path.dirname(image_path))) == 'landmarks':
                continue
            stem = os.path.splitext(name)[0]
            marks = os.path.join(root, 'landmarks', subset, stem + '_pts.mat')
            if not os.path.isfile(marks):
                reason = ('a mirrored copy without landmarks' if subset.endswith('_Flip')
                          else 'no landmarks/%s/%s_pts.mat' % (subset, stem))
                yield image_path, None, Skip(reason)
                continue

            def points(path=marks):
                mat = scipy.io.loadmat(path)
                if which not in mat:
                    raise Skip('no %s in %s' % (which, path))
                return np.asarray(mat[which], dtype=np.float64)
            yield image_path, (lambda p=image_path: read_image(p)), points


def faces_from_dlib_xml(inputs):
    """dlib imglab XML: <image file=...><box><part name x y/>...</box></image>."""
    for xml_path in inputs:
        base = os.path.dirname(os.path.abspath(xml_path))
        for image_node in ET.parse(xml_path).getroot().iter('image'):
            image_path = os.path.join(base, image_node.get('file'))
            for b, box in enumerate(image_node.iter('box')):
                parts = sorted(box.iter('part'), key=lambda p: int(p.get('name')))

                def points(parts=parts):
                    return np.array([[float(p.get('x')), float(p.get('y'))] for p in parts])
                yield '%s#%d' % (image_path, b), (lambda p=image_path: read_image(p)), points


READERS = {
    'pts': lambda args: faces_from_annotated_images(
        args.input, '.pts', lambda p: read_pts(p, not args.pts_one_based_keep)),
    'ljson': lambda args: faces_from_annotated_images(args.input, '.ljson', read_ljson),
    'cofw': lambda args: faces_from_cofw(args.input, args.cofw_points),
    'aflw2000': lambda args: faces_from_aflw2000(args.input),
    '300w-lp': lambda args: faces_from_300w_lp(args.input, args.lp_points),
    'dlib-xml': lambda args: faces_from_dlib_xml(args.input),
}


def build(faces, out_prefix, progress=True, overwrite=False):
    """Write every face with finite points; returns (written, kept with
    points outside their image, [(name, reason) skipped])."""
    skipped, outside_count = [], 0
    with RecordWriter(out_prefix, overwrite) as writer:
        for name, image_fn, points_fn in tqdm(list(faces), disable=not progress, unit='face'):
            if isinstance(points_fn, Skip):
                skipped.append((name, str(points_fn)))
                continue
            try:
                image = image_fn()
                points = check_points(points_fn())
            except Skip as reason:
                skipped.append((name, str(reason)))
                continue
            outside_count += outside(points, image)
            writer.write(aligned_record(image, points, writer.count), name)
        if writer.count == 0:
            raise ValueError('no usable face in the inputs%s; nothing written to %s.rec' % (
                ' (%d skipped; first %s: %s)' % ((len(skipped),) + skipped[0]) if skipped else '',
                out_prefix))
    return writer.count, outside_count, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description='Build a face record set (384x384 aligned '
                                     'JPEG + 68 points) from raw landmark datasets.',
                                     epilog='Formats and their points: see `pydoc data.build`.')
    parser.add_argument('--format', choices=sorted(READERS),
                        help='the format of the inputs not written FORMAT:PATH')
    parser.add_argument('--input', required=True, nargs='+', action='extend',
                        help='folders or images (pts, ljson, aflw2000, 300w-lp), the .mat (cofw) '
                        'or XML files (dlib-xml); FORMAT:PATH gives one its own format')
    parser.add_argument('--out', required=True, help='output prefix: writes OUT.rec/.idx/.names')
    parser.add_argument('--split', help='write the set as OUT/SPLIT.rec (e.g. train, my_test)')
    parser.add_argument('--cofw-points', help='folder of the COFW-68 {i}_points.mat files')
    parser.add_argument('--lp-points', default='pts_3d', choices=['pts_3d', 'pts_2d'],
                        help='300W-LP points (default pts_3d, the projected 3D landmarks)')
    parser.add_argument('--pts-one-based-keep', action='store_true',
                        help='keep .pts coordinates as written (default subtracts 1)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT set')
    args = parser.parse_args(argv)
    groups = []                     # [(format, [paths])] in the order given
    for item in args.input:
        kind, sep, path = item.partition(':')
        kind, path = (kind, path) if sep and kind in READERS else (args.format, item)
        if kind is None:
            parser.error('give --format, or write the input as FORMAT:%s (formats: %s)'
                         % (item, ', '.join(sorted(READERS))))
        if not os.path.exists(path):
            parser.error('input %s does not exist' % path)
        if groups and groups[-1][0] == kind:
            groups[-1][1].append(path)
        else:
            groups.append((kind, [path]))
    if any(kind == 'cofw' for kind, _ in groups) and not args.cofw_points:
        parser.error('--format cofw needs --cofw-points DIR')
    if args.split:
        args.out = os.path.join(args.out, args.split)
    existing = [p for p in (args.out + '.rec', args.out + '.idx') if os.path.exists(p)]
    if existing and not args.overwrite:
        print('error: %s exists; choose another --out, or add --overwrite to replace that set'
              % existing[0], file=sys.stderr)
        return 1
    try:
        faces = itertools.chain.from_iterable(
            READERS[kind](argparse.Namespace(**dict(vars(args), input=paths)))
            for kind, paths in groups)
        count, kept_outside, skipped = build(faces, args.out, overwrite=args.overwrite)
    except (ValueError, OSError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    if skipped:
        print('skipped %d input%s:' % (len(skipped), '' if len(skipped) == 1 else 's'))
        for name, reason in skipped:
            print('  %s: %s' % (name, reason))
    print('wrote %d face%s to %s.rec (%d with points outside their image, kept: the aligned crop '
          'pads)' % (count, '' if count == 1 else 's', args.out, kept_outside))
    published = PUBLISHED_COUNTS.get(os.path.basename(args.out))
    if published:
        print('the published %s set has %d faces%s' % (
            os.path.basename(args.out), published,
            '' if published == count else '; this build differs by %d' % (count - published)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
