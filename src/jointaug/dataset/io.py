"""Image and label-map files: read and write, numpy in, numpy out.

Accepted image files (the contract, docs/dataset_format.md): ``.png`` (8- or 16-bit
grayscale), ``.tif``/``.tiff``, ``.npy`` (2D array, loaded with ``allow_pickle=False``),
``.dcm`` (single-frame DICOM). Writers use 16-bit PNG for integer counts and 8-bit
PNG for label maps. Every writer is atomic (:mod:`jointaug.files`).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from jointaug.files import write_bytes_atomic

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".dcm")
MAX_PIXELS = 8192 * 8192  # larger "images" are refused before decoding (decompression bombs)


class ImageReadError(ValueError):
    """A file could not be read as a single-channel 2D image."""


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    n = int(np.prod(shape, dtype=np.int64))
    if n > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: claims {' x '.join(map(str, shape))} = {n:,} pixels, more than the "
            f"{MAX_PIXELS:,} allowed (a decompression bomb or not a scan); refused before decoding"
        )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one single-channel 2D image as float32 (counts); raise ImageReadError if not 2D.

    Files claiming more than :data:`MAX_PIXELS` pixels are refused from their header."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            _check_size(path, np.load(path, mmap_mode="r", allow_pickle=False).shape)
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                _check_size(path, tif.series[0].shape if tif.series else (0,))
            arr = tifffile.imread(path)
        elif suffix == ".dcm":
            import pydicom

            ds = pydicom.dcmread(path)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            if frames != 1:
                raise ImageReadError(f"{path}: DICOM has {frames} frames, expected a single frame")
            _check_size(
                path, (int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0))
            )
            arr = ds.pixel_array
            slope = float(getattr(ds, "RescaleSlope", 1) or 1)
            intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
            if slope != 1 or intercept != 0:
                arr = arr.astype(np.float64) * slope + intercept
        elif suffix == ".png":
            with warnings.catch_warnings():  # over Pillow's warning size: refused below instead
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
            with im:
                if im.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "1", "P"):
                    raise ImageReadError(
                        f"{path}: PNG mode {im.mode!r} is not single-channel grayscale"
                    )
                _check_size(path, (im.height, im.width))
                arr = np.asarray(im)
        else:
            raise ImageReadError(
                f"{path}: unsupported image type {suffix!r} (use one of {', '.join(IMAGE_SUFFIXES)})"
            )
    except ImageReadError:
        raise
    except Exception as exc:  # unreadable or corrupt file: report, never a traceback
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[0] if arr.shape[0] != 1 else arr.shape[1], -1)
    if arr.ndim != 2:
        raise ImageReadError(
            f"{path}: image has shape {arr.shape}, expected a 2D single-channel image"
        )
    if arr.dtype.kind not in "uifb":
        raise ImageReadError(f"{path}: image dtype {arr.dtype} is not numeric")
    return arr.astype(np.float32)


def _png_bytes(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (8-bit) or uint16 (16-bit) grayscale array."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_counts_png(path: str | os.PathLike, counts: np.ndarray) -> None:
    """Write a count image as 16-bit grayscale PNG (values rounded, clipped to 0..65535)."""
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2D, got shape {counts.shape}")
    arr = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    write_bytes_atomic(path, _png_bytes(arr))


def write_label_png(path: str | os.PathLike, label_map: np.ndarray) -> None:
    """Write a label map (values 0..255) as 8-bit PNG."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"label map must be 2D, got shape {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError("label map values must be in 0..255")
    write_bytes_atomic(path, _png_bytes(label_map.astype(np.uint8)))


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit label map (PNG; other image types accepted if integer valued) as uint8."""
    arr = read_image(path)
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ImageReadError(f"{path}: label map has non-integer values")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ImageReadError(f"{path}: label map values outside 0..255")
    return arr.astype(np.uint8)
