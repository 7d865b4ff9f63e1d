"""Build face record sets (docs/data.md) from the public raw datasets.

    python -m data.build --format pts --input lfpw/trainset helen/trainset afw --out data_2d/train
    python -m data.build --format ljson --input menpo_folder --out set
    python -m data.build --format cofw --input COFW_test_color.mat --cofw-points test_annotations \\
        --out data_2d/cofw_testset
    python -m data.build --format aflw2000 --input AFLW2000 --out data_3d/AFLW2000-3D
    python -m data.build --format 300w-lp --input 300W_LP --out data_3d/train
    python -m data.build --format dlib-xml --input training_with_face_landmarks.xml --out faces
    python -m data.build --input pts:my-faces dlib-xml:more/faces.xml --out my-data --split train
    python -m data.build --format wflw --input list_98pt_rect_attr_test.txt --out data_wflw \
        --split wflw_test --subsets

Inputs of several formats go into one set when each is written FORMAT:PATH
(--format is the format of the others). With --split NAME the set is
OUT/NAME.rec (train for the training set, as train.py expects).

Every face is similarity-aligned by the 5 points of its landmark scheme to
the template x2+80 and stored as a 384x384 JPEG with its points (y, x); the
image name goes to OUT.names and a scheme other than ibug68 to
OUT.scheme.json. Points outside the image are kept (the aligned crop pads with
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
  wflw      WFLW lists (wflw98): 196 coordinates, box, 6 attribute flags, image
            path under WFLW_images; --subsets also writes OUT_<attribute>
  cofw29    COFW's own 29 points (cofw29): IsTr/phisTr or IsT/phisT of
            COFW_*_color.mat, phis = 29 x, 29 y (1-based), 29 occlusion flags
  csv       a `.csv` of "x,y" lines beside each image (any --scheme)
  points-json  a `.json` {"points": [[x, y], ...]} beside each image (any --scheme)
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

from . import geometry, landmarks, sets
from .images import list_images
from .recordio import RecordWriter, pack_face



class Skip(Exception):
    """An input that cannot become a record; the message says why."""


def read_image(path):
    """RGB uint8 of an image file; Skip when it does not decode."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise Skip('unreadable image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_points(points, count):
    """(count, 2) finite points, or Skip with the reason."""
    points = np.asarray(points, dtype=np.float64)
    if points.size != 2 * count:
        raise Skip('wrong point count: %d instead of %d' % (points.size // 2, count))
    points = points.reshape(count, 2)
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points)).any(axis=1).sum())
        raise Skip('%d landmark%s not finite (missing or NaN)' % (bad, ' is' if bad == 1
                                                                   else 's are'))
    return points


def outside(points, image):
    height, width = image.shape[:2]
    return bool((points < 0).any() or (points[:, 0] > width - 1).any()
                or (points[:, 1] > height - 1).any())


def aligned_record(image, points, record_id, scheme):
    """Record payload of a face aligned to the 384 frame by the five points
    of its landmark scheme."""
    matrix = geometry.alignment_transform(points, scheme)
    aligned = geometry.warp(image, matrix, geometry.RECORD_SIZE)
    return pack_face(aligned, geometry.apply(matrix, points), scheme.count, record_id)


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


def read_pts(path, expected, one_based=True):
    """The `expected` (x, y) points of a 300-W `.pts` file."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    try:
        header = dict(line.split(':', 1) for line in lines[:lines.index('{')] if ':' in line)
        count = int(header.get('n_points', expected))
        start, end = lines.index('{') + 1, lines.index('}')
        points = np.array([[float(v) for v in line.split()[:2]] for line in lines[start:end]])
    except (ValueError, IndexError):
        raise Skip('malformed .pts file')
    if count != expected or len(points) != count:
        raise Skip('.pts has %d points (n_points %d), not %d' % (len(points), count, expected))
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
    """A .mat file: scipy for v5, h5py for v7.3 (HDF5); ValueError naming
    the file when it is neither (empty, cut short, another kind of file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s does not exist' % path)
    if os.path.getsize(path) == 0:
        raise ValueError('%s is empty (0 bytes), not a MATLAB .mat file' % path)
    try:
        return scipy.io.loadmat(path)
    except (NotImplementedError, ValueError, TypeError):
        import h5py
        try:
            return h5py.File(path, 'r')
        except OSError as err:
            raise ValueError('%s is not a MATLAB .mat file that can be read (neither v5 nor '
                             'v7.3/HDF5: %s)' % (path, str(err).split(' (')[0]))


def _cofw_image(mat, ref, v73):
    """RGB uint8 of one cell of a COFW image array (grey made RGB)."""
    array = np.asarray(mat[ref]).T if v73 else np.asarray(ref)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array.astype(np.uint8))


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
                return _cofw_image(mat, ref, v73)

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


