"""Image files: the one list of extensions the toolkit reads, listing the
images of a folder, and reading any of them as 8-bit BGR."""
import logging
import os

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Every format OpenCV's imread decodes (EXR is disabled in OpenCV builds).
IMAGE_EXTENSIONS = ('.bmp', '.dib', '.jpeg', '.jpg', '.jpe', '.jp2', '.png', '.webp', '.pbm',
                    '.pgm', '.ppm', '.pnm', '.pfm', '.sr', '.ras', '.tiff', '.tif', '.hdr',
                    '.pic')


class ImageError(ValueError):
    """A file that is not a readable image; the message names it."""


def is_image_name(path):
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder, recursive=True):
    """Sorted paths of the image files in `folder` (and its subfolders)."""
    found = []
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()
        found += [os.path.join(directory, n) for n in sorted(names) if is_image_name(n)]
        if not recursive:
            break
    return found


def to_bgr8(image):
    """Any decoded image (grey, BGR, BGRA, 8 or 16 bit, float) as uint8 BGR."""
    if image is None:   # what cv2.imread gives for a file it could not read
        raise ValueError('no image: None was given (did cv2.imread fail to read the file?)')
    image = np.asarray(image)
    if image.dtype.kind not in 'uifb' or image.ndim not in (2, 3) or not image.size:
        raise ValueError('not an image: an array of shape %s and type %s; give an H x W '
                         '(x 1, 3 or 4) array of numbers' % (image.shape, image.dtype))
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.size and np.nanmax(image) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def truncated_jpeg(path):
    """Whether the file is a JPEG that ends before its end marker (a copy
    cut short: libjpeg decodes the rest as grey and only grumbles)."""
    with open(path, 'rb') as f:
        if f.read(2) != b'\xff\xd8':
            return False
        size = f.seek(0, os.SEEK_END)
        f.seek(max(2, size - (1 << 20)))
        return b'\xff\xd9' not in f.read()


def read_image(path):
    """BGR uint8 of an image file; FileNotFoundError when it does not exist,
    ImageError when it does not decode. A truncated JPEG is read (its
    missing part grey) with a warning naming it."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError('%s does not exist' % path)
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError('%s: cannot read this file as an image' % path)
    if truncated_jpeg(path):
        log.warning('%s: the JPEG ends before its end marker (the file was cut short); its '
                    'missing part is grey, so faces there are not found or are wrong', path)
    return to_bgr8(image)
