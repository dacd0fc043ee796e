"""The one staleness decision (current / missing / stale) and the one response to it
(raise, or move aside), on hand-made output folders (no stage runs)."""

from __future__ import annotations

import json

import pytest

from jointaug.outputs import (
    DONE,
    SET_SETTINGS,
    Output,
    StaleOutputError,
    Status,
    check,
    find_stale,
    handle_stale,
    write_done,
)


def test_a_keyed_output_is_missing_then_current_then_stale(tmp_path):
    out = Output("classifier", tmp_path / "run" / "c", "k1", {"lr": 1})
    assert check(out).status is Status.MISSING and check(out).stale is None
    out.path.mkdir(parents=True)
    (out.path / "log.csv").write_text("partial\n")  # partly written, no marker: resumable
    assert check(out).status is Status.MISSING
    write_done(out.path, "k1", {"lr": 1})
    assert check(out).current
    changed = Output("classifier", out.path, "k2", {"lr": 3})
    c = check(changed)
    assert (
        c.status is Status.STALE and c.stale.path == out.path and c.stale.changes == ["lr: 1 -> 3"]
    )
    assert find_stale([out, changed]) == [c.stale]


def test_an_unreadable_marker_is_stale_and_finished_decides_when_settings_match(tmp_path):
    out = Output(
        "diffusion model", tmp_path, "k", {"a": 1}, finished=lambda p: (p / "model").is_file()
    )
    (tmp_path / DONE).write_text("{not json")
    c = check(out)
    assert c.status is Status.STALE and c.stale.changes == []
    write_done(tmp_path, "k", {"a": 1})
    assert check(out).status is Status.MISSING  # same settings, not finished yet
    (tmp_path / "model").write_text("w")
    assert check(out).current


def test_a_settings_file_is_compared_whole_with_ignored_keys_and_later_defaults(tmp_path):
    (tmp_path / SET_SETTINGS).write_text(json.dumps({"seed": 1, "batch_size": 4}))
    done = lambda p: (p / "cases.csv").is_file()  # noqa: E731
    want = {"seed": 1, "batch_size": 8, "guidance_scale": 1.0}
    out = Output(
        "augmentation set",
        tmp_path,
        settings=want,
        record=SET_SETTINGS,
        finished=done,
        ignore=frozenset({"batch_size"}),
        defaults={"guidance_scale": 1.0},
    )
    assert check(out).status is Status.MISSING  # batch ignored, a later key at its default
    (tmp_path / "cases.csv").write_text("x")
    assert check(out).current
    other = Output(
        "augmentation set",
        tmp_path,
        settings={**want, "seed": 2},
        record=SET_SETTINGS,
        finished=done,
        ignore=frozenset({"batch_size"}),
        defaults={"guidance_scale": 1.0},
    )
    assert check(other).stale.changes == ["seed: 1 -> 2"]
    # nothing to compare (a user's own set, the natural source): only finished counts
    assert check(Output("natural source", tmp_path, finished=done)).current


def test_stale_outputs_raise_or_move_aside(tmp_path):
    run = tmp_path / "run"
    a, b = run / "fold_0" / "diffusion", run / "fold_0" / "classify" / "baseline" / "seed_0"
    for folder in (a, b):
        write_done(folder, "old", {"x": 1})
    stale = find_stale(
        [Output("diffusion model", a, "new", {"x": 2}), Output("classifier", b, "new", {"x": 2})]
    )
    handle_stale([None], run, retrain=False)  # nothing stale: nothing happens
    with pytest.raises(
        StaleOutputError, match=r"2 finished output\(s\).*\n.*diffusion.*\n    x: 1 -> 2"
    ) as err:
        handle_stale(
            [*stale, None], run, retrain=False, hint="rerun the same command with --retrain"
        )
    assert "rerun the same command with --retrain" in str(err.value)
    assert a.is_dir() and b.is_dir()  # nothing moved
    said: list[str] = []
    handle_stale(stale, run, retrain=True, echo=said.append, note=" (note)")
    assert not a.exists() and not b.exists()
    moved = list(run.glob("stale/*/fold_0/diffusion/done")) + list(
        run.glob("stale/*/fold_0/classify/baseline/seed_0/done")
    )
    assert len(moved) == 2 and moved[0].parents[2] == moved[1].parents[4]  # one stamp for all
    assert said == [f"moved 2 stale output(s) to {moved[0].parents[2]} (note)"]
