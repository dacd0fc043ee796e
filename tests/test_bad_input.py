"""Bad input a user will hit with a spreadsheet-made cases.csv: one clear message each.

Each case is checked through ``read_dataset`` (what training reads) and ``validate``
(what a user runs first), and the CLI for the delimiter case (issue 13, point 4).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.format import CsvFormatError, DatasetError, read_dataset
from jointaug.dataset.validate import validate_dataset


def _table(root):
    with open(root / "cases.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(root, header, rows, delimiter=",", encoding="utf-8", bom=False):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    (root / "cases.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


# --- delimiter and encoding ------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_delimiters_get_one_message(tiny_dataset, delimiter, name):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, header, rows, delimiter=delimiter, bom=True)  # Excel adds a BOM too
    report = validate_dataset(tiny_dataset)
    assert len(report.errors) == 1, [str(e) for e in report.errors]
    issue = report.errors[0]
    assert issue.rule == "csv-format" and issue.file == "cases.csv"
    assert f"separated by {name}" in issue.message and "Comma delimited" in issue.message
    with pytest.raises(CsvFormatError, match=f"separated by {name}"):
        read_dataset(tiny_dataset)


def test_semicolon_csv_through_the_cli(tiny_dataset):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, header, rows, delimiter=";")
    res = CliRunner().invoke(app, ["validate", str(tiny_dataset)])
    assert res.exit_code == 1
    assert res.output.count("[csv-format]") == 1 and "column-missing" not in res.output
    assert "semicolons" in res.output and "1 errors" in res.output
    split = CliRunner().invoke(
        app, ["split", str(tiny_dataset), "--out", str(tiny_dataset / "s.json")]
    )
    assert split.exit_code == 2 and "semicolons" in split.output and "Traceback" not in split.output


def test_utf8_bom_and_crlf_are_fine(tiny_dataset):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, header, rows, bom=True)
    assert validate_dataset(tiny_dataset).ok
    assert read_dataset(tiny_dataset).cases[0].case_id == rows[0][0]


def test_utf16_and_legacy_encodings_say_how_to_save(tiny_dataset):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, header, rows, delimiter="\t", encoding="utf-16")  # 'Unicode Text'
    report = validate_dataset(tiny_dataset)
    assert [e.rule for e in report.errors] == ["csv-format"] and "UTF-16" in report.errors[
        0
    ].message
    rows[3][1] = "Müller"  # a patient id with an umlaut, saved as Windows-1252
    _write(tiny_dataset, header, rows, encoding="cp1252")
    with pytest.raises(CsvFormatError, match=r"line 5: not UTF-8 .*Windows-1252.*CSV UTF-8"):
        read_dataset(tiny_dataset)


# --- spreadsheet-mangled cells ---------------------------------------------------------


def test_a_column_of_true_false_is_one_message_with_the_fix(tiny_dataset):
    header, rows = _table(tiny_dataset)
    for r in rows:
        for lab in ("A_x", "A_y", "B_x"):
            j = header.index(lab)
            r[j] = {"1": "TRUE", "0": "FALSE"}[r[j]]
    _write(tiny_dataset, header, rows)
    report = validate_dataset(tiny_dataset)
    cells = [e for e in report.errors if e.rule == "label-cell"]
    assert len(cells) == 2 and len(report.errors) == 2  # one per bad value, not 36
    by_value = {e.message.split()[0]: e for e in cells}
    assert "write 1 for inflamed" in by_value["'TRUE'"].message
    assert "write 0 for not inflamed" in by_value["'FALSE'"].message
    n_true = sum(c == "TRUE" for r in rows for c in r)
    assert (
        f"{n_true} cells" in by_value["'TRUE'"].message
        and "3 columns" in by_value["'TRUE'"].message
    )
    with pytest.raises(DatasetError, match=r"line 2 .*write (1|0) for"):
        read_dataset(tiny_dataset)


def test_a_few_bad_cells_are_each_named(tiny_dataset):
    header, rows = _table(tiny_dataset)
    rows[0][header.index("A_x")] = "yes"
    rows[4][header.index("B_x")] = "1,0"  # a decimal comma
    _write(tiny_dataset, header, rows)
    report = validate_dataset(tiny_dataset)
    got = sorted((e.case, e.message) for e in report.errors)
    assert [c for c, _ in got] == sorted([rows[0][0], rows[4][0]])
    assert any("decimal comma" in m for _, m in got) and any("write 1" in m for _, m in got)


def test_blank_trailing_rows_are_skipped_with_a_warning(tiny_dataset):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, header, rows + [[""] * len(header)] * 3)
    report = validate_dataset(tiny_dataset)
    assert report.ok and report.summary["cases"] == len(rows)
    assert [w.rule for w in report.warnings] == ["blank-rows"] and "3 rows" in report.warnings[
        0
    ].message
    assert len(read_dataset(tiny_dataset).cases) == len(rows)


def test_duplicate_and_miscased_columns(tiny_dataset):
    header, rows = _table(tiny_dataset)
    _write(tiny_dataset, [*header, "A_x"], [[*r, "1"] for r in rows])  # A_x twice: which one?
    report = validate_dataset(tiny_dataset)
    assert report.rules() == {"column-duplicate"}
    with pytest.raises(DatasetError, match="'A_x' appears 2 times"):
        read_dataset(tiny_dataset)
    _write(tiny_dataset, ["Case_ID", *header[1:]], rows)
    report = validate_dataset(tiny_dataset)
    assert [e.rule for e in report.errors] == ["column-missing"]
    assert "found 'Case_ID' (column names are case-sensitive)" in report.errors[0].message


def test_long_numeric_ids_rewritten_by_a_spreadsheet_are_flagged(tiny_dataset):
    header, rows = _table(tiny_dataset)
    for r in rows:  # MRN-like patient ids 123456789012, 123456789013 -> both 1.23457E+11
        r[header.index("patient_id")] = "1.23457E+11"
    _write(tiny_dataset, header, rows)
    report = validate_dataset(tiny_dataset)
    assert report.ok and report.summary["patients"] == 1
    assert [w.rule for w in report.warnings] == ["id-mangled"]
    assert f"{len(rows)} patient_id values" in report.warnings[0].message
    assert "format the column as text" in report.warnings[0].message


# --- paths from Windows ----------------------------------------------------------------


def test_backslash_paths_from_windows_are_read(tiny_dataset):
    header, rows = _table(tiny_dataset)
    for r in rows:
        for col in ("image", "tissue", "regions"):
            r[header.index(col)] = r[header.index(col)].replace("/", "\\")
    _write(tiny_dataset, header, rows)
    assert validate_dataset(tiny_dataset).ok
    ds = read_dataset(tiny_dataset)
    assert ds.cases[0].image.startswith("images\\")
    ref = np.asarray(ds.image(ds.cases[0]))
    assert ref.shape == (32, 32) and ds.regions(ds.cases[0]).max() == 3


def test_a_file_name_in_another_letter_case_is_pointed_out(tiny_dataset):
    header, rows = _table(tiny_dataset)
    (tiny_dataset / rows[0][header.index("image")]).rename(
        tiny_dataset / "images" / "P0_Palmar.png"
    )
    report = validate_dataset(tiny_dataset)
    assert report.rules() == {"file-missing"}
    assert "found images/P0_Palmar.png" in report.errors[0].message


# --- hostile or broken files (these held before; kept so by these tests) ----------------


def test_a_symlink_leaving_the_folder_is_rejected(tiny_dataset, tmp_path):
    header, rows = _table(tiny_dataset)
    outside = tmp_path / "outside.png"
    (tiny_dataset / rows[0][header.index("image")]).rename(outside)
    (tiny_dataset / rows[0][header.index("image")]).symlink_to(outside)
    report = validate_dataset(tiny_dataset)
    assert report.rules() == {"path"} and "escapes the dataset folder" in report.errors[0].message
    ds = read_dataset(tiny_dataset)  # the index is fine; opening the image is refused
    with pytest.raises(DatasetError, match="escapes the dataset folder"):
        ds.image(ds.cases[0])


def _png_header_only(path, width, height):
    """A PNG that claims width x height pixels (IHDR) with a tiny IDAT: a decompression bomb."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("side", "says"),
    [
        (40_000, "DecompressionBombError"),  # Pillow's limit
        (10_000, "refused before decoding"),
    ],
)  # ours: 64 Mpx
def test_a_decompression_bomb_png_is_refused_without_decoding(tiny_dataset, side, says):
    header, rows = _table(tiny_dataset)
    _png_header_only(tiny_dataset / rows[0][header.index("image")], side, side)
    report = validate_dataset(tiny_dataset)
    assert report.rules() == {"unreadable"}
    assert says in report.errors[0].message and report.errors[0].case == rows[0][0]


@pytest.mark.parametrize("content", [b"garbage, not DICOM", "no-pixels"])
def test_broken_dicom_is_one_unreadable_error(tiny_dataset, content):
    from helpers import write_dicom

    header, rows = _table(tiny_dataset)
    path = tiny_dataset / "images" / "p0.dcm"
    if content == "no-pixels":
        import pydicom

        write_dicom(path, np.zeros((32, 32)))
        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path)
    else:
        path.write_bytes(content)
    rows[0][header.index("image")] = "images/p0.dcm"
    _write(tiny_dataset, header, rows)
    report = validate_dataset(tiny_dataset)
    assert report.rules() == {"unreadable"} and "cannot read image" in report.errors[0].message
    assert report.errors[0].file == "images/p0.dcm" and "Traceback" not in report.errors[0].message
