"""Shards of a set with an auto sampling batch: one batch, recorded by the first shard."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import TWO_HAND_OVERRIDES as OVERRIDES
from helpers import write_two_hand_dataset

from jointaug.config import load_config
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import make_named_set, merge_fold_set, train_fold_diffusion
from jointaug.sets.diffusion import (
    auto_batch,
    auto_batch_cap,
    shard_alignment,
)
from jointaug.sets.writer import claim_settings, recorded_batch, shard_ranges


def test_alignment_keeps_the_shard_count_and_divides_by_any_smaller_power_of_two():
    assert shard_alignment(8192, 4) == 1024  # capped
    assert shard_alignment(4096, 8) == 512
    assert shard_alignment(7, 3) == 1 and shard_alignment(1, 4) == 1
    for n, k in ((8192, 4), (5000, 3), (300, 2), (7, 3)):
        g = shard_alignment(n, k)
        r = shard_ranges(n, k, g)
        assert len(r) == min(k, n)
        for b in (1, 2, 4, 8, 16, 64, 512, 1024):
            if b <= g:
                assert all(lo % b == 0 for lo, _ in r)
    assert auto_batch_cap(auto_batch(256)) == 256 and auto_batch_cap(64) is None


def test_the_first_claim_wins(tmp_path):
    out = tmp_path / "set"
    assert claim_settings(out, {"batch_size": 512})["batch_size"] == 512
    assert claim_settings(out, {"batch_size": 64})["batch_size"] == 512  # a later shard
    assert recorded_batch(out) == 512
    assert not [p for p in out.iterdir() if p.name.endswith(".claim")]


@pytest.mark.slow  # trains a diffusion model
def test_auto_batch_shards_record_one_batch_and_merge_like_a_whole_set(tmp_path):
    data = write_two_hand_dataset(tmp_path / "data")
    over = [*OVERRIDES, "diffusion.train_steps=2", "diffusion.sample_batch_size=auto"]
    cfg = load_config("demo", over)
    whole = RunDir.create(tmp_path / "whole", data, cfg)
    train_fold_diffusion(whole, 0, progress=False)
    sharded = RunDir.create(tmp_path / "sharded", data, cfg)
    shutil.copytree(whole.diffusion_dir(0), sharded.diffusion_dir(0))
    g = shard_alignment(6, 3)  # 2: the CPU's auto batch (64) capped to it
    ranges = shard_ranges(7, 3, g)
    for lo, hi in reversed(ranges):
        make_named_set(
            sharded, 0, "mp", 7, progress=False, shard=(lo, hi), batch_size=auto_batch(g)
        )
    set_dir = sharded.augment_dir(0, "mp")
    assert recorded_batch(set_dir) == g
    out = merge_fold_set(sharded, 0, "mp", 7, ranges)
    settings = json.loads((out / "augmentation.json").read_text())
    assert settings["batch_size"] == g
    # the same set unsharded at the same batch: byte-identical images
    cfg2 = load_config("demo", [*over[:-1], f"diffusion.sample_batch_size={g}"])
    ref = RunDir.create(tmp_path / "ref", data, cfg2)
    shutil.copytree(whole.diffusion_dir(0), ref.diffusion_dir(0))
    make_named_set(ref, 0, "mp", 7, progress=False)
    imgs = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert imgs and all(
        (out / p).read_bytes() == (ref.augment_dir(0, "mp") / p).read_bytes() for p in imgs
    )


def test_the_graph_gives_auto_shards_the_auto_batch_not_a_fixed_64(tmp_path):
    from jointaug.experiments.kinds import shard_batch

    assert shard_batch(tmp_path / "new", "auto", 8192, 4) == (1024, auto_batch(1024))
    assert shard_batch(tmp_path / "new", 32, 8192, 4) == (32, 32)  # the configured batch
    claim_settings(tmp_path / "old", {"batch_size": 256})  # a set started before: its batch
    assert shard_batch(tmp_path / "old", "auto", 8192, 4) == (256, 256)
