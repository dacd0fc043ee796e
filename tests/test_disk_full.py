"""A full disk while writing leaves the previous state intact and says so (issue 13, point 4).

No test can mount a small filesystem (no root), so :class:`FullDisk` patches ``os.write``
(which every toolkit writer goes through: ``files.write_fd``): writes to files whose
path contains ``match`` get ``budget`` bytes in all, then a short write, then
``OSError(ENOSPC)`` -- what a real full disk does.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.format import DatasetMeta, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.files import DiskFullError, atomic_path, write_text_atomic
from jointaug.weights import load_tensors, save_tensors


class FullDisk:
    def __init__(self, monkeypatch, under: Path, budget: int = 0, match: str = ""):
        self.under, self.budget, self.match = str(under), budget, match
        self.failures = 0
        self._write = os.write
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd, data):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if not path.startswith(self.under) or self.match not in Path(path).name:
            return self._write(fd, data)
        if self.budget <= 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self._write(fd, bytes(memoryview(data)[: self.budget]))
        self.budget -= n
        return n


def _says_disk_full(exc_or_text) -> None:
    text = str(exc_or_text)
    assert "disk is full" in text and "nothing finished was lost" in text and "rerun" in text


def _no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*.tmp*")], list(folder.rglob(".*.tmp*"))


def test_atomic_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "table1.md"
    write_text_atomic(target, "old table\n")
    disk = FullDisk(monkeypatch, tmp_path, budget=100)
    with pytest.raises(DiskFullError) as info:
        write_text_atomic(target, "new table\n" * 1000)  # 100 bytes fit, then the disk is full
    assert target.read_text() == "old table\n" and disk.failures == 1
    assert info.value.errno == errno.ENOSPC and str(target) in str(info.value)
    _says_disk_full(info.value)
    _no_temp_files(tmp_path)


def test_np_save_and_figures_inside_atomic_path(tmp_path, monkeypatch):
    """Writers that are not ours (np.save, matplotlib) raise plain OSError(ENOSPC) inside
    ``atomic_path``: the same DiskFullError, the same kept file."""
    target = tmp_path / "test_probs.npy"
    np.save(target, np.zeros(3))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(DiskFullError), atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ones(3))
    monkeypatch.undo()
    assert np.array_equal(np.load(target), np.zeros(3))
    _no_temp_files(tmp_path)


def test_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    save_tensors(path, {"w": torch.arange(6.0)}, {"step": "1"})
    before = path.read_bytes()
    FullDisk(monkeypatch, tmp_path, budget=len(before) // 2)
    with pytest.raises(DiskFullError) as info:
        save_tensors(path, {"w": torch.arange(6.0) * 2}, {"step": "2"})
    _says_disk_full(info.value)
    assert path.read_bytes() == before
    tensors, meta = load_tensors(path)
    assert meta == {"step": "1"} and torch.equal(tensors["w"], torch.arange(6.0))
    _no_temp_files(tmp_path)


def test_classifier_training_stopped_by_a_full_disk_resumes_exactly(tmp_path, monkeypatch):
    from helpers import LABELS, signal_imageset, tiny_config

    from jointaug.classify.train import CHECKPOINT, FitOptions, fit

    rng = np.random.default_rng(0)
    train, val = signal_imageset(rng, 64), signal_imageset(rng, 32)
    cfg = tiny_config(
        max_samples=320, patience_samples=10_000, checkpoint_minutes=0
    )  # one per evaluation
    full = fit(tmp_path / "full", train, val, cfg, 3, LABELS, FitOptions(progress=False))
    out = tmp_path / "run"
    one = tmp_path / "one"
    fit(
        one,
        train,
        val,
        cfg.model_copy(update={"max_samples": 64}),
        3,
        LABELS,
        FitOptions(progress=False),
    )
    size = (one / CHECKPOINT).stat().st_size  # one checkpoint's bytes
    disk = FullDisk(monkeypatch, out, budget=int(2.5 * size), match="checkpoint")
    with pytest.raises(DiskFullError):  # the third checkpoint does not fit
        fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert disk.failures == 1
    monkeypatch.undo()  # space freed
    _no_temp_files(out)
    resumed = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert [r["train_loss"] for r in resumed.log] == [r["train_loss"] for r in full.log]
    for k, v in full.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k


META = DatasetMeta(name="t", labels=["a", "b"], groups={"g": ["a", "b"]})


def _add(w: DatasetWriter, i: int) -> None:
    w.add(f"c{i}", f"p{i}", "palmar", np.full((8, 8), i), labels=[i % 2, 1], extra={"k": str(i)})


def test_a_set_growing_onto_a_full_disk_stays_readable_and_resumes(tmp_path, monkeypatch):
    root = tmp_path / "set"
    with DatasetWriter(root, META, ["k"]) as w:
        for i in range(3):
            _add(w, i)
    index_before = (root / "cases.csv").read_bytes()
    w = DatasetWriter(root, META, ["k"], append=True)  # grow 3 -> 6
    _add(w, 3)
    FullDisk(monkeypatch, root, budget=0, match=".png")  # the next image does not fit
    with pytest.raises(DiskFullError) as info:
        _add(w, 4)
    w.abort()
    _says_disk_full(info.value)
    # still the complete 3-case set, readable and valid, while growth is pending
    assert (root / "cases.csv").read_bytes() == index_before
    assert [c.case_id for c in read_dataset(root).cases] == ["c0", "c1", "c2"]
    assert validate_dataset(root).ok
    monkeypatch.undo()
    w = DatasetWriter(root, META, ["k"], append=True)
    assert w.done_ids == {"c0", "c1", "c2", "c3"}  # c3 was journalled before the disk filled
    for i in (4, 5):
        _add(w, i)
    ds = w.close()
    assert [c.case_id for c in ds.cases] == [f"c{i}" for i in range(6)] and validate_dataset(
        root
    ).ok
    _no_temp_files(root)


def test_a_full_disk_mid_journal_line_leaves_no_torn_row(tmp_path, monkeypatch):
    root = tmp_path / "set"
    w = DatasetWriter(root, META, ["k"])
    _add(w, 0)
    journal = root / DatasetWriter.JOURNAL
    good = journal.read_bytes()
    FullDisk(monkeypatch, root, budget=7, match="partial")  # 7 bytes of the next row fit
    with pytest.raises(DiskFullError, match=r"case 'c1' was not added; the 1 cases"):
        _add(w, 1)
    assert journal.read_bytes() == good  # the half row was cut off again
    w.abort()
    monkeypatch.undo()
    w = DatasetWriter(root, META, ["k"])
    assert w.done_ids == {"c0"}
    _add(w, 1)
    assert [c.case_id for c in w.close().cases] == ["c0", "c1"]


def test_a_full_disk_when_closing_keeps_the_old_index_and_the_journal(tmp_path, monkeypatch):
    root = tmp_path / "set"
    with DatasetWriter(root, META, ["k"]) as w:
        _add(w, 0)
    w = DatasetWriter(root, META, ["k"], append=True)
    _add(w, 1)
    FullDisk(monkeypatch, root, budget=10, match="cases.csv")  # the new cases.csv does not fit
    with pytest.raises(DiskFullError):
        w.close()
    assert [c.case_id for c in read_dataset(root).cases] == ["c0"]
    assert (root / DatasetWriter.JOURNAL).is_file()
    monkeypatch.undo()
    again = DatasetWriter(root, META, ["k"], append=True)
    assert again.done_ids == {"c0", "c1"}
    assert [c.case_id for c in again.close().cases] == ["c0", "c1"]


@pytest.mark.parametrize("budget", [0, 20_000])  # full from the first byte, or mid-way
def test_cli_says_the_disk_is_full_and_the_rerun_completes(tmp_path, monkeypatch, budget):
    clean = tmp_path / "clean"
    assert (
        CliRunner()
        .invoke(app, ["phantom", str(clean), "--patients", "2", "--size", "64"])
        .exit_code
        == 0
    )
    out = tmp_path / "ph"
    FullDisk(monkeypatch, out, budget=budget)
    res = CliRunner().invoke(app, ["phantom", str(out), "--patients", "2", "--size", "64"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    _says_disk_full(" ".join(res.output.split()))
    monkeypatch.undo()
    res = CliRunner().invoke(app, ["phantom", str(out), "--patients", "2", "--size", "64"])
    assert res.exit_code == 0, res.output
    assert (out / "cases.csv").read_text() == (clean / "cases.csv").read_text()
    for c in read_dataset(clean).cases:
        assert (out / c.image).read_bytes() == (clean / c.image).read_bytes(), c.case_id
    _no_temp_files(out)


def test_a_training_log_line_that_does_not_fit_leaves_the_log_as_it_was(tmp_path, monkeypatch):
    from jointaug.training import LogFile

    log = LogFile(tmp_path / "log.csv", ["step", "loss"], [{"step": 1, "loss": 0.5}])
    log.append({"step": 2, "loss": 0.25})
    before = (tmp_path / "log.csv").read_text()
    FullDisk(monkeypatch, tmp_path, budget=3, match="log.csv")  # "3,0" fits, the rest not
    with pytest.raises(DiskFullError, match="the line was not added"):
        log.append({"step": 3, "loss": 0.125})
    assert (tmp_path / "log.csv").read_text() == before == "step,loss\n1,0.5\n2,0.25\n"


def test_a_full_disk_in_any_other_writer_is_the_same_one_message(tmp_path, monkeypatch):
    import jointaug.dataset.phantom as phantom

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ph" / "x.png"))

    monkeypatch.setattr(phantom, "write_phantom", full)
    res = CliRunner().invoke(app, ["phantom", str(tmp_path / "ph"), "--patients", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "x.png" in res.output
    _says_disk_full(" ".join(res.output.split()))
