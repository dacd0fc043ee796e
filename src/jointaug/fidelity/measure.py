"""Fidelity record of an augmentation set: ``fold_K/augment/NAME/fidelity.json``.

:func:`measure_set` is a plain function of explicit inputs (set folder, dataset, fold
split, judges, classifier image size and threshold); :func:`run_fidelity` applies it
to a run folder's sets (``jointaug fidelity RUN``). A record holds:

- ``label_fidelity``: per judge (``baseline``: the fold's seed-0 baseline classifier;
  ``strong``: on the built-in phantom, a classifier trained on many extra phantom
  patients, see :mod:`jointaug.fidelity.judge`) its metrics on the synthetic images
  against their sampled labels and on the fold's real test part, their GMS ratio,
  and the same per joint (:func:`jointaug.fidelity.stats.label_fidelity`);
- ``intensity``: mean counts in background / normal / low / high regions and total
  counts, synthetic (on their composed tissue maps) vs the fold's real train images (on
  their clinician maps), and the ratios;
- ``matched_label_fidelity``: for diffusion and forward sets, the same generator drawn on
  the real test part's own clinician maps, judged against the real labels
  (:func:`matched_label_fidelity`; a perfect generator scores ~1 here, whereas on the
  sampled conditions even the phantom's own renderer scores well below 1);
- ``memorisation``: near-copies of real train images (classifier-resolution pixels);
- ``realism``: Fréchet distance (MONAI ``FIDMetric``) and MMD (MONAI ``MMDMetric``,
  on equal-size subsets) between the baseline judge's penultimate features of the real
  train images and of the synthetic images, beside the same distances for the real test
  images (the real-to-real scale). No pretrained weights are downloaded: the feature
  network is the fold's own real-data model.

The record names the set's size and settings; it is recomputed when they change.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.data import ImageSet, fold_part, input_layout, load_images
from jointaug.classify.transforms import InputLayout, prepare_input
from jointaug.dataset.format import Dataset, is_complete, read_dataset
from jointaug.dataset.splits import Fold
from jointaug.fidelity.judge import Judge, judge_outputs
from jointaug.fidelity.stats import (
    intensity_ratio,
    intensity_summary,
    label_fidelity,
    memorisation,
)
from jointaug.files import write_text_atomic
from jointaug.outputs import DONE, SET_SETTINGS

FIDELITY_FILE = "fidelity.json"
MAX_IMAGES = 1024  # the first N images of a set are measured (sets grow by appending)


def feature_distances(real: np.ndarray, other: np.ndarray) -> dict:
    """FID and MMD between feature sets (N, F) and (M, F) (MONAI metrics; MMD on the first
    min(N, M) rows of each)."""
    from monai.metrics import FIDMetric, MMDMetric

    a = torch.as_tensor(real, dtype=torch.float64)
    b = torch.as_tensor(other, dtype=torch.float64)
    k = min(len(a), len(b))
    fid = float(FIDMetric()(b, a)) if min(len(a), len(b)) >= 2 else None
    mmd = float(MMDMetric()(a[:k], b[:k])) if k >= 2 else None
    return {"fid": fid, "mmd": mmd}


def _set_cases(ds: Dataset, max_images: int) -> list:
    return [c for c in ds.cases if c.is_labelled][:max_images]


def _settings_of(set_dir: Path) -> dict:
    try:
        return json.loads((set_dir / SET_SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _judge(
    judges: Sequence[Judge],
    syn: ImageSet,
    test: ImageSet,
    train: ImageSet,
    labels: list[str],
    threshold: float,
) -> tuple[dict, dict]:
    """Label fidelity per judge on the synthetic and the real test images, and the
    first judge's features of the train, test and synthetic images (for realism)."""
    fidelity, feats = {}, {}
    for j, judge in enumerate(judges):
        p_syn, f_syn = judge_outputs(judge, syn.images)
        p_test, f_test = judge_outputs(judge, test.images)
        lf = label_fidelity(syn.labels, p_syn, test.labels, p_test, labels, threshold)
        lf["judge"] = str(judge.path)
        fidelity[judge.name] = lf
        if j == 0:
            _, f_train = judge_outputs(judge, train.images)
            feats = {"train": f_train, "test": f_test, "synthetic": f_syn}
    return fidelity, feats


