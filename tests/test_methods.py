"""Method lists and mixes: ``,`` separates methods, ``+`` joins the sets of one mix."""

from __future__ import annotations

import pytest
from helpers import RUN_TINY, write_signal_dataset, write_signal_set
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import load_config
from jointaug.experiments.methods import parse_methods, required_sets, resolve_method


def names(text):
    return [m.name for m in parse_methods(text)]


def test_two_user_sets_side_by_side_are_two_methods():
    assert names("extra:1.0,shuf:1.0") == ["extra:1.0", "shuf:1.0"]
    assert names("baseline,extra:1.0,shuf:1.0,mp") == ["baseline", "extra:1.0", "shuf:1.0", "mp"]


def test_plus_joins_a_mix_everywhere():
    m = resolve_method("mp-perlin:0.8+11k-perlin:0.2")
    assert m.mix == (("mp-perlin", 0.8), ("11k-perlin", 0.2))
    assert names("baseline,mp-perlin:0.8+11k-perlin:0.2,extra:1.0") == [
        "baseline",
        "mp-perlin:0.8+11k-perlin:0.2",
        "extra:1.0",
    ]
    # the folder name is the one the older form had, so earlier runs stay current
    assert m.dir_name(64) == "mp-perlin=0.8+11k-perlin=0.2_64"
    assert required_sets([m], [100]) == {"mp-perlin": 80, "11k-perlin": 20}
    cfg = load_config("demo", ["experiment.methods=[baseline, 'a:0.5+b:0.5', 'c:1.0']"])
    assert names(cfg.experiment.methods) == ["baseline", "a:0.5+b:0.5", "c:1.0"]


def test_the_older_comma_mix_is_read_where_it_is_unambiguous():
    assert names("baseline,mp:0.5,11k:0.5,tuned_threshold") == [
        "baseline",
        "mp:0.5+11k:0.5",
        "tuned_threshold",
    ]
    assert names("a:0.5,b:0.5,c:1.0") == [
        "a:0.5+b:0.5",
        "c:1.0",
    ]  # a mix ends where its shares reach 1
    assert resolve_method("x:0.5,y:0.5").name == resolve_method("x:0.5+y:0.5").name
    with pytest.raises(
        ValueError, match=r"join the sets of a mix with '\+' \(e\.g\. a:0\.5\+b:0\.3\)"
    ):
        parse_methods("baseline,a:0.5,b:0.3")
    with pytest.raises(ValueError, match="add up to"):
        parse_methods("a:0.5+b:0.3")


@pytest.mark.slow
def test_two_user_sets_run_as_two_methods(tmp_path):
    data = write_signal_dataset(tmp_path / "signal", n_patients=12, size=64)
    out = tmp_path / "run"
    for name in ("extra", "shuf"):
        write_signal_set(out / "fold_0" / "augment" / name, 8, size=64)
    args = [
        "run",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--methods",
        "baseline,extra:1.0,shuf:1.0",
        "--sizes",
        "8",
        "--folds",
        "0",
        "--no-progress",
        *[a for s in RUN_TINY for a in ("--set", s)],
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    table = (out / "results" / "table1.md").read_text()
    assert "| extra:1.0 (8) |" in table and "| shuf:1.0 (8) |" in table
    assert (out / "fold_0" / "classify" / "extra=1.0_8" / "seed_0" / "done").is_file()
    assert (out / "fold_0" / "classify" / "shuf=1.0_8" / "seed_0" / "done").is_file()
