"""Task graph pieces: sharded sets merge byte-identical, the run-folder lock, user sets, --plan."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
from helpers import (
    RUN_TINY,
    write_signal_dataset,
    write_signal_set,
    write_two_hand_dataset,
)
from helpers import TWO_HAND_OVERRIDES as OVERRIDES
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import load_config
from jointaug.dataset.format import read_dataset
from jointaug.experiments.lock import RunLockedError, holder, run_lock
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import make_fold_set, merge_fold_set, train_fold_diffusion
from jointaug.sets.writer import shard_ranges


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_shard_ranges_are_batch_aligned_and_cover_the_set():
    assert shard_ranges(7, 2, 3) == [(0, 6), (6, 7)]
    assert shard_ranges(8, 4, 2) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert shard_ranges(5, 9, 4) == [(0, 4), (4, 5)]
    for n, k, b in ((100, 3, 8), (1, 2, 64), (64, 2, 64)):
        r = shard_ranges(n, k, b)
        assert r[0][0] == 0 and r[-1][1] == n and all(a % b == 0 for a, _ in r)
        assert all(r[i][1] == r[i + 1][0] for i in range(len(r) - 1))


def test_sharded_set_merges_byte_identical_to_an_unsharded_one(tmp_path):
    data = write_two_hand_dataset(tmp_path / "data")
    cfg = load_config("demo", [*OVERRIDES, "diffusion.train_steps=2"])
    whole = RunDir.create(tmp_path / "whole", data, cfg)
    train_fold_diffusion(whole, 0, progress=False)
    sharded = RunDir.create(tmp_path / "sharded", data, cfg)
    shutil.copytree(whole.diffusion_dir(0), sharded.diffusion_dir(0))
    make_fold_set(whole, 0, "mp", True, 7, progress=False)
    ranges = shard_ranges(7, 3, cfg.diffusion.sample_batch_size)  # batches of 3: [0,3) [3,6) [6,7)
    assert len(ranges) == 3
    for lo, hi in reversed(ranges):  # any order, as parallel tasks finish
        make_fold_set(sharded, 0, "mp", True, 7, progress=False, shard=(lo, hi))
    out = merge_fold_set(sharded, 0, "mp-perlin", 7, ranges)
    assert not (out / ".shards").exists()
    assert _files(out) == _files(whole.augment_dir(0, "mp-perlin"))
    with pytest.raises(ValueError, match="multiple of"):
        make_fold_set(sharded, 0, "mp", True, 9, progress=False, shard=(1, 9))


def test_merging_a_set_keeps_the_shards_of_a_larger_growth(tmp_path):
    """A shard beyond the merged size is finished work of a larger growth: never removed."""
    data = write_two_hand_dataset(tmp_path / "data")
    cfg = load_config("demo", [*OVERRIDES, "diffusion.train_steps=2"])
    run = RunDir.create(tmp_path / "run", data, cfg)
    train_fold_diffusion(run, 0, progress=False)
    ranges = shard_ranges(6, 2, cfg.diffusion.sample_batch_size)  # [0,3) [3,6)
    for lo, hi in ranges:
        make_fold_set(run, 0, "mp", False, 9, progress=False, shard=(lo, hi))
    later = make_fold_set(run, 0, "mp", False, 9, progress=False, shard=(6, 9))  # growing to 9
    out = merge_fold_set(run, 0, "mp", 6, ranges)
    assert len(read_dataset(out).cases) == 6
    assert later.is_dir() and len(read_dataset(later).cases) == 3  # kept
    merge_fold_set(run, 0, "mp", 6, ranges)  # complete already: still kept
    assert later.is_dir()
    out = merge_fold_set(run, 0, "mp", 9, [*ranges, (6, 9)])
    assert len(read_dataset(out).cases) == 9 and not (out / ".shards").exists()


HOLD = textwrap.dedent("""
    import sys, time
    from jointaug.experiments.lock import run_lock
    with run_lock(sys.argv[1], "jointaug run --out RUN (test holder)"):
        print("ready", flush=True)
        time.sleep(120)
