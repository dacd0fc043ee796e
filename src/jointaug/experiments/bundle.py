"""``jointaug export RUN --bundle OUT``: the ensemble ``predict`` uses, as a MONAI bundle.

Same members (every finished model of the method over folds and seeds, chosen by
:func:`jointaug.experiments.predict.ensemble_choice`), same threshold, same image
preparation, same mean of sigmoid probabilities. The bundle::

    OUT/LICENSE
    OUT/configs/metadata.json    versions, task, labels in order, threshold, input/output spec
    OUT/configs/inference.json   network_def, preprocessing, inferer, postprocessing, evaluator
    OUT/models/model.safetensors the K members' weights (keys members.k.*), no pickle
    OUT/docs/README.md           how to run it

Run it with ``python -m monai.bundle run --config_file OUT/configs/inference.json
--bundle_root OUT --dataset_dir IMAGES --output_dir PRED``: it writes
``PRED/predictions.csv`` (``image``, ``p_<label>``, ``<label>`` 0/1). The config's
components are MONAI's (``Compose``, ``Dataset``, ``DataLoader``, ``SimpleInferer``,
``AsDiscrete``) and :mod:`jointaug.classify.bundle`'s, so jointaug must be installed
(and python-fire for MONAI's command line: ``pip install "jointaug[bundle]"``).
Deviations from MONAI's bundle spec, on purpose: the weights are safetensors, not a
pickled ``model.pt`` (never unpickle a file a user hands in), and there is no TorchScript
``model.ts`` (deprecated in torch 2.13). The members are plain MONAI ``DenseNet`` state
dicts (``metadata.json`` ``network`` gives their arguments), usable without jointaug.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jointaug.classify.bundle import save_ensemble
from jointaug.classify.transforms import NORM_PERCENTILE
from jointaug.dataset.io import IMAGE_SUFFIXES
from jointaug.experiments.predict import ensemble_choice
from jointaug.experiments.rundir import RunDir
from jointaug.files import write_text_atomic

BUNDLE_VERSION = "0.1.0"
SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20240725.json"
)  # what verify_metadata would download (not offline)
BUNDLE_FILES = ("configs/metadata.json", "configs/inference.json", "models/model.safetensors")
INTENSITY = (
    f"x = sqrt(max(counts, 0)); zero-pad the shorter side (centred) to a square; area-resize "
    f"to the input size (block mean for integer factors, else linear with anti-aliasing); "
    f"divide by the image's {NORM_PERCENTILE:g}th percentile (jointaug.classify.transforms."
    f"prepare_image)"
)
LICENSE = """The configuration files of this bundle are written by jointaug (MIT licence).
The model weights were trained on the dataset named in configs/metadata.json; their use is
governed by that dataset's terms. Not for clinical use.
"""


def export_bundle(run: RunDir, out: str | Path, method: str | None = None) -> Path:
    """Write the bundle of ``method``'s ensemble (default: predict's best) to ``out``; return it.

    ``out`` must be new, empty, or an earlier bundle (then its files are replaced).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "configs" / "metadata.json").is_file():
        raise FileExistsError(f"{out}: exists and is not a bundle; give a new or empty folder")
    method_dir, files, threshold = ensemble_choice(run, method)
    _refuse_per_hand(files[0])
    members = [f.parent.relative_to(run.path).as_posix() for f in files]
    extra = {"method": method_dir, "threshold": repr(threshold), "members": json.dumps(members)}
    arch, labels, k = save_ensemble(out / "models" / "model.safetensors", files, extra)
    meta = bundle_metadata(run, method_dir, members, arch, labels, threshold)
    _write_json(out / "configs" / "metadata.json", meta)
    _write_json(out / "configs" / "inference.json", inference_config(arch, labels, threshold, k))
    write_text_atomic(out / "LICENSE", LICENSE)
    write_text_atomic(out / "docs" / "README.md", _readme(meta))
    return out


def _refuse_per_hand(model_file: Path) -> None:
    """A per-hand model takes two mirrored crops per image: not a MONAI DenseNet bundle."""
    from jointaug.classify.checkpoint import load_tensors
    from jointaug.config import ConfigError

    _, meta = load_tensors(model_file)
    if json.loads(meta.get("arch", "{}")).get("per_hand"):
        raise ConfigError(
            f"{model_file}: a per-hand model (classify.per_hand) cannot be exported as a MONAI "
            f"bundle (its input is two mirrored hand crops, not one image); use `jointaug "
            f"predict`, or train with classify.per_hand=false to export"
        )


def _write_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import monai
    import safetensors
    import torch

    try:
        jointaug_version = version("jointaug")
    except PackageNotFoundError:  # run from a source tree
        jointaug_version = "0.1.0"
    return {
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {
            "jointaug": jointaug_version,
            "safetensors": safetensors.__version__,
        },
    }


def _modality(run: RunDir) -> str | None:
    try:
        return run.dataset.meta.modality
    except Exception:  # the dataset folder moved: the bundle does not need it
        return None


