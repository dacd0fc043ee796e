"""Look at the background heuristic on real photos: montage pages of photo + mask.

Each pair shows the photo and, beside it, the same photo with everything the
mask calls background painted flat green: paper left in the cut-out is a
background leak, green inside the hand is a hole or a clipped finger. The short
image number and the finger count of the openness check are written on the pair.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jointaug.files import write_bytes_atomic, write_text_atomic
from jointaug.natural.background import hand_mask
from jointaug.natural.hands11k import load_photo, photo_path, read_hand_info
from jointaug.natural.openness import count_fingers

BACKGROUND_COLOUR = (0, 170, 0)


@dataclass
class CheckRow:
    image_name: str
    aspect: str
    accessories: int
    hand_fraction: float  # of the photo's pixels
    n_fingers: int


def pair_tile(rgb: np.ndarray, mask: np.ndarray, tile_px: int, caption: str) -> np.ndarray:
    """(tile_px, 2 * tile_px, 3) uint8: photo | photo with the background painted green."""
    cut = rgb.copy()
    cut[~mask] = BACKGROUND_COLOUR
    out = []
    for arr in (rgb, cut):
        im = Image.fromarray(arr)
        im.thumbnail((tile_px, tile_px), Image.Resampling.BOX)
        canvas = Image.new("RGB", (tile_px, tile_px), (40, 40, 40))
        canvas.paste(im, ((tile_px - im.size[0]) // 2, (tile_px - im.size[1]) // 2))
        out.append(np.asarray(canvas))
    pair = Image.fromarray(np.concatenate(out, 1))
    draw = ImageDraw.Draw(pair)
    draw.rectangle((0, 0, 6 * len(caption) + 3, 11), fill=(0, 0, 0))
    draw.text((2, 0), caption, fill=(255, 255, 0))
    draw.line((tile_px, 0, tile_px, tile_px), fill=(40, 40, 40))
    return np.asarray(pair)


def montage_pages(tiles: list[np.ndarray], per_row: int, rows: int) -> list[np.ndarray]:
    """Grid pages of equally sized tiles (the last page padded dark)."""
    if not tiles:
        return []
    per_page = per_row * rows
    pages = []
    blank = np.full_like(tiles[0], 40)
    for start in range(0, len(tiles), per_page):
        chunk = tiles[start : start + per_page]
        n_rows = -(-len(chunk) // per_row)
        chunk = chunk + [blank] * (n_rows * per_row - len(chunk))
        grid = [np.concatenate(chunk[r * per_row : (r + 1) * per_row], 1) for r in range(n_rows)]
        pages.append(np.concatenate(grid, 0))
    return pages


def _png_small(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue()


def page_paths(out: Path, n_pages: int) -> list[Path]:
    """``out`` for page 1, ``out_2.png``... for the next ones."""
    return [
        out if k == 0 else out.with_name(f"{out.stem}_{k + 1}{out.suffix}") for k in range(n_pages)
    ]


def hands11k_check(
    photos: str | os.PathLike,
    out: str | os.PathLike,
    tile_px: int = 120,
    pairs_per_row: int = 6,
    rows_per_page: int = 8,
    max_side: int | None = 400,
) -> tuple[list[Path], list[CheckRow]]:
    """Montage pages and a CSV (``out`` with ``.csv``) of every photo in an 11k folder.

    Args:
        photos: folder with ``HandInfo.csv`` and ``Hands/``.
        out: first page's PNG path; more pages get ``_2``, ``_3``... suffixes.
        tile_px: side of one photo tile (a pair is two tiles wide).

    Returns:
        (the page paths written, one row per photo).
    """
    photos, out = Path(photos), Path(out)
    records = read_hand_info(photos)
    tiles, rows = [], []
    for rec in records:
        rgb = load_photo(photo_path(photos, rec.image_name), max_side)
        mask = hand_mask(rgb)
        n = count_fingers(mask)
        short = Path(rec.image_name).stem.replace("Hand_", "").lstrip("0") or "0"
        tiles.append(pair_tile(rgb, mask, tile_px, f"{short} f{n}"))
        rows.append(CheckRow(rec.image_name, rec.aspect, rec.accessories, float(mask.mean()), n))
    pages = montage_pages(tiles, pairs_per_row, rows_per_page)
    paths = page_paths(out, len(pages))
    for page, path in zip(pages, paths, strict=True):
        write_bytes_atomic(path, _png_small(page))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["imageName", "aspectOfHand", "accessories", "hand_fraction", "n_fingers", "page"])
    per_page = pairs_per_row * rows_per_page
    for i, r in enumerate(rows):
        w.writerow(
            [
                r.image_name,
                r.aspect,
                r.accessories,
                f"{r.hand_fraction:.4f}",
                r.n_fingers,
                i // per_page + 1,
            ]
        )
    write_text_atomic(out.with_suffix(".csv"), buf.getvalue())
    return paths, rows
