"""Every shipped profile runs as shipped, through every stage, on the CPU.

Only sizes, steps and image counts are shrunk by overrides; everything else -- device
(``auto`` resolves to the CPU here), sampler, precision and speed switches, methods,
mixtures, losses -- stays at the profile's value. A profile key no test exercises is a
bug waiting (the paper profile's ``device: auto`` once reached the segmenter as a string).
New profiles in ``config.PROFILES`` are covered automatically.
"""

import pytest

from jointaug.config import PROFILES, load_config, profile_dict
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.pipeline import RunOptions, make_plan, run_experiment
from jointaug.experiments.rundir import RunDir
from jointaug.sets.registry import set_kind

SHRINK = [
    "split.folds=3",
    "classify.image_size=32", "classify.block_config=[1, 1]", "classify.growth_rate=4",
    "classify.init_features=8", "classify.batch_size=8", "classify.max_samples=32",
    "classify.patience_samples=16", "classify.eval_every_epochs=1", "classify.seeds=[0]",
    "classify.max_epochs=2", "classify.patience_epochs=1", "classify.eval_every_samples=16",
    "diffusion.image_size=16", "diffusion.channels=[8, 16]", "diffusion.attention_levels=[false, true]",
    "diffusion.num_res_blocks=1", "diffusion.num_head_channels=8", "diffusion.batch_size=4",
    "diffusion.train_steps=3", "diffusion.sample_every=3", "diffusion.timesteps=12",
    "diffusion.fast_steps=2",
    "natural.max_images=4", "natural.n_labelled=4", "natural.stand_in_photos=8",
    "natural.segmenter_image_size=32", "natural.segmenter_channels=[4, 8]", "natural.segmenter_epochs=2",
    "experiment.sizes=[4]", "experiment.curve_sizes=[2]",
]  # fmt: skip
NOT_SHRUNK = {"device", "threads", "sampler", "amp", "channels_last", "compile", "network_output",
              "sample_batch_size", "methods", "mixtures", "imbalance_baselines", "loss"}  # fmt: skip


def test_shrinking_touches_only_sizes_steps_and_counts():
    keys = {item.split("=")[0].split(".")[-1] for item in SHRINK}
    assert not keys & NOT_SHRUNK


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles") / "data"
    write_phantom(root, patients=6, size=64, seed=0, progress=False)
    return root


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_runs_as_shipped_through_every_stage(profile, phantom, tmp_path):
    shipped = profile_dict(profile)
    cfg = load_config(profile, SHRINK)
    assert cfg.device == shipped.get("device", "auto")  # left as shipped
    run = RunDir.create(tmp_path / "run", phantom, cfg)
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
