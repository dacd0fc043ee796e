"""Picture grids of conditions, real and generated images (numpy + PIL, no torch).

Display: counts are shown as ``sqrt(counts / scale)`` in grey (the intensity map's
view), conditions in colour: background black, normal tissue grey, low inflammation
orange, high inflammation red (from the three coverage channels).
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageDraw

from jointaug.files import write_bytes_atomic

LOW_RGB = np.array([255, 165, 0], dtype=np.float32)
HIGH_RGB = np.array([230, 25, 25], dtype=np.float32)
NORMAL_RGB = np.array([110, 110, 110], dtype=np.float32)


def grey(counts: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) counts -> (H, W, 3) uint8, sqrt display scaled so ``scale`` is white."""
    u = np.sqrt(np.clip(np.asarray(counts, dtype=np.float64) / max(scale, 1e-12), 0.0, 1.0))
    g = (u * 255).round().astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def colour(channels: np.ndarray) -> np.ndarray:
    """(3, H, W) coverage (normal, low, high) in [0, 1] -> (H, W, 3) uint8."""
    normal, low, high = (
        np.clip(np.asarray(c, dtype=np.float32), 0, 1)[..., None] for c in channels
    )
    rgb = normal * NORMAL_RGB
    rgb = rgb * (1 - low) + low * LOW_RGB
    rgb = rgb * (1 - high) + high * HIGH_RGB
    return rgb.round().astype(np.uint8)


def _panel(rgb: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.NEAREST))


def image_grid(
    rows: list[list[np.ndarray]],
    header: list[str],
    title: str = "",
    panel: int = 128,
    row_labels: list[str] | None = None,
) -> np.ndarray:
    """Rows of (H, W, 3) uint8 panels -> one (H', W', 3) uint8 picture with column headers
    (and an optional label printed on each row's first panel)."""
    pad, top = 4, 18 + (16 if title else 0)
    n_cols = max(len(r) for r in rows)
    width = n_cols * (panel + pad) + pad
    height = top + len(rows) * (panel + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill=(0, 0, 0))
    for j, name in enumerate(header):
        draw.text((pad + j * (panel + pad), top - 16), name, fill=(0, 0, 0))
    for i, row in enumerate(rows):
        for j, rgb in enumerate(row):
            canvas.paste(
                Image.fromarray(_panel(rgb, panel)),
                (pad + j * (panel + pad), top + i * (panel + pad)),
            )
        if row_labels and i < len(row_labels):
            draw.text((pad + 2, top + i * (panel + pad) + 2), row_labels[i], fill=(255, 255, 0))
    return np.asarray(canvas)


def write_png_rgb(path: str | os.PathLike, rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def samples_grid(
    channels: np.ndarray,
    real: np.ndarray,
    generated: np.ndarray,
    scale: float,
    title: str = "",
    names: list[str] | None = None,
) -> np.ndarray:
    """Condition | real image | generated image(s) for K fixed conditions.

    Args:
        channels: (K, 3, h, w) condition coverage.
        real: (K, h, w) real mean counts for the same conditions.
        generated: (K, G, h, w) or (K, h, w) generated mean counts (G samples each).
        scale: counts shown as white.
    """
    gen = generated if generated.ndim == 4 else generated[:, None]
    rows = [
        [colour(channels[k]), grey(real[k], scale), *(grey(g, scale) for g in gen[k])]
        for k in range(channels.shape[0])
    ]
    header = ["condition", "real", *(f"generated {g + 1}" for g in range(gen.shape[1]))]
    return image_grid(rows, header, title, row_labels=names)
