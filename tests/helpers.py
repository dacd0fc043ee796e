"""Public helpers shared by the test modules: tiny datasets and shrunk configs.

Test modules import from here (``from helpers import ...``; pytest puts ``tests/`` on the
path), never from one another; ``conftest.py`` wraps these in fixtures.

Datasets (each written on the fly in the contract format, in well under a second):

- :func:`write_tiny_dataset` -- the general-purpose one: any labels, one square region
  per label (hot where the label is 1), tissue and region maps, palmar + dorsal views.
- :func:`write_two_hand_dataset` -- what the diffusion tests train on: two "hands" with two
  joints each (4 labels), tissue + region maps on every view, obliques included.
- :func:`write_signal_dataset` / :func:`write_signal_set` / :func:`signal_imageset` --
  what the classifier tests learn from: each label owns a fixed square, bright
  (Poisson mean ``hot``) when inflamed on a dim tissue background (mean 3), with random
  dose scaling, so a small network learns the labels in a few seconds (no maps).

Shrunk configs: :data:`SHRINK` shrinks every shipped profile to seconds (sizes, steps and
image counts only -- see ``test_profiles.py``); the pieces it is made of
(:data:`CLASSIFIER_TINY`, :data:`DIFFUSION_TINY`, :data:`NATURAL_TINY`, ...) are what the
other modules' override lists are built from, with :func:`overrides` (later wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jointaug.classify.data import ImageSet
from jointaug.classify.transforms import prepare_image
from jointaug.config import ClassifyConfig
from jointaug.dataset.format import DatasetMeta
from jointaug.dataset.writer import DatasetWriter

LABELS = ["R_a", "R_b", "L_a", "L_b"]
GROUPS = {"right": ["R_a", "R_b"], "left": ["L_a", "L_b"]}

# --- shrunk configs (override lists for ``load_config``) -------------------------------

# the classifier network of the whole-pipeline tests (trains nothing worth learning)
CLASSIFIER_TINY = [
    "classify.image_size=32",
    "classify.block_config=[1, 1]",
    "classify.growth_rate=4",
    "classify.init_features=8",
]
# the classifier network of the tests that need it to learn (see :func:`tiny_config`)
CLASSIFIER_LEARNS = [
    "classify.image_size=32",
    "classify.growth_rate=8",
    "classify.block_config=[2,2]",
    "classify.init_features=16",
]
# a classifier schedule of a few batches, by samples and by epochs
CLASSIFIER_FEW_STEPS = [
    "classify.batch_size=8",
    "classify.max_samples=32",
    "classify.patience_samples=16",
    "classify.max_epochs=2",
    "classify.patience_epochs=1",
    "classify.eval_every_samples=16",
]
DIFFUSION_TINY = [
    "diffusion.image_size=16",
    "diffusion.channels=[8, 16]",
    "diffusion.attention_levels=[false, true]",
    "diffusion.num_res_blocks=1",
    "diffusion.num_head_channels=8",
]
NATURAL_TINY = [
    "natural.max_images=4",
    "natural.n_labelled=4",
    "natural.stand_in_photos=8",
    "natural.segmenter_image_size=32",
    "natural.segmenter_channels=[4, 8]",
    "natural.segmenter_epochs=2",
]

# every shipped profile, shrunk to seconds: only sizes, steps and image counts; never a
# device, sampler, precision or method key (test_profiles.py checks it)
SHRINK = [
    "split.folds=3",
    *CLASSIFIER_TINY,
    *CLASSIFIER_FEW_STEPS,
    "classify.eval_every_epochs=1",
    "classify.seeds=[0]",
    *DIFFUSION_TINY,
    "diffusion.batch_size=4",
    "diffusion.train_steps=3",
    "diffusion.sample_every=3",
    "diffusion.timesteps=12",
    "diffusion.fast_steps=2",
    *NATURAL_TINY,
    "experiment.sizes=[4]",
    "experiment.curve_sizes=[2]",
]

# the whole grid on the paper profile, every size tiny (test_experiment_pipeline, test_ray_executor)
PIPELINE_TINY = [
    "split.folds=3",  # device: the profile's (auto -> cpu here), see test_profiles.py
    *CLASSIFIER_TINY,
    "classify.batch_size=8",
    "classify.max_samples=48",
    "classify.patience_samples=24",
    "classify.eval_every_epochs=1",
    "classify.seeds=[0, 1]",
    *DIFFUSION_TINY,
    "diffusion.batch_size=4",
    "diffusion.train_steps=3",
    "diffusion.sample_every=3",
    "diffusion.checkpoint_every=2",
    "diffusion.sampler=ddim",
    "diffusion.fast_steps=2",
    "diffusion.sample_batch_size=8",
    *NATURAL_TINY,
    "experiment.methods=[baseline, mp-perlin, 11k-perlin]",
    "experiment.mixtures=[50]",
    "experiment.sizes=[8]",
    "experiment.curve_sizes=[4]",
    "experiment.imbalance_baselines=[tuned_threshold]",
]


def overrides(*parts: Iterable[str]) -> list[str]:
    """Override lists joined into one; a key given again replaces the earlier value in place
    (what ``load_config`` does too, later wins), so each key appears once."""
    out: dict[str, str] = {}
    for part in parts:
        for item in part:
            out[item.split("=", 1)[0].strip()] = item
    return list(out.values())


# what the diffusion tests train the two-hand dataset with (test_generate_pipeline, _loop,
# test_graph, test_speed_paths)
# a run whose classifiers learn a little in a few batches, one seed, no curve sizes
RUN_TINY = overrides(
    CLASSIFIER_LEARNS,
    [
        "classify.batch_size=16",
        "classify.eval_every_epochs=1",
        "classify.patience_samples=16",
        "classify.max_samples=32",
        "classify.seeds=[0]",
        "experiment.curve_sizes=[]",
        "device=cpu",
    ],
)


TWO_HAND_OVERRIDES = overrides(
    ["split.folds=4"],
    DIFFUSION_TINY,
    [
        "diffusion.dropout=0.1",
        "diffusion.batch_size=4",
        "diffusion.train_steps=6",
        "diffusion.checkpoint_every=2",
        "diffusion.sample_every=3",
        "diffusion.sampler=ddim",
        "diffusion.fast_steps=3",
        "diffusion.sample_batch_size=3",
        "diffusion.lr=1e-3",
        "diffusion.network_output=v",
        "perlin.max_tries=50",
        "device=cpu",
    ],
)

# --- datasets --------------------------------------------------------------------------


def signal_images(
    rng: np.random.Generator,
    n: int,
    size: int = 64,
    hot: float = 25.0,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) count images and their (n, 4) labels."""
    y = (rng.random((n, 4)) < 0.4).astype(np.float32) if labels is None else labels
    cell = size // 4
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        lam = np.zeros((size, size))
        lam[size // 8 : -size // 8, size // 8 : -size // 8] = 3.0
        for j in range(4):
            r, c = (j // 2) * 2 * cell + cell // 2, (j % 2) * 2 * cell + cell // 2
            lam[r : r + cell, c : c + cell] = hot if y[i, j] else 4.0
        out[i] = rng.poisson(lam * rng.uniform(0.5, 2.0))
    return out, y


def signal_imageset(rng: np.random.Generator, n: int, image_size: int = 32) -> ImageSet:
    imgs, y = signal_images(rng, n)
    x = np.stack([prepare_image(im, image_size) for im in imgs])[:, None].astype(np.float16)
    return ImageSet(x, y, [f"c{i}" for i in range(n)], ["train"] * n)


def tiny_config(**over) -> ClassifyConfig:
    """A network and schedule that train in about a second on a CPU."""
    base = dict(
        image_size=32,
        growth_rate=8,
        block_config=[2, 2],
        init_features=16,
        lr=3e-3,
        batch_size=16,
        eval_every_epochs=1,
        patience_samples=400,
        max_samples=800,
        seeds=[0],
        crop_pad=32,
    )
    base.update(over)
    return ClassifyConfig(**base)


def write_signal_dataset(
    root: Path, n_patients: int = 20, size: int = 64, seed: int = 0, unknown_fraction: float = 0.0
) -> Path:
    """A contract dataset: palmar + dorsal per patient (same labels), plus one oblique."""
    rng = np.random.default_rng(seed)
    meta = DatasetMeta(name="signal", labels=list(LABELS), groups=GROUPS)
    with DatasetWriter(root, meta) as w:
        for p in range(n_patients):
            imgs, y = signal_images(
                rng,
                3,
                size,
                labels=np.repeat((rng.random((1, 4)) < 0.4).astype(np.float32), 3, axis=0),
            )
            vec = y[0].copy()
            vec[rng.random(4) < unknown_fraction] = np.nan
            for view, img in zip(("palmar", "dorsal"), imgs, strict=False):
                w.add(f"p{p:02d}_{view}", f"p{p:02d}", view, img, labels=vec)
            w.add(f"p{p:02d}_oblique", f"p{p:02d}", "oblique_left", imgs[2])
    return root


def write_signal_set(root: Path, n: int, size: int = 64, seed: int = 1) -> Path:
    """An augmentation set in the contract format (all labels known)."""
    rng = np.random.default_rng(seed)
    imgs, y = signal_images(rng, n, size)
    meta = DatasetMeta(name=root.name, labels=list(LABELS), groups=GROUPS)
    with DatasetWriter(root, meta) as w:
        for i in range(n):
            w.add(f"s{i:04d}", f"s{i:04d}", "palmar", imgs[i], labels=y[i])
    return root


def write_tiny_dataset(
    root: Path,
    n_patients: int = 6,
    size: int = 32,
    labels: tuple[str, ...] = ("A_x", "A_y", "B_x"),
    groups: dict | None = None,
    seed: int = 0,
    views: tuple[str, ...] = ("palmar", "dorsal"),
) -> Path:
    """A small valid dataset: one square region per label, hot where the label is 1."""
    rng = np.random.default_rng(seed)
    groups = groups or {
        "A": [x for x in labels if x.startswith("A")],
        "B": [x for x in labels if not x.startswith("A")],
    }
    meta = DatasetMeta(name="tiny", labels=list(labels), groups=groups)
    cell = size // (len(labels) + 1)
    with DatasetWriter(root, meta) as w:
        for p in range(n_patients):
            vec = (rng.random(len(labels)) < 0.4).astype(np.float32)
            regions = np.zeros((size, size), np.uint8)
            tissue = np.zeros((size, size), np.uint8)
            tissue[2:-2, 2:-2] = 1
            lam = np.full((size, size), 2.0)
            for j in range(len(labels)):
                sl = (slice(cell * j + 1, cell * j + cell), slice(size // 3, size // 3 + cell - 1))
                regions[sl] = j + 1
                if vec[j]:
                    tissue[sl] = 3
                    lam[sl] = 30.0
            for view in views:
                img = rng.poisson(lam).astype(np.float32)
                w.add(
                    f"p{p}_{view}", f"p{p}", view, img, labels=vec, tissue=tissue, regions=regions
                )
    return root


TWO_HAND_SIZE = 32


def two_hand_maps() -> tuple[np.ndarray, np.ndarray]:
    """Two 'hands' (tissue 1) with two joints each (regions 1..4)."""
    tissue = np.zeros((TWO_HAND_SIZE, TWO_HAND_SIZE), np.uint8)
    tissue[6:28, 3:14] = 1
    tissue[6:28, 18:29] = 1
    regions = np.zeros_like(tissue)
    for k, (r, c) in enumerate([(10, 6), (20, 8), (10, 21), (20, 23)], start=1):
        regions[r : r + 4, c : c + 4] = k
    return tissue, regions


def write_two_hand_dataset(root: Path, patients: int = 8, seed: int = 0) -> Path:
    """Per patient: palmar + dorsal (labelled, tissue + regions) and one oblique (tissue only)."""
    rng = np.random.default_rng(seed)
    meta = DatasetMeta(name="tiny", labels=LABELS, groups=GROUPS)
    base_t, regions = two_hand_maps()
    with DatasetWriter(root, meta) as w:
        for p in range(patients):
            vec = (rng.random(4) < 0.4).astype(np.float32)
            tissue = base_t.copy()
            for k in np.flatnonzero(vec):
                tissue[regions == k + 1] = 2 + (rng.random() < 0.5)
            rate = np.choose(tissue, [0.2, 6.0, 18.0, 40.0])
            for view in ("palmar", "dorsal"):
                w.add(
                    f"p{p}_{view}",
                    f"p{p}",
                    view,
                    rng.poisson(rate),
                    labels=vec,
                    tissue=tissue,
                    regions=regions,
                )
            w.add(f"p{p}_oblique", f"p{p}", "oblique_left", rng.poisson(rate * 0.6), tissue=tissue)
    return root


def write_dicom(path, arr, modality="NM", bits=16):
    """A one-frame uncompressed DICOM of ``arr`` (uint16 pixels)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality = modality
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = arr.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