def bundle_metadata(
    run: RunDir,
    method_dir: str,
    members: list[str],
    arch: dict,
    labels: list[str],
    threshold: float,
) -> dict:
    """``configs/metadata.json``: MONAI's required keys plus the ensemble's facts."""
    size = int(arch["image_size"])
    return {
        "schema": SCHEMA,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"exported by jointaug from {run.path.name} ({method_dir})"},
        **_versions(),
        "optional_packages_version": {},
        "name": f"jointaug {method_dir} ensemble",
        "task": f"Multi-label classification of {len(labels)} joints (inflamed or not) in 2D count images",
        "description": (
            f"Seed/fold ensemble of {len(members)} MONAI DenseNet classifiers ({method_dir}): "
            f"p = mean of the members' sigmoid probabilities; a joint is called inflamed when "
            f"p >= {threshold:g}. Equals `jointaug predict RUN --method {method_dir}`."
        ),
        "authors": "jointaug",
        "copyright": "See LICENSE",
        "intended_use": "Research only; not for clinical use.",
        "data_type": "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES),
        "image_classes": f"single channel count image, any size; {INTENSITY}",
        "pred_classes": f"{len(labels)} per-joint probabilities in [0, 1], in the order of `labels`",
        "labels": list(labels),
        "decision_threshold": float(threshold),
        "ensemble": {
            "method": method_dir,
            "combination": "mean of sigmoid probabilities",
            "members": members,
            "source_run": str(run.path.resolve()),
        },
        "network": {
            "class": "monai.networks.nets.DenseNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": len(labels),
            **arch,
        },
        "network_data_format": _data_format(labels, size, _modality(run)),
    }


def _data_format(labels: list[str], size: int, modality: str | None) -> dict:
    image = {
        "type": "image",
        "format": "magnitude",
        "num_channels": 1,
        "spatial_shape": [size, size],
        "dtype": "float32",
        "value_range": [],
        "is_patch_data": False,
        "channel_def": {"0": "sqrt(counts), normalised by its 99th percentile"},
        "intensity_transform": INTENSITY,
    }
    if modality:
        image["modality"] = modality
    pred = {
        "type": "probabilities",
        "format": "classes",
        "num_channels": len(labels),
        "spatial_shape": [],
        "dtype": "float32",
        "value_range": [0, 1],
        "is_patch_data": False,
        "channel_def": {str(i): lab for i, lab in enumerate(labels)},
    }
    return {"inputs": {"image": image}, "outputs": {"pred": pred}}


def inference_config(arch: dict, labels: list[str], threshold: float, n_members: int) -> dict:
    """``configs/inference.json`` for ``monai.bundle`` (module docstring)."""
    cb = "jointaug.classify.bundle."
    return {
        "imports": ["$import pathlib", "$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "dataset_dir": "$@bundle_root + '/images'",
        "output_dir": "$@bundle_root + '/eval'",
        "image_suffixes": list(IMAGE_SUFFIXES),
        "datalist": "$sorted(str(p) for p in pathlib.Path(@dataset_dir).iterdir() "
        "if p.suffix.lower() in @image_suffixes)",
        "labels": list(labels),
        "threshold": float(threshold),
        "image_size": int(arch["image_size"]),
        "network_def": {
            "_target_": cb + "ProbabilityEnsemble",
            "arch": dict(arch),
            "n_labels": len(labels),
            "n_members": n_members,
        },
        "ckpt_path": "$@bundle_root + '/models/model.safetensors'",
        "network": {
            "_target_": cb + "load_ensemble_weights",
            "network": "@network_def",
            "path": "@ckpt_path",
            "device": "@device",
        },
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": cb + "LoadCountImaged", "keys": "image"},
                {"_target_": cb + "PrepareCountsd", "keys": "image", "image_size": "@image_size"},
            ],
        },
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': i} for i in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 16,
            "shuffle": False,
            "num_workers": 0,
        },
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "AsDiscrete", "threshold": "@threshold"},
        "evaluator": {
            "_target_": cb + "CsvPredictor",
            "dataloader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "labels": "@labels",
            "output_dir": "@output_dir",
            "device": "@device",
        },
        "initialize": [],
        "run": ["$@evaluator.run()"],
    }


def _readme(meta: dict) -> str:
    return f"""# {meta["name"]}

{meta["description"]}

Input: {meta["image_classes"]}.
Output: `predictions.csv`: `image`, `p_<label>` for the {len(meta["labels"])} labels in
order, and `<label>` = 1 where p >= {meta["decision_threshold"]:g}.

```bash
pip install "jointaug[bundle]"   # jointaug classes in the config; fire for MONAI's CLI
python -m monai.bundle run --config_file configs/inference.json \\
    --bundle_root . --dataset_dir IMAGES --output_dir PREDICTIONS
```

Weights: `models/model.safetensors` (no pickle), keys `members.<k>.<MONAI DenseNet key>`.
"""
