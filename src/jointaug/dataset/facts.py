"""What images look like (size, bit depth, value range, modality), and how a new image
differs from the training data: the warnings of ``jointaug predict``.

A classifier trained on 16-bit count images of one modality gives numbers for any
2D image, even a screenshot, a CT slice or a normalised float export, and those
numbers mean little. :func:`image_facts` reads what a file says about itself (the
stored bit depth, DICOM ``Modality``) and its pixels (shape, peak value, integer
counts, clipped pixels); :func:`data_facts` summarises a few training images (cheap:
an even sample of at most ``max_images``) plus ``dataset.json``'s ``modality``;
:func:`compare` lists, in words, every way a new image differs.

Numpy in, numpy out; no torch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.dataset.io import read_image

PEAK_FACTOR = 10.0  # a peak this many times above/below the training peaks is flagged
CLIPPED_FRACTION = 0.001  # share of pixels at the bit depth's maximum that means clipping


@dataclass(frozen=True)
class ImageFacts:
    """One image file: ``bits`` stored per pixel (None: floats), DICOM ``modality`` or ''."""

    shape: tuple[int, int]
    bits: int | None
    modality: str
    peak: float
    integer: bool
    clipped: float  # fraction of pixels at 2**bits - 1 (0 for floats)


@dataclass
class DataFacts:
    """A summary of training images (:func:`data_facts`)."""

    n: int
    shapes: list[tuple[int, int]]
    bits: list[int | None]
    modality: str
    modalities: list[str] = field(default_factory=list)  # DICOM Modality tags seen
    peak_range: tuple[float, float] = (0.0, 0.0)
    integer: bool = True


def _stored_bits(path: Path) -> tuple[int | None, str]:
    """Bits per pixel the file stores (None for floating point) and its DICOM modality."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        with open(path, "rb") as f:
            head = f.read(26)  # signature, IHDR length and tag, width, height, bit depth
        return (head[24] if len(head) > 24 and head[12:16] == b"IHDR" else None), ""
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            dtype = np.dtype(tif.pages[0].dtype)
        return (None if dtype.kind == "f" else dtype.itemsize * 8), ""
    if suffix == ".npy":
        dtype = np.load(path, mmap_mode="r", allow_pickle=False).dtype
        return (None if dtype.kind == "f" else dtype.itemsize * 8), ""
    if suffix == ".dcm":
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        bits = getattr(ds, "BitsStored", None)
        return (int(bits) if bits else None), str(getattr(ds, "Modality", "") or "")
    return None, ""


def image_facts(path: str | os.PathLike, image: np.ndarray | None = None) -> ImageFacts:
    """Facts of one image file (``image``: its pixels if already read)."""
    path = Path(path)
    arr = read_image(path) if image is None else np.asarray(image)
    bits, modality = _stored_bits(path)
    finite = arr[np.isfinite(arr)]
    peak = float(finite.max()) if finite.size else 0.0
    integer = bool(finite.size) and bool(np.all(finite == np.round(finite)))
    clipped = float(np.mean(arr >= 2**bits - 1)) if bits and bits > 1 and arr.size else 0.0
    return ImageFacts(
        (int(arr.shape[0]), int(arr.shape[1])), bits, modality, peak, integer, clipped
    )


def data_facts(
    paths: Sequence[str | os.PathLike], modality: str = "", max_images: int = 24
) -> DataFacts:
    """Summarise an even sample of at most ``max_images`` of ``paths`` (training images)."""
    if not paths:
        return DataFacts(0, [], [], modality)
    idx = np.unique(np.linspace(0, len(paths) - 1, min(max_images, len(paths))).round().astype(int))
    facts = [image_facts(paths[i]) for i in idx]
    peaks = [f.peak for f in facts]
    return DataFacts(
        n=len(facts),
        shapes=[s for s, _ in Counter(f.shape for f in facts).most_common()],
        bits=sorted({f.bits for f in facts}, key=lambda b: -1 if b is None else b),
        modality=modality,
        modalities=sorted({f.modality for f in facts if f.modality}),
        peak_range=(min(peaks), max(peaks)),
        integer=all(f.integer for f in facts),
    )


def _bits_text(bits: int | None) -> str:
    return "floating-point" if bits is None else f"{bits}-bit"


def _shape_text(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def compare(new: ImageFacts, train: DataFacts) -> list[str]:
    """Every way ``new`` differs from the training images, one sentence each ([] if none)."""
    if train.n == 0:
        return []
    out = []
    if new.shape not in train.shapes:
        seen = ", ".join(_shape_text(s) for s in train.shapes[:3])
        out.append(
            f"size {_shape_text(new.shape)} px differs from the training images ({seen} px): "
            "it is resized to the model's input like them, but another matrix or zoom "
            "changes how large the joints appear"
        )
    if new.bits not in train.bits:
        seen = " or ".join(_bits_text(b) for b in train.bits)
        out.append(
            f"{_bits_text(new.bits)} pixels, the training images were {seen}: a display "
            "export or a processed image is not the raw counts the model learnt from"
        )
    if new.clipped > CLIPPED_FRACTION:
        out.append(
            f"{new.clipped:.1%} of pixels sit at the {_bits_text(new.bits)} maximum "
            f"{2**new.bits - 1} (clipped or windowed on export?)"
        )
    if train.integer and not new.integer:
        out.append(
            "pixel values are not whole numbers, the training images hold integer counts "
            "(normalised or filtered?)"
        )
    lo, hi = train.peak_range
    if new.peak > PEAK_FACTOR * hi or new.peak < lo / PEAK_FACTOR:
        out.append(
            f"peak value {new.peak:g}, the training images peak between {lo:g} and {hi:g} "
            "(another unit, scaling or acquisition?)"
        )
    known = [m for m in (train.modality, *train.modalities) if m]
    if new.modality and known and new.modality not in known:
        out.append(
            f"DICOM Modality {new.modality!r}, the training data are {'/'.join(dict.fromkeys(known))!r}"
        )
    return out
