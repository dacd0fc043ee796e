"""What ``jointaug predict`` draws: a joint's class-activation map put back on the user's
image, its peak and top region, and the overlay figure (the scan with a marker and
contour per joint called inflamed, beside the schematic of both hands).

:func:`to_image_grid`, :func:`map_peaks`, :func:`top_region`, :func:`draw_explanations`
are numpy-in, numpy-out (tested without torch); :func:`overlay` draws with matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointaug.files import atomic_path

PEAK_LEVEL = 0.5  # the top region of a map: >= this fraction of its peak


def schematic_centres(
    labels: list[str], size: int = 256
) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
    """Joint centres (row, col) on a schematic two-hand layout (the phantom's anatomy),
    and that layout's region map. Labels outside the 30 hand labels get no centre."""
    from jointaug.dataset.format import HAND_LABELS
    from jointaug.dataset.phantom import draw_hands, patient_params

    hand, regions = draw_hands(patient_params(np.random.default_rng(0), size))

    out = {}
    for i, name in enumerate(HAND_LABELS, start=1):
        rr, cc = np.nonzero(regions == i)
        if name in labels and rr.size:
            out[name] = (float(rr.mean()), float(cc.mean()))
    return out, (hand > 0).astype(np.uint8) + (regions > 0)


def to_image_grid(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Maps (L, S, S) on the classifier's input grid -> (L, H, W) on the image's grid.

    Undoes :func:`jointaug.classify.transforms.prepare_image`: bilinear resize to the
    padded square (M = max(H, W); pixel centres aligned, as the area resize was), then
    the centred zero-padding is cut away.
    """
    from skimage.transform import resize

    maps = np.asarray(maps, dtype=np.float32)
    h, w = shape
    m = max(h, w)
    if maps.shape[1:] != (m, m):
        maps = resize(
            maps,
            (maps.shape[0], m, m),
            order=1,
            mode="edge",
            anti_aliasing=False,
            preserve_range=True,
        )
    top, left = (m - h) // 2, (m - w) // 2
    return np.ascontiguousarray(maps[:, top : top + h, left : left + w], dtype=np.float32)


def map_peaks(maps: np.ndarray) -> np.ndarray:
    """(L, H, W) -> (L, 2) float: (x, y) = (column, row) of each map's maximum (the first
    in row-major order); NaN where the map is zero or less everywhere (no evidence)."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    idx = flat.argmax(axis=1)
    rows, cols = np.unravel_index(idx, maps.shape[1:])
    out = np.stack([cols, rows], axis=1).astype(np.float64)
    out[~(flat.max(axis=1) > 0)] = np.nan
    return out


def top_region(cam: np.ndarray, level: float = PEAK_LEVEL) -> np.ndarray:
    """(H, W) bool: the 8-connected part of ``cam >= level * max`` holding the peak."""
    from scipy import ndimage

    top = float(cam.max())
    if not top > 0:
        return np.zeros(cam.shape, bool)
    parts, _ = ndimage.label(cam >= level * top, structure=np.ones((3, 3)))
    return parts == parts.flat[int(cam.argmax())]


def prob_colour(p: float, threshold: float = 0.5) -> np.ndarray:
    """(3,) uint8: orange (255, 160, 0) at the threshold to dark red (180, 0, 0) at p = 1."""
    t = float(np.clip((p - threshold) / max(1.0 - threshold, 1e-6), 0.0, 1.0))
    return np.rint(np.array([255, 160, 0]) * (1 - t) + np.array([180, 0, 0]) * t).astype(np.uint8)


def grey_scan(image: np.ndarray, zoom: int = 1) -> np.ndarray:
    """(H, W) counts -> (H*zoom, W*zoom, 3) uint8, inverted grey (white 0, black at the
    99.5th percentile), each pixel a zoom x zoom block."""
    img = np.nan_to_num(np.asarray(image, np.float64))
    vmax = max(float(np.percentile(img, 99.5)), 1.0)
    grey = np.rint(255 * (1 - np.clip(img / vmax, 0, 1))).astype(np.uint8)
    grey = np.kron(grey, np.ones((zoom, zoom), np.uint8))
    return np.repeat(grey[..., None], 3, axis=2)


def draw_explanations(
    image: np.ndarray,
    maps: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    zoom: int = 1,
    level: float = PEAK_LEVEL,
) -> np.ndarray:
    """The scan in grey (:func:`grey_scan`) with, per joint with ``probs >= threshold`` and
    a non-zero map, the outline of its :func:`top_region` and a plus at its peak, both in
    :func:`prob_colour`. (H*zoom, W*zoom, 3) uint8; labels are for the caller to write."""
    rgb = grey_scan(image, zoom)
    arm, half = max(2, 2 * zoom), max(zoom // 3, 0)
    peaks = map_peaks(maps)
    order = np.argsort(probs)  # the most probable drawn last, on top
    for j in (j for j in order if probs[j] >= threshold and not np.isnan(peaks[j, 0])):
        colour = prob_colour(float(probs[j]), threshold)
        region = np.kron(top_region(maps[j], level), np.ones((zoom, zoom), bool))
        edge = region & ~_erode(region)
        rgb[edge] = colour
        x, y = (int(v) * zoom + zoom // 2 for v in peaks[j])
        h, w = rgb.shape[:2]
        rgb[max(y - half, 0) : y + half + 1, max(x - arm, 0) : min(x + arm + 1, w)] = colour
        rgb[max(y - arm, 0) : min(y + arm + 1, h), max(x - half, 0) : x + half + 1] = colour
    return rgb


def _erode(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def overlay(
    image: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    threshold: float,
    out: Path,
    title: str,
    cams: np.ndarray | None = None,
    note: str = "",
) -> Path:
    """Write the overlay PNG: the scan with the explanations (module docstring), and the
    schematic hands. ``cams``: (L, H, W) maps on the image's grid, or None (plain scan)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.5))
    zoom = max(1, int(np.ceil(400 / max(image.shape))))
    if cams is None:
        axes[0].imshow(grey_scan(image, zoom))
    else:
        axes[0].imshow(draw_explanations(image, cams, probs, threshold, zoom))
        _name_peaks(axes[0], cams, probs, labels, threshold, zoom)
        blank = [
            labels[j]
            for j, (x, _) in enumerate(map_peaks(cams))
            if probs[j] >= threshold and np.isnan(x)
        ]
        note += f"\ncalled, but zero map (not drawn): {', '.join(blank)}" if blank else ""
    axes[0].set_title(f"{title}\n{note}" if note else title, fontsize=7)
    schematic_panel(axes[1], probs, labels, threshold)
    for ax in axes:
        ax.axis("off")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def _name_peaks(
    ax, cams: np.ndarray, probs: np.ndarray, labels: list[str], threshold: float, zoom: int
) -> None:
    import matplotlib.patheffects as pe

    for j, (x, y) in enumerate(map_peaks(cams)):
        if probs[j] >= threshold and not np.isnan(x):
            ax.text(
                (x + 0.5) * zoom + 1.5 * zoom + 3,
                (y + 0.5) * zoom,
                f"{labels[j]} {probs[j]:.2f}",
                fontsize=6,
                va="center",
                color=prob_colour(float(probs[j]), threshold) / 255,
                path_effects=[pe.withStroke(linewidth=2, foreground="white")],
            )


def schematic_panel(ax, probs: np.ndarray, labels: list[str], threshold: float) -> None:
    """Both hands of the phantom's anatomy, each joint a dot filled by its probability,
    ringed when called inflamed."""
    import matplotlib.pyplot as plt

    centres, schematic = schematic_centres(labels)
    ax.imshow(schematic, cmap="Greys", vmin=0, vmax=5)
    for side in ("R", "L"):
        if f"{side}_wrist" in centres:
            r, c = centres[f"{side}_wrist"]
            ax.text(c, r + 22, f"{side} hand", ha="center", fontsize=8)
    cmap = plt.get_cmap("Reds")
    for j, name in enumerate(labels):
        if name not in centres:
            continue
        r, c = centres[name]
        p = float(probs[j])
        ax.scatter([c], [r], s=60, color=cmap(0.15 + 0.85 * p), edgecolors="none", zorder=3)
        if p >= threshold:
            ax.scatter(
                [c], [r], s=170, facecolors="none", edgecolors="red", linewidths=1.6, zorder=4
            )
    n_pos = int((probs >= threshold).sum())
    ax.set_title(
        f"{n_pos} joints called inflamed (ring: p >= {threshold:.2f}; fill: p)\n"
        "schematic hands, palmar view",
        fontsize=8,
    )
