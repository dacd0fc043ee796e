"""Every shipped profile runs as shipped, through every stage, on the CPU.

Only sizes, steps and image counts are shrunk by overrides; everything else -- device
(``auto`` resolves to the CPU here), sampler, precision and speed switches, methods,
mixtures, losses -- stays at the profile's value. A profile key no test exercises is a
bug waiting (the paper profile's ``device: auto`` once reached the segmenter as a string).
New profiles in ``config.PROFILES`` are covered automatically, also on a contract
dataset that is not the built-in phantom (a phantom copy whose dataset.json no longer
says so): a profile method that cannot run there (the phantom-only oracles) is left out
with one line, and refused when named.
"""

import json
import shutil

import pytest
from helpers import SHRINK

from jointaug.config import PROFILES, profile_dict
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.pipeline import RunOptions, run_experiment
from jointaug.experiments.plan import describe, make_plan
from jointaug.experiments.rundir import RunDir
from jointaug.sets.registry import set_kind

NOT_SHRUNK = {
    "device",
    "threads",
    "sampler",
    "amp",
    "channels_last",
    "compile",
    "network_output",
    "sample_batch_size",
    "methods",
    "mixtures",
    "imbalance_baselines",
    "loss",
}


def test_shrinking_touches_only_sizes_steps_and_counts():
    keys = {item.split("=")[0].split(".")[-1] for item in SHRINK}
    assert not keys & NOT_SHRUNK


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles") / "data"
    write_phantom(root, patients=6, size=64, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def not_phantom(phantom, tmp_path_factory):
    """The phantom's files as a user's dataset: dataset.json names no phantom."""
    root = tmp_path_factory.mktemp("profiles") / "mine"
    shutil.copytree(phantom, root)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["phantom"]
    meta.update(name="my-hands", description="a user's own hand scans")
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


PHANTOM_ONLY = {"oracle", "oracle-plan"}


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_plans_on_a_dataset_that_is_not_the_phantom(
    profile, not_phantom, tmp_path, shrunk_config
):
    run = RunDir.create(tmp_path / "run", not_phantom, shrunk_config(profile))
    plan = make_plan(run, folds=[0])
    names = {m.name for m in plan.methods}
    assert not names & PHANTOM_ONLY and not set(plan.sets) & PHANTOM_ONLY
    asked = set(run.config.experiment.methods) & PHANTOM_ONLY
    if asked:  # one line, naming them and why, also in what --plan prints
        assert plan.left_out.startswith("left out: ") and "\n" not in plan.left_out
        assert all(n in plan.left_out for n in asked) and "built-in phantom" in plan.left_out
        assert plan.left_out in describe(run, plan)
    else:
        assert plan.left_out == ""


def test_a_phantom_only_method_named_on_another_dataset_is_refused_before_any_work(
    not_phantom, tmp_path, shrunk_config
):
    run = RunDir.create(tmp_path / "run", not_phantom, shrunk_config("cpu"))
    for methods in ("baseline,oracle", "oracle-plan", "oracle:0.5+mp:0.5"):
        with pytest.raises(ValueError, match="cannot run .*built-in phantom.*--methods"):
            make_plan(run, methods, folds=[0])
    assert not any(run.path.glob("fold_*/*"))  # nothing made
    plan = make_plan(run, "baseline,shuffled", folds=[0])  # reads mp-perlin: any dataset
    assert list(plan.sets) == ["mp-perlin", "shuffled"] and plan.left_out == ""


@pytest.mark.slow
@pytest.mark.parametrize("builtin", [True, False], ids=["phantom", "not-phantom"])
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_runs_as_shipped_through_every_stage(
    profile, builtin, phantom, not_phantom, tmp_path, shrunk_config
):
    shipped = profile_dict(profile)
    cfg = shrunk_config(profile)  # load_config(profile, SHRINK)
    assert cfg.device == shipped.get("device", "auto")  # left as shipped
    run = RunDir.create(tmp_path / "run", phantom if builtin else not_phantom, cfg)
    plan = make_plan(run, folds=[0])  # the profile's methods, mixtures and baselines
    log: list[str] = []
    result = run_experiment(run, plan, RunOptions(progress=False), echo=log.append)
    assert "estimate on this machine" in log[0]
    if plan.needs_natural:
        assert read_dataset(run.path / "natural_source").cases
    for name, n in plan.sets.items():
        ds = read_dataset(run.augment_dir(0, name))
        assert len(ds.cases) >= n
        if set_kind(name).generator == "diffusion":  # oracle / forward sets have no sampler
            assert {c.extra["sampler"] for c in ds.cases} == {cfg.diffusion.sampler}
    trained = [m for m in plan.methods if m.trains]
    for m in trained:
        for size in m.sizes(plan.sizes):
            assert (run.classify_dir(0, m.dir_name(size), 0) / "done").is_file(), (m.name, size)
    assert (run.results_dir / "table1.md").is_file() and result["report"].is_file()
