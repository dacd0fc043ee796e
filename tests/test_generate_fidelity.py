"""Fidelity records end to end: a real trained judge on a tiny dataset, sets whose answer is known."""

import json

import numpy as np
import pytest

from jointaug.config import load_config
from jointaug.dataset.format import DatasetMeta, read_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.experiments.classification import train_single
from jointaug.experiments.report import fidelity_rows, fidelity_section
from jointaug.experiments.rundir import RunDir
from jointaug.fidelity.measure import (
    feature_distances,
    measure_set,
    read_fidelity,
    run_fidelity,
    run_judges,
)

LABELS = ["R_a", "R_b", "L_a", "L_b"]
GROUPS = {"right": ["R_a", "R_b"], "left": ["L_a", "L_b"]}
SIZE = 32
OVERRIDES = [
    "split.folds=5",
    "classify.image_size=32",
    "classify.growth_rate=8",
    "classify.block_config=[2,2]",
    "classify.init_features=8",
    "classify.lr=3e-3",
    "classify.batch_size=16",
    "classify.eval_every_epochs=2",
    "classify.max_samples=2400",
    "classify.patience_samples=2400",
    "classify.crop_pad=0",
    "classify.rotate_deg=0",
    "classify.seeds=[0]",
    "device=cpu",
]


def _maps():
    tissue = np.zeros((SIZE, SIZE), np.uint8)
    tissue[4:30, 2:15] = 1
    tissue[4:30, 17:30] = 1
    regions = np.zeros_like(tissue)
    for k, (r, c) in enumerate([(6, 4), (18, 6), (6, 20), (18, 22)], start=1):
        regions[r : r + 6, c : c + 6] = k
    return tissue, regions


def _cases(n, seed):
    """(labels, tissue, regions, counts) of n images whose inflamed joints are clearly hot."""
    rng = np.random.default_rng(seed)
    base_t, regions = _maps()
    out = []
    for _ in range(n):
        vec = (rng.random(4) < 0.4).astype(np.float32)
        tissue = base_t.copy()
        for k in np.flatnonzero(vec):
            tissue[regions == k + 1] = 3
        out.append((vec, tissue, regions, rng.poisson(np.choose(tissue, [0.2, 5.0, 15.0, 40.0]))))
    return out


def _write(root, cases, labels_of=None, name="set"):
    with DatasetWriter(root, DatasetMeta(name=name, labels=LABELS, groups=GROUPS)) as w:
        for i, (vec, tissue, regions, counts) in enumerate(cases):
            lab = vec if labels_of is None else labels_of[i]
            w.add(
                f"c{i:04d}",
                f"p{i // 2}",
                ("palmar", "dorsal")[i % 2],
                counts,
                labels=lab,
                tissue=tissue,
                regions=regions,
            )
    return root


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    base = tmp_path_factory.mktemp("fid")
    data = _write(base / "data", _cases(100, 0), name="tiny")
    run = RunDir.create(base / "run", data, load_config("demo", OVERRIDES))
    train_single(run, 0, "baseline", 0, progress=False)
    return base, run


def _measure(run, folder):
    judges = run_judges(run, 0, strong=False)
    return measure_set(folder, run.dataset, run.splits.fold(0), judges, 32, 0.5)


@pytest.mark.slow
def test_oracle_like_set_scores_like_real_and_shuffled_labels_do_not(judged):
    base, run = judged
    fresh = _cases(120, 7)  # new images from the same generator, with their true labels
    oracle = _write(run.augment_dir(0, "oracle-like"), fresh)
    rec = _measure(run, oracle)
    lf = rec["label_fidelity"]["baseline"]
    assert lf["real"]["gms"] > 0.8  # the judge learnt to see hot joints
    assert lf["ratio"] == pytest.approx(1.0, abs=0.1)
    perm = np.random.default_rng(1).permutation(len(fresh))
    shuffled = _write(run.augment_dir(0, "shuffled"), fresh, labels_of=[fresh[j][0] for j in perm])
    bad = _measure(run, shuffled)["label_fidelity"]["baseline"]
    assert bad["ratio"] < 0.75 and bad["synthetic"]["gms"] < lf["synthetic"]["gms"] - 0.2
    # intensity of real-like images matches the real train images; no near-copies of fresh images
    assert rec["intensity"]["ratio"]["high"] == pytest.approx(1.0, abs=0.1)
    assert rec["memorisation"]["near_copies"] == 0
    assert rec["realism"]["synthetic"]["fid"] is not None


