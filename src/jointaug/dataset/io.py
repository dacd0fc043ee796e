"""Image and label-map files: read and write, numpy in, numpy out.

Accepted image files (the contract, ``DATASET_FORMAT.md``): ``.png`` (8- or 16-bit
grayscale), ``.tif``/``.tiff``, ``.npy`` (2D array, loaded with ``allow_pickle=False``),
``.dcm`` (single-frame DICOM). Writers use 16-bit PNG for integer counts and 8-bit
PNG for label maps. Every writer is atomic: it writes a temp file beside the target
and renames it, so a crash never leaves a half-written file under the final name.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) while writing raises
:class:`DiskFullError`, a user error the CLI prints as one message: the temp file is
removed, the previous version of the target (if any) is unchanged, and rerunning the
same command after freeing space resumes.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".dcm")
MAX_PIXELS = 8192 * 8192  # larger "images" are refused before decoding (decompression bombs)


class ImageReadError(ValueError):
    """A file could not be read as a single-channel 2D image."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """The disk (or the user's quota) filled up while the toolkit was writing ``path``."""

    def __init__(self, path: str | os.PathLike, what: str = "the file was not written and its "
                 "previous version, if any, is unchanged"):  # fmt: skip
        self.path = Path(path)
        super().__init__(
            errno.ENOSPC,
            f"{path}: the disk is full (no space left on device); {what}, so nothing finished "
            f"was lost. Free some space on {self.path.parent} (df -h shows how much is left) "
            f"and rerun the same command: it resumes where it stopped",
        )

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def write_fd(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to a file descriptor (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except DiskFullError:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            write_fd(fd, data)
        finally:
            os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` (whole lines) to a log file; on a full disk cut it back and raise
    :class:`DiskFullError`, so no half line is left behind."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            write_fd(fd, text.encode("utf-8"))
        except OSError as exc:
            os.ftruncate(fd, size)
            if is_disk_full(exc):
                raise DiskFullError(path, "the line was not added and the file is as it was") from exc
            raise
    finally:
        os.close(fd)


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
            _check_size(path, (int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)))
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
        raise ImageReadError(f"{path}: image has shape {arr.shape}, expected a 2D single-channel image")
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
