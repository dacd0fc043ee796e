"""Counts <-> the network's [-1, 1] range, and resampling between dataset and model size.

numpy in, numpy out; no torch here.

Intensity mapping (:class:`IntensityMap`), square-root ("sqrt", default)::

    u = sqrt(min(counts, scale) / scale)                    counts >= 0  ->  u in [0, 1]
    y = (2 * u - 1) - offset                                the network's values
    counts = scale * ((clip(y + offset, -1, 1) + 1) / 2) ** 2     the exact inverse

The square root is the variance-stabilising transform of Poisson counts (noise of about
the same size at every count level), so the network spends its range evenly on dim
background, tissue and hot joints. ``scale`` is the largest mean count of the fold's
downsampled train images, so real training images map into [-1, 1] without clipping,
and the generated images come back at the real count level. ``linear`` (``u = counts /
scale``) is the alternative.

``offset`` centres the data: it is the mean of ``2u - 1`` over all train pixels
(:func:`fit_intensity`), so the network sees zero-mean data in
``[-1 - offset, 1 - offset]`` (the samplers clip their x0 predictions to that range,
:meth:`IntensityMap.model_range`). Why: hand scans are mostly dark background, so the
uncentred mean is about -0.8. At the noisiest steps (for T = 500 linear betas,
sqrt(abar_T) = 0.08) an epsilon-network's implied x0 starts at 0, and a short training
run never learns the absolute offset: measured on the phantom at 600 steps, samples kept
the right hand/background contrast but sat 0.9 too bright everywhere. Centring removes
the offset from what the network must learn; on long GPU runs it does no harm.

Resampling: the model works at ``image_size`` (paper 128, from 256). Counts are
*averaged* over each output pixel's footprint (:func:`area_resize`; 2x2 blocks for
256 -> 128), so a downsampled image is a mean-count image at the original pixel scale:
its mean equals the original's mean, and nearest-neighbour upsampling of a model output
(:func:`upsample_nearest`) gives the Poisson rate per original pixel, which
:func:`poisson_counts` samples (the paper: "upsampled with nearest neighbour ... then
Poisson sampled"). Sizes need not divide: the footprint weights are fractional.

Condition maps are not voted but averaged too (:func:`downsample_channels`): each of the
three 0/1 condition channels (normal, low, high) becomes the fraction of the output
pixel it covers. A small hot spot thus survives any downsampling factor (as a partial
value) without growing, and the hand outline keeps sub-pixel position. The same function
is used for real tissue maps in training and composed conditions in augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_UINT16 = 65535


@dataclass(frozen=True)
class IntensityMap:
    """Invertible counts <-> network-value mapping.

    scale: counts mapped to u = 1 (> 0); mode: "sqrt" or "linear"; offset: subtracted
    after mapping to [-1, 1] (the train mean, see :func:`fit_intensity`).
    """

    scale: float
    mode: str = "sqrt"  # "sqrt" | "linear"
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(
                f"intensity scale must be a positive number of counts, got {self.scale}"
            )
        if self.mode not in ("sqrt", "linear"):
            raise ValueError(f"intensity mode must be 'sqrt' or 'linear', got {self.mode!r}")
        if not -1.0 <= self.offset <= 1.0:
            raise ValueError(f"intensity offset must be in [-1, 1], got {self.offset}")

    @property
    def model_range(self) -> tuple[float, float]:
        """(lowest, highest) network value: the images of 0 counts and ``scale`` counts."""
        return (-1.0 - self.offset, 1.0 - self.offset)

    def to_model(self, counts: np.ndarray) -> np.ndarray:
        """Counts (any shape, >= 0) -> float32 network values; counts above ``scale`` clip."""
        u = np.clip(np.asarray(counts, dtype=np.float64) / self.scale, 0.0, 1.0)
        if self.mode == "sqrt":
            u = np.sqrt(u)
        return (2.0 * u - 1.0 - self.offset).astype(np.float32)

    def to_counts(self, y: np.ndarray) -> np.ndarray:
        """Network values (any shape) -> float32 mean counts in [0, scale] (clipped to range)."""
        v = np.clip(np.asarray(y, dtype=np.float64) + self.offset, -1.0, 1.0)
        u = (v + 1.0) / 2.0
        if self.mode == "sqrt":
            u = u * u
        return (u * self.scale).astype(np.float32)

    def to_json(self) -> dict:
        return {"scale": float(self.scale), "mode": self.mode, "offset": float(self.offset)}

    @classmethod
    def from_json(cls, obj: dict) -> IntensityMap:
        return cls(
            scale=float(obj["scale"]),
            mode=str(obj.get("mode", "sqrt")),
            offset=float(obj.get("offset", 0.0)),
        )


def fit_intensity(images: np.ndarray, mode: str = "sqrt", centre: bool = True) -> IntensityMap:
    """The map for a fold's downsampled train images (N, h, w): scale = the largest count,
    offset = the mean mapped value (0 with ``centre=False``).

    Raises ValueError if there is no positive count (an all-zero training set).
    """
    images = np.asarray(images)
    peak = float(np.max(images)) if images.size else 0.0
    if not (np.isfinite(peak) and peak > 0):
        raise ValueError(
            "cannot fit the intensity scale: the training images have no positive counts"
        )
    uncentred = IntensityMap(peak, mode)
    offset = float(np.mean(uncentred.to_model(images), dtype=np.float64)) if centre else 0.0
    return IntensityMap(peak, mode, offset)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: row j averages input cells over output cell j's footprint.

    Output cell j covers input coordinates [j * n_in / n_out, (j + 1) * n_in / n_out);
    each weight is the overlap length divided by the footprint length (rows sum to 1).
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    edges_out = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges_out[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges_out[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(hi - lo, 0.0, None) / (n_in / n_out)


def area_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Box-filter resample (..., H, W) -> (..., h, w) float32 by footprint averaging.

    Exact block means when H/h and W/w are integers; preserves the image mean whenever
    the output grid tiles the input (always: footprints partition the input).
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"image must be at least 2D, got shape {a.shape}")
    h_in, w_in = a.shape[-2:]
    h, w = shape
    if (h, w) == (h_in, w_in):
        return a.astype(np.float32)
    mh = _area_matrix(h_in, h)
    mw = _area_matrix(w_in, w)
    return ((mh @ a) @ mw.T).astype(np.float32)  # two matmuls: (h, H) @ (..., H, W) @ (W, w)


def downsample_counts(counts: np.ndarray, size: int) -> np.ndarray:
    """(H, W) counts -> (size, size) float32 mean counts per original pixel."""
    return area_resize(counts, (size, size))


def downsample_channels(channels: np.ndarray, size: int) -> np.ndarray:
    """(3, H, W) 0/1 condition channels -> (3, size, size) float32 coverage fractions in [0, 1]."""
    c = np.asarray(channels)
    if c.ndim != 3:
        raise ValueError(f"condition channels must be (C, H, W), got shape {c.shape}")
    return np.clip(area_resize(c, (size, size)), 0.0, 1.0)


def upsample_nearest(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample (h, w) -> (H, W): output pixel (i, j) takes the input
    pixel whose footprint holds its centre. Integer factors replicate blocks exactly."""
    a = np.asarray(image)
    h, w = a.shape[-2:]
    H, W = shape
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.intp), w - 1)
    return a[..., rows[:, None], cols[None, :]]


def _linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights, pixel centres aligned, edges clamped (rows sum to 1)."""
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1)
    lo = np.floor(x).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = x - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def upsample_linear(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resample (..., h, w) -> (..., H, W) float32 (pixel centres aligned, edges
    clamped): a smooth Poisson rate instead of nearest-neighbour blocks
    (``diffusion.upsample: bilinear``). Non-negative in, non-negative out; the mean is kept
    up to edge effects."""
    a = np.asarray(image, dtype=np.float64)
    h, w = a.shape[-2:]
    H, W = shape
    return ((_linear_matrix(h, H) @ a) @ _linear_matrix(w, W).T).astype(np.float32)


def poisson_counts(rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson sample of a non-negative rate image (mean counts per pixel) -> uint16 counts.

    Rates must be finite and >= 0; samples above 65535 are clipped (16-bit PNG range).
    """
    lam = np.asarray(rate, dtype=np.float64)
    if not np.all(np.isfinite(lam)) or (lam.size and lam.min() < 0):
        raise ValueError("Poisson rate must be finite and non-negative")
    return np.minimum(rng.poisson(lam), MAX_UINT16).astype(np.uint16)
