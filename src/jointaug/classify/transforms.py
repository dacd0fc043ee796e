"""Classifier input: intensity normalisation of count images and the paper's augmentation.

Intensity normalisation (:func:`prepare_image`, the same in training, validation, test
and prediction, and for augmentation-set images):

1. ``x = sqrt(max(counts, 0))`` - a variance-stabilising transform for Poisson counts
   (the Anscombe transform without its offset), which also compresses hot joints;
2. zero-pad the shorter side (centred) to a square, so the aspect ratio is kept;
3. area-resize to ``size x size`` (block mean for integer factors, otherwise linear
   interpolation with anti-aliasing);
4. divide by the image's ``NORM_PERCENTILE`` (99th) percentile, so the injected dose and
   acquisition time (total counts vary several-fold between patients) do not matter.
   A blank image stays zero. Typical values lie in [0, ~1.5].

Augmentation (:class:`PaperAugment`): the paper's "rotate uniformly in [-30, 30] deg,
horizontal and vertical flips each with p = 0.5, with p = 0.5 pad by 32 px and crop back
to the original size at a random position". MONAI's ``RandRotate``, ``RandFlip`` and
``SpatialPad`` + ``RandSpatialCrop`` do this one image at a time at ~2 ms per 64 x 64
image on a CPU core, about twice the whole training step of the demo network, so here
the three steps are composed into ONE affine warp per image and applied to a whole batch
with ``grid_sample`` (bilinear, zero padding) on the training device. The result equals
MONAI's ``Rotate`` -> ``Flip(0)`` -> ``Flip(1)`` -> ``SpatialPad`` + ``SpatialCrop``
chain (checked in ``tests/test_classify_transforms.py``): the flips and the integer crop
shift map pixel centres onto pixel centres, so only the rotation interpolates, and the
pad region of the crop is zeroed explicitly. Labels are anatomical, so by default no
transform here touches the label vector.

Left/right (config ``classify.lr_aware`` and ``classify.per_hand``, :class:`InputLayout`):

- canonical layout: images of views the dataset declares mirrored (dataset.json
  ``mirrored_views``, e.g. the dorsal view) are flipped left-right before anything else
  (:func:`prepare_input`), so the patient's right hand is always on the same side;
- ``lr_aware``: a horizontal flip in :meth:`PaperAugment.batch` also permutes the label
  vector by the dataset's left<->right permutation (``mirror_pairs``), so a flipped image
  and its labels are again an example in the canonical layout;
- ``per_hand``: an image is prepared at ``size x 2 size`` (rows x columns: the square
  image at ``2 size``, then the mean of row pairs) and cut into its two halves
  (:func:`split_hands`): the left half as it is, the right half mirrored, each
  ``size x size`` (twice the horizontal resolution of the whole image at ``size``, the same
  vertical one). Each half is augmented on its own; a flip of a single hand keeps its
  joints' labels (a mirrored hand is the same hand's joints), so labels are not permuted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NORM_PERCENTILE = 99.0
REFERENCE_SIZE = 256  # the paper's image size; crop_pad is given at this size


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (M, M) with M = max(H, W), zero-padded symmetrically (extra pixel at the end)."""
    h, w = image.shape
    m = max(h, w)
    if h == w:
        return image
    top, left = (m - h) // 2, (m - w) // 2
    out = np.zeros((m, m), dtype=image.dtype)
    out[top : top + h, left : left + w] = image
    return out


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Square (M, M) float image -> (size, size): block mean if M is a multiple of size,
    otherwise linear interpolation with anti-aliasing (scikit-image)."""
    m = image.shape[0]
    if m == size:
        return image.astype(np.float32, copy=False)
    if m % size == 0:
        f = m // size
        return (
            image.reshape(size, f, size, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
        )
    from skimage.transform import resize

    out = resize(image, (size, size), order=1, anti_aliasing=m > size, preserve_range=True)
    return out.astype(np.float32)


def prepare_image(counts: np.ndarray, size: int) -> np.ndarray:
    """Count image (H, W), any size -> normalised float32 (size, size) (module docstring)."""
    counts = np.asarray(counts, dtype=np.float32)
    if counts.ndim != 2:
        raise ValueError(f"expected a 2D count image, got shape {counts.shape}")
    x = np.sqrt(np.maximum(np.nan_to_num(counts, nan=0.0), 0.0))
    x = resize_area(pad_to_square(x), size)
    scale = float(np.percentile(x, NORM_PERCENTILE))
    if scale <= 0:
        scale = float(x.max())
    return (x / scale).astype(np.float32) if scale > 0 else x


@dataclass(frozen=True)
class InputLayout:
    """How a dataset's images become classifier inputs (module docstring).

    mirrored_views: views flipped left-right into the canonical layout;
    label_perm: (L,) left<->right label permutation applied with horizontal flips
    (``lr_aware``), or None;
    hand_slots: (2, P) label indices of the left half and of the (mirrored) right half
    (``per_hand``), or None.
    """

    mirrored_views: tuple[str, ...] = ()
    label_perm: tuple[int, ...] | None = None
    hand_slots: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def per_hand(self) -> bool:
        return self.hand_slots is not None

    def mirrored(self, view: str | None) -> bool:
        return view is not None and view in self.mirrored_views

    def to_json(self) -> dict:
        return {
            "mirrored_views": list(self.mirrored_views),
            "label_perm": None if self.label_perm is None else list(self.label_perm),
            "hand_slots": None if self.hand_slots is None else [list(r) for r in self.hand_slots],
        }

    @classmethod
    def from_json(cls, raw: dict) -> InputLayout:
        perm, slots = raw.get("label_perm"), raw.get("hand_slots")
        return cls(
            tuple(raw.get("mirrored_views") or ()),
            None if perm is None else tuple(int(i) for i in perm),
            None if slots is None else tuple(tuple(int(i) for i in r) for r in slots),
        )


def prepare_input(
    counts: np.ndarray, size: int, layout: InputLayout | None = None, view: str | None = None
) -> np.ndarray:
    """Counts (H, W) -> the classifier's input: (size, size), or (size, 2 size) per hand.

    The image is first flipped left-right when ``view`` is one of the layout's mirrored
    views; without a layout this is :func:`prepare_image`.
    """
    if layout is None:
        return prepare_image(counts, size)
    counts = np.asarray(counts, dtype=np.float32)
    if layout.mirrored(view):
        counts = counts[:, ::-1]
    if not layout.per_hand:
        return prepare_image(counts, size)
    x = prepare_image(counts, 2 * size)
    return x.reshape(size, 2, 2 * size).mean(axis=1, dtype=np.float64).astype(np.float32)


def split_hands(images: torch.Tensor) -> torch.Tensor:
    """(B, C, S, 2S) -> (2B, C, S, S): per image its left half, then its right half
    mirrored left-right (interleaved: crop 2i is image i's left half)."""
    b, c, h, w = images.shape
    if w != 2 * h:
        raise ValueError(f"per-hand input must be S x 2S, got {h} x {w}")
    left, right = images[..., :h], images[..., h:].flip(-1)
    return torch.stack([left, right], dim=1).reshape(2 * b, c, h, h)


def join_hands(crops: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`split_hands`: (2B, C, S, S) -> (B, C, S, 2S)."""
    n, c, h, w = crops.shape
    pairs = crops.reshape(n // 2, 2, c, h, w)
    return torch.cat([pairs[:, 0], pairs[:, 1].flip(-1)], dim=-1)


def crop_pad_px(crop_pad_at_256: int, image_size: int) -> int:
    """The crop padding scaled from the paper's 256 x 256 to ``image_size`` (32 -> 8 at 64)."""
    return int(round(crop_pad_at_256 * image_size / REFERENCE_SIZE))


@dataclass(frozen=True)
class AugmentParams:
    """Per-image random parameters of one batch (all tensors on the CPU, length B).

    angle_rad: rotation angle (radians, MONAI ``Rotate``'s sign convention);
    flip_rows / flip_cols: flip along axis 0 (vertical) / axis 1 (horizontal);
    shift: (B, 2) integer (dy, dx) = crop start - pad, in [-pad, pad]; 0 where not cropped.
    """

    angle_rad: torch.Tensor
    flip_rows: torch.Tensor
    flip_cols: torch.Tensor
    shift: torch.Tensor


class PaperAugment:
    """The paper's training augmentation on batches (B, C, S, S) (module docstring).

    Args:
        rotate_deg: rotation uniform in [-rotate_deg, rotate_deg] degrees, every image.
        flip_prob: probability of each of the two flips.
        crop_prob: probability of pad-then-random-crop.
        pad_px: padding of the crop in pixels at the training image size.

    Randomness comes only from the ``torch.Generator`` passed in; every call draws the
    same amount of random numbers per image whatever the outcomes, so a run replays
    exactly from a saved generator state.
    """

    def __init__(
        self,
        rotate_deg: float = 30.0,
        flip_prob: float = 0.5,
        crop_prob: float = 0.5,
        pad_px: int = 32,
    ):
        if rotate_deg < 0 or not 0 <= flip_prob <= 1 or not 0 <= crop_prob <= 1 or pad_px < 0:
            raise ValueError(
                f"augmentation: need rotate_deg >= 0, probabilities in [0, 1], pad >= 0 "
                f"(got {rotate_deg}, {flip_prob}, {crop_prob}, {pad_px})"
            )
        self.rotate_rad = math.radians(rotate_deg)
        self.flip_prob = flip_prob
        self.crop_prob = crop_prob
        self.pad_px = pad_px

    def sample(self, batch: int, generator: torch.Generator) -> AugmentParams:
        u = torch.rand(batch, 4, generator=generator, dtype=torch.float64)
        offset = torch.randint(0, 2 * self.pad_px + 1, (batch, 2), generator=generator)
        crop = (u[:, 3] < self.crop_prob)[:, None]
        return AugmentParams(
            angle_rad=((2 * u[:, 0] - 1) * self.rotate_rad).float(),
            flip_rows=u[:, 1] < self.flip_prob,
            flip_cols=u[:, 2] < self.flip_prob,
            shift=torch.where(crop, offset - self.pad_px, torch.zeros_like(offset)),
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return apply_augment(images, self.sample(images.shape[0], generator))

    def draws(self, batch: int, layout: InputLayout | None = None) -> int:
        """Parameter rows one batch of ``batch`` images draws (two per image per hand)."""
        return 2 * batch if layout is not None and layout.per_hand else batch

    def batch(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        layout: InputLayout | None = None,
        params: AugmentParams | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a training batch with its labels (B, L) under ``layout`` (module
        docstring): without a layout exactly ``self(images, generator)``, labels as given;
        per hand, each half on its own; ``label_perm``, flips permute labels. ``params``:
        the batch's :meth:`draws` rows drawn before (on the images' device: the training
        loop draws a whole epoch at once); default: drawn now from ``generator``."""
        per_hand = layout is not None and layout.per_hand
        if params is None:
            params = self.sample(self.draws(images.shape[0], layout), generator)
        if per_hand:
            return join_hands(apply_augment(split_hands(images), params)), labels
        if layout is None or layout.label_perm is None:
            return apply_augment(images, params), labels
        perm = self._perm(layout.label_perm, labels.device)
        flip = params.flip_cols.to(labels.device)[:, None]
        return apply_augment(images, params), torch.where(flip, labels[:, perm], labels)

    def _perm(self, perm: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The label permutation on ``device``, copied there once (not once per step)."""
        cache = self.__dict__.setdefault("_perms", {})
        key = (perm, str(device))
        if key not in cache:
            cache[key] = torch.tensor(perm, device=device)
        return cache[key]


def augment_matrices(params: AugmentParams, size: int) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices (normalised coordinates, align_corners=False)
    mapping an output pixel to its source: rotate(flip(output + shift))."""
    a = params.angle_rad.double()
    cos, sin = torch.cos(a), torch.sin(a)
    fx = 1.0 - 2.0 * params.flip_cols.double()  # grid x runs along columns (axis 1)
    fy = 1.0 - 2.0 * params.flip_rows.double()
    # MONAI Rotate samples the source at R(-angle) applied to (x, y) about the centre
    m = torch.stack(
        [torch.stack([cos * fx, sin * fy], dim=1), torch.stack([-sin * fx, cos * fy], dim=1)], dim=1
    )  # (B, 2, 2) = R @ diag(fx, fy)
    t = 2.0 * params.shift.double().flip(1) / size  # (dx, dy) in normalised units
    return torch.cat([m, (m @ t[:, :, None])], dim=2).float()


def apply_augment(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Warp a batch (B, C, S, S) with per-image parameters; returns the same shape/dtype."""
    b, c, h, w = images.shape
    if h != w:
        raise ValueError(f"augmentation expects square images, got {h} x {w}")
    theta = augment_matrices(params, h).to(images.device)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False).to(images.dtype)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # the crop's pad region is zero (the warp alone would fetch rotated content there)
    dy, dx = (params.shift[:, k].to(images.device) for k in (0, 1))
    idx = torch.arange(h, device=images.device)
    rows = ((idx[None] + dy[:, None]) >= 0) & ((idx[None] + dy[:, None]) < h)
    cols = ((idx[None] + dx[:, None]) >= 0) & ((idx[None] + dx[:, None]) < w)
    mask = (rows[:, None, :, None] & cols[:, None, None, :]).to(images.dtype)
    return out * mask
