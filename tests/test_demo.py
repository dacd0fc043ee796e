import json

from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.validate import validate_dataset


def test_demo_first_stages_and_rerun_skips(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--set", "phantom.patients=6", "--set", "phantom.size=64",
            "--set", "split.folds=3", "--stop-after", "splits"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert validate_dataset(out / "phantom").ok
    splits = json.loads((out / "run" / "splits.json").read_text())
    assert len(splits["folds"]) == 3
    assert (out / "montage.png").stat().st_size > 10_000
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "exists, skipped" in again.output