""")


def test_second_writer_exits_at_once_naming_the_holder_and_a_dead_holder_never_blocks(
    tmp_path, tiny_dataset
):
    run = tmp_path / "run"
    RunDir.create(run, tiny_dataset, load_config("demo", ["split.folds=3"]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockedError, match=rf"pid {proc.pid} on .*test holder.* since "):
            with run_lock(run):
                pass
        res = CliRunner().invoke(app, ["evaluate", str(run)])
        assert res.exit_code == 2 and f"pid {proc.pid}" in res.output
        assert holder(run)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    with run_lock(run, "after"):  # the holder died without unlocking: the kernel released it
        assert holder(run)["command"] == "after"
        with run_lock(run):  # re-entrant in one process (run -> stages)
            pass


def test_a_users_own_set_is_used_if_present_else_a_clear_message(tmp_path):
    data = write_signal_dataset(tmp_path / "signal", n_patients=12, size=64)
    out = tmp_path / "run"
    args = [
        "run",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--methods",
        "baseline,myset:1.0",
        "--sizes",
        "8",
        "--folds",
        "0",
        "--no-progress",
        *[a for s in RUN_TINY for a in ("--set", s)],
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert (
        "fold_0/augment/myset is missing: 'myset' is not a set jointaug makes"
        in res.output.replace("\n", "")
    )
    assert "cannot be generated" not in res.output and not (out / "fold_0" / "classify").exists()
    write_signal_set(out / "fold_0" / "augment" / "myset", 4, size=64)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "has 4 cases, the methods need 8" in res.output
    shutil.rmtree(out / "fold_0" / "augment" / "myset")
    write_signal_set(out / "fold_0" / "augment" / "myset", 10, size=64)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "| myset:1.0 (8) |" in (out / "results" / "table1.md").read_text()
    assert len(read_dataset(out / "fold_0" / "augment" / "myset").cases) == 10  # used as it is


LOCAL_RUN = textwrap.dedent("""
    import sys
    from typer.testing import CliRunner
    from jointaug.cli import app
    res = CliRunner().invoke(app, sys.argv[1:])
    assert res.exit_code == 0, res.output
    assert "ray" not in sys.modules, "the local executor imported ray"
    print("ok")
""")


@pytest.mark.slow
def test_cli_changed_setting_stops_lists_keys_and_retrain_moves_the_old_output_aside(tmp_path):
    data = write_signal_dataset(tmp_path / "signal", n_patients=12, size=64)
    out = tmp_path / "run"
    base = [
        "run",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--methods",
        "baseline",
        "--folds",
        "0",
        "--no-progress",
        *[a for s in RUN_TINY for a in ("--set", s)],
        "--set",
        "classify.lr=0.01",
    ]
    first = subprocess.run([sys.executable, "-c", LOCAL_RUN, *base], capture_output=True, text=True)
    assert first.returncode == 0 and first.stdout.strip().endswith("ok"), (
        first.stdout + first.stderr
    )
    model = out / "fold_0" / "classify" / "baseline" / "seed_0" / "model.safetensors"
    before = model.read_bytes()
    res = CliRunner().invoke(app, [*base, "--set", "classify.lr=0.02"])
    assert res.exit_code == 2
    text = res.output.replace("\n", " ")
    assert "classify.lr: 0.01 -> 0.02" in text and "--retrain" in text and "baseline/seed_0" in text
    assert model.read_bytes() == before and not (out / "stale").exists()
    res = CliRunner().invoke(app, [*base, "--set", "classify.lr=0.02", "--retrain"])
    assert res.exit_code == 0, res.output
    assert "moved 1 stale output(s)" in res.output
    kept = list(out.glob("stale/*/fold_0/classify/baseline/seed_0/model.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == before and model.is_file()


CALLS: list[dict] = []


def make_fake_set(out, n, *, dataset, train_patients, fold, config, progress=True, marker=0):
    """A stand-in set generator with the shared signature (registered by the test below)."""
    CALLS.append({"n": n, "fold": fold, "marker": marker, "patients": list(train_patients)})
    return write_signal_set(out, n, size=64)


def test_registered_generators_are_dispatched_and_a_missing_one_is_reported_before_work(tmp_path):
    from jointaug.experiments.graph import build_graph
    from jointaug.experiments.pipeline import preflight
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.stages import make_named_set
    from jointaug.sets.registry import SETS, register_set

    data = write_signal_dataset(tmp_path / "signal", n_patients=12, size=64)
    run = RunDir.create(tmp_path / "run", data, load_config("demo", RUN_TINY))
    register_set("fake", "fake", "mp", False, "test_graph:make_fake_set", {"marker": 7})
    register_set("broken", "fake", "mp", False, "no_such_module:make_it")
    try:
        plan = make_plan(run, ["baseline", "fake"], sizes=[6], folds=[0])
        assert plan.sets == {"fake": 6} and not plan.needs_diffusion
        tasks = {t.id: t for t in build_graph(run, plan)}
        assert tasks["set/0/fake"].deps == () and tasks["classify/0/fake_6/seed_0"].deps == (
            "set/0/fake",
        )
        out = make_named_set(run, 0, "fake", 6, progress=False)
        assert CALLS[-1] == {
            "n": 6,
            "fold": 0,
            "marker": 7,
            "patients": list(run.splits.fold(0).train),
        }
        assert len(read_dataset(out).cases) == 6
        with pytest.raises(
            FileNotFoundError, match=r"'broken'.*no_such_module:make_it.*cannot be loaded"
        ):
            preflight(
                run,
                make_plan(run, ["baseline", "broken"], sizes=[6], folds=[0]),
                echo=lambda m: None,
            )
    finally:
        SETS.pop("fake", None)
        SETS.pop("broken", None)
