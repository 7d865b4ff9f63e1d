"""Build face record sets (PIPELINE.md section 1) from public raw datasets.

    python -m data.build --format pts --input lfpw/trainset helen/trainset afw --out data_2d/train
    python -m data.build --format cofw --input COFW_test_color.mat --cofw-points test_annotations \\
        --out data_2d/cofw_testset
    python -m data.build --format aflw --input AFLW2000 --out data_3d/AFLW2000-3D
    python -m data.build --format dlib-xml --input training_with_face_landmarks.xml --out faces

Every face is similarity-aligned by its 5 points to the template x2+80 and
stored as a 384x384 JPEG with its 68 points (y, x). `.pts` coordinates are
1-based (300-W convention): 1 is subtracted unless --pts-one-based-keep.
Skipped inputs are listed with the reason; the set is written atomically.
"""
import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from . import geometry
from .recordio import NUM_POINTS, RecordWriter, pack_face

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


class Skip(Exception):
    """An input that cannot become a record; the message says why."""


def read_image(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise Skip('unreadable image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_points(points, image):
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (NUM_POINTS, 2):
        raise Skip('wrong point count: %d instead of 68' % (points.size // 2))
    height, width = image.shape[:2]
    if (points < 0).any() or (points[:, 0] >= width).any() or (points[:, 1] >= height).any():
        raise Skip('points outside the image')
    return points


def aligned_record(image, points, record_id):
    """Record payload of a face aligned to the 384 frame."""
    matrix = geometry.alignment_transform(points)
    aligned = geometry.warp(image, matrix, geometry.RECORD_SIZE)
    return pack_face(aligned, geometry.apply(matrix, points), record_id)


# Readers: each yields (name, image loader, points loader) per face. -------------

def read_pts(path, one_based=True):
    """68 (x, y) points of a 300-W `.pts` file."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    try:
        start, end = lines.index('{') + 1, lines.index('}')
        points = np.array([[float(v) for v in line.split()[:2]] for line in lines[start:end]])
    except (ValueError, IndexError):
        raise Skip('malformed .pts file')
    return points - 1 if one_based else points


def faces_from_pts(inputs, one_based=True):
    for root in inputs:
        paths = [root] if os.path.isfile(root) else sorted(
            p for ext in IMAGE_EXTENSIONS for p in glob.glob(os.path.join(root, '**', '*' + ext),
                                                               recursive=True))
        for image_path in paths:
            pts_path = os.path.splitext(image_path)[0] + '.pts'
            if not os.path.isfile(pts_path):
                yield image_path, None, Skip('no .pts file beside the image')
                continue
            yield image_path, (lambda p=image_path: read_image(p)), \
                (lambda p=pts_path: read_pts(p, one_based))


def _load_mat(path):
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:
        import h5py  # MATLAB v7.3 files are HDF5
        return h5py.File(path, 'r')


def faces_from_aflw(inputs):
    """AFLW2000-3D / 300W-LP: `name.jpg` beside `name.mat` holding pt3d_68
    (3 x 68); the first two rows are the 2D projection."""
    for root in inputs:
        for mat_path in sorted(glob.glob(os.path.join(root, '**', '*.mat'), recursive=True)):
            image_path = os.path.splitext(mat_path)[0] + '.jpg'

            def points(p=mat_path):
                mat = scipy.io.loadmat(p)
                if 'pt3d_68' not in mat:
                    raise Skip('no pt3d_68 in the .mat file')
                return np.asarray(mat['pt3d_68'])[:2].T
            yield image_path, (lambda p=image_path: read_image(p)), points


def faces_from_cofw(inputs, points_dir):
    """COFW-68 test: images from the `IsT` cell array of the COFW .mat file,
    points from `points_dir/{i}_points.mat` ('Points', 68 x 2, 1-based)."""
    for mat_path in inputs:
        mat = _load_mat(mat_path)
        images = mat['IsT']
        count = images.shape[0] if hasattr(images, 'shape') else len(images)
        for i in range(count):
            def image(i=i):
                ref = images[i][0] if isinstance(mat, dict) else mat[images[0][i]][()].T
                array = np.asarray(ref)
                if array.ndim == 2:
                    array = np.stack([array] * 3, axis=-1)
                return np.ascontiguousarray(array.astype(np.uint8))

            def points(i=i):
                path = os.path.join(points_dir, '%d_points.mat' % (i + 1))
                if not os.path.isfile(path):
                    raise Skip('no %s' % path)
                return np.asarray(scipy.io.loadmat(path)['Points'], dtype=np.float64) - 1
            yield '%s[%d]' % (mat_path, i + 1), image, points


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


def build(faces, out_prefix, progress=True):
    """Write every usable face; returns (written count, [(name, reason)])."""
    skipped = []
    with RecordWriter(out_prefix) as writer:
        for name, image_fn, points_fn in tqdm(list(faces), disable=not progress, unit='face'):
            if isinstance(points_fn, Skip):
                skipped.append((name, str(points_fn)))
                continue
            try:
                image = image_fn()
                points = check_points(points_fn(), image)
                writer.write(aligned_record(image, points, writer.count))
            except Skip as reason:
                skipped.append((name, str(reason)))
        if writer.count == 0:
            raise RuntimeError('no usable face in the inputs; nothing written to %s.rec'
                               % out_prefix)
    return writer.count, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description='Build a face record set (384x384 aligned '
                                     'JPEG + 68 points) from raw landmark datasets.')
    parser.add_argument('--format', required=True, choices=['pts', 'cofw', 'aflw', 'dlib-xml'])
    parser.add_argument('--input', required=True, nargs='+',
                        help='folders (pts, aflw), .mat files (cofw) or XML files (dlib-xml)')
    parser.add_argument('--out', required=True, help='output prefix: writes PREFIX.rec/.idx')
    parser.add_argument('--cofw-points', help='folder of COFW-68 {i}_points.mat files')
    parser.add_argument('--pts-one-based-keep', action='store_true',
                        help='keep .pts coordinates as written (default subtracts 1)')
    args = parser.parse_args(argv)
    for path in args.input:
        if not os.path.exists(path):
            parser.error('input %s does not exist' % path)
    if args.format == 'pts':
        faces = faces_from_pts(args.input, one_based=not args.pts_one_based_keep)
    elif args.format == 'aflw':
        faces = faces_from_aflw(args.input)
    elif args.format == 'cofw':
        if not args.cofw_points:
            parser.error('--format cofw needs --cofw-points DIR')
        faces = faces_from_cofw(args.input, args.cofw_points)
    else:
        faces = faces_from_dlib_xml(args.input)
    count, skipped = build(faces, args.out)
    print('wrote %d faces to %s.rec' % (count, args.out))
    if skipped:
        print('skipped %d inputs:' % len(skipped))
        for name, reason in skipped:
            print('  %s: %s' % (name, reason))
    return 0


if __name__ == '__main__':
    sys.exit(main())
