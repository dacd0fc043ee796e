"""Judges of synthetic sets: the fold's baseline classifier, and a strong judge.

A judge is a classifier trained on real images; :mod:`jointaug.fidelity.measure` lets
it score synthetic images against their sampled labels. The fold's baseline model is a
weak judge (trained on ~60 images it scores real test images at GMS ~0.6, and a weak
judge flatters any set), so on the built-in phantom a STRONG judge is trained too: the
same network on many extra phantom patients (drawn with another phantom seed, so none
is a patient of the run), with a larger budget. It lives in ``RUN/judge/`` and is shared
by all folds (its patients are in no fold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.data import input_layout, load_images
from jointaug.classify.metrics import pool_summary, tune_threshold
from jointaug.classify.model import HandsNet, assemble_hands
from jointaug.classify.predict import load_classifier, predict_probs
from jointaug.classify.transforms import split_hands
from jointaug.config import ClassifyConfig
from jointaug.dataset.format import Dataset
from jointaug.files import move_aside, write_text_atomic
from jointaug.outputs import DONE

STRONG_PATIENTS = 240
STRONG_BUDGET = 5  # x the run's max_samples / patience_samples
PHANTOM_SEED_OFFSET = 1000
JUDGE_JSON = "judge.json"  # the judge's settings and its validation record


@dataclass
class Judge:
    """name: "baseline" or "strong"; model: a DenseNet in eval mode; path: its weights."""

    name: str
    model: torch.nn.Module
    path: Path
    image_size: int


def load_judge(name: str, path: str | Path) -> Judge:
    model, _, arch = load_classifier(path)
    return Judge(name, model, Path(path), int(arch["image_size"]))


def is_builtin_phantom(dataset: Dataset) -> bool:
    """The dataset was written by ``jointaug phantom`` (its dataset.json says so)."""
    return isinstance(dataset.meta.extra.get("phantom"), dict)


def train_strong_judge(
    out: Path,
    dataset: Dataset,
    cfg: ClassifyConfig,
    patients: int = STRONG_PATIENTS,
    progress: bool = False,
) -> Path:
    """Train (or reuse) the strong judge in ``out``; return its ``model.safetensors``.

    Writes ``out/phantom`` (``patients`` extra phantom patients at the dataset's size, phantom
    seed + 1000) and trains the run's classifier (its input layout too: ``lr_aware``,
    ``per_hand``) on 80 % of them (validation: the rest) with ``STRONG_BUDGET`` x the run's
    sample budget, seed 0. ``out/judge.json`` records the settings it was trained with and
    its validation metrics (GMS at the run's threshold and at the threshold tuned there,
    ``threshold_tuned``); a judge trained with other settings is moved to ``stale/`` beside
    ``out`` and trained again (nothing is deleted).
    """
    from jointaug.classify.train import FitOptions, fit

    if not is_builtin_phantom(dataset):
        raise ValueError(
            f"{dataset.root}: a strong judge needs the built-in phantom (extra patients)"
        )
    model_path = out / "model.safetensors"
    settings = judge_settings(cfg, patients)
    if (out / DONE).is_file() and model_path.is_file():
        if _recorded_settings(out) == settings:
            return model_path
        # everything but the extra patients (they do not depend on the classifier)
        move_aside([p for p in out.iterdir() if p.name != "phantom"], out.parent)
    extra, train, val = _judge_data(out / "phantom", dataset, cfg, patients, progress)
    big = cfg.model_copy(
        update={
            "max_samples": cfg.max_samples * STRONG_BUDGET,
            "patience_samples": cfg.patience_samples * STRONG_BUDGET,
        }
    )
    res = fit(
        out,
        train,
        val,
        big,
        0,
        list(extra.labels),
        FitOptions(progress=progress, desc="strong judge"),
    )
    record = {"settings": settings, "n_train": len(train), "n_val": len(val)}
    record |= _validation_record(res.best_state, big, val, len(extra.labels))
    write_text_atomic(out / JUDGE_JSON, json.dumps(record, indent=1) + "\n")
    (out / DONE).write_text(f"{len(train)} train, {len(val)} val images\n", encoding="utf-8")
    return model_path


def _judge_data(folder: Path, dataset: Dataset, cfg: ClassifyConfig, patients: int, progress):
    """(extra phantom, train ImageSet, validation ImageSet) of the strong judge: ``patients``
    phantom patients (the dataset's size, its phantom seed + 1000), a fifth for validation,
    prepared in the run's input layout."""
    from jointaug.dataset.phantom import write_phantom

    info = dataset.meta.extra["phantom"]
    size = int(info.get("size", 256))
    seed = int(info.get("seed", 0)) + PHANTOM_SEED_OFFSET
    extra = write_phantom(folder, patients, size, seed, progress=progress)
    pids = sorted({c.patient_id for c in extra.cases})
    rng = np.random.default_rng(seed)
    val_ids = set(rng.choice(pids, size=max(1, len(pids) // 5), replace=False).tolist())
    train_cases = extra.classification_cases([p for p in pids if p not in val_ids])
    val_cases = extra.classification_cases(sorted(val_ids))
    s, layout = cfg.image_size, input_layout(extra, cfg)
    train = load_images(extra, train_cases, s, "judge-train", layout=layout)
    val = load_images(extra, val_cases, s, "judge-val", layout=layout)
    return extra, train, val


def judge_settings(cfg: ClassifyConfig, patients: int = STRONG_PATIENTS) -> dict:
    """What a strong judge's weights depend on (besides the dataset's phantom seed)."""
    keys = "image_size growth_rate block_config init_features lr batch_size max_samples"
    keys += " patience_samples lr_aware per_hand crop_pad"
    dumped = cfg.model_dump()
    return {"patients": patients, "budget": STRONG_BUDGET} | {
        k: dumped.get(k) for k in keys.split()
    }


def _recorded_settings(out: Path) -> dict | None:
    f = out / JUDGE_JSON
    if not f.is_file():
        return None  # a judge from before judge.json: its settings are unknown
    return json.loads(f.read_text(encoding="utf-8")).get("settings")


def _validation_record(state: dict, cfg: ClassifyConfig, val, n_labels: int) -> dict:
    """The best weights on the judge's validation patients: GMS at the threshold and tuned."""
    from jointaug.classify.model import build_model

    model = build_model(cfg, n_labels, seed=None, layout=val.layout)
    model.load_state_dict(state)
    probs = predict_probs(model.eval(), val.images)
    tuned = tune_threshold(val.labels, probs)
    return {
        "threshold_tuned": tuned,
        "val": pool_summary(val.labels, probs, cfg.threshold),
        "val_tuned_gms": pool_summary(val.labels, probs, tuned)["gms"],
        "val_positive_rate": float(np.mean(val.labels == 1)),
    }


def judge_record(path: str | Path) -> dict:
    """``judge.json`` of the judge whose weights are at ``path`` ({} when absent)."""
    f = Path(path).parent / JUDGE_JSON
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def _probs_and_features(model: torch.nn.Module, x: torch.Tensor):
    """Sigmoid probabilities and pooled last features of one batch. Per hand
    (:class:`HandsNet`): the features of an image are its two hand crops' side by side."""
    if isinstance(model, HandsNet):
        net = model.net
        f = net.class_layers[:-1](net.features(split_hands(x)))  # (2B, F)
        logits = assemble_hands(net.class_layers[-1](f), model.slots, model.n_labels)
        return torch.sigmoid(logits), f.reshape(x.shape[0], -1)
    f = model.class_layers[:-1](model.features(x))
    return torch.sigmoid(model.class_layers[-1](f)), f


@torch.no_grad()
def judge_outputs(
    judge: Judge, images: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, L), penultimate features (N, F)) for prepared images (N, 1, S, S),
    or (N, 1, S, 2S) for a per-hand judge (features: both crops', (N, 2F)).

    Features: the DenseNet's pooled last feature map (the input of its final linear layer).
    """
    model = judge.model.eval()
    device = next(model.parameters()).device
    probs, feats = [], []
    for i in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[i : i + batch_size], dtype=np.float32)).to(device)
        p, f = _probs_and_features(model, x)
        feats.append(f.float().cpu())
        probs.append(p.float().cpu())
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(probs).numpy(), torch.cat(feats).numpy()
