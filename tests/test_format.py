import json

import numpy as np
import pytest

from jointaug.dataset.format import (
    HAND_GROUPS,
    HAND_LABELS,
    DatasetError,
    DatasetMeta,
    is_complete,
    read_dataset,
    safe_relpath,
)
from jointaug.dataset.writer import DatasetWriter


def test_hand_label_set_is_the_contract_default():
    assert len(HAND_LABELS) == 30
    assert HAND_LABELS[0] == "R_wrist" and HAND_LABELS[14] == "R_dip5"
    assert HAND_LABELS[15] == "L_wrist" and HAND_LABELS[-1] == "L_dip5"
    assert sorted(HAND_GROUPS["right"] + HAND_GROUPS["left"]) == sorted(HAND_LABELS)


def test_writer_round_trip(tmp_path):
    meta = DatasetMeta.hands("t")
    vec = np.zeros(30, np.float32)
    vec[3] = 1
    vec[5] = np.nan
    with DatasetWriter(tmp_path / "d", meta, extra_columns=["source"]) as w:
        w.add(
            "c1",
            "p1",
            "palmar",
            np.full((8, 8), 7),
            labels=vec,
            tissue=np.ones((8, 8)),
            regions=np.zeros((8, 8)),
            extra={"source": "x"},
        )
        w.add("c2", "p1", "oblique_left", np.zeros((8, 8)), subdir="obl")
    ds = read_dataset(tmp_path / "d")
    assert [c.case_id for c in ds.cases] == ["c1", "c2"]
    c1 = ds.case("c1")
    assert c1.labels[3] == 1 and c1.labels[0] == 0 and np.isnan(c1.labels[5])
    assert c1.extra == {"source": "x"}
    assert ds.image(c1).max() == 7
    assert ds.case("c2").image == "images/obl/c2.png" and ds.case("c2").tissue == ""
    assert not ds.case("c2").is_labelled
    assert [c.case_id for c in ds.classification_cases()] == ["c1"]
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["labels"] == list(HAND_LABELS)


def test_writer_resumes_and_is_incomplete_until_closed(tmp_path):
    meta = DatasetMeta(name="t", labels=["a"], groups={"g": ["a"]})
    w = DatasetWriter(tmp_path / "d", meta)
    w.add("c1", "p1", "v", np.ones((4, 4)), labels=[1])
    w.abort()  # killed
    assert not is_complete(tmp_path / "d")
    with open(tmp_path / "d" / DatasetWriter.JOURNAL, "a") as f:
        f.write("c2,p1,v,images/c2.p")  # a torn last line from a crash mid-write
    w = DatasetWriter(tmp_path / "d", meta)
    assert w.done_ids == {"c1"}
    w.add("c2", "p1", "v", np.ones((4, 4)), labels=[0])
    w.close()
    assert is_complete(tmp_path / "d")
    assert [c.case_id for c in read_dataset(tmp_path / "d").cases] == ["c1", "c2"]
    with pytest.raises(DatasetError, match="already a complete dataset"):
        DatasetWriter(tmp_path / "d", meta)


def test_safe_relpath_rejects_escapes(tmp_path):
    assert safe_relpath(tmp_path, "images/a.png") == (tmp_path / "images/a.png").resolve()
    for bad in ("../x.png", "images/../../x.png", "/etc/passwd", "C:/x.png"):
        with pytest.raises(DatasetError):
            safe_relpath(tmp_path, bad)


def test_read_dataset_reports_bad_label_cell(tiny_dataset):
    text = (tiny_dataset / "cases.csv").read_text().splitlines()
    head = text[0].split(",")
    row = text[1].split(",")
    row[head.index("A_x")] = "2"
    text[1] = ",".join(row)
    (tiny_dataset / "cases.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetError, match=r"line 2 .*'2' is not 0, 1 or empty"):
        read_dataset(tiny_dataset)


def test_append_reopens_a_complete_folder(tmp_path):
    meta = DatasetMeta(name="t", labels=["a"], groups={"g": ["a"]})
    with DatasetWriter(tmp_path / "d", meta, extra_columns=["k"]) as w:
        w.add("c1", "p1", "v", np.ones((4, 4)), labels=[1], extra={"k": "x"})
    first = (tmp_path / "d" / "images" / "c1.png").read_bytes()
    w = DatasetWriter(tmp_path / "d", meta, extra_columns=["k"], append=True)
    assert w.done_ids == {"c1"}
    w.add("c2", "p2", "v", np.zeros((4, 4)), labels=[0], extra={"k": "y"})
    # while it grows, the folder still reads as the complete set it was
    assert is_complete(tmp_path / "d") and [
        c.case_id for c in read_dataset(tmp_path / "d").cases
    ] == ["c1"]
    w.abort()  # killed mid-growth: the next appending writer resumes from the journal
    w = DatasetWriter(tmp_path / "d", meta, extra_columns=["k"], append=True)
    assert w.done_ids == {"c1", "c2"}
    w.close()
    assert not (tmp_path / "d" / DatasetWriter.JOURNAL).exists()
    ds = read_dataset(tmp_path / "d")
    assert [(c.case_id, c.extra["k"]) for c in ds.cases] == [("c1", "x"), ("c2", "y")]
    assert (tmp_path / "d" / "images" / "c1.png").read_bytes() == first


def test_format_does_not_import_the_writer():
    """The arrow runs one way: writer -> format (format used to import writer back)."""
    import subprocess
    import sys

    code = "import sys, jointaug.dataset.format; print('jointaug.dataset.writer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
