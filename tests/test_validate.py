"""Every rule of the contract's validation section, each with a deliberately broken folder."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.io import write_label_png
from jointaug.dataset.validate import validate_dataset


def _rows(root):
    with open(root / "cases.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


def _write_rows(root, rows, header=None):
    header = header or list(rows[0].keys())
    with open(root / "cases.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _edit_row(root, i, **changes):
    rows = _rows(root)
    rows[i].update(changes)
    _write_rows(root, rows)


def _edit_meta(root, **changes):
    meta = json.loads((root / "dataset.json").read_text())
    meta.update(changes)
    (root / "dataset.json").write_text(json.dumps(meta))


def test_good_folder_is_valid(tiny_dataset):
    report = validate_dataset(tiny_dataset)
    assert report.ok, [str(e) for e in report.errors]
    assert report.summary["cases"] == 12 and report.summary["patients"] == 6
    assert report.summary["classification_cases"] == 12
    assert sum(report.summary["positives"]) > 0


def _break_missing_image(root):
    (root / "images" / "p0_palmar.png").unlink()


def _break_unreadable(root):
    (root / "images" / "p0_palmar.png").write_bytes(b"garbage")


def _break_not_2d(root):
    np.save(root / "images" / "cube.npy", np.zeros((3, 4, 5)))
    _edit_row(root, 0, image="images/cube.npy")


def _break_not_finite(root):
    a = np.ones((32, 32))
    a[3, 3] = np.nan
    np.save(root / "images" / "nan.npy", a)
    _edit_row(root, 0, image="images/nan.npy")


def _break_negative(root):
    np.save(root / "images" / "neg.npy", -np.ones((32, 32)))
    _edit_row(root, 0, image="images/neg.npy")


def _break_shape(root):
    write_label_png(root / "masks" / "tissue" / "small.png", np.ones((16, 16)))
    _edit_row(root, 0, tissue="masks/tissue/small.png")


def _break_tissue_values(root):
    write_label_png(root / "masks" / "tissue" / "five.png", np.full((32, 32), 5))
    _edit_row(root, 0, tissue="masks/tissue/five.png")


def _break_region_values(root):
    write_label_png(root / "masks" / "regions" / "r.png", np.full((32, 32), 4))  # 3 labels
    _edit_row(root, 0, regions="masks/regions/r.png")


def _break_label_cell(root):
    _edit_row(root, 1, A_x="yes")


def _break_duplicate_case(root):
    rows = _rows(root)
    rows[1]["case_id"] = rows[0]["case_id"]
    _write_rows(root, rows)


def _break_label_column_missing(root):
    rows = _rows(root)
    header = [h for h in rows[0] if h != "B_x"]
    _write_rows(root, rows, header)


def _break_column_not_a_label(root):
    rows = _rows(root)
    for r in rows:
        r["A_z"] = "0"
    _write_rows(root, rows)


def _break_group_unknown(root):
    _edit_meta(root, groups={"A": ["A_x", "A_y", "Q_q"], "B": ["B_x"]})


def _break_group_twice(root):
    _edit_meta(root, groups={"A": ["A_x", "A_y"], "B": ["B_x", "A_x"]})


def _break_path_escape(root):
    _edit_row(root, 0, image="../outside.png")


def _break_absolute_path(root):
    _edit_row(root, 0, image="/etc/hostname")


def _break_empty_patient(root):
    _edit_row(root, 2, patient_id="")


def _break_json(root):
    (root / "dataset.json").write_text("{not json")


def _break_labels_not_unique(root):
    _edit_meta(root, labels=["A_x", "A_x", "B_x"])


BROKEN = {
    "file-missing": _break_missing_image,
    "unreadable": _break_unreadable,
    "unreadable ": _break_not_2d,
    "image-values": _break_not_finite,
    "image-values ": _break_negative,
    "shape": _break_shape,
    "map-values": _break_tissue_values,
    "map-values ": _break_region_values,
    "label-cell": _break_label_cell,
    "case-id": _break_duplicate_case,
    "column-missing": _break_label_column_missing,
    "column-not-a-label": _break_column_not_a_label,
    "groups": _break_group_unknown,
    "groups ": _break_group_twice,
    "path": _break_path_escape,
    "path ": _break_absolute_path,
    "patient-id": _break_empty_patient,
    "json": _break_json,
    "labels-unique": _break_labels_not_unique,
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_each_rule_is_caught_with_case_and_file(tiny_dataset, rule):
    BROKEN[rule](tiny_dataset)
    report = validate_dataset(tiny_dataset)
    assert not report.ok
    hits = [e for e in report.errors if e.rule == rule.strip()]
    assert hits, [str(e) for e in report.errors]
    assert all(e.file for e in hits)  # names the file
    if rule.strip() in {
        "file-missing",
        "unreadable",
        "image-values",
        "shape",
        "map-values",
        "path",
        "label-cell",
        "patient-id",
        "case-id",
    }:
        assert all(e.case for e in hits)  # names the case


def test_cli_lists_every_violation_without_traceback(tiny_dataset):
    _break_missing_image(tiny_dataset)
    _break_label_cell(tiny_dataset)
    result = CliRunner().invoke(app, ["validate", str(tiny_dataset)])
    assert result.exit_code == 1
    out = result.output
    assert "file-missing" in out and "p0_palmar" in out
    assert "label-cell" in out and "'yes'" in out
    assert "Traceback" not in out


def test_cli_accepts_good_folder_and_prints_summary(tiny_dataset):
    result = CliRunner().invoke(app, ["validate", str(tiny_dataset)])
    assert result.exit_code == 0, result.output
    assert (
        "12 cases" in result.output and "6 patients" in result.output and "valid" in result.output
    )


def test_cli_missing_folder(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_warnings_positive_region_empty_and_unlabelled_view(tiny_dataset):
    rows = _rows(tiny_dataset)
    i = next(i for i, r in enumerate(rows) if r["A_x"] == "0")
    write_label_png(tiny_dataset / "masks" / "regions" / "empty.png", np.zeros((32, 32)))
    rows[i]["A_x"] = "1"
    rows[i]["regions"] = "masks/regions/empty.png"
    _write_rows(tiny_dataset, rows)
    _edit_meta(tiny_dataset, classification_views=["palmar", "dorsal", "lateral"])
    report = validate_dataset(tiny_dataset)
    assert report.ok
    rules = {w.rule for w in report.warnings}
    assert rules == {"positive-region-empty", "view-unlabelled"}