WFLW_ATTRIBUTES = ('largepose', 'expression', 'illumination', 'makeup', 'occlusion', 'blur')


def _wflw_images(list_path):
    """WFLW_images beside the annotations (up to three folders up), else
    the list file's folder."""
    folder = os.path.dirname(os.path.abspath(list_path))
    for _ in range(4):
        if os.path.isdir(os.path.join(folder, 'WFLW_images')):
            return os.path.join(folder, 'WFLW_images')
        folder = os.path.dirname(folder)
    return os.path.dirname(os.path.abspath(list_path))


def faces_from_wflw(inputs, images=None, attribute=None):
    """WFLW list files (list_98pt_rect_attr_*.txt): per line 196 coordinates
    (x, y of the 98 points), the box, six attribute flags (WFLW_ATTRIBUTES)
    and the image path under WFLW_images. With `attribute` only the faces
    flagged with it."""
    for list_path in inputs:
        root = images or _wflw_images(list_path)
        with open(list_path) as f:
            lines = [line.split() for line in f if line.strip()]
        for n, words in enumerate(lines, 1):
            name = '%s line %d' % (list_path, n)
            if len(words) != 196 + 4 + 6 + 1:
                yield name, None, Skip('%d fields instead of 207 (196 coordinates, box, 6 '
                                       'attributes, image)' % len(words))
                continue
            try:
                values = np.array(words[:196], dtype=np.float64).reshape(98, 2)
                flags = [int(v) for v in words[200:206]]
            except ValueError:
                yield name, None, Skip('a coordinate or attribute is not a number')
                continue
            if attribute is not None and not flags[WFLW_ATTRIBUTES.index(attribute)]:
                continue
            image_path = os.path.join(root, words[206])
            yield image_path, (lambda p=image_path: read_image(p)), (lambda v=values: v)


def faces_from_cofw29(inputs):
    """COFW with its own 29 points: COFW_train_color.mat (IsTr, phisTr) or
    COFW_test_color.mat (IsT, phisT); a row of phis holds 29 x, 29 y (1-based)
    and 29 occlusion flags (not stored)."""
    for mat_path in inputs:
        mat = _matlab(mat_path)
        names = list(mat.keys())
        images = next((k for k in ('IsTr', 'IsT') if k in names), None)
        phis = next((k for k in ('phisTr', 'phisT') if k in names), None)
        if images is None or phis is None:
            raise ValueError('%s holds no IsTr/phisTr or IsT/phisT (a COFW color .mat?)'
                             % mat_path)
        v73 = not isinstance(mat, dict)
        table = np.asarray(mat[phis], dtype=np.float64)
        refs = np.asarray(mat[images]).reshape(-1)
        if v73:
            table = table.T
        for i, ref in enumerate(refs):
            yield ('%s[%d]' % (mat_path, i + 1), lambda ref=ref: _cofw_image(mat, ref, v73),
                   lambda row=table[i]: np.stack([row[:29], row[29:58]], axis=1) - 1)


def read_points_file(path):
    """(x, y) rows of a user's annotation: `.csv` lines "x,y", or `.json`
    {"points": [[x, y], ...]}; 0-based pixels."""
    try:
        if path.endswith('.json'):
            with open(path) as f:
                rows = json.load(f)['points']
        else:
            with open(path) as f:
                rows = [line.replace(',', ' ').split()[:2] for line in f if line.strip()]
        return np.array(rows, dtype=np.float64).reshape(-1, 2)
    except (OSError, ValueError, KeyError, TypeError):
        raise Skip('malformed %s file' % os.path.splitext(path)[1])


