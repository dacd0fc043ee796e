"""A picture of sampled conditions, in the spirit of the paper's Fig. 3.

One row per sample: the source case's image and clinician tissue map, the sampled
inflammation vector (one row of cells per group, coloured none / low / high), the
composed condition without Perlin variation and, optionally, with it. The Perlin panel
outlines (cyan) the unvaried inflamed regions, so one can check that every varied mask
stays inside its joint.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from jointaug.config import PerlinConfig, SamplerConfig
from jointaug.dataset.format import Case, Dataset, read_dataset
from jointaug.files import atomic_path
from jointaug.masks.compose import compose_condition
from jointaug.masks.sampler import groups_from_meta, sample_with_config

# tissue-convention colours: background, normal, low, high
PALETTE = np.array([[0, 0, 0], [105, 105, 105], [255, 165, 0], [220, 20, 20]], dtype=np.uint8)
VECTOR_COLOURS = np.array([[45, 45, 45], [255, 165, 0], [220, 20, 20]], dtype=np.uint8)
OUTLINE = np.array([0, 230, 230], dtype=np.uint8)
GAP = 6
HEADER = 24
CAPTION = 30


def source_cases(dataset: Dataset) -> list[Case]:
    """Cases that have both a tissue map and a region map (usable as condition sources)."""
    return [c for c in dataset.cases if c.tissue and c.regions]


@functools.cache
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _grey(image: np.ndarray) -> np.ndarray:
    """Counts -> (H, W, 3) uint8, scaled to the 99.5th percentile."""
    top = float(np.percentile(image, 99.5)) or float(image.max()) or 1.0
    g = np.clip(image / top * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def _colour(label_map: np.ndarray) -> np.ndarray:
    return PALETTE[np.clip(label_map, 0, 3)]


def _vector_panel(
    vector: np.ndarray, groups: list[list[int]], width: int, height: int
) -> np.ndarray:
    """(height, width, 3) picture of the vector: one row of cells per group."""
    cols = max(len(g) for g in groups)
    cell = max(4, min((width - 8) // cols, (height - 8) // (2 * len(groups))))
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    y = (height - cell * len(groups)) // 2
    x0 = (width - cell * cols) // 2
    for g in groups:
        for k, label in enumerate(g):
            x = x0 + k * cell
            panel[y + 1 : y + cell - 1, x + 1 : x + cell - 1] = VECTOR_COLOURS[int(vector[label])]
        y += cell
    return panel


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.NEAREST))


def _perlin_panel(
    tissue: np.ndarray,
    regions: np.ndarray,
    vector: np.ndarray,
    rng: np.random.Generator,
    perlin_cfg: PerlinConfig,
) -> tuple[np.ndarray, str]:
    """The condition with Perlin variation, the unvaried inflamed regions outlined,
    and its caption part (tries, fall-backs)."""
    varied = compose_condition(tissue, regions, vector, rng, perlin_cfg)
    rgb = _colour(varied.condition)
    inflamed = np.where(np.isin(regions, np.flatnonzero(vector > 0) + 1), regions, 0)
    rgb[find_boundaries(inflamed * (tissue > 0), mode="inner")] = OUTLINE
    return rgb, f"  Perlin tries {varied.total_tries}  fell back {varied.n_fell_back}"


def _blank_canvas(titles: list[str], n: int, panel_px: int) -> Image.Image:
    """A white canvas for ``n`` rows of ``len(titles)`` panels, the titles on top."""
    n_cols = len(titles)
    width = n_cols * panel_px + (n_cols + 1) * GAP
    row_h = panel_px + CAPTION + GAP
    canvas = Image.new("RGB", (width, HEADER + n * row_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(16)
    for k, title in enumerate(titles):
        draw.text((GAP + k * (panel_px + GAP), 4), title, fill=(0, 0, 0), font=font)
    return canvas


def _paste_row(
    canvas: Image.Image, y: int, panels: list[np.ndarray], caption: str, panel_px: int
) -> None:
    """Paste one row of panels at height ``y`` and write its caption under them."""
    for k, panel in enumerate(panels):
        x = GAP + k * (panel_px + GAP)
        canvas.paste(Image.fromarray(_resize(panel, panel_px)), (x, y))
    ImageDraw.Draw(canvas).text((GAP, y + panel_px + 4), caption, fill=(0, 0, 0), font=_font(12))


def conditions_grid(
    dataset: Dataset | str | os.PathLike,
    out: str | os.PathLike,
    n: int = 16,
    perlin: bool = True,
    seed: int = 0,
    sampler_cfg: SamplerConfig | None = None,
    perlin_cfg: PerlinConfig | None = None,
    panel_px: int = 256,
) -> Path:
    """Draw ``n`` sampled conditions to a PNG (written atomically); returns its path.

    Source cases are those with both a tissue and a region map, visited in a random
    order (cycling when ``n`` exceeds their number). Each row samples one vector with
    ``sampler_cfg`` and composes it without and (if ``perlin``) with ``perlin_cfg``
    variation. Deterministic for a given ``seed``.
    """
    ds = dataset if isinstance(dataset, Dataset) else read_dataset(dataset)
    if n < 1:
        raise ValueError(f"conditions grid: n must be >= 1, got {n}")
    sources = source_cases(ds)
    if not sources:
        raise ValueError(
            f"{ds.root}: no case has both a tissue map and a region map "
            "(cases.csv columns 'tissue' and 'regions'); nothing to compose from"
        )
    sampler_cfg = sampler_cfg or SamplerConfig()
    perlin_cfg = perlin_cfg or PerlinConfig()
    groups = groups_from_meta(ds.meta)
    n_labels = len(ds.labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources))

    titles = ["image", "tissue map", "sampled vector", "condition", "condition + Perlin"]
    canvas = _blank_canvas(titles if perlin else titles[:4], n, panel_px)
    for row in range(n):
        case = sources[int(order[row % len(sources)])]
        image, tissue, regions = ds.image(case), ds.tissue(case), ds.regions(case)
        if tissue.shape != image.shape or regions.shape != image.shape:
            raise ValueError(
                f"{ds.root} case {case.case_id!r}: image {image.shape}, tissue map "
                f"{tissue.shape} and region map {regions.shape} must have the same shape"
            )
        vector = sample_with_config(groups, n_labels, rng, sampler_cfg)
        plain = compose_condition(tissue, regions, vector)
        vector_rgb = _vector_panel(vector, groups, panel_px, panel_px)
        panels = [_grey(image), _colour(tissue), vector_rgb, _colour(plain.condition)]
        caption = f"{case.case_id}  low {int((vector == 1).sum())}  high {int((vector == 2).sum())}"
        if perlin:
            rgb, perlin_caption = _perlin_panel(tissue, regions, vector, rng, perlin_cfg)
            panels.append(rgb)
            caption += perlin_caption
        _paste_row(canvas, HEADER + row * (panel_px + CAPTION + GAP), panels, caption, panel_px)

    out = Path(out)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    return out