@pytest.mark.slow
def test_copies_of_train_images_count_as_memorised(judged):
    base, run = judged
    ds = run.dataset
    train = ds.classification_cases(run.splits.fold(0).train)[:20]
    cases = [(ds.label_matrix([c])[0], ds.tissue(c), ds.regions(c), ds.image(c)) for c in train]
    copies = _write(run.augment_dir(0, "copies"), cases)
    rec = _measure(run, copies)
    assert rec["memorisation"]["near_copies"] == 20
    assert rec["memorisation"]["synthetic_median"] == 0.0


@pytest.mark.slow
def test_run_fidelity_writes_records_and_the_report_shows_them(judged):
    base, run = judged
    written = run_fidelity(run, [0], ["oracle-like", "copies"], strong=False, echo=lambda s: None)
    assert {p.parent.name for p in written} == {"oracle-like", "copies"}
    rec = read_fidelity(run.augment_dir(0, "oracle-like"))
    assert rec["n"] == 120 and json.loads(json.dumps(rec)) == rec
    # current records are not recomputed; a grown set is
    assert run_fidelity(run, [0], ["oracle-like"], strong=False, echo=lambda s: None) == []
    rows = fidelity_rows(run)
    assert {r["set"] for r in rows} >= {"oracle-like", "copies"}
    html = fidelity_section(run)
    assert "oracle-like" in html and (run.results_dir / "fidelity.md").is_file()
    assert read_dataset(run.augment_dir(0, "copies")).meta.name == "set"


def test_feature_distances_scale():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(150, 4))
    far = rng.normal(size=(150, 4)) + 3.0
    near, off = feature_distances(a, b), feature_distances(a, far)
    assert near["fid"] < 0.5 < 30 < off["fid"]
    assert near["mmd"] < off["mmd"]


@pytest.mark.slow
def test_matched_label_fidelity_perfect_vs_condition_blind_generator(judged):
    from jointaug.fidelity.measure import matched_label_fidelity

    base, run = judged
    rng = np.random.default_rng(5)

    def perfect(tissues, seeds):  # the dataset's own imaging process
        return [rng.poisson(np.choose(t, [0.2, 5.0, 15.0, 40.0])) for t in tissues]

    def blind(tissues, seeds):  # ignores inflammation: every joint looks normal
        return [rng.poisson(np.choose(np.minimum(t, 1), [0.2, 5.0])) for t in tissues]

    judges = run_judges(run, 0, strong=False)
    good = matched_label_fidelity(perfect, run.dataset, run.splits.fold(0), judges, 32)["baseline"]
    bad = matched_label_fidelity(blind, run.dataset, run.splits.fold(0), judges, 32)["baseline"]
    assert good["ratio"] == pytest.approx(1.0, abs=0.1)
    assert bad["ratio"] < 0.5


@pytest.mark.slow
def test_cli_fidelity_verb(judged):
    from typer.testing import CliRunner

    from jointaug.cli import app

    base, run = judged
    _write(run.augment_dir(0, "cli-set"), _cases(8, 11))
    res = CliRunner().invoke(
        app, ["fidelity", str(run.path), "--fold", "0", "--set", "cli-set", "--no-strong"]
    )
    assert res.exit_code == 0, res.output
    assert "cli-set" in res.output and read_fidelity(run.augment_dir(0, "cli-set"))["n"] == 8
