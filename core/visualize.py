"""Matplotlib figures: landmark overlays and CED curves."""
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

# Index groups drawn as polylines (closed for eyes and lips), as the original.
GROUPS = [(range(0, 17), False), (range(17, 22), False), (range(22, 27), False),
          (range(27, 31), False), (range(31, 36), False), (range(36, 42), True),
          (range(42, 48), True), (range(48, 60), True), (range(60, 68), True)]


def draw_landmarks(image_rgb, faces, path, boxes=None, numbers=False, title=None):
    """Save a PNG of the photo with each face's 68 points as white polylines."""
    height, width = image_rgb.shape[:2]
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image_rgb)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis('off')
    line = max(1.0, min(width, height) / 400.0)
    for k, points in enumerate(faces):
        for group, closed in GROUPS:
            idx = list(group) + ([group[0]] if closed else [])
            ax.plot(points[idx, 0], points[idx, 1], '-', color='white', lw=line)
        ax.plot(points[:, 0], points[:, 1], '.', color='cyan', ms=2 * line)
        if numbers:
            for i, (x, y) in enumerate(points):
                ax.text(x, y, str(i), color='yellow', fontsize=5)
        if boxes is not None and k < len(boxes):
            x1, y1, x2, y2 = boxes[k][:4]
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color='lime',
                                       lw=line))
    if title:
        ax.text(5, 15, title, color='white', fontsize=9,
                bbox=dict(facecolor='black', alpha=0.5, lw=0))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_ced(curves, path, threshold, title='Cumulative error distribution'):
    """curves: {label: per-image errors}; x axis NME (%), y fraction of images."""
    from .protocol import auc, ced
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, errors in curves.items():
        x, y = ced(errors, threshold)
        ax.plot(x * 100, y, label='%s (AUC@%.2f %.3f)' % (label, threshold,
                                                           auc(errors, threshold)))
    ax.set(xlim=(0, threshold * 100), ylim=(0, 1), xlabel='NME (%)',
           ylabel='fraction of images', title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