READERS = {
    'pts': lambda args: faces_from_annotated_images(
        args.input, '.pts', lambda p: read_pts(p, landmarks.get(args.scheme).count,
                                               not args.pts_one_based_keep)),
    'ljson': lambda args: faces_from_annotated_images(args.input, '.ljson', read_ljson),
    'cofw': lambda args: faces_from_cofw(args.input, args.cofw_points),
    'aflw2000': lambda args: faces_from_aflw2000(args.input),
    '300w-lp': lambda args: faces_from_300w_lp(args.input, args.lp_points),
    'dlib-xml': lambda args: faces_from_dlib_xml(args.input),
    'wflw': lambda args: faces_from_wflw(args.input, args.images),
    'cofw29': lambda args: faces_from_cofw29(args.input),
    'csv': lambda args: faces_from_annotated_images(args.input, '.csv', read_points_file),
    'points-json': lambda args: faces_from_annotated_images(args.input, '.json',
                                                            read_points_file),
}
# The landmark scheme of a format's points (others: --scheme, default ibug68).
FORMAT_SCHEMES = {'wflw': 'wflw98', 'cofw29': 'cofw29'}


def build(faces, out_prefix, scheme, progress=True, overwrite=False):
    """Write every face with finite points of `scheme`; returns (written,
    kept with points outside their image, [(name, reason) skipped])."""
    skipped, outside_count = [], 0
    with RecordWriter(out_prefix, scheme, overwrite) as writer:
        for name, image_fn, points_fn in tqdm(list(faces), disable=not progress, unit='face'):
            if isinstance(points_fn, Skip):
                skipped.append((name, str(points_fn)))
                continue
            try:
                image = image_fn()
                points = check_points(points_fn(), scheme.count)
            except Skip as reason:
                skipped.append((name, str(reason)))
                continue
            outside_count += outside(points, image)
            writer.write(aligned_record(image, points, writer.count, scheme), name)
        if writer.count == 0:
            raise ValueError('no usable face in the inputs%s; nothing written to %s.rec' % (
                ' (%d skipped; first %s: %s)' % ((len(skipped),) + skipped[0]) if skipped else '',
                out_prefix))
    return writer.count, outside_count, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description='Build a face record set (384x384 aligned '
                                     'JPEG + landmarks) from raw landmark datasets.',
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
    parser.add_argument('--scheme', help='landmark scheme of the points: %s or a JSON file '
                        '(default: wflw98 for wflw, cofw29 for cofw29, else ibug68)'
                        % ', '.join(landmarks.SCHEMES))
    parser.add_argument('--images', help='wflw: the WFLW_images folder (default: found beside '
                        'the annotations)')
    parser.add_argument('--subsets', action='store_true',
                        help='wflw: also write OUT_<attribute>.rec for each of %s'
                        % ', '.join(WFLW_ATTRIBUTES))
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
    implied = {FORMAT_SCHEMES.get(kind, landmarks.DEFAULT) for kind, _ in groups}
    if args.scheme is None and len(implied) > 1:
        parser.error('the inputs hold points of different schemes (%s); one set holds one'
                     % ', '.join(sorted(implied)))
    args.scheme = args.scheme or implied.pop()
    try:
        scheme = landmarks.get(args.scheme)
    except landmarks.SchemeError as err:
        parser.error(str(err))
    if args.subsets and any(kind != 'wflw' for kind, _ in groups):
        parser.error('--subsets is for WFLW lists (--format wflw)')
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
        count, kept_outside, skipped = build(faces, args.out, scheme, overwrite=args.overwrite)
        subsets = []
        for attribute in WFLW_ATTRIBUTES if args.subsets else ():
            out = '%s_%s' % (args.out, attribute)
            faces = faces_from_wflw([p for _, paths in groups for p in paths], args.images,
                                    attribute)
            subsets.append((out, build(faces, out, scheme, False, args.overwrite)[0]))
    except (ValueError, OSError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    if skipped:
        print('skipped %d input%s:' % (len(skipped), '' if len(skipped) == 1 else 's'))
        for name, reason in skipped:
            print('  %s: %s' % (name, reason))
    print('wrote %d face%s to %s.rec (%d with points outside their image, kept: the aligned crop '
          'pads)' % (count, '' if count == 1 else 's', args.out, kept_outside))
    for out, written in [(args.out, count)] + subsets:
        if out != args.out:
            print('wrote %d face%s to %s.rec' % (written, '' if written == 1 else 's', out))
        published = sets.get(os.path.basename(out)).count
        if published:
            print('the published %s set has %d faces%s' % (
                os.path.basename(out), published, '' if published == written else
                '; this build differs by %d' % (written - published)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
