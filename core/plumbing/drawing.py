"""Landmark overlays drawn with OpenCV, for photos, videos and pages."""
import cv2
import numpy as np

WHITE, CYAN, GREEN, YELLOW = (255, 255, 255), (255, 255, 0), (0, 200, 0), (0, 255, 255)
ORANGE = (0, 140, 255)          # a face whose landmarks do not look like a face


def draw_faces(image_bgr, faces, groups, numbers=False, title=None):
    """A copy of the photo with each face's points drawn as white polylines
    by the landmark scheme's `groups` (jaw, brows, nose, eyes, lips), its box
    and score; `faces` holds objects with `landmarks`, `box` and `score`
    (core.inference.handler.Face). A face that is not `plausible` is drawn
    in orange and labelled so."""
    out = np.ascontiguousarray(image_bgr).copy()
    height, width = out.shape[:2]
    thick = max(1, int(round(min(width, height) / 400.0)))
    font = 0.35 * thick
    for face in faces:
        points = np.asarray(face.landmarks, dtype=np.float64)
        if not np.isfinite(points).all():
            continue
        plausible = getattr(face, 'plausible', True)
        lines, frame = (WHITE, GREEN) if plausible else (ORANGE, ORANGE)
        for group, closed in groups:
            polyline = np.round(points[list(group)]).astype(np.int32)
            cv2.polylines(out, [polyline], closed, lines, thick, cv2.LINE_AA)
        for i, (x, y) in enumerate(np.round(points).astype(int)):
            cv2.circle(out, (int(x), int(y)), thick + 1, CYAN, -1, cv2.LINE_AA)
            if numbers:
                cv2.putText(out, str(i), (int(x) + 2, int(y) - 2), cv2.FONT_HERSHEY_SIMPLEX,
                            font * 0.8, YELLOW, 1, cv2.LINE_AA)
        x1, y1, x2, y2 = [int(round(v)) for v in face.box]
        cv2.rectangle(out, (x1, y1), (x2, y2), frame, thick, cv2.LINE_AA)
        cv2.putText(out, '%.2f%s' % (face.score, '' if plausible else ' not a face shape'),
                    (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, font * 1.2, frame, thick,
                    cv2.LINE_AA)
    if title:
        size, _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, font * 1.5, thick)
        cv2.rectangle(out, (0, 0), (size[0] + 10, size[1] + 12), (0, 0, 0), -1)
        cv2.putText(out, title, (5, size[1] + 5), cv2.FONT_HERSHEY_SIMPLEX, font * 1.5, WHITE,
                    thick, cv2.LINE_AA)
    return out


def png_bytes(image_bgr):
    ok, encoded = cv2.imencode('.png', image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError('PNG encoding failed')
    return encoded.tobytes()