def _intensity(sds: Dataset, cases: list, dataset: Dataset, fold: Fold) -> dict | None:
    """Region intensities of the set's images on their composed tissue maps vs the
    fold's real train images on their clinician maps, and the ratios (None when a set
    case has no tissue map or no real train case has one)."""
    syn_counts = [sds.image(c) for c in cases]
    syn_tissue = [sds.tissue(c) for c in cases]
    train_cases = [c for c in dataset.classification_cases(fold.train) if c.tissue]
    real_counts = [dataset.image(c) for c in train_cases]
    real_tissue = [dataset.tissue(c) for c in train_cases]
    if not (all(t is not None for t in syn_tissue) and real_counts):
        return None
    s_int = intensity_summary(syn_counts, syn_tissue)
    r_int = intensity_summary(real_counts, real_tissue)
    return {"synthetic": s_int, "real": r_int, "ratio": intensity_ratio(s_int, r_int)}


def measure_set(
    set_dir: str | Path,
    dataset: Dataset,
    fold: Fold,
    judges: Sequence[Judge],
    image_size: int,
    threshold: float = 0.5,
    max_images: int = MAX_IMAGES,
    layout: InputLayout | None = None,
) -> dict:
    """The fidelity record of one set (see the module docstring); nothing is written.

    Args:
        set_dir: a complete contract-format set (labels = the sampled vectors; tissue
            maps = the conditions the images were generated for).
        dataset: the run dataset; ``fold``: the fold the set belongs to.
        judges: classifiers trained on real images; the first one's features are used
            for the realism distances.
        image_size: the classifier resolution images are prepared at.
        threshold: the judges' decision threshold.
        layout: the judges' input layout (``input_layout(dataset, classify config)``): set
            and real images are prepared the way the judges were trained.
    """
    set_dir = Path(set_dir)
    sds = read_dataset(set_dir)
    cases = _set_cases(sds, max_images)
    if not cases:
        raise ValueError(f"{set_dir}: no labelled case to measure")
    labels = list(dataset.labels)
    order = [sds.labels.index(lab) for lab in labels]
    syn = load_images(sds, cases, image_size, "synthetic", layout=layout)
    syn.labels = syn.labels[:, order]
    train = fold_part(dataset, fold, "train", image_size, layout=layout)
    test = fold_part(dataset, fold, "test", image_size, layout=layout)
    rec: dict = {
        "set": set_dir.name,
        "fold": fold.fold,
        "n": len(cases),
        "image_size": image_size,
        "threshold": threshold,
        "settings": _settings_of(set_dir),
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    rec["label_fidelity"], feats = _judge(judges, syn, test, train, labels, threshold)
    intensity = _intensity(sds, cases, dataset, fold)
    if intensity is not None:
        rec["intensity"] = intensity
    rec["memorisation"] = memorisation(
        syn.images.astype(np.float32), train.images.astype(np.float32)
    )
    if feats:
        rec["realism"] = {
            "feature_net": judges[0].name,
            "synthetic": feature_distances(feats["train"], feats["synthetic"]),
            "real_test": feature_distances(feats["train"], feats["test"]),
        }
    return rec


Renderer = Callable[[list[np.ndarray], list[int]], list[np.ndarray]]


def matched_label_fidelity(
    render: Renderer,
    dataset: Dataset,
    fold: Fold,
    judges: Sequence[Judge],
    image_size: int,
    threshold: float = 0.5,
    part: str = "test",
    layout: InputLayout | None = None,
) -> dict:
    """The generator drawn on the real ``part``'s own clinician maps, judged against the real labels.

    ``render(tissue_maps, seeds) -> count images`` is the generator. Per judge: its metrics on
    the rendered images and on the real images of the same cases, and the GMS ratio. Unlike the
    sampled-condition label fidelity of a set (whose conditions inflame more and smaller joints
    than the real data, which caps even a perfect generator's ratio well below 1), a perfect
    generator scores ~1 here: the conditions and labels are the real ones; only the images differ.
    """
    cases = [c for c in dataset.classification_cases(getattr(fold, part)) if c.tissue]
    if not cases:
        raise ValueError(
            f"{dataset.root}: fold {fold.fold} has no labelled {part} case with a tissue map"
        )
    tissues = [dataset.tissue(c) for c in cases]
    images = render(tissues, list(range(len(cases))))
    x = np.stack(
        [prepare_input(im, image_size, layout, c.view) for im, c in zip(images, cases, strict=True)]
    )[:, None]
    real = load_images(dataset, cases, image_size, part, layout=layout)
    out = {}
    for judge in judges:
        p_syn, _ = judge_outputs(judge, x)
        p_real, _ = judge_outputs(judge, real.images)
        lf = label_fidelity(
            real.labels, p_syn, real.labels, p_real, list(dataset.labels), threshold
        )
        lf.pop("per_joint")
        out[judge.name] = lf
    return out


def diffusion_renderer(folder: str | Path, config, batch: int = 32) -> Renderer:
    """A fold's trained diffusion model (the config's sampler settings) as a :data:`Renderer`."""
    from jointaug.diffusion.intensity import poisson_counts
    from jointaug.diffusion.trained import generate_rates, load_trained
    from jointaug.runtime import resolve_device

    model = load_trained(folder, resolve_device(config.device), config.diffusion)

    def render(tissues: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        rng = np.random.default_rng(12345)
        rates = []
        for b in range(0, len(tissues), batch):
            rates += generate_rates(
                model, tissues[b : b + batch], [10_000 + s for s in seeds[b : b + batch]]
            )
        return [poisson_counts(r, rng) for r in rates]

    return render


def forward_renderer(dataset: Dataset, train_patients: Sequence[str]) -> Renderer:
    """The ``forward`` imaging model fitted on the fold's train part as a :data:`Renderer`
    (median per-image rates: the real images' own dose is not known to it)."""
    from jointaug.diffusion.intensity import poisson_counts
    from jointaug.sets.forward import fit_for_fold
    from jointaug.sets.forward_model import render_rate

    model = fit_for_fold(dataset, train_patients)

    def render(tissues: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        rng = np.random.default_rng(12345)
        return [
            poisson_counts(render_rate(t, model.rates_for(""), model.sigma_px), rng)
            for t in tissues
        ]

    return render


def is_current(set_dir: Path, n: int) -> bool:
    """A fidelity record exists for these settings and this many images."""
    path = Path(set_dir) / FIDELITY_FILE
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return rec.get("n") == n and rec.get("settings") == _settings_of(Path(set_dir))


def write_fidelity(set_dir: str | Path, record: dict) -> Path:
    path = Path(set_dir) / FIDELITY_FILE
    write_text_atomic(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path


def read_fidelity(set_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(set_dir) / FIDELITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_judges(run, fold: int, strong: bool = True, progress: bool = False) -> list[Judge]:
    """The judges of a run's fold: its seed-0 baseline (if trained) and, on the built-in
    phantom with ``strong``, the strong judge (trained on first use in ``RUN/judge``)."""
    from jointaug.fidelity.judge import is_builtin_phantom, load_judge, train_strong_judge

    judges = []
    seeds = run.config.classify.seeds or [0]
    base = run.classify_dir(fold, "baseline", seeds[0]) / "model.safetensors"
    if base.is_file():
        judges.append(load_judge("baseline", base))
    if strong and is_builtin_phantom(run.dataset):
        path = train_strong_judge(
            run.judge_dir, run.dataset, run.config.classify, progress=progress
        )
        judges.append(load_judge("strong", path))
    return judges


def run_fidelity(
    run,
    folds: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    *,
    strong: bool = True,
    force: bool = False,
    progress: bool = False,
    echo=print,
) -> list[Path]:
    """Write ``fidelity.json`` for every complete set of the run (or the given folds/names).

    A fold without a trained baseline classifier is measured with the strong judge alone
    (built-in phantom) or only for intensity, memorisation (said so on ``echo``).
    """
    cfg = run.config.classify
    layout = input_layout(run.dataset, cfg)  # the judges see images the way they were trained
    folds = range(len(run.splits.folds)) if folds is None else folds
    written = []
    for fold in folds:
        root = run.augment_root(fold)
        if not root.is_dir():
            continue
        sets = [
            p
            for p in sorted(root.iterdir())
            if is_complete(p) and (names is None or p.name in names)
        ]
        if not sets:
            continue
        judges = run_judges(run, fold, strong=strong, progress=progress)
        if not any(j.name == "baseline" for j in judges):
            echo(
                f"fold {fold}: no baseline classifier yet (train it first) -- label fidelity "
                f"{'from the strong judge only' if judges else 'skipped'}"
            )
        matched: dict[str, dict] = {}
        for p in sets:
            n = min(len(_set_cases(read_dataset(p), MAX_IMAGES)), MAX_IMAGES)
            if not force and is_current(p, n):
                continue
            split = run.splits.fold(fold)
            common = (run.dataset, split, judges, cfg.image_size, cfg.threshold)
            rec = measure_set(p, *common, layout=layout)
            render_key, render = _renderer_of(run, fold, rec["settings"])
            if render is not None and judges:
                if render_key not in matched:
                    matched[render_key] = matched_label_fidelity(render, *common, layout=layout)
                rec["matched_label_fidelity"] = matched[render_key]
            written.append(write_fidelity(p, rec))
            echo(summary_line(rec))
    return written


def _renderer_of(run, fold: int, settings: dict) -> tuple[str, Renderer | None]:
    """The generator that made a set (diffusion model with the set's sampler settings, or the
    forward model), to draw the real test maps with; (key, None) for other kinds."""
    if settings.get("kind") == "forward":
        return "forward", forward_renderer(run.dataset, run.splits.fold(fold).train)
    if settings.get("model_key") and (run.diffusion_dir(fold) / DONE).is_file():
        d = run.config.diffusion
        upd = {k: settings[k] for k in ("guidance_scale", "upsample", "sampler") if k in settings}
        if settings.get("sampler") == "ddim" and "steps" in settings:
            upd["fast_steps"] = int(settings["steps"])
        config = run.config.model_copy(update={"diffusion": d.model_copy(update=upd)})
        return json.dumps(["diffusion", upd], sort_keys=True), diffusion_renderer(
            run.diffusion_dir(fold), config
        )
    return "", None


def summary_line(rec: dict) -> str:
    """One line: set, fold, label fidelity per judge, high-region intensity ratio, copies."""
    parts = [f"fold {rec['fold']} {rec['set']} ({rec['n']}):"]
    for name, lf in rec.get("label_fidelity", {}).items():
        g, r, q = lf["synthetic"]["gms"], lf["real"]["gms"], lf["ratio"]
        parts.append(f"{name} judge GMS {_f(g)} vs real {_f(r)} (ratio {_f(q)})")
    for name, lf in rec.get("matched_label_fidelity", {}).items():
        parts.append(f"on real test maps ({name}) ratio {_f(lf['ratio'])}")
    ratio = rec.get("intensity", {}).get("ratio", {})
    if ratio:
        parts.append(
            f"intensity high {_f(ratio.get('high'))} total {_f(ratio.get('total'))} x real"
        )
    mem = rec.get("memorisation", {})
    if mem:
        parts.append(f"near-copies {mem['near_copies']}")
    real = rec.get("realism")
    if real:
        parts.append(
            f"FID {_f(real['synthetic']['fid'], 1)} (real test {_f(real['real_test']['fid'], 1)})"
        )
    return "; ".join(parts)


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"
