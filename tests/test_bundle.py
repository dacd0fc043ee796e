"""``jointaug export RUN --bundle OUT``: a MONAI bundle that reproduces ``jointaug predict``.

The run is made without training: tiny DenseNets with random weights (and random
batch-norm statistics, so a bundle that forgot eval mode would differ) saved where the
protocol saves finished models. The bundle is then run by ``monai.bundle`` exactly as a
user would (``python -m monai.bundle run --config_file ...``, in a subprocess) and its
per-joint probabilities compared with ``predict``'s.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tiny_dataset
from typer.testing import CliRunner

from jointaug.classify.checkpoint import save_tensors
from jointaug.classify.model import build_model, model_metadata
from jointaug.classify.predict import predict_files
from jointaug.cli import app
from jointaug.config import load_config
from jointaug.dataset.format import HAND_LABELS
from jointaug.experiments.predict import model_files
from jointaug.experiments.rundir import RunDir

TINY = [
    "classify.image_size=32",
    "classify.block_config=[1, 1]",
    "classify.growth_rate=4",
    "classify.init_features=8",
    "split.folds=3",
    "device=cpu",
]
# MONAI's bundle spec (docs "MONAI Bundle Specification", monai.bundle.utils.DEFAULT_METADATA
# and monai.bundle.properties.MetaProperties): keys metadata.json must have
REQUIRED_META = (
    "version",
    "changelog",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "optional_packages_version",
    "required_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
)
REQUIRED_TENSOR = (
    "type",
    "format",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
)
# MONAI's InferProperties: ids an inference config must define
REQUIRED_INFER = (
    "bundle_root",
    "device",
    "dataset_dir",
    "dataset",
    "evaluator",
    "network_def",
    "inferer",
)


def _fake_model(path: Path, cfg, labels: list[str], seed: int, tuned: float) -> None:
    model = build_model(cfg.classify, len(labels), seed=seed)
    g = torch.Generator().manual_seed(seed)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(0.2 * torch.randn(buf.shape, generator=g))
        elif name.endswith("running_var"):
            buf.copy_(0.5 + torch.rand(buf.shape, generator=g))
    save_tensors(
        path / "model.safetensors", model.state_dict(), model_metadata(cfg.classify, labels)
    )
    (path / "done").write_text("")
    (path / "result.json").write_text(json.dumps({"threshold_tuned": tuned}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two folds x two seeds of ``baseline`` and of ``mp-perlin_8`` (the best by metrics.csv)."""
    root = tmp_path_factory.mktemp("bundle")
    labels = list(HAND_LABELS)
    ds = write_tiny_dataset(
        root / "data", n_patients=6, size=96, labels=tuple(labels), groups={"all": labels}
    )
    cfg = load_config("demo", TINY)
    rd = RunDir.create(root / "run", ds, cfg)
    for i, (fold, method, seed) in enumerate(
        (f, m, s) for f in (0, 1) for m in ("baseline", "mp-perlin_8") for s in (0, 1)
    ):
        d = rd.classify_dir(fold, method, seed)
        d.mkdir(parents=True)
        _fake_model(d, cfg, labels, seed=10 * i + seed, tuned=0.3 + 0.1 * seed)
    rd.results_dir.mkdir(parents=True, exist_ok=True)
    (rd.results_dir / "metrics.csv").write_text(
        "method_dir,fold,seed,threshold,gms\n"
        "baseline,0,ensemble,default,0.4\nmp-perlin_8,0,ensemble,default,0.6\n"
    )
    return rd


@pytest.fixture(scope="module")
def images(run, tmp_path_factory):
    """Two dataset images (96x96: block mean to 32) and one 50x40 (pad + interpolated resize)."""
    ds = run.dataset
    paths = [ds.root / c.image for c in ds.classification_cases()[:2]]
    odd = tmp_path_factory.mktemp("odd") / "odd.npy"
    np.save(odd, np.random.default_rng(3).poisson(5.0, (50, 40)).astype(np.float32))
    return [*paths, odd]


