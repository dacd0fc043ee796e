"""Label Studio's brush RLE, decoded and encoded without label-studio-sdk.

The format (label-studio-sdk ``converter/brush.py``, after thi.ng ``rle-pack``) is a
big-endian bit stream packed into a list of byte values (0..255):

====================  =====================================================
bits                  meaning
====================  =====================================================
32                    ``num``: number of decoded values
5                     ``word_size - 1`` (bits per value; 8 for brushes)
4 x 4                 ``rle_sizes[k] - 1`` for k = 0..3 (bits of a run count)
then, until num values are out:
1                     ``x``: 1 = a run of one repeated value, 0 = literals
2                     ``k``: which ``rle_sizes`` entry gives the count width
rle_sizes[k]          ``c``: the block holds ``c + 1`` values
word_size             (x = 1) the repeated value
(c + 1) x word_size   (x = 0) the literal values
====================  =====================================================

Trailing bits are zero padding. A brush mask is ``num = W * H * 4`` values: RGBA
interleaved in row-major order; the mask is the alpha channel (``[..., 3] > 0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RleError(ValueError):
    """The byte list is not a valid Label Studio RLE stream."""


class _BitReader:
    def __init__(self, data: Sequence[int]):
        arr = np.asarray(data, dtype=np.int64)
        if arr.ndim != 1 or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise RleError("RLE must be a flat list of byte values 0..255")
        self.bits = np.unpackbits(arr.astype(np.uint8))
        self.pos = 0

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.bits.size:
            raise RleError(f"RLE stream ends early (needed bit {end}, have {self.bits.size})")
        value = 0
        for b in self.bits[self.pos : end]:
            value = (value << 1) | int(b)
        self.pos = end
        return value

    def read_many(self, n_values: int, width: int) -> np.ndarray:
        end = self.pos + n_values * width
        if end > self.bits.size:
            raise RleError(f"RLE stream ends early (needed bit {end}, have {self.bits.size})")
        chunk = self.bits[self.pos : end].reshape(n_values, width).astype(np.int64)
        self.pos = end
        return chunk @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))


def decode_rle(rle: Sequence[int]) -> np.ndarray:
    """Decode a Label Studio RLE byte list into its flat values.

    Returns:
        (num,) array, uint8 for word sizes <= 8, else uint16/uint32.
    """
    r = _BitReader(rle)
    num = r.read(32)
    word = r.read(5) + 1
    sizes = [r.read(4) + 1 for _ in range(4)]
    dtype = np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32
    out = np.zeros(num, dtype=dtype)
    i = 0
    while i < num:
        x = r.read(1)
        j = i + 1 + r.read(sizes[r.read(2)])
        if j > num:
            raise RleError(f"RLE block runs past the declared length {num}")
        if x:
            out[i:j] = r.read(word)
        else:
            out[i:j] = r.read_many(j - i, word)
        i = j
    return out


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(run lengths, run values) of a 1-D array."""
    if values.size == 0:
        return np.zeros(0, np.int64), values
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [values.size]]))
    return lengths, values[starts]


def encode_rle(
    values: np.ndarray, word_size: int = 8, rle_sizes: Sequence[int] = (3, 4, 8, 16)
) -> list[int]:
    """Encode flat integer values into Label Studio RLE bytes (inverse of :func:`decode_rle`).

    Runs of one value longer than 1 become repeat blocks; consecutive single values
    are grouped into literal blocks.
    """
    values = np.asarray(values).ravel().astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= 1 << word_size):
        raise ValueError(f"values must fit in {word_size} bits")
    if len(rle_sizes) != 4 or not all(1 <= s <= 16 for s in rle_sizes):
        raise ValueError("rle_sizes must be four widths in 1..16")
    bits: list[str] = [f"{values.size:032b}", f"{word_size - 1:05b}"]
    bits += [f"{s - 1:04b}" for s in rle_sizes]
    max_block = 1 << max(rle_sizes)

    def header(x: int, count: int) -> str:
        k = next(k for k, s in enumerate(rle_sizes) if count - 1 < 1 << s)
        return f"{x}{k:02b}{count - 1:0{rle_sizes[k]}b}"

    literals: list[int] = []

    def flush() -> None:
        while literals:
            block, literals[:] = literals[:max_block], literals[max_block:]
            bits.append(header(0, len(block)) + "".join(f"{v:0{word_size}b}" for v in block))

    for length, value in zip(*_runs(values), strict=True):
        if length == 1:
            literals.append(int(value))
            continue
        flush()
        left = int(length)
        while left > 0:
            n = min(left, max_block)
            if n == 1:
                literals.append(int(value))
            else:
                bits.append(header(1, n) + f"{int(value):0{word_size}b}")
            left -= n
    flush()
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)]


def brush_to_mask(rle: Sequence[int], width: int, height: int) -> np.ndarray:
    """A Label Studio brush (RGBA RLE) as a (height, width) bool mask (alpha > 0)."""
    flat = decode_rle(rle)
    if flat.size != width * height * 4:
        raise RleError(
            f"brush RLE holds {flat.size} values, expected {width}x{height}x4 = {width * height * 4}"
        )
    return flat.reshape(height, width, 4)[..., 3] > 0


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """A (H, W) bool mask as Label Studio brush RLE (all four RGBA channels = 255 on the mask)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got {mask.shape}")
    return encode_rle(np.repeat(mask.ravel().astype(np.uint8) * 255, 4))
