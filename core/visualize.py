"""Pictures: landmark overlays drawn with OpenCV, CED curves with matplotlib."""
import cv2
import matplotlib
import numpy as np

from data.landmarks import GROUPS

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

WHITE, CYAN, GREEN, YELLOW = (255, 255, 255), (255, 255, 0), (0, 200, 0), (0, 255, 255)


def draw_faces(image_bgr, faces, numbers=False, title=None, groups=GROUPS):
    """A copy of the photo with each face's points drawn as white polylines
    by the landmark scheme's `groups` (jaw, brows, nose, eyes, lips), its box
    and score; `faces` holds objects with `landmarks`, `box` and `score`
    (core.handler.Face)."""
    out = np.ascontiguousarray(image_bgr).copy()
    height, width = out.shape[:2]
    thick = max(1, int(round(min(width, height) / 400.0)))
    font = 0.35 * thick
    for face in faces:
        points = np.asarray(face.landmarks, dtype=np.float64)
        if not np.isfinite(points).all():
            continue
        for group, closed in groups:
            polyline = np.round(points[list(group)]).astype(np.int32)
            cv2.polylines(out, [polyline], closed, WHITE, thick, cv2.LINE_AA)
        for i, (x, y) in enumerate(np.round(points).astype(int)):
            cv2.circle(out, (int(x), int(y)), thick + 1, CYAN, -1, cv2.LINE_AA)
            if numbers:
                cv2.putText(out, str(i), (int(x) + 2, int(y) - 2), cv2.FONT_HERSHEY_SIMPLEX,
                            font * 0.8, YELLOW, 1, cv2.LINE_AA)
        x1, y1, x2, y2 = [int(round(v)) for v in face.box]
        cv2.rectangle(out, (x1, y1), (x2, y2), GREEN, thick, cv2.LINE_AA)
        cv2.putText(out, '%.2f' % face.score, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    font * 1.2, GREEN, thick, cv2.LINE_AA)
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


def plot_ced(curves, threshold, title='Cumulative error distribution'):
    """PNG bytes of CED curves: {label: per-image errors}; x axis NME (%),
    y the fraction of images."""
    from .protocol import auc, ced
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, errors in curves.items():
        x, y = ced(errors, threshold)
        ax.plot(x * 100, y, label='%s (AUC@%.2f %.3f)' % (label, threshold,
                                                           auc(errors, threshold)))
    ax.set(xlim=(0, threshold * 100), ylim=(0, 1), xlabel='NME (%)',
           ylabel='fraction of images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.15), frameon=False)
    return figure_png(fig)


def plot_histogram(series, title, bins=30):
    """PNG bytes of histograms of per-image NME (%): {label: values}."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, values in series.items():
        ax.hist(np.asarray(values, dtype=np.float64), bins=bins, alpha=0.6, label=label)
    ax.set(xlabel='NME (%)', ylabel='images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.15), frameon=False)
    return figure_png(fig)


def figure_png(fig):
    """PNG bytes of a matplotlib figure, which is closed."""
    import io
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)
    return buffer.getvalue()