def _bundle_run(bundle: Path, images: list[Path], out: Path) -> list[dict]:
    """``python -m monai.bundle run`` in a fresh process, as a user types it (without
    python-fire, an optional MONAI dependency: ``monai.bundle.run``, which it calls)."""
    inputs = out.parent / "inputs"
    inputs.mkdir()
    for p in images:  # one folder of images: the bundle's dataset_dir
        (inputs / p.name).symlink_to(p)
    args = {
        "config_file": str(bundle / "configs" / "inference.json"),
        "bundle_root": str(bundle),
        "dataset_dir": str(inputs),
        "output_dir": str(out),
    }
    if importlib.util.find_spec("fire"):  # MONAI's command line needs python-fire
        cmd = [sys.executable, "-m", "monai.bundle", "run"]
        cmd += [a for k, v in args.items() for a in (f"--{k}", v)]
    else:  # the function that command calls, with the same arguments, in a fresh process
        call = f"from monai.bundle import run; run(**{args!r})"
        cmd = [sys.executable, "-c", call]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_bundle_reproduces_predict(run, images, tmp_path):
    res = CliRunner().invoke(app, ["export", str(run.path), "--bundle", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    bundle = tmp_path / "b"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["ensemble"]["method"] == "mp-perlin_8"  # predict's default: best mean GMS
    files = model_files(run, "mp-perlin_8")
    assert meta["ensemble"]["members"] == [f.parent.relative_to(run.path).as_posix() for f in files]
    rows = _bundle_run(bundle, images, tmp_path / "pred")
    expect, labels = predict_files(files, images)
    assert labels == meta["labels"] == list(HAND_LABELS)
    assert [Path(r["image"]).name for r in rows] == sorted(p.name for p in images)
    got = {Path(r["image"]).name: np.array([float(r[f"p_{lab}"]) for lab in labels]) for r in rows}
    for p, e in zip(images, expect, strict=True):
        assert np.allclose(got[p.name], e, atol=1e-5), (p.name, np.abs(got[p.name] - e).max())
        row = next(r for r in rows if Path(r["image"]).name == p.name)
        assert [int(row[lab]) for lab in labels] == [int(v >= 0.5) for v in e]
    assert np.ptp(expect) > 0.05  # the members do say different things for different joints
    # and predict's own CSV (4 decimals) agrees
    pres = CliRunner().invoke(
        app, ["predict", str(run.path), *map(str, images), "--out", str(tmp_path / "p")]
    )
    assert pres.exit_code == 0, pres.output
    with open(tmp_path / "p" / "predictions.csv", newline="") as f:
        for prow in csv.DictReader(f):
            p = np.array([float(prow[f"p_{lab}"]) for lab in labels])
            assert np.allclose(p, got[Path(prow["image"]).name], atol=6e-5)


def test_bundle_has_monai_required_keys(run, tmp_path):
    from monai.bundle import ConfigParser

    res = CliRunner().invoke(
        app,
        ["export", str(run.path), "--bundle", str(tmp_path / "b"), "--method", "tuned_threshold"],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "b" / "configs" / "metadata.json").read_text())
    assert [k for k in REQUIRED_META if k not in meta] == []
    for spec in (
        meta["network_data_format"]["inputs"]["image"],
        meta["network_data_format"]["outputs"]["pred"],
    ):
        assert [k for k in REQUIRED_TENSOR if k not in spec] == []
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [32, 32]
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"]["0"] == HAND_LABELS[0]
    # tuned_threshold: the baseline's models at the mean of their tuned thresholds
    assert meta["decision_threshold"] == pytest.approx(np.mean([0.3, 0.4, 0.3, 0.4]))
    assert all("/baseline/" in m for m in meta["ensemble"]["members"])
    cfg = ConfigParser()
    cfg.read_config(tmp_path / "b" / "configs" / "inference.json")
    assert [k for k in REQUIRED_INFER if k not in cfg] == []
    assert cfg["threshold"] == meta["decision_threshold"]
    cfg["bundle_root"] = str(tmp_path / "b")
    net = cfg.get_parsed_content("network")
    x = torch.rand(2, 1, 32, 32)
    assert net(x).shape == (2, len(HAND_LABELS)) and not net.training
    for name in ("LICENSE", "docs/README.md", "models/model.safetensors"):
        assert (tmp_path / "b" / name).is_file()
    again = CliRunner().invoke(app, ["export", str(run.path), "--bundle", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output  # an earlier bundle is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    bad = CliRunner().invoke(app, ["export", str(run.path), "--bundle", str(tmp_path / "other")])
    assert bad.exit_code == 2 and "is not a bundle" in bad.output
    helptext = " ".join(CliRunner().invoke(app, ["export", "--help"]).output.split())
    assert "python -m monai.bundle run --config_file" in helptext and "jointaug[bundle]" in helptext


def test_a_per_hand_ensemble_is_refused_with_the_reason(tmp_path):
    from jointaug.classify.checkpoint import save_tensors
    from jointaug.classify.model import build_model, model_metadata
    from jointaug.config import ConfigError
    from jointaug.experiments.bundle import _refuse_per_hand

    cfg = load_config("demo", [*TINY, "classify.per_hand=true"]).classify
    model = build_model(cfg, 30, seed=0)
    f = tmp_path / "model.safetensors"
    save_tensors(f, model.state_dict(), model_metadata(cfg, list(HAND_LABELS)))
    with pytest.raises(ConfigError, match="per-hand model .* cannot be exported"):
        _refuse_per_hand(f)
